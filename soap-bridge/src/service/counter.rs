//! A counter field changed in place: `increment` adds to an integer field
//! on the update path (load, change, conditional save; re-run from a fresh
//! read after a concurrent write), so concurrent increments through any
//! number of bridges on one store are each counted once.
//!
//! When the store fails after the save may have reached it, the caller
//! cannot know whether the increment was applied: the error's
//! [`OpError::delivery`] says so (`Unknown`), and the surfaces pass it on,
//! so a client can tell "not applied" from "maybe applied" before it
//! retries.
//!
//! Imports session-core only, like the rest of the service.

use serde_json::Value;
use session_core::Error as CoreError;

use super::{OpError, Service, from_core};

/// The integer in a counter field: a JSON integer, or a string holding one
/// (what a Perl client that printed the number leaves); absent counts as 0.
fn counter_value(field: &str, value: Option<&Value>) -> Result<i64, CoreError> {
    let not_integer = || CoreError::field(field, "is not an integer, so it cannot be incremented");
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(not_integer),
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| not_integer()),
        Some(_) => Err(not_integer()),
    }
}

impl Service {
    /// Adds `by` to the integer field `field` of session `id` (absent
    /// counts as 0) and returns the new value; `Ok(None)` when no such
    /// session exists. A field that is not an integer, an overflow, or the
    /// id field itself is [`OpError::BadRequest`].
    pub async fn increment(&self, id: &str, field: &str, by: i64) -> Result<Option<i64>, OpError> {
        if field.is_empty() || field == super::ID_FIELD {
            return Err(OpError::BadRequest(format!(
                "field {field:?} cannot be incremented"
            )));
        }
        let mut new_value = 0;
        let updated = self
            .sessions
            .update(id, |session| {
                let old = counter_value(field, session.get_value(field))?;
                let next = old.checked_add(by).ok_or_else(|| {
                    CoreError::field(field, format!("{old} + {by} overflows a 64-bit integer"))
                })?;
                session.insert(field.to_owned(), next)?;
                // The last run of the closure is the one saved.
                new_value = next;
                Ok(())
            })
            .await
            .map_err(from_core)?;
        Ok(updated.map(|_| new_value))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counter_values() {
        assert_eq!(counter_value("n", None).ok(), Some(0));
        assert_eq!(counter_value("n", Some(&Value::Null)).ok(), Some(0));
        assert_eq!(counter_value("n", Some(&json!(41))).ok(), Some(41));
        assert_eq!(counter_value("n", Some(&json!("-7"))).ok(), Some(-7));
        for bad in [
            json!(1.5),
            json!("x"),
            json!([1]),
            json!({"a": 1}),
            json!(true),
        ] {
            let e = counter_value("n", Some(&bad)).err().map(|e| e.kind());
            assert_eq!(e, Some(session_core::ErrorKind::InvalidInput), "{bad}");
        }
    }
}

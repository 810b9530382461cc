//! A tower-sessions [`Record`](tower_sessions_core::session::Record) and a
//! memorycached session, field by field:
//!
//! | `Record` | session |
//! |---|---|
//! | `id: Id(i128)` | the key: 32 hex digits of the same 16 bytes (see [`crate::id`]) |
//! | `data: HashMap<String, Value>` | the fields, as they are; `_session_id` (kept by the store, always the key's id) is never shown to tower-sessions nor taken from it |
//! | `expiry_date` | the item's TTL: whole seconds from now, rounded up; [`FOREVER`] is [`Ttl::NEVER`] |
//!
//! Loading turns the remaining TTL back into a date (to the second). A
//! store that cannot tell the remaining TTL ([`session_core::Capabilities::ttl_read`]
//! false, e.g. memcached's classic protocol) gives `now + timeout` (the
//! latest the session can expire), or [`FOREVER`] without a timeout.
//! tower-sessions itself recomputes the date from its own `Expiry` before
//! every save, so the loaded date only informs.
//!
//! Fields set by `Sessions` itself — `<principal>_MD5`, stamped for Perl
//! readers when a principal field is configured — are ordinary fields here:
//! shown on load and recomputed on every save whatever the record says.

use std::collections::HashMap;

use serde_json::Value;
use session_core::session::ID_FIELD;
use session_core::{Patch, Session, Ttl};
use time::OffsetDateTime;

/// The data map of a record (tower-sessions' `Data`).
pub type Fields = HashMap<String, Value>;

/// The expiry date that stands for "never expires" ([`Ttl::NEVER`]): the
/// last instant `time` can represent, 9999-12-31 23:59:59.999999999 UTC.
pub const FOREVER: OffsetDateTime = time::PrimitiveDateTime::MAX.assume_utc();

/// A session's fields as a record's data (without `_session_id`).
pub fn fields_of(session: &Session) -> Fields {
    session
        .iter()
        .filter(|(k, _)| *k != ID_FIELD)
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
}

/// The TTL that makes a session expire at `expiry`, seen at `now`: `None`
/// when that is already past (the session must not be written).
pub fn ttl_of(expiry: OffsetDateTime, now: OffsetDateTime) -> Option<Ttl> {
    if expiry >= FOREVER {
        return Some(Ttl::NEVER);
    }
    let nanos = expiry.unix_timestamp_nanos() - now.unix_timestamp_nanos();
    if nanos <= 0 {
        return None;
    }
    // Rounded up: a session asked to live 1.2 s lives 2, never 0 (= forever).
    let secs = (nanos + 999_999_999) / 1_000_000_000;
    Some(Ttl::seconds(u32::try_from(secs).unwrap_or(u32::MAX)))
}

/// The expiry date of a session that has `remaining` to live at `now`
/// (`None`: the store cannot tell; `timeout` is then the upper bound).
pub fn expiry_of(remaining: Option<Ttl>, timeout: Ttl, now: OffsetDateTime) -> OffsetDateTime {
    let ttl = remaining.unwrap_or(timeout);
    if ttl.is_never() {
        return FOREVER;
    }
    OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + i64::from(ttl.as_secs()))
        .unwrap_or(FOREVER)
}

/// What turns `before` into `after`: the fields set to a new value and the
/// fields removed. `_session_id` is never part of it.
pub fn diff(before: &Fields, after: &Fields) -> Patch {
    let mut patch = Patch::new();
    for (k, v) in after {
        if k != ID_FIELD && before.get(k) != Some(v) {
            patch.set.insert(k.clone(), v.clone());
        }
    }
    for k in before.keys() {
        if k != ID_FIELD && !after.contains_key(k) {
            patch.remove.push(k.clone());
        }
    }
    patch.remove.sort();
    patch
}

/// Applies `patch` to a session handle.
pub fn apply(session: &mut Session, patch: &Patch) -> session_core::Result<()> {
    for (k, v) in &patch.set {
        session.insert(k, v)?;
    }
    for k in &patch.remove {
        session.remove(k);
    }
    Ok(())
}

/// The patch that makes a session's fields exactly `fields` (the save of a
/// request whose base is unknown: last writer wins, as in tower-sessions'
/// own stores).
pub fn replacement(session: &Session, fields: &Fields) -> Patch {
    diff(&fields_of(session), fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn expiry_and_ttl_round_trip_to_the_second() {
        let now = at(1_700_000_000);
        assert_eq!(ttl_of(at(1_700_000_300), now), Some(Ttl::seconds(300)));
        let later = now + time::Duration::milliseconds(1_200);
        assert_eq!(ttl_of(later, now), Some(Ttl::seconds(2)), "rounded up");
        assert_eq!(ttl_of(now, now), None, "already expired");
        assert_eq!(ttl_of(at(1), now), None);
        assert_eq!(ttl_of(FOREVER, now), Some(Ttl::NEVER));
        assert_eq!(
            expiry_of(Some(Ttl::seconds(300)), Ttl::NEVER, now),
            at(1_700_000_300)
        );
        assert_eq!(expiry_of(None, Ttl::seconds(60), now), at(1_700_000_060));
        assert_eq!(expiry_of(Some(Ttl::NEVER), Ttl::seconds(60), now), FOREVER);
        assert_eq!(expiry_of(None, Ttl::NEVER, now), FOREVER);
    }

    #[test]
    fn diff_names_exactly_the_changed_fields() {
        let before: Fields = [
            ("a".into(), 1.into()),
            ("b".into(), 2.into()),
            ("c".into(), 3.into()),
        ]
        .into_iter()
        .collect();
        let after: Fields = [
            ("a".into(), 1.into()),
            ("b".into(), 5.into()),
            ("d".into(), "x".into()),
        ]
        .into_iter()
        .collect();
        let patch = diff(&before, &after);
        assert_eq!(patch.set.len(), 2);
        assert_eq!(patch.set["b"], 5);
        assert_eq!(patch.set["d"], "x");
        assert_eq!(patch.remove, ["c"]);
        assert!(diff(&after, &after).is_empty());
    }
}

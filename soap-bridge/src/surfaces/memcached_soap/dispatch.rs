//! SOAP calls to [`Service`] operations: SOAPAction check, parameter
//! decoding, results and faults. The original's three operations behave as
//! its SOAP::Lite clients expect; the others are this bridge's additions.
//!
//! | operation | parameters | result |
//! |---|---|---|
//! | `status()` | — | `xsd:string` containing `OK` |
//! | `getSession(id)` | id | the session (struct or Map), or an empty element if unknown |
//! | `setSession(k1, v1, k2, v2, ...)` | pairs, or one Map/struct, or one array of pairs | the new id |
//! | `updateSession(id, fields)` | id, Map/struct (`nil` removes a field) | `xsd:boolean`: the session existed |
//! | `deleteSession(id)` | id | `xsd:boolean`: the session existed |
//! | `touchSession(id)` | id | `xsd:boolean`: the session existed |
//! | `findByPrincipal(uid)` | user | the session, or an empty element |
//!
//! Knows no HTTP: it imports only [`crate::service`] and the wire format
//! [`crate::soap`], never its parent (the HTTP side) nor another surface.

use serde_json::{Map, Value};

use crate::service::{OpError, Service};
use crate::soap::encode::{map_response, response};
use crate::soap::parse::{Call, is_service_namespace, printable, to_value};
use crate::soap::{Fault, NS_SERVICE};
use crate::status;

/// What `status` answers (the original's text: it contains `OK`).
pub const STATUS_TEXT: &str = "...... MEMCACHED SOAP OK ......";

/// The operations [`call`] knows.
pub const OPERATIONS: &[&str] = &[
    "status",
    "getSession",
    "setSession",
    "updateSession",
    "deleteSession",
    "touchSession",
    "findByPrincipal",
];

/// Checks the `SOAPAction` header against the method, as the original did:
/// absent or empty is fine; otherwise it must be `"urn:MemcachedSOAPClass#method"`
/// (quotes optional).
pub fn check_soap_action(header: Option<&str>, method: &str) -> Result<(), Fault> {
    let Some(raw) = header else { return Ok(()) };
    let action = raw.trim().trim_matches('"');
    if action.is_empty() {
        return Ok(());
    }
    // Compared in pieces: no `uri#method` string made for a match.
    if action
        .strip_prefix(NS_SERVICE)
        .and_then(|rest| rest.strip_prefix('#'))
        == Some(method)
    {
        Ok(())
    } else {
        Err(Fault::client(format!(
            "SOAPAction shall match 'uri#method' if present (got '{}', expected '{NS_SERVICE}#{method}')",
            printable(action)
        )))
    }
}

/// The operation name to report in metrics for a method (unknown names are
/// folded so clients cannot grow the label set).
pub fn metric_name(method: &str) -> &'static str {
    OPERATIONS
        .iter()
        .find(|op| **op == method)
        .copied()
        .unwrap_or("unknown")
}

/// Runs a parsed call. `Ok` is the whole response: the envelope around the
/// one result element.
pub async fn call(service: &Service, call: &Call) -> Result<String, Fault> {
    if call.method == "getSession" && is_service_namespace(call.namespace.as_deref()) {
        // Written from the loaded session in place, without a copy of its
        // map; the empty map when there is none (what `result` writes for
        // the other operations' maps).
        let id = one_string(&params(call)?, "getSession(id)")?;
        let found = service
            .get_with(&id, |data| map_response(&call.method, data))
            .await
            .map_err(fault)?;
        return Ok(found.unwrap_or_else(|| map_response(&call.method, &Map::new())));
    }
    let result = result(service, call).await?;
    Ok(response(&call.method, Some(&result)))
}

/// The parameters of `call` as values.
fn params(call: &Call) -> Result<Vec<Value>, Fault> {
    call.params.iter().map(to_value).collect()
}

/// The value of the one result element of `call`.
async fn result(service: &Service, call: &Call) -> Result<Value, Fault> {
    if !is_service_namespace(call.namespace.as_deref()) {
        return Err(Fault::client(format!(
            "Denied access to method ({}) in namespace ({})",
            printable(&call.method),
            printable(call.namespace.as_deref().unwrap_or(""))
        )));
    }
    let params = || params(call);
    let empty = || Value::Object(Map::new());
    match call.method.as_str() {
        "status" => Ok(Value::String(STATUS_TEXT.into())),
        "setSession" => {
            let fields = pairs(params()?)?;
            service.set(fields).await.map(Value::String).map_err(fault)
        }
        "updateSession" => {
            let mut p = params()?.into_iter();
            let (Some(id), Some(Value::Object(fields)), None) = (p.next(), p.next(), p.next())
            else {
                return Err(Fault::client(
                    "updateSession takes (id, fields as a struct or Map)",
                ));
            };
            let id = string(id, "updateSession id")?;
            service
                .update(&id, fields)
                .await
                .map(Value::Bool)
                .map_err(fault)
        }
        "deleteSession" => {
            let id = one_string(&params()?, "deleteSession(id)")?;
            service.delete(&id).await.map(Value::Bool).map_err(fault)
        }
        "touchSession" => {
            let id = one_string(&params()?, "touchSession(id)")?;
            service.touch(&id).await.map(Value::Bool).map_err(fault)
        }
        "findByPrincipal" => {
            let uid = one_string(&params()?, "findByPrincipal(uid)")?;
            Ok(service
                .find_by_principal(&uid)
                .await
                .map_err(fault)?
                .map_or_else(empty, Value::Object))
        }
        other => Err(Fault::client(format!(
            "Failed to locate method ({}) in class (MemcachedSOAPClass)",
            printable(other)
        ))),
    }
}

/// A service error as a fault: `Client` or `Server` by its class, as on
/// every surface ([`crate::status`]).
fn fault(e: OpError) -> Fault {
    status::fault(&e)
}

fn one_string(params: &[Value], what: &str) -> Result<String, Fault> {
    match params {
        [v] => string(v.clone(), what),
        _ => Err(Fault::client(format!("{what} takes exactly one parameter"))),
    }
}

/// A scalar as text, the way Perl would stringify it.
fn string(v: Value, what: &str) -> Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Fault::client(format!("{what} must be a string"))),
    }
}

/// `setSession`'s parameters as fields: `k1, v1, k2, v2, ...` (the
/// original's form, later pairs winning like Perl's `%h = @_`), or one
/// struct/Map, or one array of pairs.
fn pairs(params: Vec<Value>) -> Result<Map<String, Value>, Fault> {
    let list = match <[Value; 1]>::try_from(params) {
        Ok([Value::Object(fields)]) => return Ok(fields),
        Ok([Value::Array(items)]) => items,
        Ok([single]) => vec![single],
        Err(params) => params,
    };
    if list.len() % 2 != 0 {
        return Err(Fault::client(
            "setSession takes key, value pairs: odd number of parameters",
        ));
    }
    let mut fields = Map::new();
    let mut it = list.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        fields.insert(string(k, "a setSession key")?, v);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_action_rules() {
        assert!(check_soap_action(None, "status").is_ok());
        assert!(check_soap_action(Some("\"\""), "status").is_ok());
        assert!(check_soap_action(Some("\"urn:MemcachedSOAPClass#status\""), "status").is_ok());
        let f = check_soap_action(Some("\"urn:Other#status\""), "status").unwrap_err();
        assert!(
            f.message.starts_with(
                "SOAPAction shall match 'uri#method' if present (got 'urn:Other#status'"
            )
        );
    }

    #[test]
    fn pair_forms() {
        let v = pairs(vec!["a".into(), 1.into(), "a".into(), 2.into()]).unwrap();
        assert_eq!(Value::Object(v), serde_json::json!({"a": 2}));
        assert!(pairs(vec!["a".into()]).is_err());
        let v = pairs(vec![serde_json::json!(["k", "v"])]).unwrap();
        assert_eq!(Value::Object(v), serde_json::json!({"k": "v"}));
        assert!(pairs(vec![serde_json::json!([1, 2]), "x".into()]).is_err());
        assert_eq!(metric_name("nope"), "unknown");
    }
}

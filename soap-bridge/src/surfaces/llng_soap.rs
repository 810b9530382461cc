//! LemonLDAP::NG's SOAP session service
//! (`urn:Lemonldap/NG/Common/PSGI/SOAPService`), as its client module
//! `Lemonldap::NG::Common::Apache::Session::SOAP` calls it: the session
//! server of an LL::NG handler or portal whose `globalStorage` is that
//! module with `proxy => 'http://bridge/llng/soap'`.
//!
//! | route | what |
//! |---|---|
//! | `POST /llng/soap` | `newSession`, `getAttributes`, `setAttributes`, `deleteSession` |
//!
//! - `newSession(map?)`: a new session with those fields and `_utime` (now);
//!   answers its fields, `_session_id` included.
//! - `getAttributes(id)`: `error` 0 and the fields, or `error` 1 for an
//!   unknown (or malformed) id: never a fault, the client reads `error`.
//! - `setAttributes(id, map)`: sets the given fields (nil removes one)
//!   through the conflict-safe save; 1, or 0 when there is no such session:
//!   it never creates, so no caller chooses an id.
//! - `deleteSession(id)`: 1, or 0.
//!
//! Values keep their Perl bytes as for the original protocol
//! ([`crate::soap`]); the answers' shapes are [`crate::llng::soap`]'s.
//! With `[auth]`, every call needs the credentials: a 401 with the
//! challenge is what makes the client (LWP) send its `User`/`Password`.
//! A malformed request is a `soap:Client` fault (HTTP 500, as SOAP 1.1
//! says), a store failure a `soap:Server` fault. docs/llng.md has the
//! protocol.
//!
//! Imports the shared leaves (state, body, credentials), the wire formats
//! and the service; no other surface, and nothing imports it but the
//! route table.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value};

use crate::body::read_body;
use crate::credentials::{authorized, challenge};
use crate::llng::soap::{NS, OPERATIONS, get_attributes, new_session, result};
use crate::llng::{KIND_FIELD, UTIME_FIELD};
use crate::service::{OpError, Service};
use crate::soap::parse::{Call, parse_call, printable, to_value};
use crate::soap::{Fault, FaultCode};
use crate::state::AppState;
use crate::status;

/// The path of the service.
pub const PATH: &str = "/llng/soap";

/// The service's route.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(llng_soap_post))
}

async fn llng_soap_post(State(state): State<AppState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let (op, status, response) = exchange(&state, &parts.headers, body).await;
    state.metrics.observe(op, &status, start.elapsed());
    response
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut r = (status, xml).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

fn fault_response(status: StatusCode, fault: &Fault) -> Response {
    xml_response(status, fault.to_xml())
}

/// The metrics name of an operation (unknown names folded).
fn metric_name(method: &str) -> &'static str {
    match OPERATIONS.iter().position(|op| *op == method) {
        Some(0) => "llng.newSession",
        Some(1) => "llng.getAttributes",
        Some(2) => "llng.setAttributes",
        Some(3) => "llng.deleteSession",
        _ => "llng.unknown",
    }
}

/// One exchange: (operation for metrics, outcome label, response).
async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, String, Response) {
    if !authorized(&state.config, headers) {
        let mut r = fault_response(
            StatusCode::UNAUTHORIZED,
            &Fault::client("authentication required"),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        return ("llng.unparsed", "401".into(), r);
    }
    let body = match read_body(&state.config, headers, body).await {
        Ok(b) => b,
        Err(e) => {
            let r = fault_response(e.status(), &Fault::client(e.message()));
            return ("llng.unparsed", e.status().as_u16().to_string(), r);
        }
    };
    let call = match parse_call(&body) {
        Ok(c) => c,
        Err(f) => {
            let r = fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f);
            return ("llng.unparsed", "soap:Client".into(), r);
        }
    };
    let op = metric_name(&call.method);
    let action = headers.get("soapaction").and_then(|v| v.to_str().ok());
    let outcome = match check_call(action, &call) {
        Ok(()) => dispatch(&state.service, &call).await,
        Err(f) => Err(f),
    };
    match outcome {
        Ok(xml) => (op, "200".into(), xml_response(StatusCode::OK, xml)),
        Err(f) => {
            if f.code == FaultCode::Server {
                state.metrics.store_error("llng_soap");
                tracing::warn!(operation = op, fault = %f.message, "store error");
            }
            let label = match f.code {
                FaultCode::Client => "soap:Client",
                FaultCode::Server => "soap:Server",
            };
            let r = fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f);
            (op, label.into(), r)
        }
    }
}

/// The namespace and the `SOAPAction` (absent, empty, or `"NS#method"`).
fn check_call(action: Option<&str>, call: &Call) -> Result<(), Fault> {
    if call.namespace.as_deref() != Some(NS) {
        return Err(Fault::client(format!(
            "Denied access to method ({}) in namespace ({}): this endpoint serves {NS}",
            printable(&call.method),
            printable(call.namespace.as_deref().unwrap_or(""))
        )));
    }
    let action = action.map(|a| a.trim().trim_matches('"')).unwrap_or("");
    let expected = format!("{NS}#{}", call.method);
    if action.is_empty() || action == expected {
        Ok(())
    } else {
        Err(Fault::client(format!(
            "SOAPAction shall match 'ns#method' if present (got '{}', expected '{expected}')",
            printable(action)
        )))
    }
}

/// Runs one operation; `Ok` is the whole response envelope.
async fn dispatch(service: &Service, call: &Call) -> Result<String, Fault> {
    let params = call
        .params
        .iter()
        .map(to_value)
        .collect::<Result<Vec<Value>, Fault>>()?;
    match call.method.as_str() {
        "newSession" => {
            let mut fields = match params.into_iter().next() {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                // SOAP::Lite sends an empty hash as an empty element.
                Some(Value::String(s)) if s.is_empty() => Map::new(),
                Some(_) => return Err(Fault::client("newSession takes a map of fields")),
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            fields.insert(UTIME_FIELD.into(), Value::from(now));
            let data = service.create_returning(fields).await.map_err(fault)?;
            Ok(new_session(&data))
        }
        "getAttributes" => {
            let id = id_param(&params, "getAttributes")?;
            match service.get(&id).await {
                Ok(data) => Ok(get_attributes(data.as_ref())),
                Err(OpError::InvalidId(_)) => Ok(get_attributes(None)),
                Err(e) => Err(fault(e)),
            }
        }
        "setAttributes" => {
            let id = id_param(&params, "setAttributes")?;
            let mut fields = match params.into_iter().nth(1) {
                Some(Value::Object(m)) => m,
                Some(Value::String(s)) if s.is_empty() => Map::new(),
                _ => {
                    return Err(Fault::client(
                        "setAttributes takes an id and a map of fields",
                    ));
                }
            };
            // As LL::NG's server: an existing kind is never changed.
            if fields.contains_key(KIND_FIELD) {
                match service.get(&id).await {
                    Ok(Some(data)) if data.get(KIND_FIELD).is_some_and(|k| !k.is_null()) => {
                        fields.remove(KIND_FIELD);
                    }
                    _ => {}
                }
            }
            match service.update(&id, fields).await {
                Ok(done) => Ok(result("setAttributes", i64::from(done))),
                Err(OpError::InvalidId(_)) => Ok(result("setAttributes", 0)),
                Err(e) => Err(fault(e)),
            }
        }
        "deleteSession" => {
            let id = id_param(&params, "deleteSession")?;
            match service.delete(&id).await {
                Ok(done) => Ok(result("deleteSession", i64::from(done))),
                Err(OpError::InvalidId(_)) => Ok(result("deleteSession", 0)),
                Err(e) => Err(fault(e)),
            }
        }
        other => Err(Fault::client(format!(
            "{} is not an authorized function",
            printable(other)
        ))),
    }
}

/// The first parameter, the session id, as text.
fn id_param(params: &[Value], method: &str) -> Result<String, Fault> {
    match params.first() {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(Fault::client(format!("{method}: id is required"))),
    }
}

/// A service error as a fault: `Client` or `Server` by its class, as on
/// every surface ([`crate::status`]).
fn fault(e: OpError) -> Fault {
    status::fault(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ns: Option<&str>, method: &str) -> Call {
        Call {
            namespace: ns.map(str::to_owned),
            method: method.into(),
            params: Vec::new(),
        }
    }

    #[test]
    fn namespace_and_soap_action() {
        let c = call(Some(NS), "getAttributes");
        assert!(check_call(None, &c).is_ok());
        assert!(check_call(Some("\"\""), &c).is_ok());
        assert!(
            check_call(
                Some("\"urn:Lemonldap/NG/Common/PSGI/SOAPService#getAttributes\""),
                &c
            )
            .is_ok()
        );
        assert!(
            check_call(
                Some("\"urn:Lemonldap/NG/Common/PSGI/SOAPService#newSession\""),
                &c
            )
            .is_err()
        );
        assert!(check_call(None, &call(Some("urn:MemcachedSOAPClass"), "getAttributes")).is_err());
        assert!(check_call(None, &call(None, "getAttributes")).is_err());
    }

    #[test]
    fn metric_names_are_bounded() {
        assert_eq!(metric_name("setAttributes"), "llng.setAttributes");
        assert_eq!(metric_name("getCookies"), "llng.unknown");
    }
}

//! Fuzz target: the bridge's HTTP surfaces in process (the JSON mirror
//! first, and whatever else a raw request reaches: SOAP, LL::NG REST and
//! SOAP, monitoring), on a fresh `memory://` bridge per input, through
//! `soap_bridge::surfaces::router` as the server mounts it.
//!
//! Structure-aware: a short sequence of mirror operations on generated
//! sessions (create, get, patch, put, delete, touch, principal) and raw
//! requests (any method, path and body bytes).
//!
//! Checked, besides "no panic":
//! - no answer is a 5xx other than 501 or a SOAP fault blaming the client
//!   (SOAP 1.1 sends faults with 500); the store is in memory: nothing
//!   may fail on the server's side because of what a client sent;
//! - every answer of a mirror route that is not 2xx is a JSON object with
//!   `error` and `code`;
//! - the mirror's body handling keeps data: a model of each created
//!   session (create, then patches with `null` deleting, puts) equals what
//!   `GET` returns, `_session_id` aside.
//!
//! Limit: 64 MiB allocated at once per input (the body limit is 1 MiB).
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::{ArbMap, within};
use serde_json::{Map, Value};
use tower::ServiceExt as _;

#[derive(Debug, Arbitrary)]
enum Target {
    /// One of the sessions created so far (by index).
    Created(u8),
    /// Any id text.
    Literal(String),
}

#[derive(Debug, Arbitrary)]
enum Payload {
    Json(ArbMap),
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Step {
    Create(Payload),
    Get(Target),
    Patch(Target, Payload),
    Put(Target, Payload),
    Delete(Target),
    Touch(Target),
    Principal(String),
    Raw {
        method: u8,
        path: String,
        body: Vec<u8>,
        json: bool,
    },
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Percent-encodes a path segment (everything but unreserved ASCII).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

async fn send(
    app: &axum::Router,
    method: Method,
    path: &str,
    body: Vec<u8>,
    json: bool,
) -> Option<Answer> {
    let mut req = Request::builder().method(method).uri(path);
    if json {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    // A path the `http` crate refuses never reaches the server either.
    let req = req.body(Body::from(body)).ok()?;
    let response = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes()
        .to_vec();
    // SOAP 1.1 answers every fault with 500; what matters is that it
    // blames the client (a server fault on a memory store is a bug).
    let text = String::from_utf8_lossy(&body);
    let client_fault = status == StatusCode::INTERNAL_SERVER_ERROR
        && text.contains("<faultcode>soap:Client</faultcode>");
    assert!(
        !status.is_server_error() || status == StatusCode::NOT_IMPLEMENTED || client_fault,
        "{status} for {path}: {text}"
    );
    Some(Answer { status, body })
}

/// A mirror route's error must be a JSON error object.
fn check_json_error(answer: &Answer, path: &str) {
    if answer.status.is_success() || answer.status == StatusCode::METHOD_NOT_ALLOWED {
        return;
    }
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "{} for {path} is not JSON ({e}): {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    });
    assert!(v.get("error").is_some() && v.get("code").is_some(), "{v}");
}

fn payload(p: Payload) -> (Vec<u8>, Option<Map<String, Value>>) {
    match p {
        Payload::Json(ArbMap(m)) => (serde_json::to_vec(&m).expect("a map serialises"), Some(m)),
        Payload::Bytes(b) => (b, None),
    }
}

async fn run(steps: Vec<Step>) {
    let state = soap_bridge::app_state(soap_bridge::Config::default()).expect("the default config");
    let app = soap_bridge::surfaces::router(state);
    // Created ids, and what each should hold (`None` once unknown).
    let mut ids: Vec<String> = Vec::new();
    let mut model: HashMap<String, Option<Map<String, Value>>> = HashMap::new();
    let pick = |t: &Target, ids: &Vec<String>| match t {
        Target::Created(i) if !ids.is_empty() => ids[usize::from(*i) % ids.len()].clone(),
        Target::Created(_) => "0".repeat(32),
        Target::Literal(s) => s.clone(),
    };
    for step in steps.into_iter().take(8) {
        match step {
            Step::Create(p) => {
                let (body, sent) = payload(p);
                let Some(a) = send(&app, Method::POST, "/sessions", body, true).await else {
                    continue;
                };
                check_json_error(&a, "/sessions");
                if a.status == StatusCode::CREATED {
                    let v: Value = serde_json::from_slice(&a.body).expect("201 is JSON");
                    let id = v["id"].as_str().expect("201 names the id").to_owned();
                    let expected = sent
                        .filter(|m| !m.contains_key("_session_id"))
                        .map(|mut m| {
                            m.retain(|_, v| !v.is_null());
                            m
                        });
                    ids.push(id.clone());
                    model.insert(id, expected);
                }
            }
            Step::Get(t) => {
                let id = pick(&t, &ids);
                let path = format!("/sessions/{}", segment(&id));
                let Some(a) = send(&app, Method::GET, &path, Vec::new(), false).await else {
                    continue;
                };
                check_json_error(&a, &path);
                if let Some(Some(want)) = model.get(&id) {
                    assert_eq!(a.status, StatusCode::OK, "{path}");
                    let Value::Object(mut got) =
                        serde_json::from_slice(&a.body).expect("a JSON session")
                    else {
                        panic!("GET {path} is not an object");
                    };
                    got.remove("_session_id");
                    assert_eq!(&got, want, "{path}");
                }
            }
            Step::Patch(t, p) => {
                let id = pick(&t, &ids);
                let path = format!("/sessions/{}", segment(&id));
                let (body, sent) = payload(p);
                let Some(a) = send(&app, Method::PATCH, &path, body, true).await else {
                    continue;
                };
                check_json_error(&a, &path);
                if let Some(entry) = model.get_mut(&id) {
                    match (a.status, sent, entry.as_mut()) {
                        (StatusCode::NO_CONTENT, Some(fields), Some(m))
                            if !fields.contains_key("_session_id") =>
                        {
                            for (k, v) in fields {
                                if v.is_null() {
                                    m.remove(&k);
                                } else {
                                    m.insert(k, v);
                                }
                            }
                        }
                        (StatusCode::NO_CONTENT, _, _) => *entry = None,
                        _ => {}
                    }
                }
            }
            Step::Put(t, p) => {
                let id = pick(&t, &ids);
                let path = format!("/sessions/{}", segment(&id));
                let (body, sent) = payload(p);
                let Some(a) = send(&app, Method::PUT, &path, body, true).await else {
                    continue;
                };
                check_json_error(&a, &path);
                if let Some(entry) = model.get_mut(&id)
                    && a.status == StatusCode::NO_CONTENT
                {
                    *entry = sent.filter(|m| {
                        !m.contains_key("_session_id") && m.values().all(|v| !v.is_null())
                    });
                }
            }
            Step::Delete(t) => {
                let id = pick(&t, &ids);
                let path = format!("/sessions/{}", segment(&id));
                let Some(a) = send(&app, Method::DELETE, &path, Vec::new(), false).await else {
                    continue;
                };
                check_json_error(&a, &path);
                if model.contains_key(&id) && a.status == StatusCode::NO_CONTENT {
                    model.remove(&id);
                    ids.retain(|i| *i != id);
                    // Gone for good: a later read must say 404.
                    let Some(again) = send(&app, Method::GET, &path, Vec::new(), false).await
                    else {
                        continue;
                    };
                    assert_eq!(again.status, StatusCode::NOT_FOUND, "{path} after DELETE");
                }
            }
            Step::Touch(t) => {
                let id = pick(&t, &ids);
                let path = format!("/sessions/{}/touch", segment(&id));
                let Some(a) = send(&app, Method::POST, &path, Vec::new(), false).await else {
                    continue;
                };
                check_json_error(&a, &path);
            }
            Step::Principal(uid) => {
                let path = format!("/principals/{}", segment(&uid));
                let Some(a) = send(&app, Method::GET, &path, Vec::new(), false).await else {
                    continue;
                };
                check_json_error(&a, &path);
            }
            Step::Raw {
                method,
                path,
                body,
                json,
            } => {
                let method = match method % 6 {
                    0 => Method::GET,
                    1 => Method::POST,
                    2 => Method::PUT,
                    3 => Method::PATCH,
                    4 => Method::DELETE,
                    _ => Method::HEAD,
                };
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                let _ = send(&app, method, &path, body, json).await;
            }
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    within("the bridge's router", 64 << 20, || {
        runtime().block_on(run(steps))
    });
});

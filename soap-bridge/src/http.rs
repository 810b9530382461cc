//! The HTTP surface: routes, request bodies (size and time limits),
//! authentication, SOAP and JSON responses, `/metrics` and `/healthz`.
//!
//! | route | what |
//! |---|---|
//! | `POST /`, `POST /cgi-bin/MemcachedSOAP.cgi` | SOAP endpoint |
//! | `GET /?wsdl` (either path) | the WSDL |
//! | `POST /sessions` | JSON object → `201 {"id": ...}` |
//! | `GET/PATCH/PUT/DELETE /sessions/{id}` | read / change given keys / replace / delete |
//! | `POST /sessions/{id}/touch` | re-set the expiry |
//! | `GET /principals/{uid}` | the user's live session |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | `ok` |
//! | `/admin/...` | the session explorer, when enabled ([`crate::admin`]) |
//!
//! Errors of the JSON routes are JSON objects `{"error": ..., "code": ...}`:
//! 400 for an invalid id or malformed body, 404 for an unknown id or route,
//! 401 without valid credentials, 413 for a body over the limit, 408 for a
//! body that does not arrive in time, 503 when the store fails. SOAP faults
//! go out with HTTP 500, as SOAP 1.1 says, except 401/413/408, which say
//! what the transport refused (the body is still a `soap:Fault`).
//!
//! With `[auth]` configured, everything needs credentials except
//! `/healthz`, the WSDL and the SOAP `status` operation.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use http_body_util::{BodyExt as _, Limited};
use serde_json::{Map, Value, json};

use crate::config::{Auth, Config};
use crate::dispatch::{self, check_soap_action, metric_name};
use crate::metrics::Metrics;
use crate::service::{OpError, Service};
use crate::soap::encode::response;
use crate::soap::parse::parse_call;
use crate::soap::wsdl::wsdl;
use crate::soap::{Fault, FaultCode};

/// Everything a request handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The operations.
    pub service: Service,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The settings (auth, limits).
    pub config: Arc<Config>,
    /// The logins of the `/admin` pages.
    pub admin: Arc<crate::admin::AdminState>,
}

/// The router of the bridge.
pub fn router(state: AppState) -> Router {
    let admin = if state.config.admin.enabled {
        crate::admin::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(admin)
        .route("/", get(soap_get).post(soap_post))
        .route("/cgi-bin/MemcachedSOAP.cgi", get(soap_get).post(soap_post))
        .route("/sessions", post(json_create))
        .route(
            "/sessions/{id}",
            get(json_get)
                .patch(json_patch)
                .put(json_put)
                .delete(json_delete),
        )
        .route("/sessions/{id}/touch", post(json_touch))
        .route("/principals/{uid}", get(json_principal))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// Why a request body was not read.
pub(crate) enum BodyError {
    TooLarge(usize),
    Timeout,
    Broken(String),
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            BodyError::TooLarge(limit) => format!("request body exceeds {limit} bytes"),
            BodyError::Timeout => "request body did not arrive in time".into(),
            BodyError::Broken(e) => format!("reading the request body failed: {e}"),
        }
    }
}

/// Reads a body under the size limit and the body timeout. A declared
/// `Content-Length` over the limit is refused before reading anything.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, BodyError> {
    let limit = state.config.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(state.config.body_timeout(), collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

/// Whether the request carries the configured credentials (always true
/// without `[auth]`).
fn authorized(config: &Config, headers: &HeaderMap) -> bool {
    let Some(auth) = &config.auth else {
        return true;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match auth {
        Auth::Bearer { token } => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| ct_eq(t.trim().as_bytes(), token.as_bytes())),
        Auth::Basic { user, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .is_some_and(|decoded| ct_eq(&decoded, format!("{user}:{password}").as_bytes())),
    }
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn challenge(config: &Config) -> HeaderValue {
    match config.auth {
        Some(Auth::Basic { .. }) => HeaderValue::from_static("Basic realm=\"soap-bridge\""),
        _ => HeaderValue::from_static("Bearer realm=\"soap-bridge\""),
    }
}

// ---------------------------------------------------------------- SOAP

fn soap_response(status: StatusCode, xml: String) -> Response {
    let mut r = (status, xml).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    h.insert(
        "SOAPServer",
        HeaderValue::from_static(concat!(
            "memorycached-soap-bridge/",
            env!("CARGO_PKG_VERSION")
        )),
    );
    r
}

fn fault_response(status: StatusCode, fault: &Fault) -> Response {
    soap_response(status, fault.to_xml())
}

async fn soap_get(State(state): State<AppState>, request: Request) -> Response {
    let wants_wsdl = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("wsdl")));
    if !wants_wsdl {
        return (
            StatusCode::OK,
            "memorycached soap-bridge: POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n",
        )
            .into_response();
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let endpoint = format!("http://{host}{}", request.uri().path());
    state
        .metrics
        .observe("wsdl", "200", std::time::Duration::ZERO);
    let mut r = (StatusCode::OK, wsdl(&endpoint)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

async fn soap_post(State(state): State<AppState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let (op, status, response) = soap_exchange(&state, &parts.headers, body).await;
    state.metrics.observe(op, &status, start.elapsed());
    response
}

/// One SOAP exchange: (operation for metrics, outcome label, response).
async fn soap_exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, String, Response) {
    let body = match read_body(state, headers, body).await {
        Ok(b) => b,
        Err(e) => {
            let r = fault_response(e.status(), &Fault::client(e.message()));
            return ("unparsed", e.status().as_u16().to_string(), r);
        }
    };
    let call = match parse_call(&body) {
        Ok(c) => c,
        Err(f) => {
            return (
                "unparsed",
                "soap:Client".into(),
                fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
            );
        }
    };
    let op = metric_name(&call.method);
    let action = headers.get("soapaction").and_then(|v| v.to_str().ok());
    if let Err(f) = check_soap_action(action, &call.method) {
        return (
            op,
            "soap:Client".into(),
            fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
        );
    }
    if call.method != "status" && !authorized(&state.config, headers) {
        let mut r = fault_response(
            StatusCode::UNAUTHORIZED,
            &Fault::client("authentication required"),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        return (op, "401".into(), r);
    }
    match dispatch::call(&state.service, &call).await {
        Ok(result) => (
            op,
            "200".into(),
            soap_response(StatusCode::OK, response(&call.method, Some(&result))),
        ),
        Err(f) => {
            if f.code == FaultCode::Server {
                state.metrics.store_error("soap");
                tracing::warn!(operation = op, fault = %f.message, "store error");
            }
            let label = match f.code {
                FaultCode::Client => "soap:Client",
                FaultCode::Server => "soap:Server",
            };
            (
                op,
                label.into(),
                fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
            )
        }
    }
}

// ---------------------------------------------------------------- JSON

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": message, "code": code })),
    )
        .into_response()
}

fn op_error(state: &AppState, e: &OpError) -> Response {
    let status = match e {
        OpError::InvalidId(_) | OpError::BadRequest(_) => StatusCode::BAD_REQUEST,
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::NotConfigured(_) => StatusCode::NOT_IMPLEMENTED,
        OpError::Store(inner) => {
            state
                .metrics
                .store_error(&format!("{:?}", inner.kind()).to_lowercase());
            tracing::warn!(error = %inner, "store error");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    json_error(status, e.label(), &e.to_string())
}

/// Runs a JSON operation with auth and metrics around it.
async fn json_op<F, Fut>(state: &AppState, op: &'static str, headers: &HeaderMap, f: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let start = Instant::now();
    let response = if authorized(&state.config, headers) {
        f().await
    } else {
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication required",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        r
    };
    state
        .metrics
        .observe(op, response.status().as_str(), start.elapsed());
    response
}

/// Reads a body that must be a JSON object.
async fn json_object(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, Response> {
    let bytes = read_body(state, headers, body)
        .await
        .map_err(|e| json_error(e.status(), "body", &e.message()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        )),
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("malformed JSON: {e}"),
        )),
    }
}

async fn json_create(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    json_op(&state, "create", &parts.headers, || async {
        let fields = match json_object(&state, &parts.headers, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        match state.service.create(fields).await {
            Ok(id) => {
                let mut r = (StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response();
                if let Ok(loc) = HeaderValue::from_str(&format!("/sessions/{id}")) {
                    r.headers_mut().insert(header::LOCATION, loc);
                }
                r
            }
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn json_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    json_op(&state, "get", &headers, || async {
        match state.service.get(&id).await {
            Ok(Some(data)) => axum::Json(Value::Object(data)).into_response(),
            Ok(None) => op_error(&state, &OpError::NotFound(id.clone())),
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn json_change(state: AppState, id: String, request: Request, replace: bool) -> Response {
    let (parts, body) = request.into_parts();
    let op = if replace { "replace" } else { "patch" };
    json_op(&state, op, &parts.headers, || async {
        // The id is checked before the body is read or parsed.
        if let Err(e) = session_core::SessionId::parse(&id) {
            return op_error(&state, &OpError::InvalidId(e.to_string()));
        }
        let fields = match json_object(&state, &parts.headers, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        let done = if replace {
            state.service.replace(&id, fields).await
        } else {
            state.service.update(&id, fields).await
        };
        match done {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => op_error(&state, &OpError::NotFound(id.clone())),
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn json_patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    json_change(state, id, request, false).await
}

async fn json_put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    json_change(state, id, request, true).await
}

async fn json_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    json_op(&state, "delete", &headers, || async {
        match state.service.delete(&id).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => op_error(&state, &OpError::NotFound(id.clone())),
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn json_touch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    json_op(&state, "touch", &headers, || async {
        match state.service.touch(&id).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => op_error(&state, &OpError::NotFound(id.clone())),
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn json_principal(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> Response {
    json_op(&state, "find_by_principal", &headers, || async {
        match state.service.find_by_principal(&uid).await {
            Ok(Some(data)) => axum::Json(Value::Object(data)).into_response(),
            Ok(None) => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no live session for this user",
            ),
            Err(e) => op_error(&state, &e),
        }
    })
    .await
}

async fn metrics(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    let _ = method;
    if !authorized(&state.config, &headers) {
        let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        return r;
    }
    let s = state.service.stats();
    let mut extra = String::from(
        "# HELP soap_bridge_sessions_total Session operations since start (session-core counters).\n# TYPE soap_bridge_sessions_total counter\n",
    );
    for (name, n) in [
        ("created", s.created),
        ("loads", s.loads),
        ("local_hits", s.local_hits),
        ("not_found", s.not_found),
        ("saves_written", s.saves_written),
        ("saves_unchanged", s.saves_unchanged),
        ("merges", s.merges),
        ("conflicts", s.conflicts),
        ("deletes", s.deletes),
    ] {
        extra.push_str(&format!(
            "soap_bridge_sessions_total{{event=\"{name}\"}} {n}\n"
        ));
    }
    let mut r = state.metrics.render(&extra).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials() {
        let mut config = Config {
            auth: Some(Auth::Bearer {
                token: "s3cret".into(),
            }),
            ..Config::default()
        };
        let mut h = HeaderMap::new();
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&config, &h));
        config.auth = Some(Auth::Basic {
            user: "u".into(),
            password: "p".into(),
        });
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        assert!(authorized(&config, &h));
        assert!(authorized(&Config::default(), &HeaderMap::new()));
    }
}

//! The JSON mirror of the SOAP operations, for clients that would rather
//! not speak SOAP, over the same [`crate::service`].
//!
//! | route | what |
//! |---|---|
//! | `POST /sessions` | JSON object → `201 {"id": ...}` |
//! | `GET/PATCH/PUT/DELETE /sessions/{id}` | read / change given keys / replace / delete |
//! | `POST /sessions/{id}/touch` | re-set the expiry |
//! | `POST /sessions/{id}/increment` | `{"field": "n", "by": 1}` → `200 {"value": N}`, the new value |
//! | `GET /principals/{uid}` | the user's live session |
//!
//! Errors are JSON objects `{"error": ..., "code": ...}`, with the status
//! of their class ([`crate::status`], the table in the crate docs): 400
//! for an invalid id or malformed body, 404 for an unknown id or route
//! ([`not_found`] is also the bridge's fallback), 409 for a conflict, 503
//! with `Retry-After` when the store is unavailable, 500 for stored data
//! that cannot be decoded; and 401 without valid credentials (every route
//! here needs them when `[auth]` is set), 413 for a body over the limit,
//! 408 for a body that does not arrive in time. A store error's body also
//! says whether the request reached the store: `"delivery": "unknown"`
//! when a write may have been applied although it failed (retrying an
//! increment then may count it twice), `"not_sent"` when it certainly was
//! not; absent for other errors.
//!
//! `increment` runs on the update path (load, add, conditional save, re-run
//! after a concurrent write), so concurrent increments are each counted
//! once; `by` defaults to 1; a field that is not an integer is 400.
//!
//! Imports the shared leaves (state, body, credentials) and the service;
//! no other surface, and nothing imports it but the route table.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use session_core::Delivery;

use crate::body::read_body;
use crate::credentials::{authorized, challenge};
use crate::service::OpError;
use crate::state::AppState;
use crate::status;

/// The mirror's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(json_create))
        .route(
            "/sessions/{id}",
            get(json_get)
                .patch(json_patch)
                .put(json_put)
                .delete(json_delete),
        )
        .route("/sessions/{id}/touch", post(json_touch))
        .route("/sessions/{id}/increment", post(json_increment))
        .route("/principals/{uid}", get(json_principal))
}

/// The answer to a route nobody serves: 404 as a JSON error.
pub async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": message, "code": code })),
    )
        .into_response()
}

fn op_error(state: &AppState, e: &OpError) -> Response {
    if let OpError::Store(inner) = e {
        state
            .metrics
            .store_error(&format!("{:?}", inner.kind()).to_lowercase());
        tracing::warn!(error = %inner.chain(), "store error");
    }
    let answer = status::answer(e);
    let mut body = json!({ "error": e.to_string(), "code": e.label() });
    if let Some(delivery) = e.delivery() {
        body["delivery"] = Value::from(match delivery {
            Delivery::NotSent => "not_sent",
            Delivery::Unknown => "unknown",
        });
    }
    let mut r = (answer.status, axum::Json(body)).into_response();
    answer.apply(&mut r);
    r
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
    let bytes = read_body(&state.config, headers, body)
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
    request: Request,
) -> Response {
    // The headers borrowed from the request (a `HeaderMap` extractor
    // copies them all), the answer written from the loaded session in
    // place (no copy of its map).
    json_op(&state, "get", request.headers(), || async {
        match state
            .service
            .get_with(&id, |data| axum::Json(data).into_response())
            .await
        {
            Ok(Some(response)) => response,
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

/// The body of `POST /sessions/{id}/increment`: the field and the amount
/// (a whole number, 1 when absent), nothing else.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Increment {
    field: String,
    #[serde(default = "one")]
    by: i64,
}

fn one() -> i64 {
    1
}

async fn json_increment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    json_op(&state, "increment", &parts.headers, || async {
        // The id is checked before the body is read or parsed.
        if let Err(e) = session_core::SessionId::parse(&id) {
            return op_error(&state, &OpError::InvalidId(e.to_string()));
        }
        let fields = match json_object(&state, &parts.headers, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        let request: Increment = match serde_json::from_value(Value::Object(fields)) {
            Ok(r) => r,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("expected {{\"field\": NAME, \"by\": INTEGER}}: {e}"),
                );
            }
        };
        match state
            .service
            .increment(&id, &request.field, request.by)
            .await
        {
            Ok(Some(value)) => axum::Json(json!({ "value": value })).into_response(),
            Ok(None) => op_error(&state, &OpError::NotFound(id.clone())),
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

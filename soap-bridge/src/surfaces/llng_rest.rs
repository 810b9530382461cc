//! LemonLDAP::NG's REST session service, as the portal's `RESTServer.pm`
//! defines it and its client module
//! `Lemonldap::NG::Common::Apache::Session::REST` calls it (`baseUrl =>
//! 'http://bridge/llng/sessions/global'`).
//!
//! | route | what |
//! |---|---|
//! | `GET /llng/sessions/{type}/{id}` | the session's fields |
//! | `GET /llng/sessions/{type}/{id}/{key}` | one field's value; `[k1,k2]`: an object of those |
//! | `POST /llng/sessions/{type}` | a new session → `{"result":1,"session":{...}}` |
//! | `POST /llng/sessions/{type}[/]?all=1[&search=field,value]` | every session of the type (or those whose field is the value); needs `__secret` |
//! | `PUT /llng/sessions/{type}/{id}` | sets the given fields (`null` removes one) → `{"result":1}`; creates under `{id}` only with a valid `__secret` |
//! | `DELETE /llng/sessions/{type}/{id}` | → `{"result":1}` |
//!
//! `{type}` is one of LL::NG's session types (`global`, `persistent`, ...,
//! [`crate::llng::kind_of_type`]); a session is seen under a type when its
//! `_session_kind` is the type's kind or it has none.
//!
//! Errors are `{"error": ...}`: 400 for an unknown id (LL::NG's client
//! takes any 400 as "no such session"), an unknown type or a malformed
//! body; 401 without the credentials (with `[auth]`); 403 when
//! `__secret` is needed and missing, wrong, expired, or no `[llng] key` is
//! configured; 413/408 for a body over the limit or too slow; a store
//! error has the status of its class, as on every surface
//! ([`crate::status`]: 409 conflict, 503 with `Retry-After` when the store
//! is unavailable, 500 for stored data that cannot be decoded); 501 when
//! listing needs a scan the store cannot do.
//!
//! Bodies, both ways, are JSON in LL::NG's one-byte-per-character form
//! ([`crate::llng::parse_body`]). docs/llng.md has the protocol.
//!
//! Imports the shared leaves (state, body, credentials, config), the wire
//! formats and the service; no other surface, and nothing imports it but
//! the route table.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::body::read_body;
use crate::credentials::{authorized, challenge};
use crate::llng::secret::SecretCheck;
use crate::llng::{
    KIND_FIELD, SECRET_FIELD, UTIME_FIELD, kind_matches, kind_of_type, parse_body, to_body,
};
use crate::service::OpError;
use crate::state::AppState;
use crate::status;

/// The prefix of the session collections.
pub const PREFIX: &str = "/llng/sessions";

/// The service's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/llng/sessions/{type}", post(rest_post))
        // The client's listing posts to `baseUrl/?all=1`.
        .route("/llng/sessions/{type}/", post(rest_post))
        .route(
            "/llng/sessions/{type}/{id}",
            get(rest_get).put(rest_put).delete(rest_delete),
        )
        .route("/llng/sessions/{type}/{id}/{key}", get(rest_get_key))
}

/// A JSON answer in LL::NG's byte form.
fn answer(status: StatusCode, value: &Value) -> Response {
    let mut r = (status, to_body(value)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=ISO-8859-1"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(status, &json!({ "error": message }))
}

/// The answer for an id that names no session of the type.
fn no_session() -> Response {
    error(StatusCode::BAD_REQUEST, "Session Id does not exist")
}

fn op_error(state: &AppState, e: &OpError) -> Response {
    match e {
        // LL::NG's client takes any 400 as "no such session" (docs/llng.md).
        OpError::InvalidId(_) | OpError::NotFound(_) => no_session(),
        e => {
            if let OpError::Store(inner) = e {
                state.metrics.store_error("llng_rest");
                tracing::warn!(error = %inner.chain(), "store error");
            }
            let answer = status::answer(e);
            let mut r = error(answer.status, &e.to_string());
            answer.apply(&mut r);
            r
        }
    }
}

/// Runs an operation with auth, the type check and metrics around it.
async fn rest_op<F, Fut>(
    state: &AppState,
    op: &'static str,
    headers: &HeaderMap,
    session_type: &str,
    f: F,
) -> Response
where
    F: FnOnce(&'static str) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let start = Instant::now();
    let response = if !authorized(&state.config, headers) {
        let mut r = error(StatusCode::UNAUTHORIZED, "authentication required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        r
    } else {
        match kind_of_type(session_type) {
            Some(kind) => f(kind).await,
            None => error(
                StatusCode::BAD_REQUEST,
                "Unknown (or unconfigured) session type",
            ),
        }
    };
    state
        .metrics
        .observe(op, response.status().as_str(), start.elapsed());
    response
}

/// Reads a body that must be a JSON object.
async fn object_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, Response> {
    let bytes = read_body(&state.config, headers, body)
        .await
        .map_err(|e| error(e.status(), &e.message()))?;
    match parse_body(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
        Err(m) => Err(error(StatusCode::BAD_REQUEST, &m)),
    }
}

/// Checks `__secret` for an operation that needs it (`what`): `Some` is
/// the 403 to answer.
fn secret_refused(state: &AppState, secret: Option<Value>, what: &str) -> Option<Response> {
    let forbidden = |m: String| Some(error(StatusCode::FORBIDDEN, &m));
    let Some(key) = state.config.llng.key.as_deref() else {
        return forbidden(format!(
            "{what} needs LemonLDAP::NG's shared secret, and no key is configured \
             ([llng] key or --llng-key-file)"
        ));
    };
    let Some(Value::String(token)) = secret else {
        return forbidden(format!("{what} needs __secret"));
    };
    match SecretCheck::new(key, state.config.llng.clock_tolerance_secs).verify(&token) {
        Ok(()) => None,
        Err(r) => forbidden(format!("{what} refused: {}", r.reason())),
    }
}

/// The session `id` if it exists and belongs to `kind`.
async fn session_of_kind(
    state: &AppState,
    id: &str,
    kind: &str,
) -> Result<Option<Map<String, Value>>, Response> {
    match state.service.get(id).await {
        Ok(Some(data)) if kind_matches(&data, kind) => Ok(Some(data)),
        Ok(_) | Err(OpError::InvalidId(_)) => Ok(None),
        Err(e) => Err(op_error(state, &e)),
    }
}

async fn rest_get(
    State(state): State<AppState>,
    Path((session_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = &state;
    rest_op(
        state,
        "llng.get",
        &headers,
        &session_type,
        |kind| async move {
            match session_of_kind(state, &id, kind).await {
                Ok(Some(data)) => answer(StatusCode::OK, &Value::Object(data)),
                Ok(None) => no_session(),
                Err(r) => r,
            }
        },
    )
    .await
}

async fn rest_get_key(
    State(state): State<AppState>,
    Path((session_type, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = &state;
    rest_op(
        state,
        "llng.get",
        &headers,
        &session_type,
        |kind| async move {
            let data = match session_of_kind(state, &id, kind).await {
                Ok(Some(data)) => data,
                Ok(None) => return no_session(),
                Err(r) => return r,
            };
            let value = match key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
                Some(list) => Value::Object(
                    list.split(',')
                        .map(|k| (k.to_owned(), data.get(k).cloned().unwrap_or(Value::Null)))
                        .collect(),
                ),
                None => data.get(&key).cloned().unwrap_or(Value::Null),
            };
            answer(StatusCode::OK, &value)
        },
    )
    .await
}

async fn rest_post(
    State(state): State<AppState>,
    Path(session_type): Path<String>,
    request: Request,
) -> Response {
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let all = param("all").is_some_and(|v| !v.is_empty() && v != "0");
    let search = param("search").filter(|s| !s.is_empty());
    let (parts, body) = request.into_parts();
    let op = if all { "llng.all" } else { "llng.create" };
    let (state, headers) = (&state, &parts.headers);
    rest_op(state, op, headers, &session_type, |kind| async move {
        let mut fields = match object_body(state, headers, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        let secret = fields.remove(SECRET_FIELD);
        if all {
            if let Some(r) = secret_refused(state, secret, "listing sessions (all=1)") {
                return r;
            }
            return list(state, kind, search.as_deref(), fields.remove("data")).await;
        }
        // A new session, under an id of ours; LL::NG stamps the type's
        // kind and the creation time.
        fields.insert(UTIME_FIELD.into(), Value::from(now()));
        fields.insert(KIND_FIELD.into(), Value::from(kind));
        match state.service.create_returning(fields).await {
            Ok(data) => answer(StatusCode::OK, &json!({ "result": 1, "session": data })),
            Err(e) => op_error(state, &e),
        }
    })
    .await
}

/// `all=1`: every session of `kind`, or those whose `search` field
/// (`field,value`) is the value; each with all its fields, or those listed
/// in `data`.
async fn list(state: &AppState, kind: &str, search: Option<&str>, data: Option<Value>) -> Response {
    let wanted: Option<Vec<String>> = match data {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(Value::String(one)) => Some(vec![one]),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "data must be a list of field names",
            );
        }
    };
    let filter = match search {
        None => None,
        Some(s) => match s.split_once(',') {
            Some((field, value)) => Some((field.to_owned(), value.to_owned())),
            None => return error(StatusCode::BAD_REQUEST, "search must be field,value"),
        },
    };
    let user = filter.as_ref().and_then(|(field, value)| {
        (state.service.principal_field() == Some(field.as_str())).then_some(value.as_str())
    });
    let keep = |d: &Map<String, Value>| {
        kind_matches(d, kind)
            && filter
                .as_ref()
                .is_none_or(|(field, value)| text_of(d.get(field)).as_deref() == Some(value))
    };
    match state.service.select(user, keep).await {
        Ok(found) => {
            let sessions: Map<String, Value> = found
                .into_iter()
                .map(|(id, d)| {
                    let shown = match &wanted {
                        None => d,
                        Some(fields) => fields
                            .iter()
                            .filter_map(|f| d.get(f).map(|v| (f.clone(), v.clone())))
                            .collect(),
                    };
                    (id, Value::Object(shown))
                })
                .collect();
            answer(StatusCode::OK, &Value::Object(sessions))
        }
        Err(e) => op_error(state, &e),
    }
}

/// A field as Perl's `eq` sees it: strings and numbers by their text.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "" }.to_owned()),
        _ => None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn rest_put(
    State(state): State<AppState>,
    Path((session_type, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (state, headers) = (&state, &parts.headers);
    rest_op(
        state,
        "llng.update",
        headers,
        &session_type,
        |kind| async move {
            let mut fields = match object_body(state, headers, body).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            let secret = fields.remove(SECRET_FIELD);
            match session_of_kind(state, &id, kind).await {
                Ok(Some(data)) => {
                    // As LL::NG's server: an existing kind is never changed.
                    if data.get(KIND_FIELD).is_some_and(|k| !k.is_null()) {
                        fields.remove(KIND_FIELD);
                    }
                    match state.service.update(&id, fields).await {
                        Ok(true) => answer(StatusCode::OK, &json!({ "result": 1 })),
                        Ok(false) => no_session(),
                        Err(e) => op_error(state, &e),
                    }
                }
                Ok(None) if secret.as_ref().is_none_or(Value::is_null) => no_session(),
                Ok(None) => {
                    // LL::NG's `force`: the client made this id itself (its
                    // newSession does), and proves it may with the secret.
                    if let Some(r) =
                        secret_refused(state, secret, "creating a session under a chosen id")
                    {
                        return r;
                    }
                    fields
                        .entry(KIND_FIELD)
                        .or_insert_with(|| Value::from(kind));
                    match state.service.create_at(&id, fields).await {
                        Ok(Some(_)) => answer(StatusCode::OK, &json!({ "result": 1 })),
                        // Taken meanwhile (or of another kind): not ours to write.
                        Ok(None) => no_session(),
                        Err(e) => op_error(state, &e),
                    }
                }
                Err(r) => r,
            }
        },
    )
    .await
}

async fn rest_delete(
    State(state): State<AppState>,
    Path((session_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = &state;
    rest_op(
        state,
        "llng.delete",
        &headers,
        &session_type,
        |kind| async move {
            match session_of_kind(state, &id, kind).await {
                Ok(Some(_)) => match state.service.delete(&id).await {
                    Ok(true) => answer(StatusCode::OK, &json!({ "result": 1 })),
                    Ok(false) => no_session(),
                    Err(e) => op_error(state, &e),
                },
                Ok(None) => no_session(),
                Err(r) => r,
            }
        },
    )
    .await
}

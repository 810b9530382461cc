//! The example app's routes, shared by `main.rs`, the tests and the
//! benchmark (which include this file with `#[path]`), so all three serve
//! exactly the same app.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | a page: who is logged in, the counter, the forms below |
//! | `POST /login` (form `uid`) | a new session id (`cycle_id`, against fixation), then `uid` set |
//! | `GET /counter` | increments `count`, answers `count=N` |
//! | `POST /set` (form `key`, `value`) | sets one field |
//! | `GET /get?key=K` | one field as JSON (`null` when absent) |
//! | `POST /logout` | deletes this session |
//! | `POST /logout-everywhere` | deletes every session of this user (the principal index), this one included |

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use session_core::Sessions;
use time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

/// What the handlers share.
#[derive(Clone, Default)]
pub struct AppState {
    /// Our `Sessions`, for "log out everywhere" (absent when the app runs
    /// on another store, e.g. tower-sessions' own in the benchmark).
    pub sessions: Option<Sessions>,
    /// Tests make two `/set` requests meet here after both loaded the
    /// session, so their saves certainly overlap. `None` in the app.
    pub rendezvous: Option<Arc<tokio::sync::Barrier>>,
}

/// The app on `store`, sessions expiring after `idle` without a save.
pub fn app<S: SessionStore + Clone>(store: S, state: AppState, idle: Duration) -> Router {
    // Plain HTTP for the demo and the tests: a `Secure` cookie would not be
    // sent back over http://127.0.0.1. Behind TLS, keep the default (true).
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(idle));
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/counter", get(counter))
        .route("/set", post(set))
        .route("/get", get(get_field))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .with_state(state)
        .layer(layer)
}

/// A handler's failure: tower-sessions' error as a 500 with its message.
pub struct AppError(String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.to_string())
    }
}

async fn index(session: Session) -> Result<Html<String>, AppError> {
    let uid: Option<String> = session.get("uid").await?;
    let count: i64 = session.get("count").await?.unwrap_or(0);
    let who = match &uid {
        Some(uid) => format!(
            "<p>Logged in as <b>{}</b>.</p>\
             <form method=post action=/logout><button>Log out</button></form>\
             <form method=post action=/logout-everywhere><button>Log out everywhere</button></form>",
            escape(uid)
        ),
        None => "<p>Not logged in.</p>\
                 <form method=post action=/login><input name=uid placeholder=uid>\
                 <button>Log in</button></form>"
            .to_owned(),
    };
    Ok(Html(format!(
        "<!doctype html><title>memorycached sessions</title>{who}\
         <p>Counter: {count} (<a href=/counter>increment</a>)</p>"
    )))
}

#[derive(Deserialize)]
struct Login {
    uid: String,
}

async fn login(session: Session, Form(form): Form<Login>) -> Result<Response, AppError> {
    let uid = form.uid.trim();
    if uid.is_empty() || uid.len() > 200 {
        return Ok((StatusCode::BAD_REQUEST, "uid: 1 to 200 characters").into_response());
    }
    // A new id at login, so an id planted before it is worth nothing.
    session.cycle_id().await?;
    session.insert("uid", uid).await?;
    Ok(Redirect::to("/").into_response())
}

async fn counter(session: Session) -> Result<String, AppError> {
    let count: i64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!("count={count}"))
}

#[derive(Deserialize)]
struct SetField {
    key: String,
    value: String,
}

async fn set(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<SetField>,
) -> Result<&'static str, AppError> {
    // Load before waiting, so both requests of a test hold the old state.
    let _: Option<Value> = session.get(&form.key).await?;
    if let Some(rendezvous) = &state.rendezvous {
        rendezvous.wait().await;
    }
    session.insert(&form.key, form.value).await?;
    Ok("ok")
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

async fn get_field(session: Session, Query(q): Query<Key>) -> Result<Json<Value>, AppError> {
    Ok(Json(
        session.get_value(&q.key).await?.unwrap_or(Value::Null),
    ))
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    session.flush().await?;
    Ok(Redirect::to("/"))
}

async fn logout_everywhere(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, AppError> {
    let Some(sessions) = &state.sessions else {
        return Ok((StatusCode::NOT_IMPLEMENTED, "needs the memorycached store").into_response());
    };
    let Some(uid) = session.get::<String>("uid").await? else {
        return Ok(Redirect::to("/").into_response());
    };
    let revoked = sessions.revoke_principal(&uid).await?;
    session.flush().await?;
    tracing::info!(uid, revoked, "logged out everywhere");
    Ok(Redirect::to("/").into_response())
}

/// HTML-escapes a user-given string.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

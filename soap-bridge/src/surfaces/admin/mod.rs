//! The web session explorer for administrators, under `/admin`: find a
//! session by id or every session of a user, look at its fields as a
//! collapsible tree with its lifetime and stored size, change or delete a
//! field, delete or extend a session, revoke a user, and page through the
//! live sessions of a store that can list its keys.
//!
//! Off unless `[admin] enabled = true` or `--admin`, and only with `[auth]`
//! configured ([`crate::Config::validate`] refuses it otherwise): the login
//! form asks for the bridge's own credentials (`auth`).
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/login`, `POST /admin/login`, `POST /admin/logout` | login form, login, logout |
//! | `GET /admin/` | search by id or user; what the store can do |
//! | `GET /admin/session?id=` | one session |
//! | `GET /admin/user?uid=` | every session of a user (per-user index) |
//! | `GET /admin/sessions[?cursor=][&count=1]` | live sessions, 25 a page, optional count |
//! | `POST /admin/session/{set,remove,delete,touch}` | change a field, remove one, delete, extend |
//! | `POST /admin/user/revoke` | delete every session of a user |
//! | `GET /admin/admin.css` | the style sheet |
//!
//! Security: pages are rendered on the server by maud, which escapes every
//! value; there is no script at all, and every response of these routes
//! carries a Content-Security-Policy allowing nothing but this origin's
//! style sheet and form posts (`frame-ancestors 'none'`, plus
//! `X-Frame-Options: DENY`, `nosniff`, `no-referrer`, `no-store`).
//! State changes are POST only (axum answers 405 to a GET) and need the
//! form's CSRF token (`csrf`); the login cookie is `HttpOnly` and
//! `SameSite=Strict`. Writes go through the library's conflict-safe
//! operations and are conditional on the version the page showed
//! (`actions`).
//!
//! # Modules
//!
//! Handlers: `auth` (login form, login, logout), `views` (GET pages),
//! `actions` (POST actions). Below them, imported by handlers and never
//! importing one: `guard` (the login extractors), `pages` and `tree` (maud
//! templates), `csrf` (the form token check). The login table is the
//! crate's leaf `crate::logins`, held in `AppState`, so that the state
//! never imports this surface. This module only lists the routes; nothing
//! here imports it.

mod actions;
mod auth;
mod csrf;
mod guard;
mod pages;
mod tree;
mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;

/// The policy every admin response carries: this origin's style sheet and
/// form targets only; no script, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("admin.css");

/// The explorer's routes (merged into the bridge's router when enabled).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/") }))
        .route("/admin/", get(views::home))
        .route("/admin/login", get(auth::login_form).post(auth::login))
        .route("/admin/logout", post(auth::logout))
        .route("/admin/admin.css", get(style))
        .route("/admin/session", get(views::session))
        .route("/admin/user", get(views::user))
        .route("/admin/sessions", get(views::list))
        .route("/admin/session/set", post(actions::set_field))
        .route("/admin/session/remove", post(actions::remove_field))
        .route("/admin/session/delete", post(actions::delete))
        .route("/admin/session/touch", post(actions::touch))
        .route("/admin/user/revoke", post(actions::revoke))
        .layer(axum::middleware::map_response(security_headers))
}

async fn style() -> Response {
    let mut r = STYLE.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

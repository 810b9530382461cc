//! Admin login and logout: the login form, the check of the credentials
//! it sends, and the cookies.
//!
//! The login form asks for the bridge's own credentials (`[auth]`: the
//! bearer token, or the basic user and password), so the explorer is never
//! less protected than the API. A successful login begins a login in the
//! process's table ([`crate::logins`]) and sets its id as the cookie
//! `mc_admin` (`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` with
//! `[admin] secure_cookie` or when the bridge serves HTTPS itself). A failed login is answered after a short pause
//! and logged.
//!
//! Imports the shared leaves (state, body, credentials, logins) and the
//! admin surface's guard, CSRF check and templates; none of those imports
//! it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{AdminForm, idle};
use super::{csrf, pages};
use crate::body::read_body;
use crate::config::Auth;
use crate::credentials::{self, ct_eq};
use crate::logins::{LOGIN_COOKIE, cookie};
use crate::state::AppState;

/// Cookie carrying the login form's CSRF token (double submit).
const FORM_COOKIE: &str = "mc_admin_form";
/// Pause before answering a failed login (slows down guessing).
const FAILED_LOGIN_PAUSE: Duration = Duration::from_millis(500);

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        c.push_str(&format!("; Max-Age={secs}"));
    }
    // Served over our own TLS, the browser is on HTTPS: no reason to let
    // the cookie ever travel in clear.
    if state.config.admin.secure_cookie || state.config.tls.enabled() {
        c.push_str("; Secure");
    }
    // Names and values are ours (hex digits): always a valid header.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A page answered with an internal error (the OS random source failed).
fn random_failed(e: getrandom::Error) -> Response {
    tracing::error!(error = %e, "no randomness for an admin token");
    pages::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Error",
        "No random token could be made; try again.",
    )
}

fn basic_login(state: &AppState) -> bool {
    matches!(state.config.auth, Some(Auth::Basic { .. }))
}

/// `GET /admin/login`: the form, with a fresh double-submit token.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.admin.current(&headers, idle(&state)).is_some() {
        return Redirect::to("/admin/").into_response();
    }
    form_response(&state, StatusCode::OK, None)
}

fn form_response(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let token = match credentials::token() {
        Ok(t) => t,
        Err(e) => return random_failed(e),
    };
    let mut r = pages::login(status, &token, basic_login(state), error);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, FORM_COOKIE, &token, Some(600)),
    );
    r
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginFields {
    csrf: Option<String>,
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// `POST /admin/login`: checks the form token and the credentials.
pub(crate) async fn login(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let fields: LoginFields = match read_body(&state.config, &parts.headers, body).await {
        Ok(bytes) => serde_urlencoded::from_bytes(&bytes).unwrap_or_default(),
        Err(e) => return pages::message(e.status(), None, "Error", &e.message()),
    };
    let expected = cookie(&parts.headers, FORM_COOKIE).unwrap_or("");
    if !csrf::matches(expected, fields.csrf.as_deref()) {
        return pages::csrf_refused(None);
    }
    let given_ok = match &state.config.auth {
        Some(Auth::Bearer { token }) => fields
            .token
            .as_deref()
            .is_some_and(|t| ct_eq(t.as_bytes(), token.as_bytes())),
        Some(Auth::Basic { user, password }) => {
            let given = format!(
                "{}:{}",
                fields.user.as_deref().unwrap_or(""),
                fields.password.as_deref().unwrap_or("")
            );
            ct_eq(given.as_bytes(), format!("{user}:{password}").as_bytes())
        }
        // validate() refuses [admin] without [auth]; never log anyone in.
        None => false,
    };
    if !given_ok {
        tracing::warn!("failed admin login");
        tokio::time::sleep(FAILED_LOGIN_PAUSE).await;
        return form_response(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong credentials. Use the bridge's [auth] token or user and password."),
        );
    }
    let id = match state.admin.begin(idle(&state)) {
        Ok(id) => id,
        Err(e) => return random_failed(e),
    };
    tracing::info!("admin logged in");
    let mut r = Redirect::to("/admin/").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_COOKIE, &id, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, FORM_COOKIE, "", Some(0)),
    );
    r
}

/// `POST /admin/logout` (with the CSRF token): ends the login.
pub(crate) async fn logout(
    State(state): State<AppState>,
    AdminForm { admin, .. }: AdminForm,
) -> Response {
    state.admin.end(&admin.id);
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    );
    r
}

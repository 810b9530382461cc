//! Admin logins: the login form, the login cookie, and the table of
//! logins kept in this process.
//!
//! The login form asks for the bridge's own credentials (`[auth]`: the
//! bearer token, or the basic user and password), so the explorer is never
//! less protected than the API. A successful login makes a random 256-bit
//! login id, kept in memory with its CSRF token and last use, and sets it
//! as the cookie `mc_admin` (`HttpOnly`, `SameSite=Strict`, `Path=/admin`,
//! `Secure` with `[admin] secure_cookie`). A login unused for
//! `idle_timeout` seconds is gone; so is every login when the bridge
//! restarts (each bridge process has its own table: behind a load balancer,
//! pin `/admin` to one instance). A failed login is answered after a short
//! pause and logged.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{csrf, pages};
use crate::config::Auth;
use crate::http::{AppState, ct_eq, read_body};

/// Cookie naming an admin's login.
const LOGIN_COOKIE: &str = "mc_admin";
/// Cookie carrying the login form's CSRF token (double submit).
const FORM_COOKIE: &str = "mc_admin_form";
/// Most logins kept at once; the least recently used goes first.
const MAX_LOGINS: usize = 1000;
/// Pause before answering a failed login (slows down guessing).
const FAILED_LOGIN_PAUSE: Duration = Duration::from_millis(500);

/// A message shown once on the next page (the outcome of an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// True for success, false for a refusal or failure.
    pub ok: bool,
    /// The text.
    pub text: String,
}

#[derive(Debug)]
struct Login {
    csrf: String,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// What a handler knows of the logged-in admin.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The login id (the cookie's value).
    pub id: String,
    /// The CSRF token every form of this login carries.
    pub csrf: String,
    /// The message left by the last action, taken.
    pub flash: Option<Flash>,
}

/// The logins of this process.
#[derive(Debug, Default)]
pub struct AdminState {
    logins: Mutex<HashMap<String, Login>>,
}

impl AdminState {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Login>> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters (each change is one insert or remove).
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self, idle: Duration) -> Result<String, getrandom::Error> {
        let id = csrf::token()?;
        let login = Login {
            csrf: csrf::token()?,
            last_seen: Instant::now(),
            flash: None,
        };
        let mut table = self.table();
        table.retain(|_, l| l.last_seen.elapsed() < idle);
        if table.len() >= MAX_LOGINS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, l)| l.last_seen)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(id.clone(), login);
        Ok(id)
    }

    /// The admin logged in by the request's cookie, if any and not idle
    /// too long; marks the login used and takes its flash message.
    pub(crate) fn current(&self, headers: &HeaderMap, idle: Duration) -> Option<Admin> {
        let id = cookie(headers, LOGIN_COOKIE)?;
        let mut table = self.table();
        let login = table.get_mut(id)?;
        if login.last_seen.elapsed() >= idle {
            table.remove(id);
            return None;
        }
        login.last_seen = Instant::now();
        Some(Admin {
            id: id.to_owned(),
            csrf: login.csrf.clone(),
            flash: login.flash.take(),
        })
    }

    /// Leaves a message for the login's next page.
    pub(crate) fn flash(&self, admin: &Admin, ok: bool, text: impl Into<String>) {
        if let Some(login) = self.table().get_mut(&admin.id) {
            login.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    fn end(&self, id: &str) {
        self.table().remove(id);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        c.push_str(&format!("; Max-Age={secs}"));
    }
    if state.config.admin.secure_cookie {
        c.push_str("; Secure");
    }
    // Names and values are ours (hex digits): always a valid header.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn idle(state: &AppState) -> Duration {
    Duration::from_secs(state.config.admin.idle_timeout)
}

/// Where a request without a login goes.
pub(crate) fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

/// A page answered with an internal error (the OS random source failed).
pub(crate) fn random_failed(e: getrandom::Error) -> Response {
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
    let token = match csrf::token() {
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
    let fields: LoginFields = match read_body(&state, &parts.headers, body).await {
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
pub(crate) async fn logout(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (admin, _) = match super::actions::accept(&state, request).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    state.admin.end(&admin.id);
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    );
    r
}

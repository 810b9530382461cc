//! The explorer's login guards, as extractors, so no handler can forget
//! one: [`LoggedIn`] for the pages (GET; without a login, a redirect to the
//! login form) and [`AdminForm`] for the actions (POST; without a login, a
//! 403 page and nothing done; then the form is read under the body limits
//! and its CSRF token checked).
//!
//! Imports the shared leaves (state, body, logins), the token check
//! ([`super::csrf`]) and the page templates ([`super::pages`]) for its
//! refusals; the handlers import it, never the reverse.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::{csrf, pages};
use crate::body::read_body;
use crate::logins::Admin;
use crate::state::AppState;

/// The decoded fields of an admin form.
pub(crate) type Fields = HashMap<String, String>;

/// How long an unused login lasts.
pub(crate) fn idle(state: &AppState) -> Duration {
    Duration::from_secs(state.config.admin.idle_timeout)
}

/// Where a request without a login goes.
fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

/// The admin of a page request; without a (live) login the request is
/// answered with a redirect to the login form. Taking it marks the login
/// used and takes its flash message.
pub(crate) struct LoggedIn(pub Admin);

impl FromRequestParts<AppState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match state.admin.current(&parts.headers, idle(state)) {
            Some(admin) => Ok(LoggedIn(admin)),
            None => Err(to_login()),
        }
    }
}

/// A state-changing POST: the logged-in admin and the form, whose CSRF
/// token matched the login's. Refused with a 403 page without a login
/// (before the body is read), with the body's status when the body is too
/// large, too slow or broken, and with the CSRF page when the token is
/// missing or wrong.
pub(crate) struct AdminForm {
    /// Who sent it.
    pub admin: Admin,
    /// The form's fields (an undecodable form is empty).
    pub fields: Fields,
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let Some(admin) = state.admin.current(&parts.headers, idle(state)) else {
            return Err(pages::message(
                StatusCode::FORBIDDEN,
                None,
                "Not logged in",
                "Log in first; nothing was done.",
            ));
        };
        let bytes = read_body(&state.config, &parts.headers, body)
            .await
            .map_err(|e| pages::message(e.status(), None, "Error", &e.message()))?;
        let fields: Fields = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        if !csrf::matches(&admin.csrf, fields.get(csrf::FIELD).map(String::as_str)) {
            tracing::warn!("admin form refused: CSRF token missing or wrong");
            return Err(pages::csrf_refused(Some(&admin)));
        }
        Ok(AdminForm { admin, fields })
    }
}

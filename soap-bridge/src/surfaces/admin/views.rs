//! The explorer's pages (GET, read only): home with the search forms, one
//! session, every session of a user, and the paged list of live sessions.
//! Without a login, each redirects to the login form (the [`LoggedIn`]
//! extractor, [`super::guard`]).
//!
//! Imports the shared leaves, the service and the admin surface's guard
//! and templates; nothing imports it but the admin surface's route list.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::guard::LoggedIn;
use super::pages;
use crate::logins::Admin;
use crate::service::OpError;
use crate::state::AppState;
use crate::status;

/// Sessions per page of the list.
const PAGE_SIZE: usize = 25;
/// Most keys a "count all" looks at.
const COUNT_LIMIT: usize = 100_000;

/// The query of a page. Handlers take it before [`LoggedIn`], so the login
/// is checked after the query is decoded, as when each handler checked it
/// itself (decoding into a map never fails, so either order answers alike).
type Params = Query<HashMap<String, String>>;

/// `GET /admin/`: search by id or user; what the store can do.
pub(crate) async fn home(State(state): State<AppState>, LoggedIn(admin): LoggedIn) -> Response {
    pages::home(&admin, &state.service, &state.config.store)
}

/// `GET /admin/session?id=...`: one session.
pub(crate) async fn session(
    State(state): State<AppState>,
    Query(params): Params,
    LoggedIn(admin): LoggedIn,
) -> Response {
    let id = params.get("id").map_or("", |s| s.trim());
    match state.service.inspect(id).await {
        Ok(Some(view)) => pages::session(&admin, &view),
        Ok(None) => pages::message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "Not found",
            &format!("No session {id:?} (deleted, expired, or never created)."),
        ),
        Err(e) => error_page(&admin, &e),
    }
}

/// `GET /admin/user?uid=...`: every session of a user.
pub(crate) async fn user(
    State(state): State<AppState>,
    Query(params): Params,
    LoggedIn(admin): LoggedIn,
) -> Response {
    let user = params.get("uid").map_or("", |s| s.trim());
    if user.is_empty() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "No user",
            "Give a user name.",
        );
    }
    match state.service.sessions_of(user).await {
        Ok((views, indexed)) => pages::user(&admin, user, &views, indexed),
        Err(e) => error_page(&admin, &e),
    }
}

/// `GET /admin/sessions[?cursor=...][&count=1]`: a page of live sessions.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Params,
    LoggedIn(admin): LoggedIn,
) -> Response {
    if !state.service.can_scan() {
        return pages::message(
            StatusCode::OK,
            Some(&admin),
            "Live sessions",
            &format!(
                "This store ({}) cannot list its keys, so there is no list of sessions here. \
                 Find sessions by id or by user instead.",
                state.config.store
            ),
        );
    }
    // The count is a page of its own: reading an item makes memcached's
    // crawler skip it for a moment (backend-memcached's scan docs), so a
    // count right after a page's reads would miss that page's sessions.
    if params.contains_key("count") {
        return match state.service.count(COUNT_LIMIT).await {
            Ok(c) => pages::count(&admin, &c),
            Err(e) => error_page(&admin, &e),
        };
    }
    let cursor = params.get("cursor").map(String::as_str);
    match state.service.scan_page(cursor, PAGE_SIZE).await {
        Ok(page) => pages::list(&admin, &page, cursor.is_some()),
        Err(e) => error_page(&admin, &e),
    }
}

fn error_page(admin: &Admin, e: &OpError) -> Response {
    if let OpError::Store(inner) = e {
        tracing::warn!(error = %inner.chain(), "admin page: store error");
    }
    let answer = status::answer(e);
    let mut r = pages::message(
        answer.status,
        Some(admin),
        "Cannot show this",
        &e.to_string(),
    );
    answer.apply(&mut r);
    r
}

//! The explorer's HTML, written with maud: every interpolated value is
//! escaped by the template engine (session data comes from end users), no
//! inline script or style (the Content-Security-Policy forbids both), and
//! every form carries the CSRF token. Pages work with JavaScript off:
//! collapsing uses `<details>`, actions are plain forms.
//!
//! Templates only: imports the login's view ([`crate::logins`]), the
//! service's views, the CSRF field name and [`super::tree`]; never a
//! handler or the guard.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use session_core::Ttl;

use super::csrf;
use super::tree::{edit_text, node, type_label};
use crate::logins::Admin;
use crate::service::Service;
use crate::service::admin::{Count, ScanView, SessionView};

fn layout(status: StatusCode, admin: Option<&Admin>, title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · memorycached admin" }
                link rel="stylesheet" href="/admin/admin.css";
            }
            body {
                header.top {
                    a.brand href="/admin/" { "memorycached · session explorer" }
                    @if let Some(a) = admin {
                        nav {
                            a href="/admin/" { "Find" }
                            a href="/admin/sessions" { "Live sessions" }
                            form.inline method="post" action="/admin/logout" {
                                (csrf_input(a))
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = admin.and_then(|a| a.flash.as_ref()) {
                        p #flash class=(if f.ok { "flash ok" } else { "flash error" }) role="status" {
                            (f.text)
                        }
                    }
                    (body)
                }
            }
        }
    };
    (status, Html(page.into_string())).into_response()
}

fn csrf_input(admin: &Admin) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(admin.csrf); }
}

fn link(path: &str, key: &str, value: &str) -> String {
    format!(
        "/admin/{path}?{}",
        serde_urlencoded::to_string([(key, value)]).unwrap_or_default()
    )
}

/// A remaining lifetime in words.
pub(crate) fn lifetime(ttl: Option<Ttl>) -> String {
    match ttl {
        None => "unknown (this store does not tell)".into(),
        Some(t) if t.is_never() => "never expires".into(),
        Some(t) => {
            let s = t.as_secs();
            let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
            let words = if h > 0 {
                format!("{h} h {m} min")
            } else if m > 0 {
                format!("{m} min {sec} s")
            } else {
                format!("{sec} s")
            };
            format!("{words} ({s} s)")
        }
    }
}

/// A plain page with a title and one paragraph.
pub(crate) fn message(
    status: StatusCode,
    admin: Option<&Admin>,
    title: &str,
    text: &str,
) -> Response {
    layout(status, admin, title, html! { p.message { (text) } })
}

/// The refusal of a form without its CSRF token (403).
pub(crate) fn csrf_refused(admin: Option<&Admin>) -> Response {
    message(
        StatusCode::FORBIDDEN,
        admin,
        "Refused",
        "The form's CSRF token was missing or wrong (an old page, or a request sent \
         from another site). Nothing was done; reload the page and try again.",
    )
}

/// The login form.
pub(crate) fn login(status: StatusCode, token: &str, basic: bool, error: Option<&str>) -> Response {
    let body = html! {
        @if let Some(e) = error { p #flash.flash.error role="alert" { (e) } }
        form.card method="post" action="/admin/login" {
            input type="hidden" name=(csrf::FIELD) value=(token);
            @if basic {
                label { "User" input name="user" autocomplete="username" required; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            } @else {
                label { "Bearer token of the bridge" input #token type="password" name="token" autocomplete="current-password" required; }
            }
            button type="submit" { "Log in" }
        }
        p.hint { "The bridge's own credentials ([auth] in its configuration) open these pages." }
    };
    layout(status, None, "Log in", body)
}

/// Home: search by id or user, and what this bridge's store can do.
pub(crate) fn home(admin: &Admin, service: &Service, store: &str) -> Response {
    let body = html! {
        div.grid {
            form.card method="get" action="/admin/session" {
                h2 { "A session" }
                label { "Session id" input #find-id name="id" placeholder="32 hex digits" required; }
                button type="submit" { "Show" }
            }
            form.card method="get" action="/admin/user" {
                h2 { "A user's sessions" }
                label { "User" @if let Some(f) = service.principal_field() { " (field " code { (f) } ")" }
                    input #find-user name="uid" required; }
                button type="submit" { "Show" }
                @if !service.has_user_index() {
                    p.hint { "The per-user index is off (--principal-index): only the session the user's reverse key names is found." }
                }
            }
        }
        h2 { "This bridge" }
        dl.facts {
            dt { "Store" } dd { code { (store) } }
            dt { "User field" } dd { (service.principal_field().unwrap_or("none (--principal)")) }
            dt { "Per-user index" } dd { (if service.has_user_index() { "on" } else { "off" }) }
            dt { "Listing all sessions" } dd {
                @if service.can_scan() { a href="/admin/sessions" { "available" } }
                @else { "not available: this store cannot list its keys" }
            }
        }
    };
    layout(StatusCode::OK, Some(admin), "Find sessions", body)
}

/// Hidden fields naming the session, the version shown, and where to go back.
fn target(admin: &Admin, view: &SessionView, back_user: Option<&str>) -> Markup {
    html! {
        (csrf_input(admin))
        input type="hidden" name="id" value=(view.id);
        @if let Some(v) = view.version { input type="hidden" name="version" value=(v); }
        @if let Some(u) = back_user { input type="hidden" name="back_user" value=(u); }
    }
}

fn set_form(
    admin: &Admin,
    view: &SessionView,
    back_user: Option<&str>,
    existing: Option<(&str, &Value)>,
) -> Markup {
    let (kind, text) = existing.map_or(("string", String::new()), |(_, v)| edit_text(v));
    html! {
        form.set method="post" action="/admin/session/set" {
            (target(admin, view, back_user))
            @if let Some((name, _)) = existing {
                input type="hidden" name="field" value=(name);
            } @else {
                label { "Field" input name="field" required; }
            }
            label { "Type"
                select name="type" {
                    @for k in ["string", "number", "json"] {
                        option value=(k) selected[k == kind] { (k) }
                    }
                }
            }
            label { "Value" textarea name="value" rows="3" { (text) } }
            button type="submit" { (if existing.is_some() { "Save" } else { "Add" }) }
        }
    }
}

fn session_card(admin: &Admin, view: &SessionView, back_user: Option<&str>) -> Markup {
    html! {
        section.session id=(format!("s-{}", view.id)) {
            h2 { "Session " code.id { (view.id) } }
            dl.facts {
                dt { "User" } dd.user {
                    @if let Some(u) = &view.user { a href=(link("user", "uid", u)) { (u) } } @else { "—" }
                }
                dt { "Lifetime left" } dd.lifetime { (lifetime(view.remaining)) }
                dt { "Stored size" } dd.size {
                    @if let Some((n, codec)) = view.stored { (n) " bytes (" (codec) ")" } @else { "unknown" }
                }
                dt { "Version" } dd.version {
                    @if let Some(v) = view.version { (v) } @else { "unknown" }
                }
            }
            ul.fields {
                @for (k, v) in &view.data {
                    li.field data-field=(k) {
                        div.fieldhead { span.key { (k) } " " span.type { (type_label(v)) } }
                        div.value { (node(v, 0)) }
                        @if k != "_session_id" {
                            div.fieldactions {
                                details.edit { summary { "Edit" } (set_form(admin, view, back_user, Some((k, v)))) }
                                form.inline method="post" action="/admin/session/remove" {
                                    (target(admin, view, back_user))
                                    input type="hidden" name="field" value=(k);
                                    button.danger type="submit" { "Delete field" }
                                }
                            }
                        }
                    }
                }
            }
            details.edit.add { summary { "Add a field" } (set_form(admin, view, back_user, None)) }
            div.actions {
                form.inline method="post" action="/admin/session/touch" {
                    (target(admin, view, back_user))
                    button type="submit" { "Extend (touch)" }
                }
                form.inline method="post" action="/admin/session/delete" {
                    (target(admin, view, back_user))
                    button.danger type="submit" { "Delete session" }
                }
            }
        }
    }
}

/// One session.
pub(crate) fn session(admin: &Admin, view: &SessionView) -> Response {
    layout(
        StatusCode::OK,
        Some(admin),
        "Session",
        session_card(admin, view, None),
    )
}

/// Every session of a user.
pub(crate) fn user(admin: &Admin, user: &str, views: &[SessionView], indexed: bool) -> Response {
    let body = html! {
        @if !indexed {
            p.hint #no-index {
                "The per-user index is off (--principal-index), so this shows only the session \
                 the user's reverse key names (their last login), and revoking is not available."
            }
        }
        @if views.is_empty() {
            p.none { "No live session of " strong { (user) } "." }
        } @else {
            p.counts { strong { (views.len()) } " live session(s) of " strong { (user) } "." }
            @if indexed {
                form.inline method="post" action="/admin/user/revoke" {
                    (csrf_input(admin))
                    input type="hidden" name="uid" value=(user);
                    button.danger #revoke type="submit" { "Revoke every session of " (user) }
                }
            }
            @for view in views { (session_card(admin, view, Some(user))) }
        }
    };
    layout(
        StatusCode::OK,
        Some(admin),
        &format!("Sessions of {user}"),
        body,
    )
}

/// A page of the list of live sessions.
pub(crate) fn list(admin: &Admin, page: &ScanView, not_first: bool) -> Response {
    let body = html! {
        p.counts #page-count {
            "This page: " strong { (page.sessions.len()) } " live session(s) among "
            (page.keys) " key(s) the store listed."
        }
        p { a href="/admin/sessions?count=1" { "Count every live session" } " (reads the whole store)" }
        @if page.sessions.is_empty() {
            p.none { "No session on this page." }
        } @else {
            table.list {
                thead { tr { th { "Session" } th { "User" } th { "Fields" } th { "Size" } th { "Lifetime left" } } }
                tbody {
                    @for s in &page.sessions {
                        tr {
                            td { a href=(link("session", "id", &s.id)) { code { (s.id) } } }
                            td { (s.user.as_deref().unwrap_or("—")) }
                            td.n { (s.data.len()) }
                            td.n { @if let Some((n, _)) = s.stored { (n) " B" } }
                            td { (lifetime(s.remaining)) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if not_first { a href="/admin/sessions" { "First page" } }
            @if let Some(next) = &page.next { a #next href=(link("sessions", "cursor", next)) { "Next page" } }
            @else { span { "End of the list." } }
        }
    };
    layout(StatusCode::OK, Some(admin), "Live sessions", body)
}

/// The count of every live session.
pub(crate) fn count(admin: &Admin, c: &Count) -> Response {
    let body = html! {
        p.counts #count {
            "Whole store: " strong { (c.sessions) } " live session(s) and " (c.other) " other item(s)"
            @if !c.complete { " (the count stopped at its key limit: at least that many)" }
            "."
        }
        p.hint { "Other items are users' reverse keys, per-user index records and locks." }
        p { a href="/admin/sessions" { "Back to the list" } }
    };
    layout(StatusCode::OK, Some(admin), "Live sessions: count", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(lifetime(None), "unknown (this store does not tell)");
        assert_eq!(lifetime(Some(Ttl::NEVER)), "never expires");
        assert_eq!(lifetime(Some(Ttl::seconds(42))), "42 s (42 s)");
        assert_eq!(lifetime(Some(Ttl::seconds(3599))), "59 min 59 s (3599 s)");
        assert_eq!(lifetime(Some(Ttl::seconds(7260))), "2 h 1 min (7260 s)");
    }
}

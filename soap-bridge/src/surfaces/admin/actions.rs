//! The explorer's state-changing actions, POST only, each behind the
//! login cookie and the form's CSRF token. Each does one write through the
//! library's conflict-safe operations ([`crate::service::admin`]), leaves
//! its outcome as a flash message, and redirects (303) to the page to show
//! next, so reloading that page repeats nothing. Each action is logged at
//! `info` (action, session or user, field, outcome; never a value).
//!
//! The session forms carry the version the page was rendered from: a field
//! change, a field removal or a delete is applied only while the session is
//! still at that version; otherwise nothing is written and the page says
//! the session was changed by someone else meanwhile.
//!
//! The login and CSRF checks are the [`AdminForm`] extractor's
//! ([`super::guard`]). Imports the shared leaves and the service; nothing
//! imports it but the admin surface's route list.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use session_core::Patch;

use super::guard::{AdminForm, Fields};
use crate::service::OpError;
use crate::service::admin::WriteOutcome;
use crate::state::AppState;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map_or("", String::as_str)
}

/// The page to show after an action on session `id`: the user's page when
/// the form came from one, else the session's.
fn back(fields: &Fields, id: &str) -> Response {
    let target = match fields.get("back_user") {
        Some(user) => format!(
            "/admin/user?{}",
            serde_urlencoded::to_string([("uid", user)]).unwrap_or_default()
        ),
        None => format!(
            "/admin/session?{}",
            serde_urlencoded::to_string([("id", id)]).unwrap_or_default()
        ),
    };
    Redirect::to(&target).into_response()
}

fn version(fields: &Fields) -> Result<u64, String> {
    field(fields, "version").parse().map_err(|_| {
        "The form did not say which version of the session it showed; reload the page.".into()
    })
}

fn report(outcome: Result<WriteOutcome, OpError>, done: String) -> (bool, String) {
    match outcome {
        Ok(WriteOutcome::Done) => (true, done),
        Ok(WriteOutcome::Missing) => (
            false,
            "No such session any more (deleted or expired).".into(),
        ),
        Ok(WriteOutcome::Conflict) => (
            false,
            "Not saved: the session was changed by someone else meanwhile. \
             It is shown below as it is now; try again."
                .into(),
        ),
        Err(e) => (false, format!("Failed: {e}")),
    }
}

/// One line per action in the log (never the values: they are users' data).
fn audit(action: &str, target: &str, field: Option<&str>, ok: bool) {
    tracing::info!(action, target, field, ok, "admin action");
}

/// Parses a typed value from the edit form.
fn typed_value(kind: &str, text: &str) -> Result<Value, String> {
    match kind {
        "string" => Ok(Value::String(text.to_owned())),
        "number" => match serde_json::from_str::<Value>(text.trim()) {
            Ok(n @ Value::Number(_)) => Ok(n),
            _ => Err(format!("{text:?} is not a number")),
        },
        "json" => serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}")),
        other => Err(format!("unknown value type {other:?}")),
    }
}

/// `POST /admin/session/set`: sets one field (string, number or JSON).
pub(crate) async fn set_field(
    State(state): State<AppState>,
    AdminForm { admin, fields }: AdminForm,
) -> Response {
    let id = field(&fields, "id");
    let name = field(&fields, "field").trim();
    let (ok, text) = match (
        version(&fields),
        typed_value(field(&fields, "type"), field(&fields, "value")),
    ) {
        (Err(e), _) | (_, Err(e)) => (false, e),
        _ if name.is_empty() => (false, "The field name is empty.".into()),
        (Ok(v), Ok(value)) => {
            let patch = Patch::new().set(name, value);
            let outcome = state.service.patch_at(id, &patch, v).await;
            report(outcome, format!("Saved field {name:?}."))
        }
    };
    audit("set", id, Some(name), ok);
    state.admin.flash(&admin, ok, text);
    back(&fields, id)
}

/// `POST /admin/session/remove`: removes one field.
pub(crate) async fn remove_field(
    State(state): State<AppState>,
    AdminForm { admin, fields }: AdminForm,
) -> Response {
    let id = field(&fields, "id");
    let name = field(&fields, "field");
    let (ok, text) = match version(&fields) {
        Err(e) => (false, e),
        Ok(v) => {
            let patch = Patch::new().remove(name);
            let outcome = state.service.patch_at(id, &patch, v).await;
            report(outcome, format!("Deleted field {name:?}."))
        }
    };
    audit("remove", id, Some(name), ok);
    state.admin.flash(&admin, ok, text);
    back(&fields, id)
}

/// `POST /admin/session/delete`: deletes the session.
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdminForm { admin, fields }: AdminForm,
) -> Response {
    let id = field(&fields, "id");
    let (ok, text) = match version(&fields) {
        Err(e) => (false, e),
        Ok(v) => report(
            state.service.delete_at(id, v).await,
            format!("Deleted session {id}."),
        ),
    };
    audit("delete", id, None, ok);
    state.admin.flash(&admin, ok, text);
    if ok && !fields.contains_key("back_user") {
        return Redirect::to("/admin/").into_response();
    }
    back(&fields, id)
}

/// `POST /admin/session/touch`: extends the session by the configured
/// timeout.
pub(crate) async fn touch(
    State(state): State<AppState>,
    AdminForm { admin, fields }: AdminForm,
) -> Response {
    let id = field(&fields, "id");
    let (ok, text) = match state.service.touch(id).await {
        Ok(true) => (
            true,
            "Extended: the session's lifetime starts again.".to_owned(),
        ),
        Ok(false) => (
            false,
            "No such session any more (deleted or expired).".into(),
        ),
        Err(e) => (false, format!("Failed: {e}")),
    };
    audit("touch", id, None, ok);
    state.admin.flash(&admin, ok, text);
    back(&fields, id)
}

/// `POST /admin/user/revoke`: deletes every session of a user.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    AdminForm { admin, fields }: AdminForm,
) -> Response {
    let user = field(&fields, "uid");
    let (ok, text) = match state.service.revoke(user).await {
        Ok(n) => (true, format!("Revoked {n} session(s) of {user:?}.")),
        Err(e) => (false, format!("Failed: {e}")),
    };
    audit("revoke", user, None, ok);
    state.admin.flash(&admin, ok, text);
    let target = format!(
        "/admin/user?{}",
        serde_urlencoded::to_string([("uid", user)]).unwrap_or_default()
    );
    Redirect::to(&target).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        assert_eq!(typed_value("string", "42").unwrap(), Value::from("42"));
        assert_eq!(typed_value("number", " 42 ").unwrap(), Value::from(42));
        assert_eq!(typed_value("number", "4.5").unwrap(), Value::from(4.5));
        assert!(typed_value("number", "abc").is_err());
        assert!(typed_value("number", "\"1\"").is_err());
        assert_eq!(
            typed_value("json", "{\"a\":[1]}").unwrap(),
            serde_json::json!({"a": [1]})
        );
        assert!(typed_value("json", "{").is_err());
        assert!(typed_value("xml", "").is_err());
    }
}

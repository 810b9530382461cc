//! The bridge's operations on sessions, independent of SOAP and JSON. Every
//! call into [`session_core::Sessions`] made by the bridge is in this module,
//! so a change of that API touches one file.
//!
//! Rules shared by both protocols:
//! - ids are validated before any I/O ([`OpError::InvalidId`]);
//! - writes go through `Sessions::save`, which is conditional on the version
//!   read and merges field by field on a concurrent change, so concurrent
//!   updates of different fields all survive; a save that still conflicts
//!   after session-core's own retries is retried here from a fresh load;
//! - `_session_id` is never written by a caller: in `setSession` it names an
//!   existing session to update (see [`Service::set`]), elsewhere it is
//!   ignored;
//! - in updates, a `null` value removes the field (JSON Merge Patch).
//!
//! `admin` adds the operations of the web session explorer, `llng` those
//! of LemonLDAP::NG's protocols (answers with the new session, creation
//! under a client's id, listings), `counter` the in-place increment of an
//! integer field. This module, `admin`, `counter` and `llng` import only
//! session-core; every surface imports them, and
//! they import no surface, no HTTP and no wire format.

pub mod admin;
pub mod counter;
pub mod llng;

use serde_json::Value;
use session_core::{Delivery, Error as CoreError, Session, SessionData, Sessions};

/// The field holding a session's own id.
pub const ID_FIELD: &str = "_session_id";

/// Why an operation failed, in terms both protocols map to their own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The id is not a session id (SOAP Client fault, HTTP 400).
    #[error("Invalid session ID: {0}")]
    InvalidId(String),
    /// The request is wrong in another way (Client fault, HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No such session (HTTP 404; SOAP answers an empty result or false).
    #[error("no session {0}")]
    NotFound(String),
    /// The feature is not configured (e.g. no `principal`).
    #[error("{0}")]
    NotConfigured(String),
    /// The store failed (Server fault, HTTP 503/500).
    #[error("store error: {0}")]
    Store(#[source] CoreError),
}

impl OpError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OpError::InvalidId(_) => "invalid_id",
            OpError::BadRequest(_) => "bad_request",
            OpError::NotFound(_) => "not_found",
            OpError::NotConfigured(_) => "not_configured",
            OpError::Store(_) => "store_error",
        }
    }

    /// Whether a failed store request reached the store: `Some(Unknown)`
    /// when a write may have been applied although it failed (a timeout or
    /// a lost connection after sending), `Some(NotSent)` when it certainly
    /// was not; `None` for errors that are not about delivery.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            OpError::Store(inner) => inner.delivery(),
            _ => None,
        }
    }
}

fn from_core(e: CoreError) -> OpError {
    match e {
        CoreError::InvalidSessionId { id, reason } => {
            OpError::InvalidId(format!("{id} ({reason})"))
        }
        CoreError::Field { .. }
        | CoreError::InvalidKey { .. }
        | CoreError::ValueTooLarge { .. }
        | CoreError::Encode { .. } => OpError::BadRequest(e.to_string()),
        CoreError::SessionGone { id } => OpError::NotFound(id),
        e => OpError::Store(e),
    }
}

/// Writes `fields` into `session`: a `null` value removes the field, any
/// other sets it; `_session_id` is never written (update and replace).
fn apply(session: &mut Session, fields: &SessionData) -> Result<(), CoreError> {
    for (k, v) in fields {
        if k == ID_FIELD {
            continue;
        }
        if v.is_null() {
            session.remove(k);
        } else {
            session.insert(k.clone(), v.clone())?;
        }
    }
    Ok(())
}

/// The operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Service {
    sessions: Sessions,
}

impl Service {
    /// Operations on `sessions`.
    pub fn new(sessions: Sessions) -> Self {
        Service { sessions }
    }

    /// The session-core counters (for `/metrics`).
    pub fn stats(&self) -> session_core::SessionStats {
        self.sessions.stats()
    }

    /// A session's data; `None` when no such session exists.
    pub async fn get(&self, id: &str) -> Result<Option<SessionData>, OpError> {
        self.get_with(id, SessionData::clone).await
    }

    /// What `render` makes of a session's data, read in place; `None` when
    /// no such session exists. The read paths write their answer straight
    /// from the loaded session this way, without a copy of its map.
    pub async fn get_with<R>(
        &self,
        id: &str,
        render: impl FnOnce(&SessionData) -> R,
    ) -> Result<Option<R>, OpError> {
        let session = self.sessions.load(id).await.map_err(from_core)?;
        Ok(session.map(|s| render(s.data())))
    }

    /// The original's `setSession`: a new session holding `fields`; returns
    /// its id.
    ///
    /// **`_session_id` supplied by the caller**: the original wrote the data
    /// under that id, whatever it was — any caller could overwrite any
    /// session, or plant one under an id of its choosing. Here it must name
    /// an *existing* session, which is then updated with the other fields
    /// (like `updateSession`, through the conflict-safe save) and its id is
    /// returned; an unknown id is [`OpError::NotFound`] and nothing is
    /// created, so callers can never choose a new session's id.
    pub async fn set(&self, mut fields: SessionData) -> Result<String, OpError> {
        if let Some(id) = fields.remove(ID_FIELD) {
            let Value::String(id) = id else {
                return Err(OpError::InvalidId("_session_id is not a string".into()));
            };
            if !self.update(&id, fields).await? {
                return Err(OpError::NotFound(id));
            }
            return Ok(id);
        }
        self.create(fields).await
    }

    /// A new session holding `fields` (nulls are skipped), written in one
    /// call; returns its id.
    pub async fn create(&self, mut fields: SessionData) -> Result<String, OpError> {
        fields.remove(ID_FIELD);
        fields.retain(|_, v| !v.is_null());
        let session = self
            .sessions
            .create_with(fields, None)
            .await
            .map_err(from_core)?;
        Ok(session.id().as_str().to_owned())
    }

    /// Changes only the given fields (`null` removes one); `Ok(false)` when
    /// no such session exists.
    pub async fn update(&self, id: &str, fields: SessionData) -> Result<bool, OpError> {
        self.modify(id, |session| apply(session, &fields)).await
    }

    /// Replaces all fields (except `_session_id`) by `fields`; `Ok(false)`
    /// when no such session exists.
    pub async fn replace(&self, id: &str, fields: SessionData) -> Result<bool, OpError> {
        self.modify(id, |session| {
            let old: Vec<String> = session
                .data()
                .keys()
                .filter(|k| k.as_str() != ID_FIELD && !fields.contains_key(k.as_str()))
                .cloned()
                .collect();
            for k in old {
                session.remove(&k);
            }
            apply(session, &fields)
        })
        .await
    }

    /// Read-modify-write through [`Sessions::update`]: `change` runs on a
    /// fresh read and is re-run after any concurrent write (bounded), so
    /// no other writer's field is lost.
    async fn modify(
        &self,
        id: &str,
        change: impl Fn(&mut Session) -> Result<(), CoreError>,
    ) -> Result<bool, OpError> {
        let updated = self
            .sessions
            .update(id, |session| change(session))
            .await
            .map_err(from_core)?;
        Ok(updated.is_some())
    }

    /// Deletes a session; `Ok(false)` when it did not exist.
    pub async fn delete(&self, id: &str) -> Result<bool, OpError> {
        self.sessions.delete_id(id).await.map_err(from_core)
    }

    /// Re-sets a session's expiry (and its reverse key's) without
    /// rewriting it; `Ok(false)` when it does not exist.
    pub async fn touch(&self, id: &str) -> Result<bool, OpError> {
        self.sessions.touch_id(id, None).await.map_err(from_core)
    }

    /// The live session of a user (through the `principal` field's reverse
    /// index); `None` when there is none.
    pub async fn find_by_principal(&self, uid: &str) -> Result<Option<SessionData>, OpError> {
        if self.sessions.config().principal.is_none() {
            return Err(OpError::NotConfigured(
                "findByPrincipal needs a principal field (--principal FIELD)".into(),
            ));
        }
        let session = self
            .sessions
            .find_by_principal(uid)
            .await
            .map_err(from_core)?;
        Ok(session.map(|s| s.data().clone()))
    }
}

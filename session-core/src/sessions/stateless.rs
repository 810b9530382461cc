//! By-id operations for callers that keep no [`Session`] between requests.
//!
//! A SOAP or JSON client, the CLI and a tower-sessions store see a session
//! as an id plus, at best, the version they last read. These operations give
//! them the same guarantees a handle has — conditional writes, no lost
//! fields, no resurrection of a deleted session — in one call each:
//!
//! | operation | what it writes | on a concurrent change |
//! |---|---|---|
//! | [`Sessions::create_with`] | a new session holding the given fields, in one `add` | — |
//! | [`Sessions::patch`] | only the given fields (set or removed) | without `expected`: merged per field like any save; with `expected`: [`Error::Conflict`] if the session is no longer at that version |
//! | [`Sessions::replace`] | the whole field set | as `patch` |
//! | [`Sessions::touch_id`] | the expiry only | — |
//! | [`Sessions::delete_id`] | removes the session | — |
//!
//! `expected` is the [`Version`] a client saw when it last read the session
//! ([`Session::version`]); passing it turns "change these fields" into
//! "change these fields if nobody else changed the session since I read it".

use serde_json::Value;

use super::Sessions;
use crate::config::ConflictPolicy;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{ID_FIELD, Session, SessionData};
use crate::store::{Ttl, Version};

/// A change to some fields of a session: values to set and fields to remove.
///
/// ```
/// use session_core::Patch;
/// let patch = Patch::new().set("theme", "dark").remove("cart");
/// assert!(!patch.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// Fields to set, with their new values.
    pub set: SessionData,
    /// Fields to remove (absent fields are ignored).
    pub remove: Vec<String>,
}

impl Patch {
    /// An empty patch.
    pub fn new() -> Self {
        Patch::default()
    }

    /// Adds a field to set. A value that does not serialize to JSON is
    /// stored as `null`; use [`Patch::set`] on the field map for typed errors.
    pub fn set(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set.insert(field.into(), value.into());
        self
    }

    /// Adds a field to remove.
    pub fn remove(mut self, field: impl Into<String>) -> Self {
        self.remove.push(field.into());
        self
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Refuses `_session_id`, which belongs to the store, before any I/O.
    fn check(&self) -> Result<()> {
        let touches_id =
            self.set.contains_key(ID_FIELD) || self.remove.iter().any(|f| f == ID_FIELD);
        if touches_id {
            return Err(Error::field(
                ID_FIELD,
                "_session_id is set by the store and cannot be changed",
            ));
        }
        Ok(())
    }
}

impl Sessions {
    /// Writes a new session holding `fields` under a fresh id, in one write.
    ///
    /// `expiry` gives it its own lifetime instead of the configured
    /// `timeout`. Written even under `update_only` (it carries data). A
    /// `_session_id` in `fields` is ignored: the new id is the truth. With
    /// `principal` configured, the reverse key is written too.
    pub async fn create_with(&self, fields: SessionData, expiry: Option<Ttl>) -> Result<Session> {
        self.create_written(fields, expiry).await
    }

    /// Applies `patch` to the session `id` and saves it; `Ok(None)` when there
    /// is no such session. Fields the patch does not name keep whatever the
    /// store holds, including values another writer saved meanwhile.
    ///
    /// With `expected`, the write happens only while the session is still at
    /// that version ([`Error::Conflict`] otherwise, nothing written); without
    /// it, a concurrent change is merged field by field like any save.
    pub async fn patch(
        &self,
        id: &str,
        patch: &Patch,
        expected: Option<Version>,
    ) -> Result<Option<Session>> {
        patch.check()?;
        let id = SessionId::parse(id)?;
        let Some(mut session) = self.load_for_write(&id, expected).await? else {
            return Ok(None);
        };
        for (field, value) in &patch.set {
            session.set_field(field.clone(), value.clone());
        }
        for field in &patch.remove {
            session.remove_field(field);
        }
        self.save_expecting(&mut session, expected).await?;
        Ok(Some(session))
    }

    /// Replaces every field of the session `id` by `fields`; `Ok(None)` when
    /// there is no such session. The session keeps its id (a `_session_id`
    /// in `fields` is ignored). `expected` as in [`Sessions::patch`]; without
    /// it, a field another writer added meanwhile survives (the replace
    /// removes only the fields it saw).
    pub async fn replace(
        &self,
        id: &str,
        mut fields: SessionData,
        expected: Option<Version>,
    ) -> Result<Option<Session>> {
        let id = SessionId::parse(id)?;
        let Some(mut session) = self.load_for_write(&id, expected).await? else {
            return Ok(None);
        };
        fields.insert(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
        session.replace_data(fields);
        self.save_expecting(&mut session, expected).await?;
        Ok(Some(session))
    }

    /// Re-sets the expiry of the session `id` (to `expiry`, or the configured
    /// `timeout`) without rewriting it, and that of its reverse key. Returns
    /// whether the session exists. Uses the store's
    /// [`get_and_touch`](crate::Store::get_and_touch) where it has one: one
    /// round trip that also tells the reverse key.
    pub async fn touch_id(&self, id: &str, expiry: Option<Ttl>) -> Result<bool> {
        let id = SessionId::parse(id)?;
        let key = self.key_of(&id);
        let ttl = expiry.unwrap_or(self.config.timeout);
        let entry = if self.servers.capabilities().get_and_touch {
            self.servers.get_and_touch(&key, ttl).await?
        } else if self.servers.touch(&key, ttl).await? {
            self.servers.get(&key).await?
        } else {
            None
        };
        // A raw value under a session key is not a session: touching it
        // would answer "exists" for a reverse key. Reported like a miss.
        let Some(entry) = entry.filter(|e| !crate::codec::is_raw(e.flags)) else {
            return Ok(false);
        };
        // As in `load_id`: a value that fails the seal is no session.
        let data = match self.decode(&entry, &key, &id) {
            Err(Error::Seal { .. }) => return Ok(false),
            other => other?,
        };
        // The index member follows the new expiry (after the touch here:
        // the user is only known from the touched item).
        self.index_upsert(&data, &id, ttl).await?;
        self.touch_rest(&key, &data, ttl).await?;
        Ok(true)
    }

    /// Loads for a by-id write; with `expected`, a session already past that
    /// version is a conflict before anything is written.
    async fn load_for_write(
        &self,
        id: &SessionId,
        expected: Option<Version>,
    ) -> Result<Option<Session>> {
        let Some(session) = self.load_id(id).await? else {
            return Ok(None);
        };
        let Some(expected) = expected else {
            return Ok(Some(session));
        };
        // A `MaxAge` local copy carries no version: ask the principal.
        let current = match session.version {
            Some(v) => Some(v),
            None => self.servers.version(&self.key_of(id)).await?,
        };
        if current != Some(expected) {
            return Err(Error::Conflict {
                key: self.key_of(id),
                attempts: 1,
            });
        }
        Ok(Some(session))
    }

    /// Saves under the configured policy, or strictly when the caller named
    /// the version it expects.
    async fn save_expecting(&self, session: &mut Session, expected: Option<Version>) -> Result<()> {
        let policy = if expected.is_some() {
            ConflictPolicy::Fail
        } else {
            self.config.conflict
        };
        self.save_with(session, policy).await?;
        Ok(())
    }
}

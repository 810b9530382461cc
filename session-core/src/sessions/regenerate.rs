//! [`Sessions::regenerate`]: a new id for a live session (session fixation
//! defence at login and privilege changes).
//!
//! Order matters: the new session is written before the old one is
//! deleted, so there is no instant at which the user has no session, and
//! the reverse key and the principal index follow the id in the same order
//! (new member first, old member last).

use serde_json::Value;

use super::{CREATE_ATTEMPTS, Sessions};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{ID_FIELD, Session, State};
use crate::stats::Counters;
use crate::store::{AddOutcome, DeleteOutcome, Version};

impl Sessions {
    /// Moves the session to a fresh random id, keeping its data.
    ///
    /// 1. Unsaved changes of the handle are saved first (merged with any
    ///    concurrent change, as by [`Sessions::save`]).
    /// 2. The data is written under a new id with `add`; the principal
    ///    index learns the new id before, and the reverse key is pointed at
    ///    it after.
    /// 3. The old id is deleted, only at the version that was copied: a
    ///    write that reached the old id meanwhile is first carried over to
    ///    the new id (on stores with [`crate::Store::delete_if`]; elsewhere
    ///    it is lost with the old id). Its local copy is dropped and its
    ///    index member removed.
    ///
    /// The handle then names the new id. A never-written (`update_only`)
    /// session only gets a new id. [`Error::Deleted`] for a deleted handle;
    /// [`Error::SessionGone`] when the old session was gone (logged out,
    /// expired): then the copy under the new id is deleted again and the
    /// handle is marked deleted.
    pub async fn regenerate(&self, session: &mut Session) -> Result<()> {
        match session.state {
            State::Deleted => {
                return Err(Error::Deleted {
                    id: session.id.to_string(),
                });
            }
            State::Unwritten => {
                let id = SessionId::generate(self.config.id_length)?;
                session.set_field(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
                session.set_stored(Session::initial_data(&id));
                session.id = id;
                Counters::bump(&self.counters.regenerated);
                return Ok(());
            }
            State::Stored => {}
        }
        self.save(session).await?;
        let old_version = session.version;
        let old_id = session.id.clone();
        let old_key = self.key_of(&old_id);
        let ttl = self.ttl_of(session);
        let flags = self.write_flags();
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate(self.config.id_length)?;
            let mut data = session.data().clone();
            data.insert(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
            let key = self.key_of(&id);
            let bytes = self.encode(&data, &key)?;
            self.index_upsert(&data, &id, ttl).await?;
            let version = match self.add_new(&key, &bytes, flags, ttl).await? {
                AddOutcome::Stored(version) => version,
                AddOutcome::Exists => {
                    tracing::warn!(%id, "generated session id already in use");
                    continue;
                }
            };
            if let Some(local) = &self.local {
                local.write(&key, &bytes, flags, version).await;
            }
            session.id = id;
            session.replace_data(data);
            session.mark_synced(version);
            session.remaining = Some(ttl);
            // `set` points the reverse key at the new id; the old id's key
            // is the same key (same user), so nothing else to clean.
            self.write_reverse_key(session, &key).await?;
            let existed = self.retire_old(session, &old_key, old_version).await?;
            self.recent_reverse.forget(&old_key);
            if let Some(local) = &self.local {
                local.forget(&old_key).await;
            }
            let user = self.principal_of(session);
            self.index_remove_for(user.as_deref(), &old_id).await?;
            if !existed {
                // Logged out (or expired) meanwhile: the copy must not live
                // on under the new id.
                tracing::info!(old = %old_id, "session vanished during regenerate; copy removed");
                let _ = self.delete(session).await?;
                return Err(Error::SessionGone {
                    id: old_id.to_string(),
                });
            }
            Counters::bump(&self.counters.regenerated);
            return Ok(());
        }
        Err(Error::Conflict {
            key: "new session id".into(),
            attempts: CREATE_ATTEMPTS,
        })
    }

    /// Deletes the old id of a regenerated session (now under its new id),
    /// only at the version that was copied: a write that reached the old id
    /// after the copy is carried over to the new id first, then the delete
    /// is tried again on the version read. Returns whether the old session
    /// still existed. Without [`crate::Store::delete_if`] (or a version to
    /// compare) the delete is plain, and such a late write is lost with the
    /// old id.
    async fn retire_old(
        &self,
        session: &mut Session,
        old_key: &str,
        mut expected: Option<Version>,
    ) -> Result<bool> {
        if !self.servers.capabilities().conditional_delete {
            return self.servers.delete(old_key).await;
        }
        for _ in 0..self.config.max_save_attempts {
            let Some(version) = expected else {
                break;
            };
            match self.servers.delete_if(old_key, version).await? {
                DeleteOutcome::Deleted => return Ok(true),
                DeleteOutcome::NotFound => return Ok(false),
                DeleteOutcome::Conflict => {}
            }
            let Some(fresh) = self.servers.get(old_key).await? else {
                return Ok(false);
            };
            // Decoded under the new id, so `_session_id` is the new one.
            session.replace_data(self.decode(&fresh, old_key, &session.id)?);
            expected = Some(fresh.version);
            tracing::debug!(new = %session.id, "late write to the old id carried over");
            let _ = self.save(session).await?;
        }
        tracing::warn!(
            old_key,
            "old id kept changing during regenerate; deleted as is"
        );
        self.servers.delete(old_key).await
    }
}

//! [`Sessions`]: the tie factory. Creates, loads, saves and deletes sessions
//! on a principal store, with an optional read-first `local` store.
//!
//! What happens on the wire, per operation (principal = `servers`):
//!
//! | operation | principal | local |
//! |---|---|---|
//! | `create`, `create_with` | `add <id>` (`create` writes nothing under `update_only`), then the reverse key `set` (with `principal`) | copy written |
//! | `load` | `get <id>` on a local miss; `version <id>` on a local hit under `Validate` | read first; filled on a miss |
//! | `save` | `cas <id>` (`add` for a first `update_only` write); the reverse key `set` (with `principal`) beside the `cas` when the save keeps the user, after it otherwise | copy written |
//! | `patch`, `replace` | a `load`, then a `save` | as `load` and `save` |
//! | `delete` | `delete <id>`, then the reverse key `delete_if` its version still names this id | copy dropped |
//! | `touch`, `touch_id` | `touch <id>` (`get_and_touch <id>` for `touch_id`) and the reverse key | copy touched |
//! | `update` | `get <id>`, then `cas <id>`; again on a conflict | copy written |
//! | `regenerate` | a `save` if changed, `add <new id>`, the reverse key `set`, `delete <old id>` | new copy written, old dropped |
//! | `lock` | `add <id>:lk` (then `cas`/`delete_if` on it to renew/release) | — |
//! | `list_by_principal` | `get <digest>:sessions`, a `get` per member, `cas` if some were dead | — |
//! | `revoke_principal` | as `list_by_principal`, a `delete` per session, the reverse key `delete_if`, the record `cas` | copies dropped |
//!
//! With `principal_index` configured, `create`, `save`, `touch`,
//! `regenerate` and `delete` also read and `cas` the user's index record
//! `<digest>:sessions` (`save` and `touch` only write it when the
//! session's user or expiry deadline changed): before the session for the
//! first three, so the index never lacks a live session, and after it for
//! the others. See [`Sessions::list_by_principal`].
//!
//! Writes of one session by tasks sharing this `Sessions` take turns (a
//! FIFO per session key, `gate.rs`), so they do not race each other; other
//! processes' writes are caught by the conditional write and retried after
//! a jittered wait ([`crate::config::Backoff`], with measurements).
//!
//! Callers that keep no [`Session`] between requests (the SOAP bridge, a
//! JSON API, the CLI, a tower-sessions store) use the by-id operations of
//! [`stateless`]: `create_with`, `patch`, `replace`, `touch_id`,
//! `delete_id`. They are the same conflict-safe writes, one call each.
//!
//! Saves are optimistic: a save carries the version it read, and a
//! concurrent change makes the store refuse it instead of silently losing
//! the other writer's update (the original's top complaint). See
//! [`ConflictPolicy`](crate::config::ConflictPolicy) for what happens then.

use std::sync::Arc;

use serde_json::Value;

use crate::codec::{Codec, is_raw};
use crate::config::{LocalPolicy, SessionsConfig};
use crate::error::{Delivery, Error, Result};
use crate::id::SessionId;
use crate::local::LocalTier;
use crate::principal::digest_field;
use crate::session::{Fields, ID_FIELD, Session, SessionData, State};
use crate::stats::{Counters, SessionStats};
use crate::store::{AddOutcome, Store, Ttl};

mod gate;
mod index;
#[cfg(test)]
mod index_tests;
mod locking;
#[cfg(test)]
mod memo_tests;
mod regenerate;
mod renewal;
pub(crate) mod retry;
mod reverse;
mod save;
#[cfg(test)]
mod save_tests;
mod seal;
pub mod stateless;
mod update;

pub use seal::ResealOutcome;
pub use stateless::Patch;

/// Waits a jittered backoff for `attempt`, but never longer than `limit`.
pub(crate) async fn retry_pause(
    backoff: &crate::config::Backoff,
    attempt: u32,
    limit: std::time::Duration,
) {
    retry::sleep(retry::jitter(retry::ceiling(backoff, attempt)).min(limit)).await;
}

/// Attempts at finding an unused id in `create` (a collision of 128 random
/// bits will not happen; a broken random source might, and must not
/// overwrite anyone's session).
const CREATE_ATTEMPTS: u32 = 3;

/// What [`Sessions::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Nothing changed since the last read or write; nothing was written.
    Unchanged,
    /// The session was written.
    Written {
        /// Write attempts made (1 unless a concurrent change was merged).
        attempts: u32,
    },
}

/// Creates, loads, saves and deletes sessions. Cheap to clone; share it.
#[derive(Debug, Clone)]
pub struct Sessions {
    servers: Arc<dyn Store>,
    local: Option<LocalTier>,
    config: Arc<SessionsConfig>,
    counters: Arc<Counters>,
    /// Turns at writing one session, shared by clones (see `gate.rs`).
    gate: Arc<gate::Gate>,
    /// The reverse keys this process wrote lately, shared by clones (see
    /// `renewal.rs`).
    recent_reverse: Arc<renewal::RecentReverseKeys>,
    /// `<principal>_MD5`, the stamp field, named once here rather than
    /// formatted on every save.
    stamp_field: Option<Arc<str>>,
    /// Whether loads ask `servers` for memos: it keeps them
    /// ([`Store::keeps_memos`]) and values are read as stored (no seal;
    /// a memo is only used for such values, so it would be charged for
    /// nothing).
    store_keeps_memos: bool,
}

impl Sessions {
    /// Sessions on the principal store `servers`.
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn new(servers: Arc<dyn Store>, config: SessionsConfig) -> Result<Self> {
        config.validate()?;
        let stamp_field = config.principal.as_deref().map(|p| digest_field(p).into());
        let recent_reverse = Arc::new(renewal::RecentReverseKeys::new(config.reverse_key_refresh));
        Ok(Sessions {
            store_keeps_memos: servers.keeps_memos() && config.seal.is_none(),
            servers,
            local: None,
            config: Arc::new(config),
            counters: Arc::default(),
            gate: Arc::default(),
            recent_reverse,
            stamp_field,
        })
    }

    /// Adds the read-first `local` store (the original's `local` argument).
    pub fn with_local(mut self, local: Arc<dyn Store>) -> Self {
        self.local = Some(LocalTier::new(
            local,
            self.config.local_policy,
            self.config.timeout,
        ));
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionsConfig {
        &self.config
    }

    /// The counters since this `Sessions` (or the one it was cloned from) was made.
    pub fn stats(&self) -> SessionStats {
        self.counters.snapshot()
    }

    /// The principal store.
    pub fn servers(&self) -> &Arc<dyn Store> {
        &self.servers
    }

    /// The store key of a session id: `key_prefix` + id.
    pub fn key_of(&self, id: &SessionId) -> String {
        let prefix = &self.config.key_prefix;
        let mut key = String::with_capacity(prefix.len() + id.as_str().len());
        key.push_str(prefix);
        key.push_str(id.as_str());
        key
    }

    /// Starts a new session with a fresh random id.
    ///
    /// Writes it at once with `add` (never overwriting an existing key, unlike
    /// the original's `set`), unless `update_only` is set: then nothing is
    /// written until the first save that changes something.
    pub async fn create(&self) -> Result<Session> {
        if self.config.update_only {
            let id = SessionId::generate(self.config.id_length)?;
            let data = Session::initial_data(&id);
            Counters::bump(&self.counters.created);
            return Ok(Session::new(id, data, None, State::Unwritten));
        }
        self.create_written(SessionData::new(), None).await
    }

    /// Writes a new session holding `fields` under a fresh id, in one write
    /// (a login that would otherwise cost `create` + `save`). Written even
    /// under `update_only`, since it carries data. `expiry` gives the session
    /// its own lifetime instead of the configured `timeout`.
    ///
    /// A `_session_id` in `fields` is ignored: the new id is the truth.
    /// A session whose `add` was sent but not acknowledged (a timeout, a
    /// broken connection) is looked up before anything else is tried, so a
    /// write that did land is reported as created, never left as an orphan
    /// while the caller retries under a new id.
    async fn create_written(&self, fields: SessionData, expiry: Option<Ttl>) -> Result<Session> {
        let ttl = expiry.unwrap_or(self.config.timeout);
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate(self.config.id_length)?;
            match self.create_under(&id, &fields, ttl, expiry).await? {
                Some(session) => return Ok(session),
                None => tracing::warn!(%id, "generated session id already in use"),
            }
        }
        Err(Error::Conflict {
            key: "new session id".into(),
            attempts: CREATE_ATTEMPTS,
        })
    }

    /// Writes a new session holding `fields` under an id the *caller*
    /// chose, in one write (`add`: never over an existing session);
    /// `Ok(None)` when a session with that id already exists.
    ///
    /// For protocols whose clients make their own ids (LemonLDAP::NG's REST
    /// client sends a 64-hex id it generated). Choosing an id is a
    /// privilege: the caller must have checked that the client may (the
    /// bridge asks for LL::NG's shared secret), since anyone who can choose
    /// ids can plant a session under an id a victim will use. Otherwise as
    /// [`Sessions::create_with`].
    pub async fn create_at(
        &self,
        id: &SessionId,
        fields: SessionData,
        expiry: Option<Ttl>,
    ) -> Result<Option<Session>> {
        let ttl = expiry.unwrap_or(self.config.timeout);
        self.create_under(id, &fields, ttl, expiry).await
    }

    /// One try of a creation under `id`: the index, the `add`, the local
    /// copy and the reverse key; `Ok(None)` when the id is taken.
    async fn create_under(
        &self,
        id: &SessionId,
        fields: &SessionData,
        ttl: Ttl,
        expiry: Option<Ttl>,
    ) -> Result<Option<Session>> {
        let mut data = fields.clone();
        data.insert(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
        self.stamp_principal(&mut data);
        let key = self.key_of(id);
        let bytes = self.encode(&data, &key)?;
        let flags = self.write_flags();
        // The index learns of the session before the session exists, so
        // it never misses a live one (a member whose session was never
        // written is dropped by the next listing).
        self.index_upsert(&data, id, ttl).await?;
        match self.add_new(&key, &bytes, flags, ttl).await? {
            AddOutcome::Stored(version) => {
                if let Some(local) = &self.local {
                    local.write(&key, &bytes, flags, version).await;
                }
                Counters::bump(&self.counters.created);
                let mut session = Session::new(id.clone(), data, version, State::Stored);
                session.expiry = expiry;
                session.remaining = Some(ttl);
                self.write_reverse_key(&mut session, &key).await?;
                Ok(Some(session))
            }
            AddOutcome::Exists => Ok(None),
        }
    }

    /// `add` of a brand-new session. When the store cannot say whether the
    /// `add` was applied ([`Delivery::Unknown`]), reads the key: our own
    /// bytes there (they hold the fresh random id, so nobody else wrote
    /// them) mean it was; someone else's bytes mean the id is taken.
    async fn add_new(&self, key: &str, bytes: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        match self.servers.add(key, bytes, flags, ttl).await {
            Err(e) if e.delivery() == Some(Delivery::Unknown) => {
                match self.servers.get(key).await {
                    Ok(Some(found)) if found.value == bytes && found.flags == flags => {
                        tracing::info!(key, "unacknowledged add was applied; session kept");
                        Ok(AddOutcome::Stored(Some(found.version)))
                    }
                    Ok(Some(_)) => Ok(AddOutcome::Exists),
                    Ok(None) => Err(e),
                    // The look could not be made (a backend may fail fast
                    // after the timeout, e.g. a server marked down): the
                    // honest answer is still the add's own "outcome unknown",
                    // never the look's "not sent".
                    Err(look) => {
                        tracing::warn!(key, error = %look, "cannot tell whether an add was applied");
                        Err(e)
                    }
                }
            }
            other => other,
        }
    }

    /// Loads a session by its id as text. The id is validated first
    /// ([`Error::InvalidSessionId`], no I/O). A missing or expired session
    /// is `Ok(None)` (the original returned an empty session instead).
    pub async fn load(&self, id: &str) -> Result<Option<Session>> {
        let id = SessionId::parse(id)?;
        self.load_owned(id).await
    }

    /// Loads a session by a parsed id; see [`Sessions::load`].
    ///
    /// An item under the session's key that is not a session at all (a raw
    /// string, such as a reverse-principal key: `md5_hex(user)` is a valid
    /// id) loads as `None`, exactly like a missing one, so an answer never
    /// tells whether some user has a session.
    pub async fn load_id(&self, id: &SessionId) -> Result<Option<Session>> {
        self.load_owned(id.clone()).await
    }

    /// [`Sessions::load_id`] of an id the caller gives away: the handle
    /// keeps it (`load` parses the id once and copies it no more).
    pub(crate) async fn load_owned(&self, id: SessionId) -> Result<Option<Session>> {
        let key = self.key_of(&id);
        Counters::bump(&self.counters.loads);
        if let Some(local) = &self.local
            && let Some(hit) = local.read(&key, self.servers.as_ref()).await?
            && !is_raw(hit.entry.flags)
        {
            match self.read_loaded(hit.entry.value, hit.entry.flags, &key, &id, None) {
                Ok(body) => {
                    Counters::bump(&self.counters.local_hits);
                    let mut session =
                        Session::loaded(id, body, hit.principal_version, State::Stored);
                    // Under `Validate` the copy was written and touched with
                    // the session's own expiry; a `MaxAge` copy's is capped.
                    if self.config.local_policy == LocalPolicy::Validate {
                        session.remaining = hit.entry.ttl;
                    }
                    return Ok(Some(session));
                }
                Err(e) => tracing::warn!(%id, error = %e, "undecodable local copy ignored"),
            }
        }
        // Only an in-process store keeps memos; asking any other store for
        // one would cost an extra boxed future per load for nothing.
        let found = if self.store_keeps_memos {
            self.servers.get_with_memo(&key).await?
        } else {
            self.servers.get(&key).await?.map(|entry| (entry, None))
        };
        let Some((entry, memo)) = found.filter(|(e, _)| !is_raw(e.flags)) else {
            Counters::bump(&self.counters.not_found);
            if let Some(local) = &self.local {
                local.forget(&key).await;
            }
            return Ok(None);
        };
        // A value that fails the seal answers like an unknown id (counted
        // and logged in `decode`): no oracle for a forged session.
        // The local tier keeps its own copy, written only once the value
        // has been read as a session.
        let (value, copy) = match &self.local {
            Some(local) => (entry.value.clone(), Some((local, entry.value))),
            None => (entry.value, None),
        };
        let body = match self.read_loaded(value, entry.flags, &key, &id, memo.as_ref()) {
            Err(Error::Seal { .. }) => return Ok(None),
            other => other?,
        };
        if let Some((local, value)) = copy {
            local
                .write(&key, &value, entry.flags, Some(entry.version))
                .await;
        }
        let mut session = Session::loaded(id, body, Some(entry.version), State::Stored);
        session.remaining = entry.ttl;
        Ok(Some(session))
    }

    /// Deletes the session (and its reverse key, if it still names this
    /// session). Returns whether the principal store held it. A session that
    /// was never written is only marked deleted.
    pub async fn delete(&self, session: &mut Session) -> Result<bool> {
        match session.state {
            State::Deleted => return Ok(false),
            State::Unwritten => {
                session.state = State::Deleted;
                return Ok(false);
            }
            State::Stored => {}
        }
        let key = self.key_of(&session.id);
        let existed = self.servers.delete(&key).await?;
        // The session is gone from here on: drop the local copy and mark the
        // handle before the reverse key, which may live on another server and
        // fail on its own without leaving a logged-out session servable.
        if let Some(local) = &self.local {
            local.forget(&key).await;
        }
        session.state = State::Deleted;
        Counters::bump(&self.counters.deletes);
        self.recent_reverse.forget(&key);
        self.delete_reverse_key(session).await?;
        let stored = self.indexed_principal(&session.stored());
        self.index_remove_for(stored.as_deref(), &session.id)
            .await?;
        let current = self.indexed_principal(session);
        if current != stored {
            self.index_remove_for(current.as_deref(), &session.id)
                .await?;
        }
        Ok(existed)
    }

    /// Loads and deletes a session by id; `Ok(false)` if it did not exist.
    pub async fn delete_id(&self, id: &str) -> Result<bool> {
        match self.load(id).await? {
            Some(mut session) => self.delete(&mut session).await,
            None => Ok(false),
        }
    }

    /// Re-sets the session's expiry to `timeout` without rewriting it (the
    /// original only extended a session by writing it). Returns whether the
    /// principal store still held it.
    pub async fn touch(&self, session: &Session) -> Result<bool> {
        let key = self.key_of(&session.id);
        let ttl = self.ttl_of(session);
        // The index member is extended first, so it never expires before
        // the session it names.
        self.index_upsert(&session.stored(), &session.id, ttl)
            .await?;
        if !self.servers.touch(&key, ttl).await? {
            return Ok(false);
        }
        self.touch_rest(&key, session, ttl).await?;
        Ok(true)
    }

    /// After the session itself was touched: its reverse key and local copy.
    async fn touch_rest(&self, key: &str, data: &(impl Fields + Sync), ttl: Ttl) -> Result<()> {
        if let Some(reverse) = self.reverse_key_of(data) {
            self.servers
                .touch(&reverse, self.recent_reverse.ttl(ttl))
                .await?;
        }
        if let Some(local) = &self.local {
            local.touch(key).await;
        }
        Ok(())
    }

    /// The expiry a write of this session uses.
    fn ttl_of(&self, session: &Session) -> Ttl {
        session.expiry.unwrap_or(self.config.timeout)
    }

    fn codec(&self) -> Codec {
        self.config.codec
    }
}

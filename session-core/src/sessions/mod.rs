//! [`Sessions`]: the tie factory. Creates, loads, saves and deletes sessions
//! on a principal store, with an optional read-first `local` store.
//!
//! What happens on the wire, per operation (principal = `servers`):
//!
//! | operation | principal | local |
//! |---|---|---|
//! | `create`, `create_with` | `add <id>` (`create` writes nothing under `update_only`), then the reverse key `set` (with `principal`) | copy written |
//! | `load` | `get <id>` on a local miss; `version <id>` on a local hit under `Validate` | read first; filled on a miss |
//! | `save` | `cas <id>` (`add` for a first `update_only` write), then the reverse key `set` (with `principal`) | copy written |
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
//! [`ConflictPolicy`] for what happens then.

use std::sync::Arc;

use serde_json::Value;

use crate::codec::{Codec, is_raw};
use crate::config::{ConflictPolicy, FieldConflict, LocalPolicy, SessionsConfig};
use crate::error::{Delivery, Error, Result};
use crate::id::SessionId;
use crate::local::LocalTier;
use crate::principal::digest_field;
use crate::session::{ID_FIELD, Session, SessionData, State};
use crate::stats::{Counters, SessionStats};
use crate::store::{AddOutcome, CasOutcome, Store, Ttl};

mod gate;
mod index;
#[cfg(test)]
mod index_tests;
mod locking;
mod regenerate;
pub(crate) mod retry;
mod reverse;
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
}

impl Sessions {
    /// Sessions on the principal store `servers`.
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn new(servers: Arc<dyn Store>, config: SessionsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Sessions {
            servers,
            local: None,
            config: Arc::new(config),
            counters: Arc::default(),
            gate: Arc::default(),
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
                self.write_reverse_key(&mut session).await?;
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
        self.load_id(&id).await
    }

    /// Loads a session by a parsed id; see [`Sessions::load`].
    ///
    /// An item under the session's key that is not a session at all (a raw
    /// string, such as a reverse-principal key: `md5_hex(user)` is a valid
    /// id) loads as `None`, exactly like a missing one, so an answer never
    /// tells whether some user has a session.
    pub async fn load_id(&self, id: &SessionId) -> Result<Option<Session>> {
        let key = self.key_of(id);
        Counters::bump(&self.counters.loads);
        if let Some(local) = &self.local
            && let Some(hit) = local.read(&key, self.servers.as_ref()).await?
            && !is_raw(hit.entry.flags)
        {
            match self.decode(&hit.entry, &key, id) {
                Ok(data) => {
                    Counters::bump(&self.counters.local_hits);
                    let mut session =
                        Session::new(id.clone(), data, hit.principal_version, State::Stored);
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
        let found = self.servers.get(&key).await?;
        let Some(entry) = found.filter(|e| !is_raw(e.flags)) else {
            Counters::bump(&self.counters.not_found);
            if let Some(local) = &self.local {
                local.forget(&key).await;
            }
            return Ok(None);
        };
        // A value that fails the seal answers like an unknown id (counted
        // and logged in `decode`): no oracle for a forged session.
        let data = match self.decode(&entry, &key, id) {
            Err(Error::Seal { .. }) => return Ok(None),
            other => other?,
        };
        if let Some(local) = &self.local {
            local
                .write(&key, &entry.value, entry.flags, Some(entry.version))
                .await;
        }
        let mut session = Session::new(id.clone(), data, Some(entry.version), State::Stored);
        session.remaining = entry.ttl;
        Ok(Some(session))
    }

    /// Writes the session's changes, if any.
    ///
    /// - No change since the last read or write: nothing is written
    ///   ([`SaveOutcome::Unchanged`]), as in the original.
    /// - The write is conditional on the version read. If another writer got
    ///   there first, [`ConflictPolicy`] decides: merge field by field and
    ///   retry after a random wait ([`crate::config::Backoff`], bounded by
    ///   `max_save_attempts`), or fail with [`Error::Conflict`].
    /// - The merge is three-way (base = what this handle read, theirs = what
    ///   the store holds, mine = this handle's data): a field only one side
    ///   changed merges silently; a field both changed to different values
    ///   is decided by [`FieldConflict`] (`Fail`:
    ///   [`Error::FieldConflict`], nothing written) and counted in
    ///   [`SessionStats::field_conflicts`]. A value computed from what was
    ///   read (a counter) belongs in [`Sessions::update`] instead.
    /// - The session was deleted or expired meanwhile: [`Error::SessionGone`];
    ///   it is not resurrected.
    /// - With `principal` set, `<principal>_MD5` is stamped into the data and
    ///   the reverse key is written *after* the session (the original wrote
    ///   it first, so a refused save still moved the user's index to it). If
    ///   that second write fails, the error is returned and the next save of
    ///   this handle writes the reverse key again, changed or not.
    ///
    /// On success the handle holds what was written (including another
    /// writer's merged fields).
    pub async fn save(&self, session: &mut Session) -> Result<SaveOutcome> {
        self.save_with(session, self.config.conflict).await
    }

    /// [`Sessions::save`] with this save's own [`FieldConflict`] policy
    /// instead of the configured one (e.g. `Fail` for the one save of a
    /// request that must not overwrite a concurrent change of a field).
    pub async fn save_with_field_policy(
        &self,
        session: &mut Session,
        field: FieldConflict,
    ) -> Result<SaveOutcome> {
        let result = self
            .save_attempts(session, self.config.conflict, field)
            .await;
        self.count_refusal(&result);
        result
    }

    /// [`Sessions::save`] with an explicit conflict policy.
    pub(crate) async fn save_with(
        &self,
        session: &mut Session,
        policy: ConflictPolicy,
    ) -> Result<SaveOutcome> {
        let result = self
            .save_attempts(session, policy, self.config.field_conflict)
            .await;
        self.count_refusal(&result);
        result
    }

    /// Counts a save that gave up because another writer won.
    fn count_refusal<T>(&self, result: &Result<T>) {
        if let Err(e) = result {
            self.count_refusal_of(e);
        }
    }

    /// Counts `e` if it is a refusal because another writer won.
    fn count_refusal_of(&self, e: &Error) {
        if matches!(
            e,
            Error::Conflict { .. } | Error::FieldConflict { .. } | Error::IdTaken { .. }
        ) {
            Counters::bump(&self.counters.conflicts);
        }
    }

    /// The save, in this process's turn at writing the session (see
    /// `gate.rs`); refusals are counted by the callers.
    pub(crate) async fn save_attempts(
        &self,
        session: &mut Session,
        policy: ConflictPolicy,
        field: FieldConflict,
    ) -> Result<SaveOutcome> {
        let key = self.key_of(&session.id);
        let _turn = self.gate.turn(&key).await;
        self.save_in_turn(session, policy, field).await
    }

    /// The save itself, for a caller that holds the session's turn (an
    /// `update` that retries is not refused until its last attempt).
    pub(crate) async fn save_in_turn(
        &self,
        session: &mut Session,
        policy: ConflictPolicy,
        field: FieldConflict,
    ) -> Result<SaveOutcome> {
        if session.state == State::Deleted {
            return Err(Error::Deleted {
                id: session.id.to_string(),
            });
        }
        self.stamp_session(session);
        if !session.is_modified() {
            if session.reverse_key_pending {
                self.write_reverse_key(session).await?;
            }
            Counters::bump(&self.counters.saves_unchanged);
            return Ok(SaveOutcome::Unchanged);
        }
        let key = self.key_of(&session.id);
        let flags = self.write_flags();
        let ttl = self.ttl_of(session);
        // A version-less handle (a `MaxAge` local copy, or a store that does
        // not report versions) cannot make a conditional write: rebase it on
        // the principal's current value first. Not a conflict, not an attempt.
        if session.state == State::Stored && session.version.is_none() {
            self.merge_on_principal(session, &key, field).await?;
        }
        // The index first, so it never lacks a live session; again below if
        // a merge moved the session to another principal.
        let mut indexed = self.principal_of(session.data());
        self.index_upsert(session.data(), &session.id, ttl).await?;
        let mut attempts = 0;
        loop {
            let now_principal = self.principal_of(session.data());
            if now_principal != indexed {
                self.index_upsert(session.data(), &session.id, ttl).await?;
                indexed = now_principal;
            }
            attempts += 1;
            let bytes = self.encode(session.data(), &key)?;
            // Stored handles have a version here (they were rebased above if
            // not); only a never-written `update_only` session has none.
            let outcome = match session.version {
                Some(version) if session.state == State::Stored => {
                    self.servers.cas(&key, &bytes, flags, ttl, version).await?
                }
                _ => match self.add_new(&key, &bytes, flags, ttl).await? {
                    AddOutcome::Stored(v) => CasOutcome::Stored(v),
                    // A never-written session's id is taken: someone else's
                    // session. Never merge into it, and never retry.
                    AddOutcome::Exists => {
                        return Err(Error::IdTaken {
                            id: session.id.to_string(),
                        });
                    }
                },
            };
            match outcome {
                CasOutcome::Stored(version) => {
                    let replaced = self.principal_of(&session.stored());
                    session.mark_synced(version);
                    session.remaining = Some(ttl);
                    if let Some(local) = &self.local {
                        local.write(&key, &bytes, flags, version).await;
                    }
                    Counters::bump(&self.counters.saves_written);
                    self.write_reverse_key(session).await?;
                    if replaced.is_some() && replaced != indexed {
                        self.index_remove_for(replaced.as_deref(), &session.id)
                            .await?;
                    }
                    return Ok(SaveOutcome::Written { attempts });
                }
                CasOutcome::NotFound => {
                    return Err(Error::SessionGone {
                        id: session.id.to_string(),
                    });
                }
                CasOutcome::Conflict => {
                    if attempts >= self.config.max_save_attempts || policy == ConflictPolicy::Fail {
                        return Err(Error::Conflict { key, attempts });
                    }
                    tracing::debug!(id = %session.id, attempts, "concurrent change, merging");
                    Counters::bump(&self.counters.merges);
                    // The first conflict is usually a write of this
                    // process that landed between the handle's read and its
                    // turn: merge at once. A further one is another process
                    // writing right now: wait a jittered while first.
                    if attempts > 1 {
                        retry::pause(&self.config.backoff, attempts - 1).await;
                    }
                    self.merge_on_principal(session, &key, field).await?;
                }
            }
        }
    }

    /// Re-reads the principal's value and merges the handle's own changes
    /// into it, three-way (see [`Session::merge3`]), with `field` deciding
    /// field conflicts. A vanished session is [`Error::SessionGone`], except
    /// for one never written (`update_only`), which simply stays unwritten.
    /// Under [`FieldConflict::Fail`] a field conflict leaves the handle as
    /// it was.
    async fn merge_on_principal(
        &self,
        session: &mut Session,
        key: &str,
        field: FieldConflict,
    ) -> Result<()> {
        match self.servers.get(key).await? {
            Some(fresh) => {
                let data = self.decode(&fresh, key, &session.id)?;
                let (mut merged, mut conflicts) =
                    session.merge3(&data, field != FieldConflict::Theirs);
                // The digest field follows the principal field: not a
                // conflict of its own, and re-stamped below.
                if let Some(p) = &self.config.principal {
                    let derived = digest_field(p);
                    conflicts.retain(|f| *f != derived);
                }
                if !conflicts.is_empty() {
                    let n = u64::try_from(conflicts.len()).unwrap_or(u64::MAX);
                    Counters::add(&self.counters.field_conflicts, n);
                    tracing::debug!(id = %session.id, ?conflicts, ?field, "field conflict");
                    if field == FieldConflict::Fail {
                        return Err(Error::FieldConflict {
                            key: key.to_owned(),
                            fields: conflicts,
                        });
                    }
                }
                self.stamp_principal(&mut merged);
                session.apply_merge(data, merged, Some(fresh.version));
                session.state = State::Stored;
                Ok(())
            }
            None if session.state == State::Unwritten => Ok(()),
            None => Err(Error::SessionGone {
                id: session.id.to_string(),
            }),
        }
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
        self.delete_reverse_key(session).await?;
        self.index_remove_for(self.principal_of(&session.stored()).as_deref(), &session.id)
            .await?;
        let current = self.principal_of(session.data());
        if current != self.principal_of(&session.stored()) {
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
        self.touch_rest(&key, session.data(), ttl).await?;
        Ok(true)
    }

    /// After the session itself was touched: its reverse key and local copy.
    async fn touch_rest(&self, key: &str, data: &SessionData, ttl: Ttl) -> Result<()> {
        if let Some(reverse) = self.reverse_key_of(data) {
            self.servers.touch(&reverse, ttl).await?;
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

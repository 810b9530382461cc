//! [`SessionsStore`]: `tower_sessions_core::SessionStore` on [`Sessions`].
//!
//! | tower-sessions calls | what `Sessions` does |
//! |---|---|
//! | `create(&mut record)` | [`Sessions::create_with`]: one `add` under a fresh OS-random id, never over an existing key (a taken id is retried under another, inside `create_with`); the record gets the new id |
//! | `load(id)` | [`Sessions::load_id`] (local tier first, if any); the result is kept as this request's base (see [`crate::base`]) |
//! | `save(&record)` | the fields the request changed against its base (the handle `load` returned), applied to that handle and written by [`Sessions::save`] with the record's expiry: a `cas` on the version loaded, merged field by field on a concurrent write ([`session_core::ConflictPolicy`], [`session_core::FieldConflict`] as configured). No base: the whole field set, through [`Sessions::update`]. Nothing changed: [`Sessions::touch_id`] only. A session deleted meanwhile (logout, revocation) is not written back |
//! | `delete(id)` | [`Sessions::delete_id`] (with its reverse key and index member) |
//!
//! `Session::cycle_id` in tower-sessions is `delete` of the old id followed
//! by `create` at the next save: the trait has no method of its own for it,
//! and the new id comes from `create` like any other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use session_core::{Patch, Sessions};
use time::OffsetDateTime;
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

use crate::base::{Bases, DEFAULT_CAPACITY};
use crate::error::Error;
use crate::id::{id_of, session_id_of};
use crate::record::{apply, diff, expiry_of, fields_of, replacement, ttl_of};

/// A tower-sessions store over memorycached's [`Sessions`]: any backend
/// (`MemoryStore`, memcached with or without a local tier, Redis), any
/// codec (Storable included), and saves that keep concurrent requests'
/// changes. Cheap to clone; clones share their bases and counters.
#[derive(Debug, Clone)]
pub struct SessionsStore {
    sessions: Sessions,
    bases: Arc<Bases>,
    counters: Arc<Counters>,
}

/// Counters of a [`SessionsStore`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Saves that wrote only the request's own changes (its base was known).
    pub patched: u64,
    /// Saves whose base was unknown, which replaced the whole field set.
    pub replaced: u64,
    /// Saves that changed no field and only re-set the expiry.
    pub touched: u64,
    /// Saves of a session that no longer existed (deleted, revoked or
    /// expired meanwhile): nothing written.
    pub gone: u64,
    /// Requests' before states kept right now (see [`crate::base`]).
    pub bases: usize,
}

#[derive(Debug, Default)]
struct Counters {
    patched: AtomicU64,
    replaced: AtomicU64,
    touched: AtomicU64,
    gone: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl SessionsStore {
    /// A store over `sessions`, whose ids must be 128 bits like
    /// tower-sessions' ([`Error::IdLength`] unless `id_length` is 32).
    pub fn new(sessions: Sessions) -> Result<Self, Error> {
        let length = sessions.config().id_length;
        if length != 32 {
            return Err(Error::IdLength(length));
        }
        Ok(SessionsStore {
            sessions,
            bases: Arc::new(Bases::new(DEFAULT_CAPACITY)),
            counters: Arc::default(),
        })
    }

    /// Keeps at most `capacity` requests' before states (default 10 000;
    /// see [`crate::base`]). A request whose base was dropped still saves,
    /// replacing the whole field set.
    pub fn with_base_capacity(mut self, capacity: usize) -> Self {
        self.bases = Arc::new(Bases::new(capacity));
        self
    }

    /// The `Sessions` underneath, for what tower-sessions has no word for:
    /// `list_by_principal`, `revoke_principal`, `stats`, ...
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The counters since this store was made.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            patched: c.patched.load(Ordering::Relaxed),
            replaced: c.replaced.load(Ordering::Relaxed),
            touched: c.touched.load(Ordering::Relaxed),
            gone: c.gone.load(Ordering::Relaxed),
            bases: self.bases.len(),
        }
    }

    async fn create_record(&self, record: &mut Record) -> Result<(), Error> {
        let Some(ttl) = ttl_of(record.expiry_date, OffsetDateTime::now_utc()) else {
            // Born expired: nothing to keep. The record keeps the id
            // tower-sessions drew, under which nothing is stored.
            return Ok(());
        };
        let fields = record
            .data
            .iter()
            .filter(|(k, _)| *k != session_core::session::ID_FIELD)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let session = self.sessions.create_with(fields, Some(ttl)).await?;
        record.id = id_of(session.id())?;
        self.bases.put(record.id, session);
        Ok(())
    }

    async fn load_record(&self, id: Id) -> Result<Option<Record>, Error> {
        let sid = session_id_of(id)?;
        let Some(session) = self.sessions.load_id(&sid).await? else {
            self.bases.forget(id);
            return Ok(None);
        };
        let data = fields_of(&session);
        let expiry_date = expiry_of(
            session.remaining(),
            self.sessions.config().timeout,
            OffsetDateTime::now_utc(),
        );
        self.bases.put(id, session);
        Ok(Some(Record {
            id,
            data,
            expiry_date,
        }))
    }

    async fn save_record(&self, record: &Record) -> Result<(), Error> {
        let id = record.id;
        let Some(ttl) = ttl_of(record.expiry_date, OffsetDateTime::now_utc()) else {
            // Saved with an expiry in the past: the session is over.
            self.delete_record(id).await?;
            return Ok(());
        };
        match self.bases.get(id) {
            Some(base) => self.save_on_base(id, base, record, ttl).await,
            None => self.save_replacing(id, record, ttl).await,
        }
    }

    /// The save of a request whose base is known: its own changes, written
    /// on the handle it loaded (a `cas` on that version, merged on conflict).
    async fn save_on_base(
        &self,
        id: Id,
        mut session: session_core::Session,
        record: &Record,
        ttl: session_core::Ttl,
    ) -> Result<(), Error> {
        let patch = diff(&fields_of(&session), &record.data);
        if patch.is_empty() {
            return self.touch(id, session.id().as_str(), ttl).await;
        }
        apply(&mut session, &patch)?;
        session.set_expiry(ttl);
        match self.sessions.save(&mut session).await {
            Ok(_) => {
                bump(&self.counters.patched);
                self.bases.put(id, session);
                Ok(())
            }
            Err(session_core::Error::SessionGone { .. }) => {
                self.gone(id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The save of a request whose base is unknown: whatever differs from
    /// the store's current fields (last writer wins), computed afresh on
    /// each attempt of the update.
    async fn save_replacing(
        &self,
        id: Id,
        record: &Record,
        ttl: session_core::Ttl,
    ) -> Result<(), Error> {
        let sid = session_id_of(id)?;
        let mut applied = Patch::new();
        let updated = self
            .sessions
            .update(sid.as_str(), |session| {
                applied = replacement(session, &record.data);
                apply(session, &applied)?;
                session.set_expiry(ttl);
                Ok(())
            })
            .await?;
        let Some(session) = updated else {
            self.gone(id);
            return Ok(());
        };
        bump(&self.counters.replaced);
        tracing::debug!(%sid, "no base for this request's save; fields replaced");
        if applied.is_empty() {
            // Nothing was written, so the expiry was not re-set either.
            return self.touch(id, sid.as_str(), ttl).await;
        }
        self.bases.put(id, session);
        Ok(())
    }

    async fn touch(&self, id: Id, sid: &str, ttl: session_core::Ttl) -> Result<(), Error> {
        if self.sessions.touch_id(sid, Some(ttl)).await? {
            bump(&self.counters.touched);
        } else {
            self.gone(id);
        }
        Ok(())
    }

    fn gone(&self, id: Id) {
        bump(&self.counters.gone);
        self.bases.forget(id);
        tracing::debug!(id = %id, "save of a session that no longer exists; not written");
    }

    async fn delete_record(&self, id: Id) -> Result<(), Error> {
        self.bases.forget(id);
        let sid = session_id_of(id)?;
        self.sessions.delete_id(sid.as_str()).await?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SessionsStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        Ok(self.create_record(record).await?)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        Ok(self.save_record(record).await?)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.load_record(*id).await?)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        Ok(self.delete_record(*id).await?)
    }
}

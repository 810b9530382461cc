//! The operations of the web session explorer (`surfaces/admin`) on
//! `Sessions`: inspect a session with its version, lifetime and stored
//! size; change or remove one field and delete a session *only if it is
//! still at the version the page showed*; extend; list and revoke a user's
//! sessions through the per-user index; page through a store that can scan.
//!
//! Every write goes through the same by-id operations as the SOAP and JSON
//! routes (`Sessions::patch` with the expected version, `Sessions::delete`,
//! `touch_id`, `revoke_principal`). Reads of the stored item itself (its
//! size and codec, and the listing of a scan) use the store only to look.

use serde_json::Value;
use session_core::{Codec, Patch, SessionData, SessionId, Ttl, Version, codec::is_raw};

use super::{OpError, Service, from_core};

/// One session as the explorer shows it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Its id.
    pub id: String,
    /// Its fields (`_session_id` included).
    pub data: SessionData,
    /// The version it was read at (forms carry it back), when known.
    pub version: Option<u64>,
    /// Lifetime left: `Some(Ttl::NEVER)` = never expires, `None` = the store
    /// cannot tell.
    pub remaining: Option<Ttl>,
    /// Size of the stored item in bytes, and its codec's name.
    pub stored: Option<(usize, &'static str)>,
    /// The user its `principal` field names, if configured and set.
    pub user: Option<String>,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Done,
    /// No such session (deleted or expired).
    Missing,
    /// The session changed since the version the caller saw; nothing was
    /// written.
    Conflict,
}

/// One page of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanView {
    /// Live sessions found on this page.
    pub sessions: Vec<SessionView>,
    /// Keys the store listed on this page (sessions and other items).
    pub keys: usize,
    /// Where the next page starts.
    pub next: Option<String>,
}

/// A count of live sessions over a whole scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count {
    /// Sessions.
    pub sessions: usize,
    /// Other items (reverse keys, index records, locks).
    pub other: usize,
    /// False when the count stopped at its key limit.
    pub complete: bool,
}

impl Service {
    /// The field naming a session's user, if configured.
    pub fn principal_field(&self) -> Option<&str> {
        self.sessions.config().principal.as_deref()
    }

    /// True when every session of a user can be listed (per-user index).
    pub fn has_user_index(&self) -> bool {
        self.sessions.config().principal_index.is_some()
    }

    /// True when the principal store can enumerate its keys.
    pub fn can_scan(&self) -> bool {
        self.sessions.servers().capabilities().scan
    }

    /// A session with its version, lifetime and stored size; `None` when
    /// there is none.
    pub async fn inspect(&self, id: &str) -> Result<Option<SessionView>, OpError> {
        let Some(session) = self.sessions.load(id).await.map_err(from_core)? else {
            return Ok(None);
        };
        let key = self.sessions.key_of(session.id());
        // Only a look at the stored bytes, for their size and codec.
        let stored = match self.sessions.servers().get(&key).await {
            Ok(Some(entry)) => Some(stored_of(&entry.value, entry.flags, &key)),
            Ok(None) => None,
            Err(e) => return Err(from_core(e)),
        };
        Ok(Some(SessionView {
            id: session.id().as_str().to_owned(),
            user: self.user_of(session.data()),
            data: session.data().clone(),
            version: session.version().map(Version::get),
            remaining: session.remaining(),
            stored,
        }))
    }

    fn user_of(&self, data: &SessionData) -> Option<String> {
        let field = self.principal_field()?;
        match data.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Applies `patch` if the session is still at `expected`.
    pub async fn patch_at(
        &self,
        id: &str,
        patch: &Patch,
        expected: u64,
    ) -> Result<WriteOutcome, OpError> {
        match self
            .sessions
            .patch(id, patch, Some(Version::new(expected)))
            .await
        {
            Ok(Some(_)) => Ok(WriteOutcome::Done),
            Ok(None) => Ok(WriteOutcome::Missing),
            Err(e) if e.is_conflict() => Ok(WriteOutcome::Conflict),
            Err(session_core::Error::SessionGone { .. }) => Ok(WriteOutcome::Missing),
            Err(e) => Err(from_core(e)),
        }
    }

    /// Deletes the session if it is still at `expected`.
    pub async fn delete_at(&self, id: &str, expected: u64) -> Result<WriteOutcome, OpError> {
        let Some(mut session) = self.sessions.load(id).await.map_err(from_core)? else {
            return Ok(WriteOutcome::Missing);
        };
        if session.version() != Some(Version::new(expected)) {
            return Ok(WriteOutcome::Conflict);
        }
        match self
            .sessions
            .delete(&mut session)
            .await
            .map_err(from_core)?
        {
            true => Ok(WriteOutcome::Done),
            false => Ok(WriteOutcome::Missing),
        }
    }

    /// Every live session of `user`, through the per-user index; without
    /// the index, the one session the user's reverse key names (the
    /// original's index, one session per user). The flag tells which.
    pub async fn sessions_of(&self, user: &str) -> Result<(Vec<SessionView>, bool), OpError> {
        if self.principal_field().is_none() {
            return Err(OpError::NotConfigured(
                "finding a user's sessions needs the field naming users (--principal)".into(),
            ));
        }
        let ids: Vec<String> = if self.has_user_index() {
            let ids = self.sessions.list_by_principal(user).await;
            ids.map_err(from_core)?
                .into_iter()
                .map(|id| id.as_str().to_owned())
                .collect()
        } else {
            let found = self.sessions.find_by_principal(user).await;
            found
                .map_err(from_core)?
                .map(|s| s.id().as_str().to_owned())
                .into_iter()
                .collect()
        };
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(view) = self.inspect(&id).await? {
                views.push(view);
            }
        }
        Ok((views, self.has_user_index()))
    }

    /// Deletes every session of `user`; returns how many.
    pub async fn revoke(&self, user: &str) -> Result<usize, OpError> {
        if !self.has_user_index() {
            return Err(OpError::NotConfigured(
                "revoking a user's sessions needs the per-user index (--principal-index)".into(),
            ));
        }
        self.sessions
            .revoke_principal(user)
            .await
            .map_err(from_core)
    }

    /// One page of live sessions, from `cursor` (`None`: the start).
    pub async fn scan_page(&self, cursor: Option<&str>, limit: usize) -> Result<ScanView, OpError> {
        let store = self.sessions.servers();
        let prefix = self.sessions.config().key_prefix.clone();
        let cursor = cursor.map(session_core::ScanCursor::new);
        let page = store
            .scan(&prefix, cursor.as_ref(), limit)
            .await
            .map_err(from_core)?;
        let mut view = ScanView {
            keys: page.keys.len(),
            next: page.next.map(|c| c.as_str().to_owned()),
            ..ScanView::default()
        };
        let mut keys = page.keys;
        keys.sort();
        for key in keys {
            let Some(id) = id_of(&key, &prefix) else {
                continue;
            };
            let Some(entry) = store.get(&key).await.map_err(from_core)? else {
                continue;
            };
            if is_raw(entry.flags) {
                continue;
            }
            // Sealed values open under the bridge's keys; one that does
            // not (or a plain one while sealing is required) shows empty.
            let data = match &self.sessions.config().seal {
                Some(seal) => seal.decode_stored(&entry.value, entry.flags, &key),
                None => Codec::decode_stored(&entry.value, entry.flags, &key),
            }
            .unwrap_or_default();
            view.sessions.push(SessionView {
                id: id.as_str().to_owned(),
                user: self.user_of(&data),
                data,
                version: Some(entry.version.get()),
                remaining: entry.ttl,
                stored: Some(stored_of(&entry.value, entry.flags, &key)),
            });
        }
        Ok(view)
    }

    /// Counts live sessions over a whole scan, looking at `max_keys` keys
    /// at most.
    pub async fn count(&self, max_keys: usize) -> Result<Count, OpError> {
        let store = self.sessions.servers();
        let prefix = self.sessions.config().key_prefix.clone();
        let mut count = Count::default();
        let mut cursor = None;
        let mut seen = 0usize;
        loop {
            let page = store
                .scan(&prefix, cursor.as_ref(), 500)
                .await
                .map_err(from_core)?;
            seen += page.keys.len();
            for key in &page.keys {
                let session = match id_of(key, &prefix) {
                    Some(_) => store
                        .get(key)
                        .await
                        .map_err(from_core)?
                        .is_some_and(|e| !is_raw(e.flags)),
                    None => false,
                };
                if session {
                    count.sessions += 1;
                } else {
                    count.other += 1;
                }
            }
            match page.next {
                None => {
                    count.complete = true;
                    return Ok(count);
                }
                Some(_) if seen >= max_keys => return Ok(count),
                next => cursor = next,
            }
        }
    }
}

/// The session id a store key names, if it is shaped like one.
fn id_of(key: &str, prefix: &str) -> Option<SessionId> {
    SessionId::parse(key.strip_prefix(prefix)?).ok()
}

fn stored_of(value: &[u8], flags: u32, key: &str) -> (usize, &'static str) {
    let codec = Codec::from_flags(flags, key).map_or("unknown", Codec::name);
    (value.len(), codec)
}

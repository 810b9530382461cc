//! The per-user index of every live session, and the lookups by user:
//! [`Sessions::list_by_principal`], [`Sessions::find_id_by_principal`],
//! [`Sessions::revoke_principal`]. The record format is in `crate::index`.
//!
//! How the index stays equal to the set of live sessions:
//! - it learns of a session (or of its longer expiry) *before* the session
//!   is written or touched, so a live session is never missing; a member
//!   whose write then failed is a dead member, and
//! - dead members are dropped: by deadline on every write of the record,
//!   and on every listing by checking each member against the store (gone,
//!   or now belonging to another user). So a deletion that did not reach
//!   the index, a save on a Perl node that changed the user, or memcached
//!   expiring an item up to a second early never make a listing wrong.
//!
//! Only writes through this crate maintain the index: a session created or
//! extended by a Perl node is not listed (its reverse key still names it,
//! see [`Sessions::find_id_by_principal`]).

use super::{Sessions, retry};
use crate::codec::{FLAGS_RAW, is_raw};
use crate::config::PrincipalKeying;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::index::{INDEX_SUFFIX, IndexRecord, deadline, now_unix};
use crate::principal::{hmac_sha256_hex, md5_hex, principal_string};
use crate::session::Fields;
use crate::stats::Counters;
use crate::store::{DeleteOutcome, Ttl};

impl Sessions {
    /// The user a session's data names (its `principal` field, as Perl
    /// would stringify it), if `principal` is configured and the field set.
    pub(crate) fn principal_of(&self, data: &impl Fields) -> Option<String> {
        let field = self.config.principal.as_ref()?;
        data.field(field).and_then(principal_string)
    }

    /// [`Sessions::principal_of`] for the index's bookkeeping: `None`
    /// without a `principal_index`, where no record needs it (a save then
    /// copies no user name).
    pub(crate) fn indexed_principal(&self, data: &impl Fields) -> Option<String> {
        self.config.principal_index.as_ref()?;
        self.principal_of(data)
    }

    /// True when the legacy reverse key is keyed by HMAC instead of MD5.
    pub(super) fn hmac_reverse_key(&self) -> bool {
        matches!(
            self.config.principal_index.as_ref().map(|i| &i.keying),
            Some(PrincipalKeying::HmacSha256 {
                reverse_key_too: true,
                ..
            })
        )
    }

    /// The reverse key of a user: `<prefix>md5_hex(user)`, or the HMAC
    /// digest when so configured.
    pub(super) fn reverse_key_for(&self, user: &str) -> String {
        let digest = match self.config.principal_index.as_ref().map(|i| &i.keying) {
            Some(PrincipalKeying::HmacSha256 {
                secret,
                reverse_key_too: true,
            }) => hmac_sha256_hex(secret, user.as_bytes()),
            _ => md5_hex(user.as_bytes()),
        };
        format!("{}{digest}", self.config.key_prefix)
    }

    /// The key of a user's index record, when the index is configured.
    fn index_key(&self, user: &str) -> Option<String> {
        let index = self.config.principal_index.as_ref()?;
        let digest = match &index.keying {
            PrincipalKeying::HmacSha256 { secret, .. } => hmac_sha256_hex(secret, user.as_bytes()),
            PrincipalKeying::Md5 => md5_hex(user.as_bytes()),
        };
        Some(format!("{}{digest}{INDEX_SUFFIX}", self.config.key_prefix))
    }

    /// The id the reverse key of `user` names, without reading the session.
    pub(super) async fn reverse_key_target(&self, user: &str) -> Result<Option<SessionId>> {
        let reverse = self.reverse_key_for(user);
        let Some(entry) = self.servers.get(&reverse).await? else {
            return Ok(None);
        };
        std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| SessionId::parse(s).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::undecodable(
                    "reverse key",
                    format!("{reverse:?} does not hold a session id"),
                )
            })
    }

    /// Records (or extends) session `id` of the user `data` names in that
    /// user's index, with the expiry `ttl` it is about to be written with.
    pub(crate) async fn index_upsert(
        &self,
        data: &(impl Fields + Sync),
        id: &SessionId,
        ttl: Ttl,
    ) -> Result<()> {
        let Some(index) = self.config.principal_index.as_ref() else {
            return Ok(());
        };
        let Some(user) = self.principal_of(data) else {
            return Ok(());
        };
        let Some(key) = self.index_key(&user) else {
            return Ok(());
        };
        let max = index.max_members;
        let mut evicted = Vec::new();
        self.index_edit(&key, |record, now| {
            let d = deadline(ttl, now);
            if record.members.get(id.as_str()) == Some(&d) {
                return false;
            }
            evicted = record.upsert(id.as_str(), d, max);
            true
        })
        .await?;
        if !evicted.is_empty() {
            tracing::warn!(%user, ?evicted, "principal index full: members dropped");
            let n = u64::try_from(evicted.len()).unwrap_or(u64::MAX);
            Counters::add(&self.counters.index_evictions, n);
        }
        Ok(())
    }

    /// Removes session `id` from the index of `user` (no-op for `None` or
    /// without an index).
    pub(crate) async fn index_remove_for(&self, user: Option<&str>, id: &SessionId) -> Result<()> {
        let Some(key) = user.and_then(|u| self.index_key(u)) else {
            return Ok(());
        };
        self.index_edit(&key, |record, _| {
            record.members.remove(id.as_str()).is_some()
        })
        .await
    }

    /// Read-modify-write of one index record with `cas` (`add` when absent),
    /// pruning expired members each time, retried with backoff on a lost
    /// race. `edit` says whether it changed anything; nothing changed and
    /// nothing pruned writes nothing. An unreadable record is replaced.
    async fn index_edit(
        &self,
        key: &str,
        mut edit: impl FnMut(&mut IndexRecord, u64) -> bool,
    ) -> Result<()> {
        let attempts = self.config.max_save_attempts;
        for attempt in 1..=attempts {
            let now = now_unix();
            let (mut record, version) = match self.servers.get(key).await? {
                Some(entry) => match IndexRecord::decode(&entry.value) {
                    Ok(r) => (r, Some(entry.version)),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "unreadable principal index replaced");
                        (IndexRecord::default(), Some(entry.version))
                    }
                },
                None => (IndexRecord::default(), None),
            };
            let pruned = record.prune(now);
            let changed = edit(&mut record, now);
            if !changed && pruned == 0 {
                return Ok(());
            }
            let bytes = record.encode()?;
            let ttl = record.ttl(now);
            let stored = match version {
                Some(v) => self
                    .servers
                    .cas(key, &bytes, FLAGS_RAW, ttl, v)
                    .await?
                    .is_stored(),
                None if record.members.is_empty() => return Ok(()),
                None => self
                    .servers
                    .add(key, &bytes, FLAGS_RAW, ttl)
                    .await?
                    .is_stored(),
            };
            if stored {
                return Ok(());
            }
            retry::pause(&self.config.backoff, attempt).await;
        }
        Err(Error::Conflict {
            key: key.to_owned(),
            attempts,
        })
    }

    /// Every live session of `user`, by id, in id order.
    ///
    /// Reads the user's index record and checks each member against the
    /// store (one `get` each): a member whose session is gone, expired, or
    /// now names another user is dropped from the answer and from the
    /// record. A member whose session cannot be decoded (a Perl node
    /// rewrote it) is listed: it exists, and it was this user's.
    /// [`Error::InvalidConfig`] without a configured `principal_index`.
    pub async fn list_by_principal(&self, user: &str) -> Result<Vec<SessionId>> {
        let Some(key) = self.index_key(user) else {
            return Err(Error::InvalidConfig(
                "list_by_principal needs `principal_index` configured".into(),
            ));
        };
        let Some(entry) = self.servers.get(&key).await? else {
            return Ok(Vec::new());
        };
        let mut record = IndexRecord::decode(&entry.value)?;
        record.prune(now_unix());
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for member in record.members.keys() {
            let Ok(id) = SessionId::parse(member) else {
                dead.push(member.clone());
                continue;
            };
            if self.still_owned(&id, user).await? {
                live.push(id);
            } else {
                dead.push(member.clone());
            }
        }
        if !dead.is_empty() {
            self.index_edit(&key, |r, _| {
                let before = r.members.len();
                r.members.retain(|m, _| !dead.contains(m));
                r.members.len() != before
            })
            .await?;
        }
        Ok(live)
    }

    /// True while session `id` exists and (where it can be decoded) still
    /// names `user`.
    async fn still_owned(&self, id: &SessionId, user: &str) -> Result<bool> {
        let key = self.key_of(id);
        let Some(entry) = self.servers.get(&key).await? else {
            return Ok(false);
        };
        if is_raw(entry.flags) {
            return Ok(false);
        }
        Ok(match self.decode(&entry, &key, id) {
            Ok(data) => self.principal_of(&data).as_deref() == Some(user),
            Err(_) => true,
        })
    }

    /// The id the legacy reverse key of `user` names, if that session still
    /// exists — without decoding it, so it also answers for a session a Perl
    /// node wrote in a format this build cannot read (where
    /// [`Sessions::find_by_principal`] fails with `UnknownCodec`). Costs a
    /// `get` of the reverse key and a `version` of the session. The session
    /// is not checked to still belong to `user` (that needs decoding).
    pub async fn find_id_by_principal(&self, user: &str) -> Result<Option<SessionId>> {
        if self.config.principal.is_none() {
            return Err(Error::InvalidConfig(
                "find_id_by_principal needs the `principal` field configured".into(),
            ));
        }
        let Some(id) = self.reverse_key_target(user).await? else {
            return Ok(None);
        };
        let exists = self.servers.version(&self.key_of(&id)).await?.is_some();
        Ok(exists.then_some(id))
    }

    /// Logs `user` out everywhere: deletes every session the index lists
    /// for them (checked as in [`Sessions::list_by_principal`]) and the one
    /// the legacy reverse key names if it still belongs to them, then their
    /// reverse key and index members. Returns how many sessions were
    /// deleted. A session of the same user created while this runs may
    /// survive (it logged in after the revocation); no session of another
    /// user is touched.
    pub async fn revoke_principal(&self, user: &str) -> Result<usize> {
        let mut ids = self.list_by_principal(user).await?;
        if let Some(id) = self.reverse_key_target(user).await?
            && !ids.contains(&id)
            && self.still_owned_decoded(&id, user).await?
        {
            ids.push(id);
        }
        let mut deleted = 0;
        for id in &ids {
            let key = self.key_of(id);
            if self.servers.delete(&key).await? {
                deleted += 1;
                Counters::bump(&self.counters.deletes);
            }
            if let Some(local) = &self.local {
                local.forget(&key).await;
            }
        }
        let reverse = self.reverse_key_for(user);
        for id in &ids {
            self.delete_reverse_key_at(&reverse, id).await?;
        }
        if let Some(key) = self.index_key(user) {
            self.index_edit(&key, |r, _| {
                let before = r.members.len();
                r.members
                    .retain(|m, _| !ids.iter().any(|id| id.as_str() == m));
                r.members.len() != before
            })
            .await?;
        }
        Ok(deleted)
    }

    /// True while session `id` exists, decodes, and names `user` (a session
    /// that cannot be decoded is not known to be theirs).
    async fn still_owned_decoded(&self, id: &SessionId, user: &str) -> Result<bool> {
        let key = self.key_of(id);
        let Some(entry) = self.servers.get(&key).await?.filter(|e| !is_raw(e.flags)) else {
            return Ok(false);
        };
        Ok(self
            .decode(&entry, &key, id)
            .is_ok_and(|data| self.principal_of(&data).as_deref() == Some(user)))
    }

    /// Deletes the reverse key `reverse` if it still names `id`: read with
    /// its version, delete on that version, so a login in between keeps its
    /// key. On a store without [`crate::Store::delete_if`] the delete is
    /// plain and such a login loses its reverse key until its next save.
    pub(super) async fn delete_reverse_key_at(&self, reverse: &str, id: &SessionId) -> Result<()> {
        let Some(entry) = self.servers.get(reverse).await? else {
            return Ok(());
        };
        if entry.value != id.as_str().as_bytes() {
            return Ok(());
        }
        if self.servers.capabilities().conditional_delete {
            match self.servers.delete_if(reverse, entry.version).await? {
                DeleteOutcome::Deleted | DeleteOutcome::NotFound => {}
                DeleteOutcome::Conflict => {
                    tracing::debug!(%reverse, "reverse key moved to a newer session; kept");
                }
            }
        } else {
            self.servers.delete(reverse).await?;
        }
        Ok(())
    }
}

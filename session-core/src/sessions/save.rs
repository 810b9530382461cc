//! [`Sessions::save`] and its variants: the conditional write, the
//! three-way merge on a conflict, the reverse key beside the `cas`.

use super::reverse::ReverseWrite;
use super::{SaveOutcome, Sessions, retry};
use crate::config::{ConflictPolicy, FieldConflict};
use crate::error::{Error, Result};
use crate::session::{Session, State};
use crate::stats::Counters;
use crate::store::{AddOutcome, CasOutcome, ItemMemo};

impl Sessions {
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
    ///   [`SessionStats::field_conflicts`](crate::SessionStats::field_conflicts). A value computed from what was
    ///   read (a counter) belongs in [`Sessions::update`] instead.
    /// - The session was deleted or expired meanwhile: [`Error::SessionGone`];
    ///   it is not resurrected.
    /// - With `principal` set, `<principal>_MD5` is stamped into the data and
    ///   the reverse key is written too. When the save keeps the session's
    ///   user (the usual save), the reverse key's `set` goes out together
    ///   with the `cas`, one round trip instead of two: it rewrites the key
    ///   the session's last save wrote, so a refused `cas` moves nothing (a
    ///   `cas` that finds the session gone removes the key again if it
    ///   still names it). A save that changes the user writes the key
    ///   *after* the session (the original wrote it first, so a refused save
    ///   still moved the user's index to it). If the reverse key's write
    ///   fails, the error is returned and the next save of this handle
    ///   writes the reverse key again, changed or not.
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
    pub(super) fn count_refusal_of(&self, e: &Error) {
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
        self.save_in_turn(session, &key, policy, field).await
    }

    /// The save itself, for a caller that holds the session's turn (an
    /// `update` that retries is not refused until its last attempt);
    /// `key` is the session's store key.
    pub(crate) async fn save_in_turn(
        &self,
        session: &mut Session,
        key: &str,
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
                self.write_reverse_key(session, key).await?;
            }
            Counters::bump(&self.counters.saves_unchanged);
            return Ok(SaveOutcome::Unchanged);
        }
        let flags = self.write_flags();
        let ttl = self.ttl_of(session);
        // A version-less handle (a `MaxAge` local copy, or a store that does
        // not report versions) cannot make a conditional write: rebase it on
        // the principal's current value first. Not a conflict, not an attempt.
        if session.state == State::Stored && session.version.is_none() {
            self.merge_on_principal(session, key, field).await?;
        }
        // The index first, so it never lacks a live session; again below if
        // a merge moved the session to another principal.
        let mut indexed = self.indexed_principal(session);
        self.index_upsert(session, &session.id, ttl).await?;
        let mut attempts = 0;
        loop {
            let now_principal = self.indexed_principal(session);
            if now_principal != indexed {
                self.index_upsert(session, &session.id, ttl).await?;
                indexed = now_principal;
            }
            attempts += 1;
            // A store that keeps memos is offered the new bytes' spans
            // (such stores hold no seal: `store_keeps_memos`).
            let (bytes, memo) = if self.store_keeps_memos {
                let (bytes, spans) = session.encode_scanned(self.codec())?;
                let memo = spans.and_then(|spans| ItemMemo::of_scan(bytes.len(), spans));
                (bytes, memo)
            } else {
                (self.encode_session(session, key)?, None)
            };
            // Stored handles have a version here (they were rebased above if
            // not); only a never-written `update_only` session has none.
            // The reverse key may go out beside the `cas`, or not at all
            // (`reverse.rs`).
            let mut beside = None;
            let mut reverse_fresh = false;
            let outcome = match session.version {
                Some(version) if session.state == State::Stored => {
                    match self.reverse_write(session, key) {
                        ReverseWrite::Beside(reverse) => {
                            let (cas, set) = self
                                .cas_beside(session, key, &bytes, version, memo, &reverse)
                                .await;
                            beside = Some((reverse, set));
                            cas?
                        }
                        write => {
                            reverse_fresh = matches!(write, ReverseWrite::Fresh);
                            self.cas_session(key, &bytes, ttl, version, memo).await?
                        }
                    }
                }
                _ => match self.add_new(key, &bytes, flags, ttl).await? {
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
                    let replaced = self.indexed_principal(&session.stored());
                    session.mark_synced(version);
                    session.remaining = Some(ttl);
                    if let Some(local) = &self.local {
                        local.write(key, &bytes, flags, version).await;
                    }
                    Counters::bump(&self.counters.saves_written);
                    match beside {
                        Some((reverse, written)) => {
                            session.reverse_key_pending = written.is_err();
                            written?;
                            self.recent_reverse.wrote(key, &reverse);
                        }
                        None if reverse_fresh => {}
                        None => self.write_reverse_key(session, key).await?,
                    }
                    if replaced.is_some() && replaced != indexed {
                        self.index_remove_for(replaced.as_deref(), &session.id)
                            .await?;
                    }
                    return Ok(SaveOutcome::Written { attempts });
                }
                CasOutcome::NotFound => {
                    self.recent_reverse.forget(key);
                    if let Some((reverse, Ok(()))) = &beside {
                        self.unwrite_reverse_key(reverse, &session.id).await;
                    }
                    return Err(Error::SessionGone {
                        id: session.id.to_string(),
                    });
                }
                CasOutcome::Conflict => {
                    if attempts >= self.config.max_save_attempts || policy == ConflictPolicy::Fail {
                        return Err(Error::Conflict {
                            key: key.to_owned(),
                            attempts,
                        });
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
                    self.merge_on_principal(session, key, field).await?;
                }
            }
        }
    }

    /// A save's `cas`, with the new bytes' memo when the splice made one
    /// (see [`crate::store::Store::cas_with_memo`]).
    pub(super) async fn cas_session(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: crate::store::Ttl,
        version: crate::store::Version,
        memo: Option<ItemMemo>,
    ) -> Result<CasOutcome> {
        let flags = self.write_flags();
        match memo {
            Some(memo) => {
                self.servers
                    .cas_with_memo(key, bytes, flags, ttl, version, memo)
                    .await
            }
            None => self.servers.cas(key, bytes, flags, ttl, version).await,
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
                if let Some(derived) = self.stamp_field.as_deref() {
                    conflicts.retain(|f| f != derived);
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
}

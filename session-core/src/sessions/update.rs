//! [`Sessions::update`]: read-modify-write that never loses a change.
//!
//! A plain save merges per field, which is right for independent fields and
//! wrong for a value computed from what was read: two requests that read
//! `count = 5` and write `6` cannot both be right. `update` re-runs the
//! caller's change on a fresh read after each lost race, so every change is
//! applied to the value the store really held.

use super::{Sessions, retry};
use crate::codec::is_raw;
use crate::config::{ConflictPolicy, FieldConflict};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{Session, State};
use crate::stats::Counters;

impl Sessions {
    /// Applies `change` to the current state of session `id` and writes it,
    /// atomically with respect to every other writer: the write is
    /// conditional on the version `change` saw, and when another writer got
    /// there first, the session is read again and `change` runs again on
    /// the fresh data (after a random wait, see [`crate::config::Backoff`]).
    ///
    /// - `Ok(Some(session))`: written (or `change` changed nothing); the
    ///   session as stored.
    /// - `Ok(None)`: there is no such session (or it was deleted meanwhile).
    /// - [`Error::Conflict`] after `max_save_attempts` lost races; nothing
    ///   of this call was written.
    /// - An error `change` returns stops the update; nothing is written.
    ///
    /// Reads go to the principal store (never the `local` tier), so
    /// `change` always sees the newest value. `change` may run several
    /// times: it should only compute the new state from the session it is
    /// given. By-id callers (SOAP `updateSession`, JSON `PATCH`) get the
    /// same guarantee in one call.
    ///
    /// ```
    /// # async fn demo(sessions: session_core::Sessions, id: &str) -> session_core::Result<()> {
    /// sessions
    ///     .update(id, |s| {
    ///         let n: i64 = s.get("count")?.unwrap_or(0);
    ///         s.insert("count", n + 1)?;
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update<F>(&self, id: &str, mut change: F) -> Result<Option<Session>>
    where
        F: FnMut(&mut Session) -> Result<()>,
    {
        let id = SessionId::parse(id)?;
        let key = self.key_of(&id);
        let attempts = self.config.max_save_attempts;
        for attempt in 1..=attempts {
            // Read, change and write in this process's turn: other tasks of
            // this process cannot make the write conflict.
            let turn = self.gate.turn(&key).await;
            let Some(mut session) = self.read_principal(&id).await? else {
                return Ok(None);
            };
            change(&mut session)?;
            let saved = self
                .save_in_turn(
                    &mut session,
                    &key,
                    ConflictPolicy::Fail,
                    FieldConflict::Fail,
                )
                .await;
            drop(turn);
            match saved {
                Ok(_) => return Ok(Some(session)),
                Err(Error::SessionGone { .. }) => return Ok(None),
                Err(Error::Conflict { .. }) if attempt < attempts => {
                    Counters::bump(&self.counters.update_retries);
                    retry::pause(&self.config.backoff, attempt).await;
                }
                Err(e) => {
                    let e = match e {
                        Error::Conflict { key, .. } => Error::Conflict { key, attempts },
                        other => other,
                    };
                    self.count_refusal_of(&e);
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict { key, attempts })
    }

    /// Reads a session from the principal store (bypassing the local tier).
    pub(crate) async fn read_principal(&self, id: &SessionId) -> Result<Option<Session>> {
        let key = self.key_of(id);
        Counters::bump(&self.counters.loads);
        let Some(entry) = self.servers.get(&key).await?.filter(|e| !is_raw(e.flags)) else {
            Counters::bump(&self.counters.not_found);
            return Ok(None);
        };
        // As in `load_id`: a value that fails the seal is no session.
        let body = match self.read_loaded(entry.value, entry.flags, &key, id, None) {
            Err(Error::Seal { .. }) => return Ok(None),
            other => other?,
        };
        let mut session = Session::loaded(id.clone(), body, Some(entry.version), State::Stored);
        session.remaining = entry.ttl;
        Ok(Some(session))
    }
}

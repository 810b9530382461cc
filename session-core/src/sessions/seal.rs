//! The seal's hooks in [`Sessions`] (see [`crate::seal`]): what a write
//! stores (the codec's bytes, sealed when configured) and how a read opens
//! it, with each seal failure counted and logged once;
//! [`Sessions::reseal`], which rewrites one stored session under the current
//! key (what `sessionctl reseal` runs over every key a scan lists).
//!
//! The codec's bytes are opened and sealed again as they are, never decoded
//! and re-encoded into something else, after a check that they do decode to
//! a session (a planted non-session is not given a seal). The write is a
//! `cas` on the version read, so a save that lands meanwhile is never
//! overwritten: the value is read again and, if that save sealed it under
//! the current key already, left alone.

use serde_json::Value;

use super::Sessions;
use crate::codec::{
    Codec, FLAGS_PERL_COMPRESSED, FLAGS_SEALED, is_compressed, is_raw, is_sealed, unpack,
};
use crate::error::{Error, Result, SealProblem};
use crate::id::SessionId;
use crate::seal::SealConfig;
use crate::session::{ID_FIELD, Loaded, Session, SessionData};
use crate::stats::Counters;
use crate::store::{CasOutcome, Entry, ItemMemo};

/// What [`Sessions::reseal`] did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResealOutcome {
    /// Rewritten under the current key.
    Resealed,
    /// Sealed under the current key already; nothing written.
    Current,
    /// The key is not a session of this `Sessions` (another prefix, a
    /// reverse key, an index record, a lock, an undecodable value).
    NotASession,
    /// Gone (deleted or expired) before it could be rewritten.
    Gone,
    /// Fails the seal (counted and logged like a load's): left as it is.
    /// A plain value is `Refused(Unsealed)` unless `accept_unsealed`.
    Refused(SealProblem),
}

impl Sessions {
    /// The flags of what this `Sessions` writes: the codec's, sealed or not.
    pub(super) fn write_flags(&self) -> u32 {
        match &self.config.seal {
            Some(_) => SealConfig::flags(self.codec()),
            None => self.codec().flags(),
        }
    }

    /// The stored form of `data` under `key`: the codec's bytes, sealed
    /// when a seal is configured (the key is its associated data).
    pub(super) fn encode(&self, data: &SessionData, key: &str) -> Result<Vec<u8>> {
        self.sealed(self.codec().encode(data)?, key)
    }

    /// [`Sessions::encode`] of a handle's current data; the fields it
    /// loaded and did not touch are copied as stored (see `Session::encode`).
    pub(super) fn encode_session(&self, session: &Session, key: &str) -> Result<Vec<u8>> {
        self.sealed(session.encode(self.codec())?, key)
    }

    /// The codec's bytes as stored: sealed when a seal is configured.
    fn sealed(&self, bytes: Vec<u8>, key: &str) -> Result<Vec<u8>> {
        match &self.config.seal {
            Some(seal) => seal.seal_owned(bytes, self.write_flags(), key),
            None => Ok(bytes),
        }
    }

    /// Decodes a stored session, whatever codec its flags name, opening its
    /// seal first (see [`crate::seal`]); a seal failure is counted and
    /// logged here, once. The store key is the truth about the id:
    /// `_session_id` is (re)set from it.
    pub(super) fn decode(&self, entry: &Entry, key: &str, id: &SessionId) -> Result<SessionData> {
        let decoded = match &self.config.seal {
            Some(seal) => seal.decode_stored(&entry.value, entry.flags, key),
            None => Codec::decode_stored(&entry.value, entry.flags, key),
        };
        let mut data = self.seal_checked(decoded, id)?;
        // Usually already right: then no copy of the id is made.
        if data.get(ID_FIELD).and_then(Value::as_str) != Some(id.as_str()) {
            data.insert(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
        }
        Ok(data)
    }

    /// What a load keeps of a stored value it owns: the seal opened, the
    /// bytes inflated, then scanned or decoded (see [`Loaded`]); the id is
    /// checked by [`Session::loaded`]. Seal failures as in `decode`.
    /// `memo` is the item's, if its store keeps them (see [`ItemMemo`]); it
    /// is used only for values read as stored (not sealed, not
    /// compressed), whose spans then describe exactly the bytes at hand.
    pub(super) fn read_loaded(
        &self,
        value: Vec<u8>,
        flags: u32,
        key: &str,
        id: &SessionId,
        memo: Option<&ItemMemo>,
    ) -> Result<Loaded> {
        let as_stored = self.config.seal.is_none() && !is_compressed(flags);
        let plain = match &self.config.seal {
            Some(seal) => seal.plain_stored(value, flags, key),
            None => Codec::plain_stored(value, flags, key),
        };
        let (codec, bytes) = self.seal_checked(plain, id)?;
        Loaded::read(codec, bytes, key, memo.filter(|_| as_stored))
    }

    /// Counts and logs, once, a value the seal refused.
    fn seal_checked<T>(&self, read: Result<T>, id: &SessionId) -> Result<T> {
        if let Err(Error::Seal {
            key_id, problem, ..
        }) = &read
        {
            self.count_seal_failure(*problem);
            tracing::warn!(%id, key_id = ?key_id, %problem, "session value refused by the seal");
        }
        read
    }

    /// Rewrites the session stored under `key` (a store key, as a scan
    /// lists them) sealed under the current key, conditionally on the
    /// version read: a concurrent write is read again, never overwritten.
    /// Keeps the remaining lifetime when the store reports it; otherwise
    /// (memcached's classic protocol) writes the configured `timeout`.
    ///
    /// [`Error::InvalidConfig`] without a seal configured;
    /// [`Error::Conflict`] after `max_save_attempts` lost races.
    pub async fn reseal(&self, key: &str) -> Result<ResealOutcome> {
        let Some(seal) = &self.config.seal else {
            return Err(Error::InvalidConfig(
                "reseal needs seal keys (no seal is configured)".into(),
            ));
        };
        let Some(id) = key
            .strip_prefix(self.config.key_prefix.as_str())
            .and_then(|rest| SessionId::parse(rest).ok())
        else {
            return Ok(ResealOutcome::NotASession);
        };
        let _turn = self.gate.turn(key).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(entry) = self.servers.get(key).await? else {
                return Ok(ResealOutcome::Gone);
            };
            if is_raw(entry.flags) {
                return Ok(ResealOutcome::NotASession);
            }
            if seal.is_current(&entry.value, entry.flags) {
                return Ok(ResealOutcome::Current);
            }
            // The plaintext: opened, or (accepted) plain bytes inflated.
            let opened = match seal.decode_stored(&entry.value, entry.flags, key) {
                Ok(_) if is_sealed(entry.flags) => seal.open(&entry.value, entry.flags, key),
                Ok(_) => unpack(&entry.value, entry.flags).map(|b| b.into_owned()),
                Err(e) => Err(e),
            };
            let plain = match opened {
                Ok(plain) => plain,
                Err(Error::Seal {
                    key_id, problem, ..
                }) => {
                    self.count_seal_failure(problem);
                    tracing::warn!(%id, key_id = ?key_id, %problem, "reseal: value refused by the seal");
                    return Ok(ResealOutcome::Refused(problem));
                }
                Err(_) => return Ok(ResealOutcome::NotASession),
            };
            // Sealed values are never compressed: the plaintext is inflated.
            let flags = (entry.flags & !FLAGS_PERL_COMPRESSED) | FLAGS_SEALED;
            // The same codec, so that the format bits keep naming it.
            Codec::from_flags(flags, key)?;
            let bytes = seal.seal_owned(plain, flags, key)?;
            let ttl = entry.ttl.unwrap_or(self.config.timeout);
            match self
                .servers
                .cas(key, &bytes, flags, ttl, entry.version)
                .await?
            {
                CasOutcome::Stored(_) => {
                    Counters::bump(&self.counters.resealed);
                    return Ok(ResealOutcome::Resealed);
                }
                CasOutcome::NotFound => return Ok(ResealOutcome::Gone),
                CasOutcome::Conflict if attempts >= self.config.max_save_attempts => {
                    return Err(Error::Conflict {
                        key: key.to_owned(),
                        attempts,
                    });
                }
                CasOutcome::Conflict => {
                    tracing::debug!(%id, attempts, "reseal: concurrent write, reading again");
                }
            }
        }
    }

    /// Counts a value refused by the seal, by its problem.
    pub(super) fn count_seal_failure(&self, problem: SealProblem) {
        let c = &self.counters;
        Counters::bump(match problem {
            SealProblem::Truncated => &c.seal_truncated,
            SealProblem::UnknownKey | SealProblem::NoKeys => &c.seal_unknown_key,
            SealProblem::Unsealed => &c.seal_unsealed,
            SealProblem::Tampered | SealProblem::UnknownVersion(_) => &c.seal_tampered,
        });
    }
}

//! The legacy reverse key `md5_hex(user) -> id` as the original writes it:
//! the `<principal>_MD5` stamp, writing the key after each save, removing it
//! only while it still names the session, and the lookup through it.

use serde_json::Value;

use super::Sessions;
use crate::codec::FLAGS_RAW;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::principal::{md5_hex_bytes, principal_str, principal_string};
use crate::session::{Fields, Session, SessionData};
use crate::store::CasOutcome;

/// What a save does with the session's reverse key; see
/// [`Sessions::reverse_write`].
pub(super) enum ReverseWrite {
    /// Send this key's `set` together with the `cas`.
    Beside(String),
    /// Leave it: this process wrote it lately, and the save keeps the user.
    Fresh,
    /// Write it after the `cas` succeeds (if the session has one).
    After,
}

impl Sessions {
    /// The live session of a user, through the reverse key `md5_hex(value)`.
    ///
    /// `Ok(None)` when there is no reverse key, when the session it names is
    /// gone, or when that session no longer has `principal == value` (the
    /// index keeps one id per user: the last one saved).
    /// [`Error::InvalidConfig`] when no `principal` field is configured.
    pub async fn find_by_principal(&self, value: &str) -> Result<Option<Session>> {
        let Some(field) = &self.config.principal else {
            return Err(Error::InvalidConfig(
                "find_by_principal needs the `principal` field configured".into(),
            ));
        };
        let Some(id) = self.reverse_key_target(value).await? else {
            return Ok(None);
        };
        let Some(session) = self.load_owned(id).await? else {
            return Ok(None);
        };
        let owner = session.get_value(field).and_then(principal_string);
        Ok((owner.as_deref() == Some(value)).then_some(session))
    }

    /// Sets `<principal>_MD5` from the principal field (or removes it when
    /// the field is gone), as the original's update does before writing.
    pub(super) fn stamp_principal(&self, data: &mut SessionData) {
        if let Some((field, digest)) = self.principal_stamp(data) {
            match digest.as_ref().and_then(|d| std::str::from_utf8(d).ok()) {
                Some(d) => data.insert(field.to_owned(), Value::String(d.to_owned())),
                None => data.remove(field),
            };
        }
    }

    /// [`Sessions::stamp_principal`] on a handle, changing (and so copying)
    /// its data only when the stamp is not already right. Every save runs
    /// it, so the usual case (the stamp is right) allocates nothing.
    pub(super) fn stamp_session(&self, session: &mut Session) {
        let Some((field, digest)) = self.principal_stamp(session) else {
            return;
        };
        let digest = digest.as_ref().and_then(|d| std::str::from_utf8(d).ok());
        // Usually the stamp is as stored and right: seen on its bytes,
        // without decoding it.
        let right = digest.is_some_and(|want| session.holds_str(field, want))
            || match (session.get_value(field), digest) {
                (None, None) => true,
                (Some(Value::String(have)), Some(want)) => have == want,
                _ => false,
            };
        if !right {
            match digest {
                Some(d) => session.set_field(field.to_owned(), Value::String(d.to_owned())),
                None => session.remove_field(field),
            };
        }
    }

    /// The stamp field and the digest it should hold, as hex digits
    /// (`None`: absent), when a principal is configured.
    fn principal_stamp(&self, data: &impl Fields) -> Option<(&str, Option<[u8; 32]>)> {
        let field = self.config.principal.as_ref()?;
        let stamp = self.stamp_field.as_deref()?;
        let digest = data
            .field(field)
            .and_then(principal_str)
            .map(|p| md5_hex_bytes(p.as_bytes()));
        Some((stamp, digest))
    }

    /// The reverse key named by a session's `<principal>_MD5` field (or,
    /// when the reverse key is keyed by HMAC, computed from the principal).
    pub(super) fn reverse_key_of(&self, data: &impl Fields) -> Option<String> {
        let field = self.config.principal.as_ref()?;
        if self.hmac_reverse_key() {
            let user = data.field(field).and_then(principal_str)?;
            return Some(self.reverse_key_for(&user));
        }
        let digest = data.field(self.stamp_field.as_deref()?)?.as_str()?;
        let is_md5 = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        is_md5.then(|| {
            let prefix = &self.config.key_prefix;
            let mut key = String::with_capacity(prefix.len() + digest.len());
            key.push_str(prefix);
            key.push_str(digest);
            key
        })
    }

    /// Writes the reverse key of a just-written session under `key`; on
    /// failure it stays pending for the next save.
    pub(super) async fn write_reverse_key(&self, session: &mut Session, key: &str) -> Result<()> {
        if let Some(reverse) = self.reverse_key_of(session) {
            session.reverse_key_pending = true;
            let ttl = self.recent_reverse.ttl(self.ttl_of(session));
            let _ = self
                .servers
                .set(&reverse, session.id.as_str().as_bytes(), FLAGS_RAW, ttl)
                .await?;
            self.recent_reverse.wrote(key, &reverse);
        }
        session.reverse_key_pending = false;
        Ok(())
    }

    /// What a save of `session` (under `key`) does with its reverse key.
    ///
    /// When the save keeps the session's user (its principal and stamp
    /// fields are as stored), the key it would write is the one the
    /// session's last save wrote: [`ReverseWrite::Beside`] sends it
    /// together with the `cas` instead of after it, since whatever the
    /// `cas` answers, the key names a session of that user (a conflict
    /// leaves the session there, and its merged retry writes the key
    /// again); and [`ReverseWrite::Fresh`] skips it when this process
    /// wrote it within `reverse_key_refresh` (`renewal.rs`).
    /// [`ReverseWrite::After`] when the save moves the session to another
    /// user, or to none: the key is written after the `cas` succeeds, never
    /// before (a refused save must not move a user's key).
    pub(super) fn reverse_write(&self, session: &Session, key: &str) -> ReverseWrite {
        let (Some(principal), Some(stamp)) = (
            self.config.principal.as_deref(),
            self.stamp_field.as_deref(),
        ) else {
            return ReverseWrite::After;
        };
        // A field never touched since the load is as stored, no compare needed.
        let kept = |field: &str| {
            !session.is_touched(field) || session.stored_field(field) == session.get_value(field)
        };
        if !(kept(principal) && kept(stamp)) {
            return ReverseWrite::After;
        }
        match self.reverse_key_of(session) {
            Some(reverse)
                if !session.reverse_key_pending && self.recent_reverse.is_fresh(key, &reverse) =>
            {
                ReverseWrite::Fresh
            }
            Some(reverse) => ReverseWrite::Beside(reverse),
            None => ReverseWrite::After,
        }
    }

    /// The `cas` of a save and the `set` of its reverse key `reverse`,
    /// sent together (one round trip where both reach one server, two
    /// servers at once otherwise). Returns both answers; the caller reads
    /// the `cas` first.
    pub(super) async fn cas_beside(
        &self,
        session: &Session,
        key: &str,
        bytes: &[u8],
        version: crate::store::Version,
        memo: Option<crate::store::ItemMemo>,
        reverse: &str,
    ) -> (Result<CasOutcome>, Result<()>) {
        let ttl = self.ttl_of(session);
        let (cas, set) = tokio::join!(
            self.cas_session(key, bytes, ttl, version, memo),
            self.servers.set(
                reverse,
                session.id.as_str().as_bytes(),
                FLAGS_RAW,
                self.recent_reverse.ttl(ttl)
            ),
        );
        (cas, set.map(|_| ()))
    }

    /// After a `cas` sent with its reverse key found the session gone (a
    /// logout won the race): removes the key again if it still names this
    /// session, as the logout's own delete would have. A failure is only
    /// logged: the save's answer is the session's, `SessionGone`.
    pub(super) async fn unwrite_reverse_key(&self, reverse: &str, id: &SessionId) {
        if let Err(e) = self.delete_reverse_key_at(reverse, id).await {
            tracing::warn!(%id, error = %e, "reverse key of a vanished session not removed");
        }
    }

    /// Deletes the reverse key if it still names this session (another
    /// session of the same user may own it by now), with the conditional
    /// delete of [`Sessions::delete_reverse_key_at`].
    pub(super) async fn delete_reverse_key(&self, session: &Session) -> Result<()> {
        let Some(reverse) = self
            .reverse_key_of(&session.stored())
            .or_else(|| self.reverse_key_of(session))
        else {
            return Ok(());
        };
        self.delete_reverse_key_at(&reverse, &session.id).await
    }
}

//! The legacy reverse key `md5_hex(user) -> id` as the original writes it:
//! the `<principal>_MD5` stamp, writing the key after each save, removing it
//! only while it still names the session, and the lookup through it.

use serde_json::Value;

use super::Sessions;
use crate::codec::FLAGS_RAW;
use crate::error::{Error, Result};
use crate::principal::{digest_field, md5_hex, principal_string};
use crate::session::{Fields, Session, SessionData};

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
        let Some(session) = self.load_id(&id).await? else {
            return Ok(None);
        };
        let owner = session.get_value(field).and_then(principal_string);
        Ok((owner.as_deref() == Some(value)).then_some(session))
    }

    /// Sets `<principal>_MD5` from the principal field (or removes it when
    /// the field is gone), as the original's update does before writing.
    pub(super) fn stamp_principal(&self, data: &mut SessionData) {
        if let Some((field, digest)) = self.principal_stamp(data) {
            match digest {
                Some(d) => data.insert(field, d),
                None => data.remove(&field),
            };
        }
    }

    /// [`Sessions::stamp_principal`] on a handle, changing (and so copying)
    /// its data only when the stamp is not already right.
    pub(super) fn stamp_session(&self, session: &mut Session) {
        if let Some((field, digest)) = self.principal_stamp(session.data())
            && session.data().get(&field) != digest.as_ref()
        {
            match digest {
                Some(d) => session.set_field(field, d),
                None => session.remove_field(&field),
            };
        }
    }

    /// The stamp field and the value it should hold (`None`: absent), when
    /// a principal is configured.
    fn principal_stamp(&self, data: &SessionData) -> Option<(String, Option<Value>)> {
        let field = self.config.principal.as_ref()?;
        let digest = data
            .get(field)
            .and_then(principal_string)
            .map(|p| Value::String(md5_hex(p.as_bytes())));
        Some((digest_field(field), digest))
    }

    /// The reverse key named by a session's `<principal>_MD5` field (or,
    /// when the reverse key is keyed by HMAC, computed from the principal).
    pub(super) fn reverse_key_of(&self, data: &impl Fields) -> Option<String> {
        let field = self.config.principal.as_ref()?;
        if self.hmac_reverse_key() {
            let user = data.field(field).and_then(principal_string)?;
            return Some(self.reverse_key_for(&user));
        }
        let digest = data.field(&digest_field(field))?.as_str()?;
        let is_md5 = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        is_md5.then(|| format!("{}{}", self.config.key_prefix, digest))
    }

    /// Writes the reverse key of a just-written session; on failure it stays
    /// pending for the next save.
    pub(super) async fn write_reverse_key(&self, session: &mut Session) -> Result<()> {
        if let Some(reverse) = self.reverse_key_of(session.data()) {
            session.reverse_key_pending = true;
            let _ = self
                .servers
                .set(
                    &reverse,
                    session.id.as_str().as_bytes(),
                    FLAGS_RAW,
                    self.ttl_of(session),
                )
                .await?;
        }
        session.reverse_key_pending = false;
        Ok(())
    }

    /// Deletes the reverse key if it still names this session (another
    /// session of the same user may own it by now), with the conditional
    /// delete of [`Sessions::delete_reverse_key_at`].
    pub(super) async fn delete_reverse_key(&self, session: &Session) -> Result<()> {
        let Some(reverse) = self
            .reverse_key_of(&session.stored())
            .or_else(|| self.reverse_key_of(session.data()))
        else {
            return Ok(());
        };
        self.delete_reverse_key_at(&reverse, &session.id).await
    }
}

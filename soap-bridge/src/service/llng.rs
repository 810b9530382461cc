//! The operations LemonLDAP::NG's session protocols need beyond the
//! shared ones (`surfaces/llng_soap.rs`, `surfaces/llng_rest.rs`):
//! creation that answers the new session's fields, creation under an id
//! the client chose (only once the surface has checked LL::NG's shared
//! secret), and listing every session that passes a filter, for `all=1`.
//!
//! Like the rest of the service it knows no protocol: the surfaces give
//! the filters (kinds, `search=field,value`).

use session_core::{SessionData, SessionId};

use super::{ID_FIELD, OpError, Service, from_core};

/// How many store keys a listing looks at, at most: a listing reads every
/// session, so it is bounded like the explorer's count.
pub const MAX_LISTED_KEYS: usize = 1_000_000;
/// Keys per scan page.
const PAGE: usize = 500;

impl Service {
    /// A new session holding `fields` (nulls skipped, `_session_id`
    /// ignored) under a fresh id; returns its fields, id included.
    pub async fn create_returning(&self, mut fields: SessionData) -> Result<SessionData, OpError> {
        fields.remove(ID_FIELD);
        fields.retain(|_, v| !v.is_null());
        let session = self
            .sessions
            .create_with(fields, None)
            .await
            .map_err(from_core)?;
        Ok(session.data().clone())
    }

    /// A new session under `id`, the id the client chose; `Ok(None)` when
    /// a session with that id exists (nothing written). The caller must
    /// have established that this client may choose ids.
    pub async fn create_at(
        &self,
        id: &str,
        mut fields: SessionData,
    ) -> Result<Option<SessionData>, OpError> {
        let id = SessionId::parse(id).map_err(from_core)?;
        fields.remove(ID_FIELD);
        fields.retain(|_, v| !v.is_null());
        let session = self
            .sessions
            .create_at(&id, fields, None)
            .await
            .map_err(from_core)?;
        Ok(session.map(|s| s.data().clone()))
    }

    /// Every live session whose data passes `keep`, as (id, fields), in id
    /// order. With `user` and the per-user index configured, only that
    /// user's sessions are read (no scan); otherwise the store is scanned,
    /// [`MAX_LISTED_KEYS`] keys at most ([`OpError::BadRequest`] beyond,
    /// [`OpError::NotConfigured`] when the store cannot scan).
    pub async fn select(
        &self,
        user: Option<&str>,
        keep: impl Fn(&SessionData) -> bool,
    ) -> Result<Vec<(String, SessionData)>, OpError> {
        if let Some(user) = user.filter(|_| self.has_user_index()) {
            let (views, _) = self.sessions_of(user).await?;
            let mut found: Vec<(String, SessionData)> = views
                .into_iter()
                .filter(|v| keep(&v.data))
                .map(|v| (v.id, v.data))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(found);
        }
        if !self.can_scan() {
            return Err(OpError::NotConfigured(
                "listing sessions needs a store that can scan (memory, memcached, Redis)".into(),
            ));
        }
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = 0usize;
        loop {
            let page = self.scan_page(cursor.as_deref(), PAGE).await?;
            seen += page.keys;
            found.extend(
                page.sessions
                    .into_iter()
                    .filter(|v| keep(&v.data))
                    .map(|v| (v.id, v.data)),
            );
            match page.next {
                None => break,
                Some(_) if seen >= MAX_LISTED_KEYS => {
                    return Err(OpError::BadRequest(format!(
                        "more than {MAX_LISTED_KEYS} keys in the store: too many to list"
                    )));
                }
                next => cursor = next,
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

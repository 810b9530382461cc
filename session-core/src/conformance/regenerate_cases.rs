//! Checks of id rotation under a concurrent writer: a write that reaches
//! the old id while [`Sessions::regenerate`] copies it is carried over to
//! the new id, never lost with the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::json;

use super::{CaseResult, Context, MakeStore, check};
use crate::codec::Codec;
use crate::config::SessionsConfig;
use crate::error::Result;
use crate::sessions::Sessions;
use crate::store::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, ScanCursor, ScanPage, Store, Ttl,
    Version,
};

/// A real store with one interleaving forced: the first time the session
/// key `target` is deleted (conditionally or not), another request's save
/// lands on it just before (`"late": true`, written with `cas` as a save
/// would). Everything else goes straight through.
#[derive(Debug)]
struct WriteBeforeDelete {
    inner: Arc<dyn Store>,
    target: String,
    armed: AtomicBool,
}

impl WriteBeforeDelete {
    async fn late_write(&self, key: &str) -> Result<()> {
        if key != self.target || !self.armed.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(entry) = self.inner.get(key).await? {
            let mut data = Codec::decode_stored(&entry.value, entry.flags, key)?;
            data.insert("late".into(), json!(true));
            let bytes = Codec::Json.encode(&data)?;
            let _ = self
                .inner
                .cas(key, &bytes, Codec::Json.flags(), Ttl::NEVER, entry.version)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for WriteBeforeDelete {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.inner.get(key).await
    }
    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        self.inner.add(key, value, flags, ttl).await
    }
    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        self.inner.set(key, value, flags, ttl).await
    }
    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        self.inner.cas(key, value, flags, ttl, expected).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.late_write(key).await?;
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool> {
        self.inner.touch(key, ttl).await
    }
    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn version(&self, key: &str) -> Result<Option<Version>> {
        self.inner.version(key).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        self.inner.scan(prefix, cursor, limit).await
    }
    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        self.late_write(key).await?;
        self.inner.delete_if(key, expected).await
    }
    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        self.inner.get_and_touch(key, ttl).await
    }
}

/// A save that lands on the old id while `regenerate` retires it ends up
/// under the new id (where the store can delete conditionally; elsewhere
/// the old id is still retired and the data copied).
pub(super) async fn regenerate_carries_over_a_late_write(make: MakeStore) -> CaseResult {
    let inner = make().await;
    let plain = Sessions::new(inner.clone(), SessionsConfig::default()).ctx("Sessions::new")?;
    let mut session = plain.create().await.ctx("create")?;
    session.insert("cart", 3).ctx("insert")?;
    let _ = plain.save(&mut session).await.ctx("save")?;
    let old = session.id().clone();
    let store: Arc<dyn Store> = Arc::new(WriteBeforeDelete {
        inner: inner.clone(),
        target: old.as_str().to_owned(),
        armed: AtomicBool::new(true),
    });
    let s = Sessions::new(store, SessionsConfig::default()).ctx("Sessions::new")?;
    s.regenerate(&mut session).await.ctx("regenerate")?;
    check!(
        inner.get(old.as_str()).await.ctx("get old")?.is_none(),
        "the old id survived regenerate"
    );
    let now = plain
        .load_id(session.id())
        .await
        .ctx("load new")?
        .ok_or("the new id does not load")?;
    check!(
        now.get_value("cart") == Some(&json!(3)),
        "regenerate lost the data: {:?}",
        now.data()
    );
    if inner.capabilities().conditional_delete {
        check!(
            now.get_value("late") == Some(&json!(true))
                && session.get_value("late") == Some(&json!(true)),
            "a write to the old id during regenerate was lost: {:?}",
            now.data()
        );
    }
    Ok(())
}

//! [`Namespaced`]: a store wrapper that puts every key under a prefix.
//!
//! Several applications (or test runs) can share one memcached this way
//! without seeing each other's keys. The 250-byte key limit applies to the
//! prefixed key, since that is what the server sees.

use async_trait::async_trait;

use crate::error::Result;
use crate::key::validate_key;
use crate::store::{
    AddOutcome, CasOutcome, DeleteOutcome, Entry, ScanCursor, ScanPage, Store, Ttl, Version,
};
use crate::wrapper::StoreWrapper;

/// A [`Store`] that prefixes every key with a fixed namespace.
#[derive(Debug, Clone)]
pub struct Namespaced<S> {
    prefix: String,
    inner: S,
}

impl<S: Store> Namespaced<S> {
    /// Wraps `inner`; the prefix itself must be a valid key (non-empty, no
    /// whitespace or control characters).
    pub fn new(prefix: impl Into<String>, inner: S) -> Result<Self> {
        let prefix = prefix.into();
        validate_key(&prefix)?;
        Ok(Namespaced { prefix, inner })
    }

    /// The namespace prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn full(&self, key: &str) -> Result<String> {
        // Validate the caller's key alone first, so an empty key or one with
        // a space is reported as such rather than as part of the prefixed key.
        validate_key(key)?;
        let full = format!("{}{}", self.prefix, key);
        validate_key(&full)?;
        Ok(full)
    }
}

/// Every method that takes a key prefixes it; the size limit and the
/// capabilities are the wrapped store's.
#[async_trait]
impl<S: Store> StoreWrapper for Namespaced<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.inner.get(&self.full(key)?).await
    }
    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        self.inner.add(&self.full(key)?, value, flags, ttl).await
    }
    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        self.inner.set(&self.full(key)?, value, flags, ttl).await
    }
    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        self.inner
            .cas(&self.full(key)?, value, flags, ttl, expected)
            .await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(&self.full(key)?).await
    }
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool> {
        self.inner.touch(&self.full(key)?, ttl).await
    }
    async fn version(&self, key: &str) -> Result<Option<Version>> {
        self.inner.version(&self.full(key)?).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        let full = keys
            .iter()
            .map(|k| self.full(k))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        self.inner.get_many(&refs).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let page = self
            .inner
            .scan(&format!("{}{}", self.prefix, prefix), cursor, limit)
            .await?;
        Ok(ScanPage {
            keys: page
                .keys
                .into_iter()
                .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
                .collect(),
            next: page.next,
        })
    }
    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        self.inner.delete_if(&self.full(key)?, expected).await
    }
    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        self.inner.get_and_touch(&self.full(key)?, ttl).await
    }
}

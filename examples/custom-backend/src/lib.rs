//! An example of a custom backend: [`SlowStore`], any [`Store`] behind an
//! artificial network delay, the way a store in another data centre behaves.
//!
//! It shows the two things a custom backend crate needs:
//! 1. `impl Store`: here through `session_core::wrapper::StoreWrapper`,
//!    the way to write a store around another store. The wrapper names the
//!    store it wraps and writes only the methods it changes (each call
//!    that reaches the network waits first); the rest, such as
//!    `max_value_size` and `capabilities`, are forwarded unchanged. A
//!    backend that talks to a server of its own implements
//!    `session_core::Store` directly instead, like `backend-memcached`.
//! 2. a `tests/conformance.rs` that runs `session_core::conformance_tests!`
//!    against it — see this crate's, which runs the kit against a
//!    `SlowStore` over `MemoryStore` and over the memcached servers that
//!    `cargo xtask test` starts (containers or local processes):
//!    `cargo xtask test --backend memorycached-custom-backend`.
//!
//! It is a package of its own, not part of `memorycached-examples`, because
//! its tests need the test harness (`test-support`, and through it
//! testcontainers): as a dev-dependency of the examples package it would be
//! built before the first runnable example, minutes on a small machine.

use std::time::Duration;

use async_trait::async_trait;
use session_core::Result;
use session_core::store::{
    AddOutcome, CasOutcome, DeleteOutcome, Entry, ScanCursor, ScanPage, Store, Ttl, Version,
};
use session_core::wrapper::StoreWrapper;

/// A [`Store`] that waits `delay` before every call to the store it wraps.
#[derive(Debug, Clone)]
pub struct SlowStore<S> {
    inner: S,
    delay: Duration,
}

impl<S: Store> SlowStore<S> {
    /// Wraps `inner`, delaying every call by `delay`.
    pub fn new(inner: S, delay: Duration) -> Self {
        SlowStore { inner, delay }
    }

    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }
}

/// Every call that goes to the wrapped store waits first; the two answers
/// it gives without I/O (the size limit, the capabilities) are forwarded
/// by `StoreWrapper`'s defaults.
#[async_trait]
impl<S: Store> StoreWrapper for SlowStore<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.wait().await;
        self.inner.get(key).await
    }
    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        self.wait().await;
        self.inner.add(key, value, flags, ttl).await
    }
    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        self.wait().await;
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
        self.wait().await;
        self.inner.cas(key, value, flags, ttl, expected).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.wait().await;
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool> {
        self.wait().await;
        self.inner.touch(key, ttl).await
    }
    async fn version(&self, key: &str) -> Result<Option<Version>> {
        self.wait().await;
        self.inner.version(key).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        self.wait().await;
        self.inner.get_many(keys).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        self.wait().await;
        self.inner.scan(prefix, cursor, limit).await
    }
    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        self.wait().await;
        self.inner.delete_if(key, expected).await
    }
    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        self.wait().await;
        self.inner.get_and_touch(key, ttl).await
    }
}

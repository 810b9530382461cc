//! [`BeforeDelete`] and [`BeforeCas`]: a real store with one interleaving
//! forced, for the checks of races that a test cannot otherwise hit on
//! purpose.
//!
//! The first time one chosen key is deleted (plain or conditional), an
//! action runs against the inner store just before the delete goes through:
//! what another host's request would do at that very instant. Every other
//! call is passed straight through, so the store under test is still the
//! real one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use serde_json::json;

use crate::error::Result;
use crate::sessions::{Patch, Sessions};
use crate::store::{CasOutcome, DeleteOutcome, Store, Ttl, Version};
use crate::wrapper::StoreWrapper;

/// The action run before the delete: given the inner store and the key.
type Action = Box<
    dyn Fn(Arc<dyn Store>, String) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>
        + Send
        + Sync,
>;

/// See the module docs.
pub(super) struct BeforeDelete {
    inner: Arc<dyn Store>,
    key: String,
    armed: AtomicBool,
    action: Action,
}

impl fmt::Debug for BeforeDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeforeDelete")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl BeforeDelete {
    /// Wraps `inner`; `action` runs once, before the first delete of `key`.
    pub(super) fn new<F, Fut>(inner: Arc<dyn Store>, key: impl Into<String>, action: F) -> Self
    where
        F: Fn(Arc<dyn Store>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        BeforeDelete {
            inner,
            key: key.into(),
            armed: AtomicBool::new(true),
            action: Box::new(move |store, key| Box::pin(action(store, key))),
        }
    }

    async fn fire(&self, key: &str) -> Result<()> {
        if key == self.key && self.armed.swap(false, Ordering::SeqCst) {
            (self.action)(self.inner.clone(), key.to_owned()).await?;
        }
        Ok(())
    }
}

/// Only the two deletes change: each runs the action first.
#[async_trait]
impl StoreWrapper for BeforeDelete {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.fire(key).await?;
        self.inner().delete(key).await
    }

    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        self.fire(key).await?;
        self.inner().delete_if(key, expected).await
    }
}

/// Before the first `cas` of one key, another writer saves it.
pub(super) struct BeforeCas {
    inner: Arc<dyn Store>,
    key: String,
    armed: AtomicBool,
    writer: Sessions,
}

impl BeforeCas {
    /// Wraps `inner`; before the first `cas` of `key` (a bare session id),
    /// `writer` patches `"late": true` into that session.
    pub(super) fn new(inner: Arc<dyn Store>, key: String, writer: Sessions) -> Self {
        BeforeCas {
            inner,
            key,
            armed: AtomicBool::new(true),
            writer,
        }
    }
}

impl fmt::Debug for BeforeCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeforeCas")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl StoreWrapper for BeforeCas {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        if key == self.key && self.armed.swap(false, Ordering::SeqCst) {
            // The other writer's save (keys here carry no prefix: the id).
            let patch = Patch {
                set: serde_json::Map::from_iter([("late".to_owned(), json!(true))]),
                remove: Vec::new(),
            };
            self.writer.patch(key, &patch, None).await?;
        }
        self.inner().cas(key, value, flags, ttl, expected).await
    }
}

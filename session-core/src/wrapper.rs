//! [`StoreWrapper`]: a [`Store`] around another store that writes only the
//! methods it changes; every other one is forwarded to the wrapped store,
//! except [`Store::get_with_memo`] and [`Store::keeps_memos`], which a
//! wrapper answers itself (its own `get`, no memo) unless it overrides them:
//! a wrapper may change keys or values, and a memo belongs to one value.
//!
//! A wrapper (a key prefix, a delay, a fault at one moment, a metric) used
//! to restate all thirteen methods of [`Store`] to change one or two, and a
//! method added to the contract had to be added to every wrapper by hand.
//! Implement [`StoreWrapper`] instead: name the wrapped store in
//! [`StoreWrapper::inner`], and override, with `async fn` in an
//! `#[async_trait]` impl as for [`Store`], only what the wrapper changes.
//! Every type that implements [`StoreWrapper`] implements [`Store`], so it
//! goes wherever a store goes (`Arc<dyn Store>`, [`crate::Sessions`], the
//! conformance kit):
//!
//! ```
//! mod count {
//!     use std::sync::atomic::{AtomicU64, Ordering};
//!     use async_trait::async_trait;
//!     use session_core::store::{AddOutcome, Store, Ttl};
//!     use session_core::wrapper::StoreWrapper;
//!     use session_core::{MemoryStore, Result};
//!
//!     /// Counts the `add`s that go through; everything else is forwarded.
//!     #[derive(Debug, Default)]
//!     pub struct CountAdds { inner: MemoryStore, adds: AtomicU64 }
//!
//!     impl CountAdds {
//!         pub fn adds(&self) -> u64 { self.adds.load(Ordering::Relaxed) }
//!     }
//!
//!     #[async_trait]
//!     impl StoreWrapper for CountAdds {
//!         type Inner = MemoryStore;
//!         fn inner(&self) -> &MemoryStore { &self.inner }
//!         async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
//!             self.adds.fetch_add(1, Ordering::Relaxed);
//!             self.inner.add(key, value, flags, ttl).await
//!         }
//!     }
//! }
//!
//! # async fn demo() -> session_core::Result<()> {
//! use session_core::{Store, Ttl};
//! let store = count::CountAdds::default();
//! store.add("k", b"v", 0, Ttl::NEVER).await?;
//! assert_eq!(store.get("k").await?.map(|e| e.value), Some(b"v".to_vec()));
//! assert_eq!(store.adds(), 1);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Two things to know:
//!
//! - A wrapper type implements both traits, which name their methods
//!   alike, so a module that imports both cannot call `wrapper.get(..)`
//!   on a concrete wrapper type (the call is ambiguous). Call the wrapped
//!   store through its own type or [`StoreWrapper::inner`], and import only
//!   [`Store`] where wrappers are used. (This is also why the trait is not
//!   re-exported at the crate root: a glob import of the crate stays
//!   unambiguous.)
//! - The methods are written out in the form `async_trait` gives an
//!   `async fn` (boxed futures with named lifetimes), so that an override
//!   written as `async fn` matches it, while a method that is not
//!   overridden returns the wrapped store's own future: forwarding costs no
//!   allocation of its own.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
use crate::store::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, ItemMemo, ScanCursor, ScanPage,
    Store, Ttl, Version,
};

/// The future a [`Store`] method returns, as `async_trait` writes it.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A [`Store`] that forwards every call to [`StoreWrapper::inner`] unless
/// it overrides the method; see the [module docs](self).
///
/// Each method means exactly what the [`Store`] method of the same name
/// means, and its default calls that method on the wrapped store.
pub trait StoreWrapper: Debug + Send + Sync + 'static {
    /// The wrapped store's type (`dyn Store` for an `Arc<dyn Store>`).
    type Inner: Store + ?Sized;

    /// The store that every method not overridden is forwarded to.
    fn inner(&self) -> &Self::Inner;

    /// [`Store::get`].
    fn get<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<Entry>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().get(key)
    }

    /// [`Store::get_with_memo`]. Not forwarded by default: this wrapper's
    /// own `get` answers, with no memo, since a wrapper may change keys or
    /// values and the inner store's memo belongs to the inner item. A
    /// wrapper that changes neither may forward it.
    fn get_with_memo<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<(Entry, Option<ItemMemo>)>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let get = StoreWrapper::get(self, key);
        Box::pin(async move { Ok(get.await?.map(|entry| (entry, None))) })
    }

    /// [`Store::keeps_memos`]: false unless the wrapper forwards
    /// `get_with_memo` (see there).
    fn keeps_memos(&self) -> bool {
        false
    }

    /// [`Store::cas_with_memo`]: this wrapper's own `cas`, the memo
    /// dropped, unless the wrapper forwards `get_with_memo` (the same
    /// reason).
    fn cas_with_memo<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
        memo: ItemMemo,
    ) -> StoreFuture<'async_trait, CasOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        drop(memo);
        StoreWrapper::cas(self, key, value, flags, ttl, expected)
    }

    /// [`Store::add`].
    fn add<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, AddOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().add(key, value, flags, ttl)
    }

    /// [`Store::set`].
    fn set<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, Option<Version>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().set(key, value, flags, ttl)
    }

    /// [`Store::cas`].
    fn cas<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> StoreFuture<'async_trait, CasOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().cas(key, value, flags, ttl, expected)
    }

    /// [`Store::delete`].
    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().delete(key)
    }

    /// [`Store::touch`].
    fn touch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().touch(key, ttl)
    }

    /// [`Store::max_value_size`].
    fn max_value_size(&self) -> usize {
        self.inner().max_value_size()
    }

    /// [`Store::capabilities`].
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// [`Store::version`].
    fn version<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<Version>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().version(key)
    }

    /// [`Store::get_many`].
    fn get_many<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        keys: &'life1 [&'life2 str],
    ) -> StoreFuture<'async_trait, Vec<Option<Entry>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().get_many(keys)
    }

    /// [`Store::scan`].
    fn scan<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        prefix: &'life1 str,
        cursor: Option<&'life2 ScanCursor>,
        limit: usize,
    ) -> StoreFuture<'async_trait, ScanPage>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().scan(prefix, cursor, limit)
    }

    /// [`Store::delete_if`].
    fn delete_if<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        expected: Version,
    ) -> StoreFuture<'async_trait, DeleteOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().delete_if(key, expected)
    }

    /// [`Store::get_and_touch`].
    fn get_and_touch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, Option<Entry>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().get_and_touch(key, ttl)
    }
}

/// Every wrapper is a store: each method is the wrapper's (its override or
/// the forwarding default), handed back without another box.
impl<W: StoreWrapper> Store for W {
    fn get<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<Entry>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::get(self, key)
    }

    fn get_with_memo<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<(Entry, Option<ItemMemo>)>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::get_with_memo(self, key)
    }

    fn keeps_memos(&self) -> bool {
        StoreWrapper::keeps_memos(self)
    }

    fn cas_with_memo<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
        memo: ItemMemo,
    ) -> StoreFuture<'async_trait, CasOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::cas_with_memo(self, key, value, flags, ttl, expected, memo)
    }

    fn add<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, AddOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::add(self, key, value, flags, ttl)
    }

    fn set<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, Option<Version>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::set(self, key, value, flags, ttl)
    }

    fn cas<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> StoreFuture<'async_trait, CasOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::cas(self, key, value, flags, ttl, expected)
    }

    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::delete(self, key)
    }

    fn touch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::touch(self, key, ttl)
    }

    fn max_value_size(&self) -> usize {
        StoreWrapper::max_value_size(self)
    }

    fn capabilities(&self) -> Capabilities {
        StoreWrapper::capabilities(self)
    }

    fn version<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<Version>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::version(self, key)
    }

    fn get_many<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        keys: &'life1 [&'life2 str],
    ) -> StoreFuture<'async_trait, Vec<Option<Entry>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::get_many(self, keys)
    }

    fn scan<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        prefix: &'life1 str,
        cursor: Option<&'life2 ScanCursor>,
        limit: usize,
    ) -> StoreFuture<'async_trait, ScanPage>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::scan(self, prefix, cursor, limit)
    }

    fn delete_if<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        expected: Version,
    ) -> StoreFuture<'async_trait, DeleteOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::delete_if(self, key, expected)
    }

    fn get_and_touch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        ttl: Ttl,
    ) -> StoreFuture<'async_trait, Option<Entry>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        StoreWrapper::get_and_touch(self, key, ttl)
    }
}

/// A shared store is a store, so `Arc<MemcachedStore>` and `Arc<dyn Store>`
/// can be handed to anything that takes a `Store`: a wrapper that changes
/// nothing.
impl<S: Store + ?Sized> StoreWrapper for Arc<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        self
    }

    /// The same store, the same items: its memo is this one's.
    fn get_with_memo<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<(Entry, Option<ItemMemo>)>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().get_with_memo(key)
    }

    fn keeps_memos(&self) -> bool {
        self.inner().keeps_memos()
    }

    fn cas_with_memo<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: &'life2 [u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
        memo: ItemMemo,
    ) -> StoreFuture<'async_trait, CasOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner()
            .cas_with_memo(key, value, flags, ttl, expected, memo)
    }
}

//! The byte-level [`Store`] contract that every backend implements.
//!
//! The contract is deliberately small and close to memcached's own commands
//! (get / add / set / cas / delete / touch) so that every session rule lives
//! once, in [`crate::Sessions`], and a backend is a thin translation. Each
//! entry carries a [`Version`] (memcached's CAS unique, a counter in
//! [`crate::MemoryStore`]) so that saves can be optimistic instead of
//! last-writer-wins.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::key::validate_key;

/// An opaque version token: equal tokens mean "unchanged since read".
///
/// Tokens of different stores are not comparable with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// Wraps a backend's raw token (memcached's CAS unique, a counter, ...).
    pub const fn new(raw: u64) -> Self {
        Version(raw)
    }

    /// The backend's raw token.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A time to live in whole seconds, always relative to now; zero means the
/// item never expires.
///
/// memcached reads an exptime above 30 days as an absolute unix time; a
/// `Ttl` never means that, and backends translate it when they must.
///
/// **Resolution.** memcached's clock ticks in whole seconds and an item
/// expires when the clock passes its deadline, so on memcached an item
/// written with `Ttl::seconds(n)` lives between `n - 1` and `n` seconds.
/// [`crate::MemoryStore`] counts from the instant of the write (exactly `n`).
/// Choose session timeouts with that second of slack in mind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Ttl(u32);

impl Ttl {
    /// Never expires.
    pub const NEVER: Ttl = Ttl(0);

    /// Expires after `secs` seconds (`0` means never).
    pub const fn seconds(secs: u32) -> Self {
        Ttl(secs)
    }

    /// Expires after `d`, rounded up to whole seconds (so a sub-second
    /// duration does not become "never"); saturates at `u32::MAX` seconds.
    pub fn from_duration(d: Duration) -> Self {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        Ttl(u32::try_from(secs).unwrap_or(u32::MAX))
    }

    /// Whole seconds; `0` means never.
    pub const fn as_secs(self) -> u32 {
        self.0
    }

    /// True for [`Ttl::NEVER`].
    pub const fn is_never(self) -> bool {
        self.0 == 0
    }

    /// The duration, or `None` for "never expires".
    pub fn as_duration(self) -> Option<Duration> {
        (self.0 != 0).then(|| Duration::from_secs(u64::from(self.0)))
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes, exactly as written.
    pub value: Vec<u8>,
    /// The 32-bit client flags written with the value (memcached's flags;
    /// [`crate::Codec`] uses them to tag the encoding).
    pub flags: u32,
    /// The version of this item, for [`Store::cas`].
    pub version: Version,
    /// The time left before the item expires, when the store can tell
    /// (`Some(Ttl::NEVER)` for an item without expiry, `None` when unknown).
    pub ttl: Option<Ttl>,
}

/// What the session layer learnt from one stored item's bytes, kept beside
/// the item by an in-process store ([`crate::MemoryStore`]) so the next
/// read of the same item skips that work: today, where each top-level field
/// lies in the bytes (a load's scan, about half of its CPU on that store).
///
/// Opaque, and made only by this crate (its `MemoryStore` on a value's
/// second read, its session layer for a value it is writing, see
/// [`Store::cas_with_memo`]): one per stored value, handed out (cloned) with
/// reads of that value ([`Store::get_with_memo`]); a new value never keeps
/// an old memo. Other stores cannot make one and answer `None`.
///
/// A memo has a budget in bytes, which the store counts against its
/// memory: what is learnt is kept only if it fits (a scan takes 24 bytes
/// per field plus about 40, so a value of many tiny fields keeps none).
#[derive(Debug, Clone)]
pub struct ItemMemo(std::sync::Arc<MemoCell>);

#[derive(Debug)]
struct MemoCell {
    budget: usize,
    scan: std::sync::OnceLock<crate::scan::ScanMemo>,
}

impl ItemMemo {
    /// An empty memo that may keep up to `budget` bytes. Only this crate's
    /// `MemoryStore` makes memos: what a memo holds is trusted to describe
    /// the value it comes with.
    pub(crate) fn with_budget(budget: usize) -> Self {
        ItemMemo(std::sync::Arc::new(MemoCell {
            budget,
            scan: std::sync::OnceLock::new(),
        }))
    }

    /// A memo already holding `scan`, learnt of a value of `budget` bytes
    /// by whoever writes it (see [`Store::cas_with_memo`]); `None` when the
    /// scan does not fit the budget.
    pub(crate) fn of_scan(budget: usize, scan: crate::scan::ScanMemo) -> Option<Self> {
        let memo = ItemMemo::with_budget(budget);
        memo.set(scan);
        memo.get().is_some().then_some(memo)
    }

    /// The budget: what the memo may hold, and what a store charges for it.
    pub(crate) fn budget(&self) -> usize {
        self.0.budget
    }

    /// What was learnt of the item, if a read left it.
    pub(crate) fn get(&self) -> Option<&crate::scan::ScanMemo> {
        self.0.scan.get()
    }

    /// Leaves `memo` for the next read if it fits the budget (the first
    /// read's wins).
    pub(crate) fn set(&self, memo: crate::scan::ScanMemo) {
        if memo.size() <= self.0.budget {
            let _ = self.0.scan.set(memo);
        }
    }
}

/// The result of [`Store::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum AddOutcome {
    /// Written. Carries the new version when the store reports it cheaply
    /// (`None` means "written, version unknown": read it back if needed).
    Stored(Option<Version>),
    /// The key already exists; nothing was written.
    Exists,
}

impl AddOutcome {
    /// True for [`AddOutcome::Stored`].
    pub fn is_stored(self) -> bool {
        matches!(self, AddOutcome::Stored(_))
    }
}

/// The result of [`Store::cas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// Written. Carries the new version when the store reports it cheaply.
    Stored(Option<Version>),
    /// The item changed since the given version; nothing was written.
    Conflict,
    /// The item does not exist (deleted or expired); nothing was written.
    NotFound,
}

impl CasOutcome {
    /// True for [`CasOutcome::Stored`].
    pub fn is_stored(self) -> bool {
        matches!(self, CasOutcome::Stored(_))
    }
}

/// The result of [`Store::delete_if`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum DeleteOutcome {
    /// The item had the expected version and is gone.
    Deleted,
    /// The item changed since the given version; it was kept.
    Conflict,
    /// The item does not exist.
    NotFound,
}

/// Where a [`Store::scan`] resumes: opaque, handed back by the previous page.
///
/// Its text is the backend's own (a Redis `SCAN` cursor, a position in a
/// memcached key dump, the last key of a sorted map); callers only pass it
/// back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanCursor(String);

impl ScanCursor {
    /// Wraps a backend's resume token.
    pub fn new(token: impl Into<String>) -> Self {
        ScanCursor(token.into())
    }

    /// The backend's resume token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of keys from [`Store::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Live keys with the requested prefix, in no particular order. A page
    /// may hold fewer keys than the limit (even none) before the end.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<ScanCursor>,
}

/// The optional capabilities of a store, so callers can ask before calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Store::get_many`] is implemented.
    pub get_many: bool,
    /// [`Store::scan`] is implemented.
    pub scan: bool,
    /// [`Entry::ttl`] is filled in by [`Store::get`].
    pub ttl_read: bool,
    /// [`Store::delete_if`] is implemented.
    pub conditional_delete: bool,
    /// [`Store::get_and_touch`] is implemented (one atomic call).
    pub get_and_touch: bool,
}

impl Capabilities {
    /// No optional capability.
    pub const NONE: Capabilities = Capabilities {
        get_many: false,
        scan: false,
        ttl_read: false,
        conditional_delete: false,
        get_and_touch: false,
    };

    /// Every optional capability.
    pub const ALL: Capabilities = Capabilities {
        get_many: true,
        scan: true,
        ttl_read: true,
        conditional_delete: true,
        get_and_touch: true,
    };
}

/// A byte-level key/value store with versions and expiry.
///
/// Contract, checked by the conformance kit (`session_core::conformance`):
/// - Every method validates its key with [`crate::key::validate_key`] and every
///   write checks its value against [`Store::max_value_size`] *before any I/O*,
///   returning [`Error::InvalidKey`] / [`Error::ValueTooLarge`]; nothing is
///   half-written.
/// - An absent and an expired item are the same thing: `get` gives `Ok(None)`.
/// - **Versions.** Every successful write gives the item a version that key
///   has never had before — also across a delete and a new `add` of the same
///   key. [`Store::cas`] and [`Store::delete_if`] carry the version to
///   compare; the store applies them only while the item still has it.
///   memcached's CAS unique satisfies this natively (one counter per server).
///   A backend without native versions must not use a per-key counter (it
///   restarts at 1 after a delete, so a stale handle could match a new
///   item): use one store-wide counter that only grows, or 64 random bits per
///   write.
/// - `ttl` is relative; [`Ttl::NEVER`] means no expiry.
/// - Optional methods ([`Store::get_many`], [`Store::scan`],
///   [`Store::delete_if`], [`Store::get_and_touch`]) either work as
///   documented or return [`Error::Unsupported`], as [`Store::capabilities`]
///   says in advance.
///
/// The trait is object safe: [`crate::Sessions`] holds `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Debug + Send + Sync + 'static {
    /// Reads an item; `Ok(None)` when it is absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Writes only if the key is absent.
    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome>;

    /// Writes unconditionally; returns the new version when the store reports it.
    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>>;

    /// Writes only if the item still has version `expected` (the conditional
    /// write every save goes through).
    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome>;

    /// Removes an item; `Ok(true)` if it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Sets a new expiry without rewriting the value (the version may stay the
    /// same); `Ok(true)` if the item existed.
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool>;

    /// The largest value, in bytes, that a write accepts.
    fn max_value_size(&self) -> usize;

    /// Which optional methods this store implements.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// The current version of an item without its value (`None` if absent).
    ///
    /// The default reads the whole item, which is correct; backends that can
    /// ask for the version alone (memcached's `mg <key> c`) override it.
    async fn version(&self, key: &str) -> Result<Option<Version>> {
        Ok(self.get(key).await?.map(|e| e.version))
    }

    /// Reads several items in one round trip, in the order of `keys`.
    ///
    /// Optional: stores without it return [`Error::Unsupported`].
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        let _ = keys;
        Err(Error::Unsupported {
            capability: "get_many",
        })
    }

    /// Lists live keys that start with `prefix`, one page at a time: pass
    /// `None` first, then each page's [`ScanPage::next`] until it is `None`.
    /// `limit` bounds the keys of one page (a page may hold fewer).
    ///
    /// Keys written or deleted during a scan may or may not be listed; a key
    /// that stays live from the first page to the last is listed at least once.
    ///
    /// Optional: stores without it return [`Error::Unsupported`].
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let _ = (prefix, cursor, limit);
        Err(Error::Unsupported { capability: "scan" })
    }

    /// Removes an item only while it still has version `expected`
    /// (memcached meta `md <key> C<cas>`): a cleanup that read an item cannot
    /// remove a newer one written meanwhile.
    ///
    /// Optional: stores without it return [`Error::Unsupported`].
    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        let _ = (key, expected);
        Err(Error::Unsupported {
            capability: "delete_if",
        })
    }

    /// [`Store::get`], plus the item's [`ItemMemo`] when the store keeps
    /// one: only an in-process store can (the session layer leaves there
    /// what it learnt from the item's bytes, for the next read of the same
    /// item). The default reads with `get` and has no memo; a wrapper that
    /// changes keys or values must not hand out its inner store's memo.
    async fn get_with_memo(&self, key: &str) -> Result<Option<(Entry, Option<ItemMemo>)>> {
        Ok(self.get(key).await?.map(|entry| (entry, None)))
    }

    /// True when [`Store::get_with_memo`] may hand out memos (an
    /// in-process store); the session layer then reads with it. Default
    /// false: reads go through `get`.
    fn keeps_memos(&self) -> bool {
        false
    }

    /// [`Store::cas`] of bytes the session layer already knows the shape
    /// of (a save's splice knows where each field landed), with that
    /// knowledge as `memo`, so that the next read of the new item need not
    /// scan it. A store that keeps memos keeps it with the item it writes,
    /// if it has the room; the default writes with `cas` and drops it. A
    /// wrapper that changes keys or values must drop it, as with
    /// [`Store::get_with_memo`].
    async fn cas_with_memo(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
        memo: ItemMemo,
    ) -> Result<CasOutcome> {
        drop(memo);
        self.cas(key, value, flags, ttl, expected).await
    }

    /// Reads an item and re-sets its expiry to `ttl` in one call (memcached
    /// meta `mg <key> T<ttl>`, classic `gats`). The entry's `ttl`, where
    /// filled in, is the new one.
    ///
    /// Optional: stores without it return [`Error::Unsupported`].
    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        let _ = (key, ttl);
        Err(Error::Unsupported {
            capability: "get_and_touch",
        })
    }
}

/// Checks a write's key and value size, as every store must before any I/O.
pub fn check_write(key: &str, value: &[u8], max_value_size: usize) -> Result<()> {
    validate_key(key)?;
    if value.len() > max_value_size {
        return Err(Error::ValueTooLarge {
            size: value.len(),
            limit: max_value_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_and_never_is_zero() {
        assert_eq!(Ttl::from_duration(Duration::from_millis(1)).as_secs(), 1);
        assert_eq!(Ttl::from_duration(Duration::from_secs(5)).as_secs(), 5);
        assert!(Ttl::from_duration(Duration::ZERO).is_never());
        assert_eq!(Ttl::seconds(3).as_duration(), Some(Duration::from_secs(3)));
        assert_eq!(Ttl::NEVER.as_duration(), None);
    }

    #[test]
    fn check_write_rejects_before_io() {
        assert!(matches!(
            check_write("k", &[0; 11], 10),
            Err(Error::ValueTooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert!(check_write("k", &[0; 10], 10).is_ok());
        assert!(check_write("a b", b"", 10).is_err());
    }
}

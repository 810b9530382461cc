//! [`MemoryStore`]: the embedded, in-process store.
//!
//! It is the default of every binary (so the SOAP bridge runs with no server
//! at all) and a real store: thread safe, with TTL expiry, versions for CAS,
//! and a memory limit. It is not a stand-in for memcached in tests; the
//! memcached backend is tested against real memcached servers.
//!
//! Expiry is lazy, in the manner of mini-redis's `db.rs` but without a
//! background task: an ordered map from `(deadline, version)` to the key
//! lets every call first drop the items whose deadline has passed, in
//! O(expired · log n), so what a call then finds is alive. With no task to
//! start, the store needs no runtime and works in any executor.
//!
//! Values are kept as the bytes written, as a networked store keeps them,
//! so one code path (codecs, seals, size limits) serves every store. What
//! that costs a load, scanning the bytes again, is paid once per value: from
//! a value's second read on, [`Store::get_with_memo`] hands out an
//! [`ItemMemo`] in which the session layer leaves its scan for the next
//! read, and a save that already knows where its fields landed hands its
//! memo over with the write ([`Store::cas_with_memo`]). A memo is charged
//! against `max_bytes` (the value's size again), kept only in room no item
//! uses, given up (all of them) when a write needs that room, and goes with
//! its value; any other write leaves the new value with none. So memos
//! never make a write fail with [`Error::StoreFull`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::key::validate_key;
use crate::store::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, ItemMemo, ScanCursor, ScanPage,
    Store, Ttl, Version, check_write,
};

/// Bytes counted per item on top of its key and value (bookkeeping).
const ITEM_OVERHEAD: usize = 64;

/// Limits of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    /// Total bytes (keys + values + bookkeeping) the store may hold.
    /// A write past it, once expired items and every memo (see the module
    /// docs) are dropped, fails with [`Error::StoreFull`] instead of
    /// evicting live sessions. Default 64 MiB.
    pub max_bytes: usize,
    /// The largest value a write accepts. Default 1 MiB, memcached's default.
    pub max_value_size: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            max_bytes: 64 * 1024 * 1024,
            max_value_size: 1024 * 1024,
        }
    }
}

impl MemoryStoreConfig {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<()> {
        if self.max_value_size == 0 {
            return Err(Error::InvalidConfig("max_value_size must be > 0".into()));
        }
        let one_item = self
            .max_value_size
            .saturating_add(ITEM_OVERHEAD + crate::key::MAX_KEY_LEN);
        if self.max_bytes < one_item {
            return Err(Error::InvalidConfig(format!(
                "max_bytes ({}) must hold at least one item of max_value_size ({}) under the longest key",
                self.max_bytes, self.max_value_size
            )));
        }
        Ok(())
    }
}

/// A thread-safe in-memory [`Store`] with expiry, versions and a memory limit.
///
/// Clone-free sharing: wrap it in an `Arc` (which is itself a `Store`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    config: MemoryStoreConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<String, Item>,
    /// Deadlines of the items that expire, for cheap purging: by deadline
    /// and the item's version (unique), so an entry is found again without
    /// a copy of its key, and a rewrite moves the key's string over.
    deadlines: BTreeMap<(Instant, u64), String>,
    /// Bytes accounted to live items (keys, values, bookkeeping).
    used: usize,
    /// Bytes accounted to memos (see [`Item::memo`]): within `max_bytes`
    /// together with `used`, but given up whenever a write needs the room.
    memo_used: usize,
    /// The last version handed out; versions are never reused.
    last_version: u64,
}

/// One item. Kept small (64 bytes): a store of many sessions holds one
/// per session and one per reverse key, and the map sizes its table in
/// powers of two of them.
#[derive(Debug)]
struct Item {
    value: Vec<u8>,
    version: u64,
    deadline: Option<Instant>,
    /// The memo (see [`ItemMemo`]), charged the value's size. A memo is
    /// made at the value's second read, not with the write: a session
    /// written after each load (load, change, save) is read once per
    /// value, and keeping its scan would only cost a copy; a save that
    /// already knows its bytes' spans hands them over with the write
    /// ([`Store::cas_with_memo`]). A write replaces the memo, so a memo
    /// never outlives the bytes it describes.
    memo: Option<ItemMemo>,
    flags: u32,
    /// Read with [`Store::get_with_memo`] since the write (with no memo
    /// kept: the first read, no room, or given up).
    read: bool,
}

// The size the doc above promises.
const _: () = assert!(std::mem::size_of::<Item>() <= 64);

impl Item {
    fn cost(key: &str, value: &[u8]) -> usize {
        key.len() + value.len() + ITEM_OVERHEAD
    }

    /// The memo's budget and charge: the value's size again, once the
    /// item has a memo.
    fn memo_cost(&self) -> usize {
        if self.memo.is_some() {
            self.value.len()
        } else {
            0
        }
    }

    fn entry(&self, now: Instant) -> Entry {
        let ttl = match self.deadline {
            None => Ttl::NEVER,
            // Round up, so an item that is still alive never reports "never".
            Some(d) => Ttl::from_duration(d.saturating_duration_since(now)).max(Ttl::seconds(1)),
        };
        Entry {
            value: self.value.clone(),
            flags: self.flags,
            version: Version::new(self.version),
            ttl: Some(ttl),
        }
    }
}

impl MemoryStore {
    /// A store with the default limits (64 MiB, 1 MiB values).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with the given limits; [`Error::InvalidConfig`] if they are inconsistent.
    pub fn with_config(config: MemoryStoreConfig) -> Result<Self> {
        config.validate()?;
        Ok(MemoryStore {
            config,
            inner: Mutex::default(),
        })
    }

    /// Bytes currently accounted to live (and not yet purged) items,
    /// memos included (see the module docs: a memo is given up whenever a
    /// write needs its room).
    pub fn used_bytes(&self) -> usize {
        let inner = self.lock();
        inner.used + inner.memo_used
    }

    /// Number of items, expired ones dropped first.
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        inner.purge(Instant::now());
        inner.items.len()
    }

    /// True when the store holds no live item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Locks the state. No code path panics while holding the lock, but if a
    /// panic ever did, the map is still consistent item by item, so we keep
    /// serving instead of propagating the poison.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a memo for a value of `len` bytes fits: a memo is charged
    /// its budget, the value's size again, and only kept in room no item
    /// uses (`used` and `memo_used` as they would be without it).
    fn memo_fits(&self, used: usize, memo_used: usize, len: usize) -> bool {
        used + memo_used + len <= self.config.max_bytes
    }

    /// Writes `key` if `when` allows it (after `check_write`), with one
    /// look-up of the key in the common cases (a save's `cas` on an existing
    /// item, a `set`): the item found is checked and rewritten in place.
    /// `memo`, which describes `value`, is kept with the new item if there
    /// is room for it.
    fn write(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        when: When,
        memo: Option<ItemMemo>,
    ) -> Result<std::result::Result<Version, Refused>> {
        check_write(key, value, self.config.max_value_size)?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        let Inner {
            items,
            deadlines,
            used,
            memo_used,
            last_version,
        } = &mut *inner;
        let mut found = items.get_mut(key);
        match (&found, when) {
            (None, When::Version(_)) => return Ok(Err(Refused::NotFound)),
            (Some(_), When::Absent) => return Ok(Err(Refused::Exists)),
            (Some(item), When::Version(v)) if item.version != v => {
                return Ok(Err(Refused::Conflict));
            }
            _ => {}
        }
        let old_cost = found
            .as_ref()
            .map_or(0, |item| Item::cost(key, &item.value));
        let new_cost = Item::cost(key, value);
        let used_after = *used - old_cost + new_cost;
        // Memos are a cache: a write that needs their room gets it (rare,
        // and O(items), so the item is looked up again afterwards).
        if used_after + *memo_used > self.config.max_bytes {
            drop_memos(items, memo_used);
            found = items.get_mut(key);
        }
        if used_after > self.config.max_bytes {
            return Err(Error::StoreFull {
                needed: new_cost,
                used: *used,
                limit: self.config.max_bytes,
            });
        }
        *last_version += 1;
        let version = *last_version;
        let deadline = ttl.as_duration().map(|d| now + d);
        *used = used_after;
        // A memo handed over is kept as a read's memo would be.
        let keep = |memo_used: &mut usize| match memo {
            Some(memo)
                if memo.budget() == value.len()
                    && self.memo_fits(used_after, *memo_used, value.len()) =>
            {
                *memo_used += value.len();
                Some(memo)
            }
            _ => None,
        };
        match found {
            // A rewrite (every save) replaces the item in place: no removal
            // and re-insertion, and the key's string and the value's buffer
            // are reused.
            Some(item) => {
                *memo_used -= item.memo_cost();
                let old_key = item
                    .deadline
                    .and_then(|d| deadlines.remove(&(d, item.version)));
                if let Some(d) = deadline {
                    deadlines.insert((d, version), old_key.unwrap_or_else(|| key.to_owned()));
                }
                // The buffer is reused when the new value fits it without
                // leaving much of it unused (the limit counts lengths, so
                // slack would hide memory); otherwise a buffer of the exact
                // size replaces it (growing in place would double it).
                let room = item.value.capacity();
                if value.len() <= room && room <= value.len() + value.len() / 4 + 16 {
                    item.value.clear();
                    item.value.extend_from_slice(value);
                } else {
                    item.value = value.to_vec();
                }
                item.flags = flags;
                item.version = version;
                item.deadline = deadline;
                item.memo = keep(memo_used);
                item.read = false;
            }
            None => {
                if let Some(d) = deadline {
                    deadlines.insert((d, version), key.to_owned());
                }
                items.insert(
                    key.to_owned(),
                    Item {
                        value: value.to_vec(),
                        version,
                        deadline,
                        memo: keep(memo_used),
                        flags,
                        read: false,
                    },
                );
            }
        }
        Ok(Ok(Version::new(version)))
    }
}

/// When [`MemoryStore::write`] may write.
#[derive(Debug, Clone, Copy)]
enum When {
    /// Always (`set`).
    Always,
    /// Only if the key holds no live item (`add`).
    Absent,
    /// Only if the key's item has this version (`cas`).
    Version(u64),
}

/// Why [`MemoryStore::write`] did not write.
#[derive(Debug, Clone, Copy)]
enum Refused {
    NotFound,
    Exists,
    Conflict,
}

fn cas_outcome(written: std::result::Result<Version, Refused>) -> CasOutcome {
    match written {
        Ok(v) => CasOutcome::Stored(Some(v)),
        Err(Refused::NotFound) => CasOutcome::NotFound,
        Err(Refused::Conflict | Refused::Exists) => CasOutcome::Conflict,
    }
}

/// Gives up every memo and its charge (handed-out clones stay valid: they
/// describe values that did not change). O(items), and only when a write
/// would otherwise not fit.
fn drop_memos(items: &mut HashMap<String, Item>, memo_used: &mut usize) {
    for item in items.values_mut() {
        if item.memo.take().is_some() {
            item.read = true;
        }
    }
    *memo_used = 0;
}

impl Inner {
    /// Drops every item whose deadline is at or before `now`.
    fn purge(&mut self, now: Instant) {
        while let Some((&(deadline, _), _)) = self.deadlines.first_key_value() {
            if deadline > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.remove(&key);
            }
        }
    }

    /// Removes an item and its bookkeeping; returns whether it existed.
    fn remove(&mut self, key: &str) -> bool {
        match self.items.remove(key) {
            Some(item) => {
                self.used -= Item::cost(key, &item.value);
                self.memo_used -= item.memo_cost();
                if let Some(d) = item.deadline {
                    self.deadlines.remove(&(d, item.version));
                }
                true
            }
            None => false,
        }
    }

    fn live(&self, key: &str) -> Option<&Item> {
        self.items.get(key)
    }

    /// Gives a live item a new deadline; returns whether it existed.
    fn retime(&mut self, key: &str, ttl: Ttl, now: Instant) -> bool {
        let Some(item) = self.items.get_mut(key) else {
            return false;
        };
        let old_key = item
            .deadline
            .take()
            .and_then(|old| self.deadlines.remove(&(old, item.version)));
        item.deadline = ttl.as_duration().map(|d| now + d);
        if let Some(d) = item.deadline {
            self.deadlines
                .insert((d, item.version), old_key.unwrap_or_else(|| key.to_owned()));
        }
        true
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        Ok(inner.live(key).map(|item| item.entry(now)))
    }

    fn keeps_memos(&self) -> bool {
        true
    }

    async fn get_with_memo(&self, key: &str) -> Result<Option<(Entry, Option<ItemMemo>)>> {
        validate_key(key)?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        let inner = &mut *inner;
        let Some(item) = inner.items.get_mut(key) else {
            return Ok(None);
        };
        // A memo is made at the second read (see `Item::memo`), if it fits.
        let len = item.value.len();
        if item.memo.is_none() {
            if !item.read {
                item.read = true;
            } else if self.memo_fits(inner.used, inner.memo_used, len) {
                inner.memo_used += len;
                item.memo = Some(ItemMemo::with_budget(len));
            }
        }
        Ok(Some((item.entry(now), item.memo.clone())))
    }

    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        match self.write(key, value, flags, ttl, When::Absent, None)? {
            Ok(v) => Ok(AddOutcome::Stored(Some(v))),
            Err(_) => Ok(AddOutcome::Exists),
        }
    }

    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        match self.write(key, value, flags, ttl, When::Always, None)? {
            Ok(v) => Ok(Some(v)),
            // `Always` is never refused.
            Err(_) => Ok(None),
        }
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        let written = self.write(key, value, flags, ttl, When::Version(expected.get()), None)?;
        Ok(cas_outcome(written))
    }

    /// The memo is kept with the new item if there is room, charged as a
    /// read's memo (the value's size again).
    async fn cas_with_memo(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
        memo: ItemMemo,
    ) -> Result<CasOutcome> {
        let when = When::Version(expected.get());
        let written = self.write(key, value, flags, ttl, when, Some(memo))?;
        Ok(cas_outcome(written))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let mut inner = self.lock();
        inner.purge(Instant::now());
        Ok(inner.remove(key))
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool> {
        validate_key(key)?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        Ok(inner.retime(key, ttl, now))
    }

    fn max_value_size(&self) -> usize {
        self.config.max_value_size
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn version(&self, key: &str) -> Result<Option<Version>> {
        validate_key(key)?;
        let mut inner = self.lock();
        inner.purge(Instant::now());
        Ok(inner.live(key).map(|item| Version::new(item.version)))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        for key in keys {
            validate_key(key)?;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        Ok(keys
            .iter()
            .map(|k| inner.live(k).map(|item| item.entry(now)))
            .collect())
    }

    /// Pages in key order; the cursor is the last key of the previous page.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let limit = limit.max(1);
        let after = cursor.map(ScanCursor::as_str);
        let mut inner = self.lock();
        inner.purge(Instant::now());
        let mut keys: Vec<&String> = inner
            .items
            .keys()
            .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .collect();
        keys.sort_unstable();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        let next = more
            .then(|| keys.last().map(|k| ScanCursor::new(k.clone())))
            .flatten();
        Ok(ScanPage { keys, next })
    }

    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        validate_key(key)?;
        let mut inner = self.lock();
        inner.purge(Instant::now());
        match inner.live(key) {
            None => Ok(DeleteOutcome::NotFound),
            Some(item) if item.version != expected.get() => Ok(DeleteOutcome::Conflict),
            Some(_) => {
                inner.remove(key);
                Ok(DeleteOutcome::Deleted)
            }
        }
    }

    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        validate_key(key)?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        if !inner.retime(key, ttl, now) {
            return Ok(None);
        }
        Ok(inner.live(key).map(|item| item.entry(now)))
    }
}

#[cfg(test)]
mod tests;

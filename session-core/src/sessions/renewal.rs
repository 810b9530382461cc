//! The reverse keys this process wrote lately, so that a save that keeps the
//! session's user can leave its reverse key alone.
//!
//! The original rewrites the reverse key `md5_hex(user) -> id` on every
//! save, only to renew its expiry with the session's. On memcached that is a
//! third request per save (a `get`, a `cas`, a `set`), and where client and
//! server share the CPU it costs a third of a save's throughput. Here the
//! reverse key is written with an expiry `reverse_key_refresh` longer than
//! the session's, so it still outlives the session when the saves of the
//! next `reverse_key_refresh` renew the session alone; after that window a
//! save writes it again. Only this process's own writes count (other
//! processes write it when their own window says so), and only a key that
//! names the session being saved (same session key, same reverse key): a
//! save that changes the user always writes.
//!
//! What this trades: a reverse key lost meanwhile (evicted, flushed, a
//! restarted server) is back after at most the window instead of at the next
//! save; and within the window a newer session of the same user keeps the
//! key instead of an older session's save taking it back. With Perl nodes
//! saving the same sessions, a Perl save renews the key with the session's
//! plain expiry, so the key may expire up to the window before the session
//! it names. `reverse_key_refresh = 0` writes on every save, as the original.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::gate::{Hashed, SHARDS, shard_of};
use crate::store::Ttl;

/// Entries one shard keeps at most (16 shards: about 16k sessions written
/// lately; at most 16 tables of 2048 buckets of 33 bytes, about 1 MiB,
/// where 4096 per shard took 8 MiB in a measure). A full shard drops
/// what is past the window, and forgets everything when that is not
/// enough: the cost of forgetting is one extra reverse-key write per
/// session. (A process saving more distinct sessions than that per window
/// renews their keys more often than the window says, never less.)
const SHARD_CAPACITY: usize = 1024;

/// One reverse-key write: which key (its hash) and when.
#[derive(Debug, Clone, Copy)]
struct Written {
    reverse: u64,
    at: Instant,
}

/// One shard's writes, by the hash of the session key.
type Writes = HashMap<u64, Written, BuildHasherDefault<Hashed>>;
type Shard = Mutex<Writes>;

/// The reverse keys this process wrote, by the hash of the session key
/// (a hash collision only costs a renewal, one window late at most).
#[derive(Debug)]
pub(crate) struct RecentReverseKeys {
    window: Duration,
    hasher: RandomState,
    shards: [Shard; SHARDS],
}

impl RecentReverseKeys {
    /// Trusts a write for `window`; a zero window trusts none.
    pub fn new(window: Duration) -> Self {
        RecentReverseKeys {
            window,
            hasher: RandomState::new(),
            shards: Default::default(),
        }
    }

    /// The expiry of a reverse key written for a session whose own expiry
    /// is `ttl`: the window longer (in whole seconds, rounded up), so it
    /// outlives the session's renewals within the window. Never stays never.
    pub fn ttl(&self, ttl: Ttl) -> Ttl {
        if ttl == Ttl::NEVER || self.window.is_zero() {
            return ttl;
        }
        let extra = Ttl::from_duration(self.window).as_secs();
        Ttl::seconds(ttl.as_secs().saturating_add(extra))
    }

    /// Whether this process wrote `reverse` for the session under `key`
    /// within the window.
    pub fn is_fresh(&self, key: &str, reverse: &str) -> bool {
        if self.window.is_zero() {
            return false;
        }
        let hash = self.hasher.hash_one(key);
        let written = self.lock(hash).get(&hash).copied();
        written.is_some_and(|w| {
            w.reverse == self.hasher.hash_one(reverse) && w.at.elapsed() < self.window
        })
    }

    /// Notes that `reverse` was just written for the session under `key`.
    pub fn wrote(&self, key: &str, reverse: &str) {
        if self.window.is_zero() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        let written = Written {
            reverse: self.hasher.hash_one(reverse),
            at: Instant::now(),
        };
        let mut shard = self.lock(hash);
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&hash) {
            shard.retain(|_, w| w.at.elapsed() < self.window);
            if shard.len() >= SHARD_CAPACITY {
                shard.clear();
            }
        }
        shard.insert(hash, written);
    }

    /// Forgets the session under `key` (deleted, or found gone).
    pub fn forget(&self, key: &str) {
        if self.window.is_zero() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        self.lock(hash).remove(&hash);
    }

    fn lock(&self, hash: u64) -> std::sync::MutexGuard<'_, Writes> {
        self.shards[shard_of(hash)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_trusted_for_its_key_and_reverse_key_only() {
        let recent = RecentReverseKeys::new(Duration::from_secs(60));
        assert!(!recent.is_fresh("s1", "r1"));
        recent.wrote("s1", "r1");
        assert!(recent.is_fresh("s1", "r1"));
        assert!(!recent.is_fresh("s1", "r2"), "another user's key");
        assert!(!recent.is_fresh("s2", "r1"), "another session");
        recent.forget("s1");
        assert!(!recent.is_fresh("s1", "r1"));
    }

    #[test]
    fn a_zero_window_trusts_nothing_and_keeps_the_expiry() {
        let recent = RecentReverseKeys::new(Duration::ZERO);
        recent.wrote("s1", "r1");
        assert!(!recent.is_fresh("s1", "r1"));
        assert_eq!(recent.ttl(Ttl::seconds(600)), Ttl::seconds(600));
    }

    #[test]
    fn the_key_outlives_the_session_by_the_window() {
        let recent = RecentReverseKeys::new(Duration::from_millis(1500));
        assert_eq!(recent.ttl(Ttl::seconds(600)), Ttl::seconds(602));
        assert_eq!(recent.ttl(Ttl::NEVER), Ttl::NEVER);
        assert_eq!(recent.ttl(Ttl::seconds(u32::MAX)), Ttl::seconds(u32::MAX));
    }

    #[test]
    fn a_write_past_the_window_is_not_trusted() {
        let recent = RecentReverseKeys::new(Duration::from_millis(20));
        recent.wrote("s1", "r1");
        let start = Instant::now();
        while recent.is_fresh("s1", "r1") {
            assert!(start.elapsed() < Duration::from_secs(5), "never went stale");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_full_shard_makes_room() {
        let recent = RecentReverseKeys::new(Duration::from_secs(60));
        for i in 0..SHARD_CAPACITY * SHARDS * 3 {
            recent.wrote(&format!("s{i}"), "r");
        }
        let kept: usize = recent.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= SHARD_CAPACITY * SHARDS, "{kept} entries kept");
        recent.wrote("last", "r");
        assert!(recent.is_fresh("last", "r"));
    }
}

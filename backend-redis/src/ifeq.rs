//! Compare-and-set without a script, on servers that have `SET ... IFEQ`.
//!
//! Why: on Redis 7 a compare-and-set needs a Lua script, which the server
//! runs about five times slower than a `SET` (Valkey 8.1, `INFO
//! commandstats`, 500-byte values: 7.6 µs for the `cas` script against
//! 1.4 µs for a `SET`), and with many callers the server's one thread is
//! what limits a store. Valkey 8.1 and Redis 8.4 added
//! `SET key value IFEQ comparison-value`: set only if the current value is
//! exactly that string, else answer nil (a missing key included).
//!
//! It compares whole values, not a version, so the store must send back
//! the very bytes it read. [`Recent`] keeps them, keyed by the full Redis
//! key, with the version they hold, for a `cas` that follows a read (a
//! session's load, then its save). `cas(key, .., expected)` uses an entry
//! only when its version is `expected`. The version is inside the stored
//! bytes and a writer never reuses one, so "the stored string equals the
//! one read at `expected`" is the same test as the script's "the stored
//! version is `expected`". Without an entry (never read here, read too
//! long ago, or a value over [`MAX_KEPT`]) `cas` runs the script as before.
//!
//! Whether the server knows `IFEQ` is learnt from the first such `SET`:
//! an older server answers it with a plain `ERR` (syntax error) and
//! changes nothing, and from then on the store keeps nothing and uses the
//! script only ([`Ifeq`]). A missing key is never created by `IFEQ`, so
//! that first try is harmless either way.
//!
//! [`Recent`] is bounded without a clock or a list: each shard holds two
//! generations; when the current one is full it becomes the previous one
//! and the old previous one is dropped. An entry read and not written
//! within about two generations is forgotten. A `cas` takes its entry out
//! (the next one needs the string it wrote, which a new read brings).
//!
//! **What it costs and what it pays** (issue #27; callgrind, client
//! instructions per operation on the 10-field JSON session, one
//! connection, (count at 2000 ops - count at 1000) / 1000): keeping the
//! string costs a read 0.63k (17.6k per `get` with it, 17.0k without: the
//! value's copy, one keyed hash, a lock and a map insert). A load, change
//! and save on Valkey 8.1 costs the client the same either way (61.4k with
//! `IFEQ`, 61.2k with the script): the longer `SET` weighs what the
//! `EVALSHA` did. What it pays is server time, the limit under many
//! callers: 1.4 µs for the `SET` against 7.6 µs for the script, which took
//! the update row against the peer from 0.61x to 0.75x on Valkey
//! (docs/performance.md). So it stays; on a server without `IFEQ` nothing
//! is kept once the first `cas` has learnt that.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use session_core::Version;

/// Shards, to keep concurrent callers off one lock.
const SHARDS: usize = 16;

/// Entries one generation of one shard holds at most.
const GENERATION: usize = 512;

/// Bytes of stored strings one generation of one shard takes in at most
/// (an entry that would pass it starts a new generation), so that all
/// shards together hold at most about `2 * SHARDS * (GENERATION_BYTES +
/// MAX_KEPT)`: 10 MiB, whatever the sessions' size.
const GENERATION_BYTES: usize = 256 * 1024;

/// The most stored strings kept in all: two generations per shard.
#[cfg(test)]
const CAPACITY: usize = 2 * SHARDS * GENERATION;

/// Entries larger than this are not kept: sending such a value back with
/// `IFEQ` would cost the wire more than the script costs the server.
pub(crate) const MAX_KEPT: usize = 64 * 1024;

/// What one key held when it was read.
struct Seen {
    /// The full key, compared on `take`: the maps are keyed by its hash.
    key: String,
    version: Version,
    stored: Vec<u8>,
}

/// The maps' hasher: their keys already are a keyed hash of the Redis key
/// ([`Recent::hash`]), so it passes that on instead of hashing it again.
///
/// Why: the maps were keyed by the key string, so a read's `keep` hashed
/// it three times (shard, `remove` from the previous generation,
/// `insert`), SipHash over a 40-byte key each time.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the maps' keys are `u64`); anything
        // else still gets a usable, if weak, hash.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One generation: entries by the hash of their full key.
type Generation = HashMap<u64, Seen, BuildHasherDefault<Prehashed>>;

#[derive(Default)]
struct Shard {
    current: Generation,
    previous: Generation,
    /// Bytes taken into `current` (removals not subtracted: an
    /// overestimate only starts the next generation early).
    current_bytes: usize,
}

/// Recently read stored strings by full key (see the module docs).
pub(crate) struct Recent {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").finish_non_exhaustive()
    }
}

impl Recent {
    pub(crate) fn new() -> Recent {
        Recent {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }

    /// The key's hash (keyed per process, so a client cannot aim keys at
    /// one map slot) and its shard.
    fn hash(&self, key: &str) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(key);
        // Bits the maps barely use pick the shard: the low ones choose a
        // bucket, the top seven tell entries of one group apart.
        (hash, &self.shards[(hash >> 32) as usize % SHARDS])
    }

    /// Remembers that `key` held `stored` (whose version is `version`).
    pub(crate) fn keep(&self, key: String, version: Version, stored: Vec<u8>) {
        let (hash, shard) = self.hash(&key);
        // A poisoned lock only means another caller panicked mid-insert;
        // the maps are still valid, so keep using them.
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        let full = shard.current.len() >= GENERATION
            || shard.current_bytes + stored.len() > GENERATION_BYTES;
        if full && !shard.current.contains_key(&hash) {
            shard.previous = std::mem::take(&mut shard.current);
            shard.current_bytes = 0;
        }
        shard.current_bytes += stored.len();
        if !shard.previous.is_empty() {
            shard.previous.remove(&hash);
        }
        // Two keys of one hash (about 2^-64 a pair) share a slot: the
        // newer read replaces the older, whose `cas` then runs the script.
        shard.current.insert(
            hash,
            Seen {
                key,
                version,
                stored,
            },
        );
    }

    /// Takes out what `key` held at `version`, if it was kept; an entry of
    /// another version is dropped too (it can no longer match anything the
    /// caller will ask for).
    pub(crate) fn take(&self, key: &str, version: Version) -> Option<Vec<u8>> {
        let (hash, shard) = self.hash(key);
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        let seen = match shard.current.remove(&hash) {
            Some(seen) => seen,
            None => shard.previous.remove(&hash)?,
        };
        (seen.key == key && seen.version == version).then_some(seen.stored)
    }

    /// Forgets everything (the server turned out not to know `IFEQ`).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            *shard = Shard::default();
        }
    }

    /// Entries kept now (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                s.current.len() + s.previous.len()
            })
            .sum()
    }
}

/// Whether the server knows `SET ... IFEQ`, and what [`Recent`] keeps.
#[derive(Debug)]
pub(crate) struct Ifeq {
    support: AtomicU8,
    recent: Recent,
}

/// [`Ifeq::support`] values.
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

impl Ifeq {
    pub(crate) fn new() -> Ifeq {
        Ifeq {
            support: AtomicU8::new(UNKNOWN),
            recent: Recent::new(),
        }
    }

    /// `true` unless the server is known to lack `IFEQ`: then nothing is
    /// worth keeping.
    pub(crate) fn wanted(&self, stored_len: usize) -> bool {
        stored_len <= MAX_KEPT && self.support.load(Ordering::Relaxed) != NO
    }

    /// See [`Recent::keep`].
    pub(crate) fn keep(&self, key: String, version: Version, stored: Vec<u8>) {
        self.recent.keep(key, version, stored);
    }

    /// What `key` held at `version`, if kept and the server may know `IFEQ`.
    pub(crate) fn take(&self, key: &str, version: Version) -> Option<Vec<u8>> {
        if self.support.load(Ordering::Relaxed) == NO {
            return None;
        }
        self.recent.take(key, version)
    }

    /// The server answered an `IFEQ` write.
    pub(crate) fn supported(&self) {
        self.support.store(YES, Ordering::Relaxed);
    }

    /// The server refused `IFEQ`: keep nothing from now on.
    pub(crate) fn unsupported(&self) {
        if self.support.swap(NO, Ordering::Relaxed) != NO {
            tracing::info!("the server has no SET IFEQ; compare-and-set runs a script");
            self.recent.clear();
        }
    }

    /// `Some(true)` / `Some(false)` once a `SET ... IFEQ` was answered.
    pub(crate) fn known(&self) -> Option<bool> {
        match self.support.load(Ordering::Relaxed) {
            YES => Some(true),
            NO => Some(false),
            _ => None,
        }
    }
}

/// Whether `error` is a server's plain `ERR` answer, which is how a server
/// without `IFEQ` refuses the option (`ERR syntax error`). Anything else
/// (a timeout, a broken connection, `MOVED`, `OOM`, ...) is not a verdict
/// on `IFEQ` and is reported as usual.
pub(crate) fn refused(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
}

/// `SET key stored IFEQ old [PX ttl_ms]` (`ttl_ms` 0: no expiry).
pub(crate) fn command(key: &str, stored: &[u8], old: &[u8], ttl_ms: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(stored).arg("IFEQ").arg(old);
    if ttl_ms != 0 {
        cmd.arg("PX").arg(ttl_ms);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_given_once_and_only_for_its_version() {
        let recent = Recent::new();
        recent.keep("k".into(), Version::new(7), b"seven".to_vec());
        assert_eq!(recent.take("k", Version::new(8)), None);
        // The mismatched take dropped it.
        assert_eq!(recent.take("k", Version::new(7)), None);
        recent.keep("k".into(), Version::new(7), b"seven".to_vec());
        assert_eq!(recent.take("k", Version::new(7)), Some(b"seven".to_vec()));
        assert_eq!(recent.take("k", Version::new(7)), None);
    }

    #[test]
    fn a_newer_read_replaces_an_older_one() {
        let recent = Recent::new();
        recent.keep("k".into(), Version::new(1), b"one".to_vec());
        recent.keep("k".into(), Version::new(2), b"two".to_vec());
        assert_eq!(recent.take("k", Version::new(2)), Some(b"two".to_vec()));
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn clear_drops_every_entry() {
        let recent = Recent::new();
        recent.keep("a".into(), Version::new(1), b"a".to_vec());
        recent.keep("b".into(), Version::new(1), b"b".to_vec());
        recent.clear();
        assert_eq!(recent.len(), 0);
        assert_eq!(recent.take("b", Version::new(1)), None);
    }

    #[test]
    fn it_stays_bounded_and_keeps_the_newest() {
        let recent = Recent::new();
        let n = CAPACITY * 3;
        for i in 0..n {
            recent.keep(format!("k{i}"), Version::new(i as u64), vec![0; 8]);
        }
        assert!(recent.len() <= CAPACITY, "{} > {CAPACITY}", recent.len());
        let last = n - 1;
        assert!(
            recent
                .take(&format!("k{last}"), Version::new(last as u64))
                .is_some()
        );
        assert!(recent.take("k0", Version::new(0)).is_none());
    }

    #[test]
    fn large_values_start_new_generations_early() {
        let recent = Recent::new();
        let size = MAX_KEPT;
        for i in 0..(SHARDS * GENERATION) {
            recent.keep(format!("k{i}"), Version::new(1), vec![0; size]);
        }
        let bytes: usize = recent
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.current
                    .values()
                    .chain(s.previous.values())
                    .map(|v| v.stored.len())
                    .sum::<usize>()
            })
            .sum();
        assert!(
            bytes <= 2 * SHARDS * (GENERATION_BYTES + MAX_KEPT),
            "{bytes} bytes kept"
        );
    }

    #[test]
    fn large_values_and_a_refusing_server_are_not_worth_keeping() {
        let ifeq = Ifeq::new();
        assert!(ifeq.wanted(MAX_KEPT));
        assert!(!ifeq.wanted(MAX_KEPT + 1));
        ifeq.keep("k".into(), Version::new(1), b"v".to_vec());
        ifeq.unsupported();
        assert_eq!(ifeq.known(), Some(false));
        assert!(!ifeq.wanted(1));
        assert_eq!(ifeq.recent.len(), 0);
        assert_eq!(ifeq.take("k", Version::new(1)), None);
    }
}

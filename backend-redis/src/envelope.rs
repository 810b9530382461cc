//! The stored form of one item: a 13-byte header, then the value bytes.
//!
//! ```text
//! byte 0      MAGIC (0xC5): written by RedisStore, format 1
//! bytes 1..5  client flags, u32 big-endian
//! bytes 5..13 version, u64 big-endian
//! bytes 13..  the value, exactly as given
//! ```
//!
//! One Redis string per key rather than a hash: `GET`/`SET NX`/`MGET` work
//! on it unchanged, a read is one command, and the Lua scripts compare the
//! version as the 8 bytes `string.sub(v, 6, 13)` without decoding anything.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use session_core::Version;

/// The first byte of every item this crate writes.
pub(crate) const MAGIC: u8 = 0xC5;

/// Bytes before the value.
pub const HEADER_LEN: usize = 13;

/// The stored string for `value` with `flags` and `version`.
pub(crate) fn encode(value: &[u8], flags: u32, version: Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.push(MAGIC);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&version.get().to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The version as the scripts compare it: its 8 big-endian bytes.
pub(crate) fn version_bytes(version: Version) -> [u8; 8] {
    version.get().to_be_bytes()
}

/// Splits a stored string into (value, flags, version); `None` when the
/// string was not written by this crate (too short or another first byte).
pub(crate) fn decode(mut stored: Vec<u8>) -> Option<(Vec<u8>, u32, Version)> {
    let (flags, version) = header(&stored)?;
    stored.drain(..HEADER_LEN);
    Some((stored, flags, version))
}

/// Flags and version from the first bytes of a stored string.
pub(crate) fn header(stored: &[u8]) -> Option<(u32, Version)> {
    if stored.len() < HEADER_LEN || stored[0] != MAGIC {
        return None;
    }
    let flags = u32::from_be_bytes(stored[1..5].try_into().ok()?);
    let version = u64::from_be_bytes(stored[5..13].try_into().ok()?);
    Some((flags, Version::new(version)))
}

/// The process's version counter, started at 64 random bits on first use.
static COUNTER: OnceLock<AtomicU64> = OnceLock::new();

/// A fresh version (never 0): the next value of a process-wide counter
/// that starts at 64 random bits, passed through a bijective mix.
///
/// The store contract wants a version a key never had before, also across
/// a delete and a new `add`. A per-key counter would restart; a store-wide
/// `INCR` counter would put a second key into every write script, which a
/// cluster refuses unless every key shares one slot. A random start makes
/// two processes' sequences overlap with probability about
/// `(n₁ + n₂) / 2⁶⁴` after `n₁` and `n₂` writes, nothing in practice, and
/// within a process no version repeats before 2⁶⁴ writes (the mix is a
/// bijection, so distinct counter values give distinct versions). It costs
/// no system call per write, unlike drawing 64 fresh random bits each time.
pub(crate) fn new_version() -> Result<Version, getrandom::Error> {
    let counter = match COUNTER.get() {
        Some(counter) => counter,
        None => {
            let seed = getrandom::u64()?;
            COUNTER.get_or_init(|| AtomicU64::new(seed))
        }
    };
    loop {
        let v = mix(counter.fetch_add(1, Ordering::Relaxed));
        if v != 0 {
            return Ok(Version::new(v));
        }
    }
}

/// SplitMix64's finalizer: xor-shifts and odd multiplications, each a
/// bijection on `u64`, so the whole is one; consecutive inputs give
/// unrelated-looking outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_values() {
        let v = Version::new(0x0102_0304_0506_0708);
        let stored = encode(b"hello", 0x100, v);
        assert_eq!(stored.len(), HEADER_LEN + 5);
        assert_eq!(&stored[5..13], &version_bytes(v));
        assert_eq!(decode(stored), Some((b"hello".to_vec(), 0x100, v)));
        assert_eq!(decode(encode(b"", 0, v)), Some((Vec::new(), 0, v)));
        assert_eq!(decode(b"plain".to_vec()), None);
        assert_eq!(decode(vec![0u8; 20]), None);
    }

    #[test]
    fn versions_are_distinct_and_nonzero() {
        let versions: std::collections::HashSet<u64> =
            (0..10_000).map(|_| new_version().unwrap().get()).collect();
        assert_eq!(versions.len(), 10_000);
        assert!(!versions.contains(&0));
    }

    #[test]
    fn the_mix_spreads_neighbours() {
        // Consecutive counter values differ in about half their bits.
        let differing = (mix(41) ^ mix(42)).count_ones();
        assert!((16..=48).contains(&differing), "{differing}");
        assert_ne!(mix(0), mix(1));
    }
}

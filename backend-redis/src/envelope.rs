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

/// A fresh version: 64 random bits from the OS (never 0).
///
/// The store contract wants a version a key never had before, also across
/// a delete and a new `add`. A per-key counter would restart; a store-wide
/// `INCR` counter would put a second key into every write script, which a
/// cluster refuses unless every key shares one slot. 64 random bits per
/// write repeat with probability about `n² / 2⁶⁵` over `n` writes of one
/// key, nothing in practice.
pub(crate) fn new_version() -> Result<Version, getrandom::Error> {
    loop {
        let v = getrandom::u64()?;
        if v != 0 {
            return Ok(Version::new(v));
        }
    }
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
    fn versions_are_random_and_nonzero() {
        let a = new_version().unwrap();
        let b = new_version().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.get(), 0);
    }
}

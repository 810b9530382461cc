//! Key-to-server routing: Perl Cache::Memcached's CRC32 buckets (with its
//! rehash sequence) and ketama consistent hashing.
//!
//! # Perl routing (the default)
//!
//! Read from `Cache/Memcached.pm` 1.30 (`init_buckets`, `get_sock`,
//! `_hashfunc`) and checked against real Perl in `tests/perl_routing.rs`:
//!
//! - The bucket list is the server list with a server of weight `w` repeated
//!   `w` times in place (`a:1, b:2, c:1` gives `[a, b, b, c]`).
//! - `hash(s) = (crc32(s) >> 16) & 0x7fff`, over the key's bytes.
//! - The key's home is `buckets[hash(key) % buckets.len()]`.
//! - When that server is dead, Perl tries again with
//!   `hv += hash(tries . key)`, where `tries` is the decimal attempt number
//!   `1, 2, ...` prefixed to the key, for 20 attempts in all (`get_sock`;
//!   `get_multi` allows one more, which we do not copy).
//! - With exactly one entry in the server list Perl skips hashing and never
//!   rehashes, and so do we.
//!
//! # Ketama
//!
//! libketama's (last.fm) point layout: server `i` gets
//! `ks = weight_i * 40 * n / total_weight` (integer division; libketama uses
//! `floorf` on floats, which agrees except on float rounding edges) md5
//! digests of the string `"host:port-k"` for `k` in `0..ks`, and each
//! 16-byte digest gives 4 points, the little-endian `u32`s at bytes
//! `0..4, 4..8, 8..12, 12..16`. With equal weights that is 160 points per
//! server. A key hashes to the little-endian `u32` of its md5's first 4
//! bytes and goes to the first point at or after it, wrapping around.
//! Rehash walks on clockwise to the next point of a different server, which
//! is where the key would go if the dead servers' points were removed.

use crate::config::{Routing, ServerSpec};

/// Cache::Memcached's `_hashfunc`: `(crc32(bytes) >> 16) & 0x7fff`.
pub fn perl_hash(bytes: &[u8]) -> u32 {
    (crc32fast::hash(bytes) >> 16) & 0x7fff
}

/// The number of buckets `get_sock` tries before giving up.
pub const PERL_REHASH_TRIES: usize = 20;

/// Maps keys to server indexes (positions in the configured server list).
#[derive(Debug, Clone)]
pub struct Router {
    kind: Kind,
    server_count: usize,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Perl with a single server: no hashing at all.
    Single,
    /// Perl buckets, each a server index.
    Perl(Vec<usize>),
    /// Ketama points `(point, server index)`, sorted.
    Ketama(Vec<(u32, usize)>),
}

impl Router {
    /// A router over `servers` (in configuration order) with `routing`.
    ///
    /// `servers` must be non-empty with weights of at least 1, as
    /// [`MemcachedConfig::validate`](crate::MemcachedConfig::validate) ensures.
    pub fn new(servers: &[ServerSpec], routing: Routing) -> Self {
        let kind = match routing {
            Routing::Perl if servers.len() == 1 => Kind::Single,
            Routing::Perl => Kind::Perl(
                servers
                    .iter()
                    .enumerate()
                    .flat_map(|(i, s)| std::iter::repeat_n(i, s.weight as usize))
                    .collect(),
            ),
            Routing::Ketama => Kind::Ketama(ketama_points(servers)),
        };
        Router {
            kind,
            server_count: servers.len(),
        }
    }

    /// The key's home server (the first candidate).
    pub fn server_for(&self, key: &str) -> usize {
        self.candidates(key).next().unwrap_or(0)
    }

    /// The servers to try for `key`, home first, in the order the failure
    /// policy [`Rehash`](crate::FailurePolicy::Rehash) tries them. Perl's
    /// sequence may name a server more than once.
    pub fn candidates<'a>(&'a self, key: &'a str) -> impl Iterator<Item = usize> + Send + 'a {
        let it: Box<dyn Iterator<Item = usize> + Send + 'a> = match &self.kind {
            Kind::Single => Box::new(std::iter::once(0)),
            Kind::Perl(buckets) => Box::new(PerlCandidates {
                buckets,
                key,
                hv: u64::from(perl_hash(key.as_bytes())),
                tries: 0,
            }),
            Kind::Ketama(points) => {
                let h = ketama_hash(key.as_bytes());
                let start = points.partition_point(|&(p, _)| p < h);
                let n = points.len();
                let mut seen = vec![false; self.server_count];
                Box::new((0..n).filter_map(move |i| {
                    let server = points[(start + i) % n].1;
                    (!std::mem::replace(&mut seen[server], true)).then_some(server)
                }))
            }
        };
        it
    }
}

/// Iterates Perl's `get_sock` loop.
struct PerlCandidates<'a> {
    buckets: &'a [usize],
    key: &'a str,
    // u64: 20 additions of at most 0x7fff cannot overflow, as Perl's numbers don't.
    hv: u64,
    tries: usize,
}

impl Iterator for PerlCandidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.tries >= PERL_REHASH_TRIES || self.buckets.is_empty() {
            return None;
        }
        let bucket = (self.hv % self.buckets.len() as u64) as usize;
        self.tries += 1;
        // `$hv += _hashfunc($tries . $real_key)`, with $tries already incremented.
        let salted = format!("{}{}", self.tries, self.key);
        self.hv += u64::from(perl_hash(salted.as_bytes()));
        Some(self.buckets[bucket])
    }
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    // session-core already links an MD5 and exposes it as hex; decoding 32
    // hex digits is cheaper than a second MD5 dependency in the workspace.
    let hex = session_core::principal::md5_hex(bytes);
    let mut out = [0u8; 16];
    for (i, chunk) in hex.as_bytes().chunks(2).take(16).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        out[i] = digit(chunk[0]) << 4 | digit(chunk[1]);
    }
    out
}

fn le_u32(d: &[u8; 16], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn ketama_hash(key: &[u8]) -> u32 {
    le_u32(&md5(key), 0)
}

fn ketama_points(servers: &[ServerSpec]) -> Vec<(u32, usize)> {
    let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
    let n = servers.len() as u64;
    let mut points = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let ks = u64::from(s.weight) * 40 * n / total.max(1);
        for k in 0..ks {
            let digest = md5(format!("{}-{}", s.addr(), k).as_bytes());
            for h in 0..4 {
                points.push((le_u32(&digest, h * 4), i));
            }
        }
    }
    points.sort_unstable();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<ServerSpec> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| ServerSpec::new("127.0.0.1", 11211 + i as u16).with_weight(w))
            .collect()
    }

    #[test]
    fn perl_hash_is_crc32_high_bits() {
        // crc32("foo") = 0x8c736521
        assert_eq!(crc32fast::hash(b"foo"), 0x8c73_6521);
        assert_eq!(perl_hash(b"foo"), 0x0c73);
    }

    #[test]
    fn perl_buckets_follow_weights() {
        let r = Router::new(&servers(&[1, 2, 1]), Routing::Perl);
        let Kind::Perl(b) = &r.kind else {
            panic!("not perl")
        };
        assert_eq!(b, &[0, 1, 1, 2]);
        for key in ["a", "b", "session:1", "zz"] {
            let want = b[(perl_hash(key.as_bytes()) % 4) as usize];
            assert_eq!(r.server_for(key), want);
            assert_eq!(r.candidates(key).count(), PERL_REHASH_TRIES);
        }
    }

    #[test]
    fn single_server_never_rehashes() {
        let r = Router::new(&servers(&[3]), Routing::Perl);
        assert_eq!(r.candidates("x").collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn ketama_spreads_and_is_stable() {
        let s = servers(&[1, 1, 1]);
        let r = Router::new(&s, Routing::Ketama);
        let Kind::Ketama(points) = &r.kind else {
            panic!("not ketama")
        };
        assert_eq!(points.len(), 3 * 160);
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            counts[r.server_for(&format!("key{i}"))] += 1;
        }
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
        // Removing the last server moves only the keys that were on it.
        let r2 = Router::new(&s[..2], Routing::Ketama);
        for i in 0..1000 {
            let k = format!("key{i}");
            let before = r.server_for(&k);
            if before != 2 {
                assert_eq!(r2.server_for(&k), before);
            } else {
                // The rehash order of the 3-server ring agrees with the 2-server ring.
                let next = r.candidates(&k).nth(1).unwrap();
                assert_eq!(r2.server_for(&k), next);
            }
        }
        let all: Vec<usize> = r.candidates("k").collect();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn md5_decodes() {
        assert_eq!(md5(b"")[0..4], [0xd4, 0x1d, 0x8c, 0xd9]);
    }
}

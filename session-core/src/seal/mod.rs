//! Sessions sealed at rest: an authenticated cipher around any codec, so
//! that whoever can read or write the store (memcached has no access
//! control of its own) can neither read a session's fields nor forge or
//! alter one.
//!
//! # What it protects, and what not
//!
//! A sealed value is AES-256-GCM (RustCrypto's `aes-gcm`, with AES-NI and
//! CLMUL when the CPU has them, chosen at run time) of the codec's bytes
//! under a key only our nodes hold. The **store key**
//! (`key_prefix` + session id) and the value's low 16 flag bits (format,
//! compression, seal) are associated data: a value copied under another id,
//! or relabelled as another codec, does not open. The high flag bits are
//! left out because they are markers tools may add (the replicator's).
//!
//! It does not hide the session *ids*: they are the store keys, visible to
//! anyone who can list the store (`lru_crawler metadump`), as are the
//! principal index records (which name ids) and reverse keys. Ids are
//! bearer credentials: keep the store reachable by our nodes only (TLS and
//! authentication to memcached). Sealing makes a stolen dump unreadable and
//! a planted or edited value useless; it cannot stop a replay of an old
//! value *of the same session* by someone who can write the store.
//!
//! # The stored form
//!
//! | bytes | content |
//! |---|---|
//! | 1 | format version, [`SEAL_VERSION`] (2) |
//! | 4 | key id, big-endian ([`SealKey::id`]) |
//! | 4 | n, the length of the codec's bytes, big-endian |
//! | 12 | nonce: 4 random bytes per process, then a 64-bit counter |
//! | n | the codec's bytes, encrypted |
//! | 16 | GCM tag |
//!
//! The first nine bytes are associated data too. The length tells a value
//! cut short ([`SealProblem::Truncated`]) from one altered
//! ([`SealProblem::Tampered`]) before any decryption. The flags are the
//! codec's with [`FLAGS_SEALED`] (`0x0008`, see [`codec`](crate::codec));
//! sealed values are never compressed. 37 bytes ([`OVERHEAD`]) are added
//! to every session.
//!
//! Version 1 ([`SEAL_VERSION_XCHACHA`]), written by earlier releases, has
//! the same shape with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`), a 24-byte nonce (16 random bytes per process, then
//! a 64-bit counter) and a Poly1305 tag, 49 bytes in all. Such values still
//! open under the same keys; new writes are version 2, and
//! [`SealConfig::is_current`] counts a version 1 value as not current, so
//! `sessionctl reseal` rewrites them. The switch was for speed: version 2
//! costs about 0.5 µs per seal or opening of a 10-field session on a CPU
//! with AES-NI, version 1 about 2 µs (Poly1305's fixed cost per message).
//!
//! # The nonce rule
//!
//! A GCM nonce must never repeat under one key: a repeat reveals the XOR of
//! two plaintexts and lets the authentication key be recovered. Each
//! process draws 96 random bits from the OS once, on its first seal: a
//! 32-bit prefix and the 64-bit counter's starting point. Every seal then
//! takes the next count (an atomic add, no system call), so **within a
//! process a nonce never repeats** (the counter would have to wrap past
//! 2^64 seals). Between processes (every node, every restart) nothing is
//! coordinated: a repeat needs two processes' ranges of counts to overlap
//! under the same prefix, which for P process starts and N seals in all
//! under one key has a probability of about P·N / 2^96 — 2^-32 at 2^16
//! starts and 2^48 seals. Rotate the key (a new current key, then
//! `sessionctl reseal`) long before a deployment nears such numbers. The
//! state lives in the process's memory: a process forked after its first
//! seal (without `exec`) would share its parent's counter, so fork before
//! sealing, or not at all.
//!
//! # Reading
//!
//! [`SealConfig::decode_stored`]: a sealed value opens under the key its id
//! names, or is an [`Error::Seal`] ([`SealProblem`]: truncated, unknown key,
//! tampered — wrong material and another store key are the same answer on
//! purpose). A plain session value is refused ([`SealProblem::Unsealed`])
//! unless [`SealConfig::accept_unsealed`] is set: the transition setting
//! while a deployment moves to sealing (set it on every node, deploy, run
//! `sessionctl reseal --accept-unsealed`, then drop it). `Sessions::load`
//! answers every seal error like an unknown id, so a client cannot tell a
//! forged session from a missing one; each is counted in
//! [`SessionStats`](crate::SessionStats) and logged once with the key id.
//!
//! # Perl nodes
//!
//! Perl nodes cannot open sealed values. [`Codec::Storable`] exists to share
//! sessions with them, so [`SessionsConfig::validate`](crate::SessionsConfig::validate)
//! refuses it together with a seal unless [`SealConfig::allow_storable`]
//! says the user means it (say, Storable inside the seal for tools that
//! only speak it, with no Perl reader left).

mod keyring;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};

pub use keyring::{KEY_LEN, Keyring, SealKey};

use crate::codec::{Codec, FLAGS_SEALED, is_raw, is_sealed, unpack};
pub use crate::error::SealProblem;
use crate::error::{Error, Result};
use crate::session::SessionData;

/// The format version byte new seals are written with (AES-256-GCM).
pub const SEAL_VERSION: u8 = 2;
/// The format version byte of values sealed with XChaCha20-Poly1305 by
/// earlier releases: still opened, no longer written.
pub const SEAL_VERSION_XCHACHA: u8 = 1;
/// Header bytes of the current version: version, key id, length, nonce.
const HEADER_LEN: usize = BOUND_HEADER + GCM_NONCE_LEN;
/// The header bytes bound as associated data: version, key id, length.
const BOUND_HEADER: usize = 1 + 4 + 4;
const GCM_NONCE_LEN: usize = 12;
const XCHACHA_NONCE_LEN: usize = 24;
/// Both versions' tags (GCM's and Poly1305's) are 16 bytes.
const TAG_LEN: usize = 16;
/// Bytes a seal adds to a value (the current version).
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The flag bits bound into the associated data (format and the
/// modifiers that describe the bytes; not the tools' markers).
const BOUND_FLAGS: u32 = 0x0000_FFFF;

/// The seal setting of a [`Sessions`](crate::Sessions)
/// ([`SessionsConfig::seal`](crate::SessionsConfig::seal)).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct SealConfig {
    /// The keys: the current one seals, all open.
    pub keyring: Keyring,
    /// Transition setting: plain (unsealed) session values are read
    /// instead of refused. Writes are sealed all the same. Off by default.
    pub accept_unsealed: bool,
    /// Allows [`Codec::Storable`] inside the seal, which Perl nodes cannot
    /// read (refused by `validate` otherwise). Off by default.
    pub allow_storable: bool,
}

impl SealConfig {
    /// Sealing with `keyring`, plain values refused, Storable refused.
    pub fn new(keyring: Keyring) -> Self {
        SealConfig {
            keyring,
            accept_unsealed: false,
            allow_storable: false,
        }
    }

    /// The flags a sealed value of `codec` is stored with.
    pub const fn flags(codec: Codec) -> u32 {
        codec.flags() | FLAGS_SEALED
    }

    /// Seals `plain` (a codec's bytes) under the current key, for storage
    /// under `store_key` with `flags` (which must carry [`FLAGS_SEALED`]).
    pub fn seal(&self, plain: &[u8], flags: u32, store_key: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(plain);
        self.seal_in_place(out, flags, store_key)
    }

    /// [`SealConfig::seal`] in `plain`'s own buffer: the bytes move up by
    /// the header and the tag is appended, so a codec's buffer with room
    /// to spare (the JSON encoder's is 512 bytes) is sealed without a
    /// second allocation or copy of the session.
    pub fn seal_owned(&self, mut plain: Vec<u8>, flags: u32, store_key: &str) -> Result<Vec<u8>> {
        let len = plain.len();
        plain.reserve(OVERHEAD);
        plain.resize(len + HEADER_LEN, 0);
        plain.copy_within(..len, HEADER_LEN);
        self.seal_in_place(plain, flags, store_key)
    }

    /// Seals `out`: [`HEADER_LEN`] bytes to overwrite, then the plaintext.
    fn seal_in_place(&self, mut out: Vec<u8>, flags: u32, store_key: &str) -> Result<Vec<u8>> {
        let key = self.keyring.current();
        let len = out
            .len()
            .checked_sub(HEADER_LEN)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| internal("value over 4 GiB"))?;
        let (header, body) = out.split_at_mut(HEADER_LEN);
        let (bound, nonce) = header.split_at_mut(BOUND_HEADER);
        bound[0] = SEAL_VERSION;
        bound[1..5].copy_from_slice(&key.id().to_be_bytes());
        bound[5..].copy_from_slice(&len.to_be_bytes());
        nonce.copy_from_slice(&next_nonce()?);
        let nonce = aes_gcm::Nonce::try_from(&*nonce).map_err(|_| internal("nonce length"))?;
        let tag = with_associated_data(bound, flags, store_key, |ad| {
            key.gcm().encrypt_inout_detached(&nonce, ad, body.into())
        })
        .map_err(|_| internal("the value is too long to seal"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a sealed value read under `store_key` with `flags`: the
    /// codec's bytes, or [`Error::Seal`]. Nothing of a value that does not
    /// verify is returned.
    pub fn open(&self, sealed: &[u8], flags: u32, store_key: &str) -> Result<Vec<u8>> {
        let fail = |key_id, problem| Error::Seal {
            key: store_key.to_owned(),
            key_id,
            problem,
        };
        let Some(&version) = sealed.first() else {
            return Err(fail(None, SealProblem::Truncated));
        };
        let nonce_len = match version {
            SEAL_VERSION => GCM_NONCE_LEN,
            SEAL_VERSION_XCHACHA => XCHACHA_NONCE_LEN,
            other => return Err(fail(None, SealProblem::UnknownVersion(other))),
        };
        let header_len = BOUND_HEADER + nonce_len;
        let key_id = key_id_of(sealed);
        let declared = sealed
            .get(5..BOUND_HEADER)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| usize::try_from(u32::from_be_bytes(b)).unwrap_or(usize::MAX));
        let Some(declared) = declared else {
            return Err(fail(key_id, SealProblem::Truncated));
        };
        let expected = (header_len + TAG_LEN).saturating_add(declared);
        match sealed.len().cmp(&expected) {
            std::cmp::Ordering::Less => return Err(fail(key_id, SealProblem::Truncated)),
            std::cmp::Ordering::Greater => return Err(fail(key_id, SealProblem::Tampered)),
            std::cmp::Ordering::Equal => {}
        }
        let Some(key) = key_id.and_then(|id| self.keyring.get(id)) else {
            return Err(fail(key_id, SealProblem::UnknownKey));
        };
        let (header, rest) = sealed.split_at(header_len);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let (bound, nonce) = header.split_at(BOUND_HEADER);
        let mut plain = body.to_vec();
        let opened = with_associated_data(bound, flags, store_key, |ad| {
            let verified = if version == SEAL_VERSION {
                key.gcm().decrypt_inout_detached(
                    &aes_gcm::Nonce::try_from(nonce).map_err(|_| internal("nonce length"))?,
                    ad,
                    plain.as_mut_slice().into(),
                    &aes_gcm::Tag::try_from(tag).map_err(|_| internal("tag length"))?,
                )
            } else {
                XChaCha20Poly1305::new(&(*key.material()).into()).decrypt_inout_detached(
                    &chacha20poly1305::XNonce::try_from(nonce)
                        .map_err(|_| internal("nonce length"))?,
                    ad,
                    plain.as_mut_slice().into(),
                    &chacha20poly1305::Tag::try_from(tag).map_err(|_| internal("tag length"))?,
                )
            };
            verified.map_err(|_| fail(key_id, SealProblem::Tampered))
        });
        opened?;
        Ok(plain)
    }

    /// Decodes a stored session value under this setting: a sealed one is
    /// opened first; a plain one is refused unless `accept_unsealed`.
    /// Raw values (no format bits) are [`Error::NotASession`] as always.
    pub fn decode_stored(&self, bytes: &[u8], flags: u32, key: &str) -> Result<SessionData> {
        if !is_sealed(flags) {
            self.check_unsealed(flags, key)?;
            return Codec::decode_stored(bytes, flags, key);
        }
        let codec = Codec::from_flags(flags, key)?;
        let plain = self.open(bytes, flags, key)?;
        codec.decode(&unpack(&plain, flags)?, key)
    }

    /// [`SealConfig::decode_stored`]'s checks without the decode: the codec
    /// and its plain bytes, opened and inflated.
    pub(crate) fn plain_stored(
        &self,
        bytes: Vec<u8>,
        flags: u32,
        key: &str,
    ) -> Result<(Codec, Vec<u8>)> {
        if !is_sealed(flags) {
            self.check_unsealed(flags, key)?;
            return Codec::plain_stored(bytes, flags, key);
        }
        let codec = Codec::from_flags(flags, key)?;
        let plain = self.open(&bytes, flags, key)?;
        Ok((codec, crate::codec::unpack_owned(plain, flags)?))
    }

    /// An unsealed session is refused unless `accept_unsealed` (a raw
    /// value is no session either way; the codec says so).
    fn check_unsealed(&self, flags: u32, key: &str) -> Result<()> {
        if !self.accept_unsealed && !is_raw(flags) {
            return Err(Error::Seal {
                key: key.to_owned(),
                key_id: None,
                problem: SealProblem::Unsealed,
            });
        }
        Ok(())
    }

    /// Whether a stored value is sealed under the current key, in the
    /// current format version, already (what `reseal` skips). Does not
    /// verify it.
    pub fn is_current(&self, bytes: &[u8], flags: u32) -> bool {
        is_sealed(flags)
            && bytes.first() == Some(&SEAL_VERSION)
            && key_id_of(bytes) == Some(self.keyring.current().id())
    }
}

/// The key id a sealed value names, if it is long enough to name one.
pub fn key_id_of(sealed: &[u8]) -> Option<u32> {
    let id: [u8; 4] = sealed.get(1..5)?.try_into().ok()?;
    Some(u32::from_be_bytes(id))
}

/// The length of the associated data: version, key id and length (the
/// bound header), the bound flag bits, then the store key.
const fn associated_len(bound_header: &[u8], store_key: &str) -> usize {
    bound_header.len() + 2 + store_key.len()
}

/// Room for the associated data on the stack: store keys are a prefix and
/// a session id, well under this; a longer one takes the heap.
const INLINE_AD: usize = 192;

/// Calls `f` with the associated data (see [`associated_data`]), built on
/// the stack when it fits [`INLINE_AD`]: it is made for every seal and
/// every opening, and a heap allocation was a tenth of the seal's own
/// work besides the cipher.
fn with_associated_data<T>(
    bound_header: &[u8],
    flags: u32,
    store_key: &str,
    f: impl FnOnce(&[u8]) -> T,
) -> T {
    let len = associated_len(bound_header, store_key);
    if len <= INLINE_AD {
        let mut buf = [0u8; INLINE_AD];
        write_associated_data(&mut buf[..len], bound_header, flags, store_key);
        f(&buf[..len])
    } else {
        f(&associated_data(bound_header, flags, store_key))
    }
}

/// The associated data on the heap: version, key id and length, the bound
/// flag bits, then the store key.
fn associated_data(bound_header: &[u8], flags: u32, store_key: &str) -> Vec<u8> {
    let mut ad = vec![0u8; associated_len(bound_header, store_key)];
    write_associated_data(&mut ad, bound_header, flags, store_key);
    ad
}

/// Fills `out` (exactly [`associated_len`] bytes) with the associated data.
fn write_associated_data(out: &mut [u8], bound_header: &[u8], flags: u32, store_key: &str) {
    let (header, rest) = out.split_at_mut(bound_header.len());
    header.copy_from_slice(bound_header);
    let (bound, key) = rest.split_at_mut(2);
    let flags = u16::try_from(flags & BOUND_FLAGS).unwrap_or(u16::MAX);
    bound.copy_from_slice(&flags.to_be_bytes());
    key.copy_from_slice(store_key.as_bytes());
}

/// This process's nonce state: the random prefix and the counter, whose
/// starting point is random too (see "The nonce rule" in the module docs).
struct NonceState {
    prefix: [u8; 4],
    counter: AtomicU64,
}

/// A fresh nonce: this process's random prefix and the next count.
fn next_nonce() -> Result<[u8; GCM_NONCE_LEN]> {
    static STATE: OnceLock<NonceState> = OnceLock::new();
    let state = match STATE.get() {
        Some(s) => s,
        None => {
            let mut fresh = [0u8; 12];
            getrandom::fill(&mut fresh)
                .map_err(|e| Error::InvalidConfig(format!("OS random generator failed: {e}")))?;
            let (prefix, start) = fresh.split_at(4);
            let prefix = <[u8; 4]>::try_from(prefix).map_err(|_| internal("nonce prefix"))?;
            let start = <[u8; 8]>::try_from(start).map_err(|_| internal("nonce counter"))?;
            // A racing first call may win; either state is random, and
            // every seal of the process then counts from the winner's.
            STATE.get_or_init(|| NonceState {
                prefix,
                counter: AtomicU64::new(u64::from_be_bytes(start)),
            })
        }
    };
    let mut nonce = [0u8; GCM_NONCE_LEN];
    nonce[..4].copy_from_slice(&state.prefix);
    // Wraps at 2^64 seals of one process, which no process reaches.
    nonce[4..].copy_from_slice(&state.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    Ok(nonce)
}

/// A failure that sizes checked above rule out; typed all the same.
fn internal(what: &str) -> Error {
    Error::undecodable("seal", format!("internal size error: {what}"))
}

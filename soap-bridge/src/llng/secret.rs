//! The `__secret` of LemonLDAP::NG's REST session client: the current time,
//! encrypted under the LL::NG `key` by `Lemonldap::NG::Common::Crypto`.
//! A valid one lets the caller create a session under an id of its own
//! choosing (LL::NG's `force`) and list or search every session (`all=1`).
//!
//! The format (docs/llng.md has the whole protocol):
//!
//! - cipher key: SHA-256 of the LL::NG `key` string (32 bytes, AES-256);
//! - plaintext: `SHA-256(data) || data`, `data` being the decimal Unix time
//!   zero-padded to a multiple of 16 bytes (no padding when it already is);
//! - token: base64 of `iv || AES-256-CBC(plaintext)`, the IV 16 random bytes.
//!
//! A token is accepted when it decrypts, its digest matches (compared in
//! constant time), and its time `t` is within the tolerance:
//! `now - tolerance < t <= now + tolerance`, LL::NG's own test
//! (`restClockTolerance`, 15 seconds by default; `[llng]
//! clock_tolerance_secs` here).
//!
//! A rejection is a [`Rejection`], a verdict the REST surface turns into a
//! 403 with its [`Rejection::reason`]; it never reaches the crate's
//! [`crate::Error`].

use std::time::{SystemTime, UNIX_EPOCH};

use aes::Aes256;
use base64::Engine as _;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::NoPadding};
use sha2::{Digest, Sha256};

use crate::credentials::ct_eq;

/// The length of the IV in front of the ciphertext.
const IV_LEN: usize = 16;
/// The length of the digest in front of the data.
const MAC_LEN: usize = 32;
/// A token longer than this (base64 text) is refused before decoding: a
/// timestamp needs 88 characters, and the body limit is far away.
const MAX_TOKEN_LEN: usize = 1024;

/// Why a `__secret` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Not base64, or not the length of an IV and whole blocks.
    Malformed,
    /// The digest does not match: another key, or a damaged token.
    BadKey,
    /// It decrypted, but not to a decimal Unix time.
    NotATime,
    /// The time is outside the clock tolerance (expired, or from the
    /// future).
    OutOfTolerance,
}

impl Rejection {
    /// The message a refusal carries (no detail on the key or the clock
    /// beyond the category).
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Malformed => "__secret is not a LemonLDAP::NG ciphered token",
            Rejection::BadKey => "__secret was not made with this server's key",
            Rejection::NotATime => "__secret does not hold a timestamp",
            Rejection::OutOfTolerance => {
                "__secret has expired (or the clocks differ beyond the tolerance)"
            }
        }
    }
}

/// The check of `__secret` tokens under one LL::NG key.
#[derive(Clone)]
pub struct SecretCheck {
    /// SHA-256 of the configured key: the AES-256 key.
    cipher_key: [u8; 32],
    /// Accepted clock difference, in seconds.
    tolerance: u64,
}

impl std::fmt::Debug for SecretCheck {
    // The key stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCheck")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl SecretCheck {
    /// A check under LL::NG's `key` (the string of its configuration),
    /// accepting timestamps within `tolerance_secs` of this host's clock.
    pub fn new(key: &str, tolerance_secs: u64) -> Self {
        let mut cipher_key = [0u8; 32];
        cipher_key.copy_from_slice(&Sha256::digest(key.as_bytes()));
        SecretCheck {
            cipher_key,
            tolerance: tolerance_secs,
        }
    }

    /// The clock tolerance, in seconds.
    pub fn tolerance(&self) -> u64 {
        self.tolerance
    }

    /// Checks `token` against the system clock.
    pub fn verify(&self, token: &str) -> Result<(), Rejection> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now)
    }

    /// Checks `token` as if the time were `now` (Unix seconds).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<(), Rejection> {
        let t = self.decrypt_time(token)?;
        let tol = self.tolerance;
        // LL::NG: `$t <= time + tol and $t > time - tol`.
        if t <= now.saturating_add(tol) && t > now.saturating_sub(tol) {
            Ok(())
        } else {
            Err(Rejection::OutOfTolerance)
        }
    }

    /// The timestamp a token holds, if it was made under this key.
    fn decrypt_time(&self, token: &str) -> Result<u64, Rejection> {
        let plain = self.decrypt(token)?;
        let digits = std::str::from_utf8(&plain).map_err(|_| Rejection::NotATime)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::NotATime);
        }
        digits.parse().map_err(|_| Rejection::NotATime)
    }

    /// `Lemonldap::NG::Common::Crypto::decrypt`: the data of a token, its
    /// zero padding removed.
    fn decrypt(&self, token: &str) -> Result<Vec<u8>, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::Malformed);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(unescape(token))
            .map_err(|_| Rejection::Malformed)?;
        let (iv, ciphertext) = raw.split_at_checked(IV_LEN).ok_or(Rejection::Malformed)?;
        if ciphertext.len() < MAC_LEN || ciphertext.len() % 16 != 0 {
            return Err(Rejection::Malformed);
        }
        let mut buf = ciphertext.to_vec();
        let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(&self.cipher_key, iv)
            .map_err(|_| Rejection::Malformed)?;
        let plain = decryptor
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| Rejection::Malformed)?;
        let (mac, data) = plain.split_at(MAC_LEN);
        if !ct_eq(mac, &Sha256::digest(data)) {
            return Err(Rejection::BadKey);
        }
        let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Ok(data[..end].to_vec())
    }
}

/// Undoes the URL escapes LL::NG's decrypt undoes (`%2B`, `%2F`, `%3D`,
/// `%0A`, any case) and drops whitespace, as Perl's lenient base64 decoder
/// does.
fn unescape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut rest = token;
    while let Some(c) = rest.chars().next() {
        let escaped = rest
            .get(..3)
            .and_then(|e| match e.to_ascii_uppercase().as_str() {
                "%2B" => Some('+'),
                "%2F" => Some('/'),
                "%3D" => Some('='),
                "%0A" => Some('\n'),
                _ => None,
            });
        match escaped {
            Some(ch) => {
                if !ch.is_ascii_whitespace() {
                    out.push(ch);
                }
                rest = &rest[3..];
            }
            None => {
                if !c.is_ascii_whitespace() {
                    out.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by the real Perl module (Debian's liblemonldap-ng-common-perl
    // 2.16): `Lemonldap::NG::Common::Crypto->new("llng-test-key")
    // ->encrypt(1796311615)`.
    const KEY: &str = "llng-test-key";
    const T: u64 = 1_796_311_615;
    const TOKEN: &str =
        "JTKkxU2YNDtGeiYREd3k9KVTYbbEmL3hP64zhC76uKVnG/SGdBazPdrptr/6kHSfx1ix+HNxtDKgd8Czvf8YRg==";
    // Same key, `->encrypt("hello")`: decrypts, but is no time.
    const HELLO: &str =
        "iULP5iKXePwi/vU4KBVdcXInDyUljDNsRe2rx2DtEkv8Zrb3TwEsSVVt0HwDzpgupGgKMiWdiG4N7/n0u7Z7Ew==";
    // Same key, `->encrypt("0123456789abcdef")`: 16 bytes, no padding.
    const SIXTEEN: &str =
        "sYOVIwW3JTuCidLspmOHA4FuBJiCLA3i9P53D8Av+SwolvAwMOFUtDHinPhIQgVEVrpomy9BT853a11f6wbrgQ==";

    #[test]
    fn perl_token_within_tolerance() {
        let check = SecretCheck::new(KEY, 15);
        assert_eq!(check.verify_at(TOKEN, T), Ok(()));
        assert_eq!(check.verify_at(TOKEN, T + 14), Ok(()));
        assert_eq!(check.verify_at(TOKEN, T - 15), Ok(()));
        assert_eq!(check.decrypt(SIXTEEN), Ok(b"0123456789abcdef".to_vec()));
    }

    #[test]
    fn perl_token_outside_tolerance() {
        let check = SecretCheck::new(KEY, 15);
        // LL::NG's bounds: `t > now - tol` (strict), `t <= now + tol`.
        assert_eq!(
            check.verify_at(TOKEN, T + 15),
            Err(Rejection::OutOfTolerance)
        );
        assert_eq!(
            check.verify_at(TOKEN, T - 16),
            Err(Rejection::OutOfTolerance)
        );
        assert_eq!(
            check.verify_at(TOKEN, T + 3600),
            Err(Rejection::OutOfTolerance)
        );
        assert_eq!(
            SecretCheck::new(KEY, 0).verify_at(TOKEN, T),
            Err(Rejection::OutOfTolerance)
        );
        assert_eq!(
            SecretCheck::new(KEY, 3600).verify_at(TOKEN, T + 3599),
            Ok(())
        );
    }

    #[test]
    fn other_key_or_damage_is_bad_key() {
        assert_eq!(
            SecretCheck::new("another key", 15).verify_at(TOKEN, T),
            Err(Rejection::BadKey)
        );
        // One flipped bit in the last block changes its plaintext.
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(TOKEN)
            .unwrap_or_default();
        if let Some(b) = raw.last_mut() {
            *b ^= 1;
        }
        let damaged = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(
            SecretCheck::new(KEY, 15).verify_at(&damaged, T),
            Err(Rejection::BadKey)
        );
    }

    #[test]
    fn not_a_time() {
        assert_eq!(
            SecretCheck::new(KEY, 15).verify_at(HELLO, T),
            Err(Rejection::NotATime)
        );
    }

    #[test]
    fn malformed_tokens() {
        let check = SecretCheck::new(KEY, 15);
        for token in ["", "not base64!", "AAAA", &"A".repeat(2000), &TOKEN[..40]] {
            assert_eq!(
                check.verify_at(token, T),
                Err(Rejection::Malformed),
                "{token}"
            );
        }
        // IV and one block: too short for the digest.
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(check.verify_at(&short, T), Err(Rejection::Malformed));
    }

    #[test]
    fn url_escapes_and_newlines_are_undone() {
        let check = SecretCheck::new(KEY, 15);
        let escaped = TOKEN
            .replace('+', "%2b")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(check.verify_at(&escaped, T), Ok(()));
        let wrapped = format!("{}\n{}", &TOKEN[..40], &TOKEN[40..]);
        assert_eq!(check.verify_at(&wrapped, T), Ok(()));
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", SecretCheck::new(KEY, 15));
        assert!(!shown.contains("cipher_key"), "{shown}");
    }
}

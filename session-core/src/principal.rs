//! The principal (reverse) index of the original: `md5_hex(user) -> id`.
//!
//! With `principal => 'uid'`, every save of the original writes the raw
//! string key `md5_hex($session{uid})` (flags 0) holding the session id, and
//! stores the same digest in the session as `uid_MD5`. We write exactly that,
//! so Perl tools that look sessions up by user keep working, with two fixes:
//! no key is written when the field is absent (the original wrote
//! `md5_hex(undef)`, the digest of the empty string, for every such
//! session), and a lookup checks that the session it finds still belongs to
//! that user (the index holds one id per user, and ids go stale).
//!
//! The index of *every* session of a user ([`crate::config::PrincipalIndex`])
//! lives in `crate::index`; it can be keyed by [`hmac_sha256_hex`] instead of
//! MD5, so nobody can compute a user's keys from the user name.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use sha2::Sha256;

/// Lowercase hex MD5 of `bytes`, as Perl's `Digest::MD5::md5_hex`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// [`md5_hex`] on the stack: the 32 lowercase hex digits as bytes (a
/// save compares the stamp it would write with the one the session holds,
/// and only allocates when they differ).
pub(crate) fn md5_hex_bytes(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 16 digest bytes always fill 32 hex digits: this cannot fail.
    let _ = hex::encode_to_slice(Md5::digest(bytes), &mut out);
    out
}

/// Lowercase hex HMAC-SHA256 of `bytes` under `secret` (64 hex digits).
pub fn hmac_sha256_hex(secret: &[u8], bytes: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(bytes);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => hex::encode(Sha256::digest([secret, bytes].concat())),
    }
}

/// The name of the field holding the digest: `<principal>_MD5`.
pub(crate) fn digest_field(principal: &str) -> String {
    format!("{principal}_MD5")
}

/// The string Perl would hash for a field value, for the values Perl
/// stringifies meaningfully (strings and numbers). Other values (maps,
/// lists, booleans, null) get no reverse key.
///
/// Integers print as Perl prints them. A float with no fractional part
/// below 1e15 prints as an integer, as Perl's `%.15g` does (`1.0` is `"1"`);
/// other floats use Rust's shortest round-trip form, which can differ from
/// Perl's 15 significant digits — user ids are strings or integers in
/// practice, and a float id gets a reverse key that only we can find.
pub(crate) fn principal_string(value: &Value) -> Option<String> {
    principal_str(value).map(Cow::into_owned)
}

/// [`principal_string`], borrowing a string value instead of copying it
/// (every save with a principal reads it).
pub(crate) fn principal_str(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                Some(Cow::Owned(format!("{f:.0}")))
            }
            _ => Some(Cow::Owned(n.to_string())),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_perl() {
        // perl -MDigest::MD5=md5_hex -e 'print md5_hex("jdoe")'
        assert_eq!(md5_hex(b"jdoe"), "a31405d272b94e5d12e9a52a665d3bfe");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(&md5_hex_bytes(b"jdoe"), md5_hex(b"jdoe").as_bytes());
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_strings_and_numbers_are_principals() {
        assert_eq!(principal_string(&Value::from("x")).as_deref(), Some("x"));
        assert_eq!(principal_string(&Value::from(42)).as_deref(), Some("42"));
        assert_eq!(principal_string(&Value::from(-7)).as_deref(), Some("-7"));
        assert_eq!(principal_string(&Value::from(1.0)).as_deref(), Some("1"));
        assert_eq!(principal_string(&Value::from(2.5)).as_deref(), Some("2.5"));
        assert_eq!(principal_string(&Value::Null), None);
        assert_eq!(principal_string(&Value::Bool(true)), None);
    }
}

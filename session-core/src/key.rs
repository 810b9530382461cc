//! The key rules shared by every store.
//!
//! They are memcached's (the strictest backend): a key is 1 to 250 bytes with
//! no whitespace and no control characters. Checking them in one place, before
//! any I/O, means a bad key is the same typed error on every backend instead of
//! a protocol error on one and silent success on another.

use crate::error::{Error, Result};

/// The longest key, in bytes, that any store accepts (memcached's limit).
pub const MAX_KEY_LEN: usize = 250;

/// Suffix of the companion key of a local copy (the `Validate` local policy
/// keeps `<key>:lv` beside each copy). It lives here, with the key rules,
/// because the configuration checks that the longest key it implies fits.
pub(crate) const COMPANION_SUFFIX: &str = ":lv";

/// Checks `key` against the rules above.
///
/// ```
/// use session_core::key::validate_key;
/// assert!(validate_key("session:abc").is_ok());
/// assert!(validate_key("has space").is_err());
/// assert!(validate_key(&"k".repeat(251)).is_err());
/// ```
pub fn validate_key(key: &str) -> Result<()> {
    // Every store call checks its key: the usual key (printable ASCII, no
    // space) passes in one cheap pass over its bytes, before the checks
    // that must decode Unicode.
    if !key.is_empty() && key.len() <= MAX_KEY_LEN && every_byte(key, |b| b.is_ascii_graphic()) {
        return Ok(());
    }
    let reason = if key.is_empty() {
        "empty"
    } else if key.len() > MAX_KEY_LEN {
        "longer than 250 bytes"
    } else if key.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else if key.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: printable(key),
        reason,
    })
}

/// True when `test` holds for every byte of `s`. Unlike `Iterator::all`
/// it does not stop at the first failure, which lets the compiler test 16
/// or 32 bytes at a time: for the short strings checked on every call (keys,
/// ids), a fraction of a byte-by-byte loop's cost.
#[inline]
pub(crate) fn every_byte(s: &str, test: impl Fn(u8) -> bool) -> bool {
    s.bytes().fold(true, |ok, b| ok & test(b))
}

/// A bounded, printable copy of `s` for error messages.
pub(crate) fn printable(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"k".repeat(250)).is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(251)).is_err());
        for bad in [
            "a b", "a\tb", "a\nb", "a\rb", "a\u{0}b", "a\u{7f}b", "a\u{a0}b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_key("sessión:ü").is_ok());
    }
}

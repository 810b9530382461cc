//! Session ids: random hex from the operating system's generator.
//!
//! The original built ids as `md5_hex(md5_hex(time . {} . rand . $$))`, which
//! an attacker who knows roughly when a session was made can guess. Ours are
//! `length` hex digits of OS randomness (128 bits for the default 32), the
//! same shape Perl's `Generate::MD5` checks (`^[a-fA-F0-9]+$`), so Perl nodes
//! accept our ids and we accept theirs.

use std::fmt;

use crate::error::{Error, Result};
use crate::key::{every_byte, printable};

/// The shortest id length that may be generated or accepted (64 bits).
pub const MIN_ID_LENGTH: usize = 16;
/// The longest id length that may be generated or accepted.
pub const MAX_ID_LENGTH: usize = 128;
/// The default id length: 32 hex digits, 128 bits.
pub const DEFAULT_ID_LENGTH: usize = 32;

/// A validated session id: hex digits, between [`MIN_ID_LENGTH`] and
/// [`MAX_ID_LENGTH`] long.
///
/// Generated ids are lowercase. Parsed ids keep their case, because the id
/// is the memcached key verbatim and Perl's validator accepts upper case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id of `length` lowercase hex digits from OS randomness.
    ///
    /// Errors with [`Error::InvalidConfig`] when `length` is outside
    /// `MIN_ID_LENGTH..=MAX_ID_LENGTH`, or when the OS generator fails.
    pub fn generate(length: usize) -> Result<Self> {
        check_length_config(length)?;
        let mut bytes = [0u8; MAX_ID_LENGTH / 2];
        let needed = length.div_ceil(2);
        let buf = &mut bytes[..needed];
        getrandom::fill(buf)
            .map_err(|e| Error::InvalidConfig(format!("OS random generator failed: {e}")))?;
        let mut id = hex::encode(buf);
        id.truncate(length);
        Ok(SessionId(id))
    }

    /// Parses an id of any accepted length (see [`SessionId::parse_with_length`]).
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_with_length(s, MIN_ID_LENGTH..=MAX_ID_LENGTH)
    }

    /// Parses an id: only hex digits, with a length in `accepted`.
    /// Anything else is [`Error::InvalidSessionId`], before any I/O.
    pub fn parse_with_length(s: &str, accepted: std::ops::RangeInclusive<usize>) -> Result<Self> {
        let reason = if s.is_empty() {
            "empty"
        } else if !every_byte(s, |b| b.is_ascii_hexdigit()) {
            "not hexadecimal"
        } else if !accepted.contains(&s.len()) {
            "length not accepted"
        } else {
            return Ok(SessionId(s.to_owned()));
        };
        Err(Error::InvalidSessionId {
            id: printable(s),
            reason,
        })
    }

    /// The id as a string (and as the store key, before any prefix).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a configured id length.
pub(crate) fn check_length_config(length: usize) -> Result<()> {
    if (MIN_ID_LENGTH..=MAX_ID_LENGTH).contains(&length) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "id length {length} is outside {MIN_ID_LENGTH}..={MAX_ID_LENGTH}"
        )))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SessionId::parse(s)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn generated_ids_are_lowercase_hex_of_the_asked_length() {
        for len in [16, 17, 32, 64, 128] {
            let id = SessionId::generate(len).unwrap();
            assert_eq!(id.as_str().len(), len);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        }
        assert_ne!(
            SessionId::generate(32).unwrap(),
            SessionId::generate(32).unwrap()
        );
    }

    #[test]
    fn bad_lengths_are_config_errors() {
        assert!(matches!(
            SessionId::generate(15),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            SessionId::generate(129),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn parse_rejects_the_obvious() {
        for bad in [
            "",
            "not-hex!",
            "0123456789abcdeg0123456789abcdef",
            "abc",
            "../etc/passwd",
        ] {
            assert!(
                matches!(SessionId::parse(bad), Err(Error::InvalidSessionId { .. })),
                "{bad}"
            );
        }
        assert!(SessionId::parse("0123456789ABCDEF0123456789abcdef").is_ok());
        assert!(SessionId::parse_with_length("0123456789abcdef", 32..=32).is_err());
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_hex_of_accepted_length(s in "\\PC{0,140}") {
            let ok = (MIN_ID_LENGTH..=MAX_ID_LENGTH).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_hexdigit());
            prop_assert_eq!(SessionId::parse(&s).is_ok(), ok);
        }

        #[test]
        fn hex_ids_round_trip(s in "[0-9a-fA-F]{16,128}") {
            let id = SessionId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }
}

//! tower-sessions' 128-bit [`Id`] and our 32-hex [`SessionId`]: the same 16
//! bytes, both ways.
//!
//! tower-sessions writes an `Id(i128)` into its cookie as the URL-safe
//! base64 (no padding) of the integer's 16 little-endian bytes. The store
//! key is those same 16 bytes in lowercase hex, in the same order, so an
//! operator can go from a cookie to a memcached key with `base64 -d | xxd`:
//!
//! | form | value |
//! |---|---|
//! | cookie value | `AAECAwQFBgcICQoLDA0ODw` |
//! | the 16 bytes | `00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f` |
//! | store key / [`SessionId`] | `000102030405060708090a0b0c0d0e0f` |
//! | `Id(i128)` | `0x0f0e0d0c0b0a09080706050403020100` |
//!
//! Every `i128` maps to exactly one 32-hex id and back; a hex id of another
//! length, or one with upper-case digits (Perl accepts them), has no
//! tower-sessions form and is refused with [`Error::IdShape`].

use session_core::SessionId;
use tower_sessions_core::session::Id;

use crate::error::Error;

/// The store id of a tower-sessions id: the hex of its 16 little-endian
/// bytes. (Always a valid id; the `Result` only carries the parser's.)
pub fn session_id_of(id: Id) -> Result<SessionId, Error> {
    Ok(SessionId::parse(&hex::encode(id.0.to_le_bytes()))?)
}

/// The tower-sessions id of a store id; [`Error::IdShape`] unless it is 32
/// lowercase hex digits.
pub fn id_of(id: &SessionId) -> Result<Id, Error> {
    let text = id.as_str();
    let shape = || Error::IdShape {
        id: text.chars().take(80).collect(),
    };
    if text.len() != 32 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(shape());
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| shape())?;
    Ok(Id(i128::from_le_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_holds() {
        let id: Id = "AAECAwQFBgcICQoLDA0ODw".parse().unwrap();
        assert_eq!(id.0, 0x0f0e0d0c0b0a09080706050403020100);
        let sid = session_id_of(id).unwrap();
        assert_eq!(sid.as_str(), "000102030405060708090a0b0c0d0e0f");
        assert_eq!(id_of(&sid).unwrap(), id);
    }

    #[test]
    fn every_bit_survives_both_ways() {
        for n in [0i128, -1, 1, i128::MIN, i128::MAX, 0x1234_5678_9abc_def0] {
            let id = Id(n);
            let sid = session_id_of(id).unwrap();
            assert_eq!(sid.as_str().len(), 32);
            assert_eq!(id_of(&sid).unwrap(), id, "{n:#x}");
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [
            "0123456789abcdef",
            "000102030405060708090A0B0C0D0E0F",
            "000102030405060708090a0b0c0d0e0f00",
        ] {
            let sid = SessionId::parse(bad).unwrap();
            assert!(matches!(id_of(&sid), Err(Error::IdShape { .. })), "{bad}");
        }
    }
}

//! Perl Storable (`nfreeze`) codec: the format the Perl original stores
//! sessions in, so a mixed Perl/Rust cluster shares every session.
//!
//! Apache::Session::Memorycached hands its session hash to
//! Cache::Memcached, which stores a reference as `Storable::nfreeze` with
//! flags bit 0 set (`F_STORABLE`, flags 1). [`decode`] reads what Storable
//! 2.x and 3.x write in network order, any header minor version;
//! [`encode_map`] writes what Perl's `thaw` turns back into the same data.
//! Cache::Memcached gzips a value (flags bit 1, value 2) when a
//! `compress_threshold` is configured; [`crate::codec::unpack`] undoes
//! that before decoding, for every format.
//!
//! **Perl nodes cannot read sealed sessions** ([`crate::seal`]): a sealed
//! value is ciphertext under keys only our nodes hold, so sharing sessions
//! with Perl and sealing them exclude each other.
//! [`SessionsConfig::validate`](crate::SessionsConfig::validate) refuses
//! [`Codec::Storable`](crate::Codec::Storable) together with a seal unless
//! [`SealConfig::allow_storable`](crate::SealConfig::allow_storable) says
//! the user means it.
//!
//! # The image
//!
//! Two header bytes, `(2 << 1) | 1` (major 2, network order) and the
//! minor (Storable 3.x writes 11), then one value. The value of a
//! reference is written as its target, so a session image is the header
//! followed by `SX_HASH`, the entry count and, per entry, the value, a
//! 4-byte key length and the key. All lengths are big-endian 32-bit.
//!
//! # Mapping Perl values to JSON values
//!
//! A Perl string is a sequence of characters. Without the UTF-8 flag its
//! characters are its bytes, U+0000..=U+00FF (Perl compares, `eq`s and
//! prints them as Latin-1 text); with the flag, its bytes are the UTF-8
//! of any characters. We map characters to characters, both ways, so
//! every string stays `eq` in Perl after a round trip through Rust:
//!
//! | Perl value (Storable opcode)                        | JSON value (read)                    | written back as                                  |
//! |-----------------------------------------------------|--------------------------------------|--------------------------------------------------|
//! | byte string (`SX_SCALAR`, `SX_LSCALAR`)             | string, each byte as U+0000..=U+00FF | byte string (every char <= U+00FF)               |
//! | UTF-8 string (`SX_UTF8STR`, `SX_LUTF8STR`)          | the same characters                  | byte string if every char <= U+00FF, else UTF-8  |
//! | hash key, plain or `SHV_K_WASUTF8`                  | key, bytes as Latin-1                | plain key (`SX_HASH`)                            |
//! | hash key with `SHV_K_UTF8` (`SX_FLAG_HASH`)         | key, UTF-8 decoded                   | `SX_FLAG_HASH`, `SHV_K_UTF8` on keys beyond U+00FF |
//! | integer -128..=127 (`SX_BYTE`), 32-bit (`SX_NETINT`) | integer                              | `SX_BYTE` / `SX_NETINT`                          |
//! | integer beyond 32 bits, double                      | nfreeze writes them as strings: string | —                                              |
//! | JSON integer beyond 32 bits                         | integer (`SX_INTEGER`, see below)    | `SX_INTEGER`, 8 bytes little-endian              |
//! | JSON float                                          | float (`SX_DOUBLE`, see below)       | `SX_DOUBLE`, 8 bytes little-endian               |
//! | JSON integer above `i64::MAX`                        | —                                    | its decimal string, as Perl writes a big UV      |
//! | `undef` (`SX_UNDEF`, `SX_SV_UNDEF`, `SX_SVUNDEF_ELEM`) | null                              | `SX_UNDEF`                                       |
//! | `PL_sv_yes` / `PL_sv_no`, 5.36 booleans             | `true` / `false`                     | integer 1 / 0 (Storable 3.26 has no booleans)    |
//! | reference to an array / hash (`SX_REF`)             | list / map                           | `SX_REF` + `SX_ARRAY` / `SX_HASH`                |
//!
//! Consequences worth knowing:
//!
//! - A numeric-looking string stays a string ("42" from Perl is the JSON
//!   string "42"): Storable writes a scalar's string form whenever it has
//!   one, so a string is what Perl held.
//! - A Perl program that stored UTF-8 *bytes* without decoding them (the
//!   CGI habit) holds two characters for "é"; Rust sees those two
//!   characters ("Ã©"), exactly as Perl's `length` and `eq` do, and writes
//!   the same two bytes back.
//! - Perl's `nfreeze` never writes `SX_INTEGER` / `SX_DOUBLE` (it writes
//!   them only in native-order `freeze` images). We write them so wide
//!   integers and floats keep their type, in the little-endian layout that
//!   every 64-bit little-endian Perl (x86-64, arm64) reads; a big-endian
//!   Perl would misread them. Images from Perl with wide numbers carry them
//!   as strings, which we keep as strings (see the first point).
//!
//! # What is refused
//!
//! Anything JSON cannot hold without losing what it is — blessed objects
//! and `STORABLE_freeze` hooks, tied and magic values (v-strings), code
//! references, regular expressions, weak and overloaded references,
//! references to scalars, shared or cyclic references (`SX_OBJECT`) —
//! and anything malformed (truncated input, a length larger than the bytes
//! left, invalid UTF-8, nesting deeper than [`MAX_DEPTH`](crate::session::MAX_DEPTH),
//! a native-order image) is a [`StorableError`] naming the opcode and the
//! offset. Decoding never panics and never reserves more memory than the
//! input's length justifies.

mod decode;
mod encode;
pub mod ops;

use std::fmt;

pub use decode::decode;
pub use encode::{encode, encode_map};

/// Why a Storable image could not be read or written, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at offset {offset}{}", opcode_label(.opcode))]
pub struct StorableError {
    /// What went wrong.
    pub problem: Problem,
    /// The opcode being read or written, when there was one.
    pub opcode: Option<u8>,
    /// Byte offset of that opcode (or of the header) in the image.
    pub offset: usize,
}

impl StorableError {
    pub(crate) fn new(problem: Problem, opcode: Option<u8>, offset: usize) -> Self {
        StorableError {
            problem,
            opcode,
            offset,
        }
    }
}

fn opcode_label(opcode: &Option<u8>) -> String {
    match opcode {
        Some(op) => format!(" (opcode {op} {})", ops::name(*op)),
        None => String::new(),
    }
}

/// The kinds of [`StorableError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The input ended this many bytes too early.
    Truncated {
        /// Bytes missing.
        needed: usize,
    },
    /// A length field larger than the input can hold, or negative.
    BadLength {
        /// The length read.
        length: i64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// Not a network-order Storable 2.x/3.x header.
    BadHeader(&'static str),
    /// A Perl construct JSON cannot represent.
    Unsupported(&'static str),
    /// An opcode Storable does not define.
    UnknownOpcode,
    /// A UTF-8 flagged string or key whose bytes are not UTF-8.
    InvalidUtf8,
    /// A NaN or infinite double (JSON has none).
    NonFinite,
    /// Nesting deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// Bytes left over after the value.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A string or collection too long for Storable's 32-bit lengths.
    TooLong,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Truncated { needed } => write!(f, "input ends {needed} byte(s) early"),
            Problem::BadLength { length, remaining } => write!(
                f,
                "length {length} does not fit the {remaining} byte(s) left"
            ),
            Problem::BadHeader(why) => write!(f, "bad header: {why}"),
            Problem::Unsupported(what) => write!(f, "unsupported Perl value: {what}"),
            Problem::UnknownOpcode => f.write_str("unknown opcode"),
            Problem::InvalidUtf8 => f.write_str("UTF-8 flagged bytes are not valid UTF-8"),
            Problem::NonFinite => f.write_str("NaN or infinite double"),
            Problem::TooDeep { limit } => write!(f, "nested deeper than {limit} levels"),
            Problem::TrailingBytes { count } => write!(f, "{count} byte(s) after the value"),
            Problem::TooLong => f.write_str("longer than Storable's 32-bit lengths"),
        }
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

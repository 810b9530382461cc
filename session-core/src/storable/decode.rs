//! The Storable reader: `nfreeze` bytes to a `serde_json::Value`.
//!
//! A recursive descent over the opcodes, bounded three ways so hostile
//! input cannot hurt: nesting stops at [`MAX_DEPTH`] (plus the top-level
//! map), every length is checked against the bytes actually left before
//! anything is read or reserved (a 4 GiB length in a 100-byte value is an
//! error, not an allocation), and only the top-level collection reserves
//! up to one slot per remaining input byte; nested ones reserve a few and
//! grow with what they read. Errors carry the opcode and its offset.
//!
//! Strings are copied once, into the `String` the value keeps: an ASCII
//! byte string a word at a time, and a map's entries are gathered first
//! and the map built from them at once (issue #27 measured the per-char
//! string building and the per-key map inserts at most of a decode).

use serde_json::{Map, Number, Value};

use super::ops::*;
use super::{Problem, StorableError};
use crate::data::MAX_DEPTH;

/// The smallest encoding of one array item: a one-byte opcode.
const MIN_ITEM: usize = 1;
/// The smallest encoding of one hash entry: a value opcode plus a 4-byte
/// key length (flagged hashes add a flag byte, so this bound holds too).
const MIN_ENTRY: usize = 5;
/// Slots a nested list or map reserves at most before reading its items
/// (see [`reserve`]).
pub(super) const NESTED_RESERVE: usize = 8;

/// Decodes a Storable image (`nfreeze` or `nstore`'s `pst0` file form).
///
/// The result is the top-level value; for a session that is a map.
pub fn decode(bytes: &[u8]) -> Result<Value, StorableError> {
    let mut reader = Reader { bytes, pos: 0 };
    reader.header()?;
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(StorableError::new(
            Problem::TrailingBytes {
                count: bytes.len() - reader.pos,
            },
            None,
            reader.pos,
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes `n` bytes, or says how many were missing (for opcode `op` at `at`).
    fn take(&mut self, n: usize, op: Option<u8>, at: usize) -> Result<&'a [u8], StorableError> {
        if n > self.remaining() {
            return Err(StorableError::new(
                Problem::Truncated {
                    needed: n - self.remaining(),
                },
                op,
                at,
            ));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn byte(&mut self, op: Option<u8>, at: usize) -> Result<u8, StorableError> {
        Ok(self.take(1, op, at)?[0])
    }

    fn array<const N: usize>(&mut self, op: u8, at: usize) -> Result<[u8; N], StorableError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, Some(op), at)?);
        Ok(out)
    }

    /// A big-endian 32-bit length; negative lengths are corrupt input.
    fn length(&mut self, op: u8, at: usize) -> Result<usize, StorableError> {
        let raw = i32::from_be_bytes(self.array::<4>(op, at)?);
        usize::try_from(raw).map_err(|_| {
            StorableError::new(
                Problem::BadLength {
                    length: i64::from(raw),
                    remaining: self.remaining(),
                },
                Some(op),
                at,
            )
        })
    }

    /// A length that must be coverable by the rest of the input, at
    /// `unit` bytes per element: checked before anything is reserved.
    fn bounded(&self, len: usize, unit: usize, op: u8, at: usize) -> Result<usize, StorableError> {
        if len.saturating_mul(unit) > self.remaining() {
            return Err(StorableError::new(
                Problem::BadLength {
                    length: i64::try_from(len).unwrap_or(i64::MAX),
                    remaining: self.remaining(),
                },
                Some(op),
                at,
            ));
        }
        Ok(len)
    }

    fn header(&mut self) -> Result<(), StorableError> {
        // `nstore` files start with the magic "pst0"; `nfreeze` images do not.
        if self.bytes.starts_with(b"pst0") {
            self.pos = 4;
        }
        let at = self.pos;
        let version = self.byte(None, at)?;
        let major = version >> 1;
        if version & 1 == 0 {
            return Err(StorableError::new(
                Problem::BadHeader(
                    "native byte order (freeze, not nfreeze); only network order is read",
                ),
                None,
                at,
            ));
        }
        if major != MAJOR {
            return Err(StorableError::new(
                Problem::BadHeader("not a Storable 0.6+ image (major version is not 2)"),
                None,
                at,
            ));
        }
        // Any minor: they only add opcodes, and unknown opcodes are errors
        // where they appear. Pre-0.7 images (major 2, no minor byte) do not
        // exist in memcached: Cache::Memcached is younger than Storable 0.7.
        self.byte(None, at + 1)?;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, StorableError> {
        let at = self.pos;
        let op = self.byte(None, at)?;
        let here = Some(op);
        let unsupported =
            |what: &'static str| Err(StorableError::new(Problem::Unsupported(what), here, at));
        match op {
            SX_UNDEF | SX_SV_UNDEF | SX_SVUNDEF_ELEM => Ok(Value::Null),
            SX_SV_YES | SX_BOOLEAN_TRUE => Ok(Value::Bool(true)),
            SX_SV_NO | SX_BOOLEAN_FALSE => Ok(Value::Bool(false)),
            SX_BYTE => {
                let b = self.byte(here, at)?;
                Ok(Value::from(i64::from(b) - 128))
            }
            SX_NETINT => Ok(Value::from(i32::from_be_bytes(self.array::<4>(op, at)?))),
            // Perl's nfreeze never writes these two (it stringifies wide
            // integers and doubles for portability); we do, little-endian,
            // as the 64-bit little-endian Perls we share a cluster with
            // read them. See the module docs.
            SX_INTEGER => Ok(Value::from(i64::from_le_bytes(self.array::<8>(op, at)?))),
            SX_DOUBLE => {
                let f = f64::from_le_bytes(self.array::<8>(op, at)?);
                Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| StorableError::new(Problem::NonFinite, here, at))
            }
            SX_SCALAR => {
                let len = usize::from(self.byte(here, at)?);
                Ok(Value::String(latin1(self.take(len, here, at)?)))
            }
            SX_LSCALAR => {
                let len = self.length(op, at)?;
                Ok(Value::String(latin1(self.take(len, here, at)?)))
            }
            SX_UTF8STR => {
                let len = usize::from(self.byte(here, at)?);
                self.utf8(len, op, at).map(Value::String)
            }
            SX_LUTF8STR => {
                let len = self.length(op, at)?;
                self.utf8(len, op, at).map(Value::String)
            }
            SX_REF => {
                // A reference is its target when the target is a container:
                // JSON has no references, and Perl session data holds
                // nested lists and maps only through them.
                let target_at = self.pos;
                // Targets that are plain scalars or references are refused
                // here; anything else (containers, and the constructs with
                // an error of their own: blessed, tied, shared...) is read.
                match self.bytes.get(target_at) {
                    Some(
                        &(SX_LSCALAR | SX_REF | SX_UNDEF | SX_INTEGER | SX_DOUBLE | SX_BYTE
                        | SX_NETINT | SX_SCALAR | SX_SV_UNDEF | SX_SV_YES | SX_SV_NO
                        | SX_UTF8STR | SX_LUTF8STR | SX_SVUNDEF_ELEM | SX_BOOLEAN_TRUE
                        | SX_BOOLEAN_FALSE),
                    ) => unsupported("reference to a scalar or to a reference"),
                    Some(_) => self.value(depth),
                    None => Err(StorableError::new(
                        Problem::Truncated { needed: 1 },
                        here,
                        at,
                    )),
                }
            }
            SX_ARRAY => self.list(depth, at),
            SX_HASH => self.map(depth, false, at),
            SX_FLAG_HASH => self.map(depth, true, at),
            SX_OBJECT => unsupported("shared or cyclic reference"),
            SX_TIED_ARRAY | SX_TIED_HASH | SX_TIED_SCALAR | SX_TIED_KEY | SX_TIED_IDX => {
                unsupported("tied value")
            }
            SX_BLESS | SX_IX_BLESS | SX_HOOK => unsupported("blessed object"),
            SX_OVERLOAD | SX_WEAKOVERLOAD => unsupported("overloaded object"),
            SX_WEAKREF => unsupported("weak reference"),
            SX_CODE => unsupported("code reference"),
            SX_VSTRING | SX_LVSTRING => unsupported("v-string (magic scalar)"),
            SX_REGEXP => unsupported("regular expression"),
            SX_LOBJECT => unsupported("value larger than 2 GiB"),
            _ => Err(StorableError::new(Problem::UnknownOpcode, here, at)),
        }
    }

    fn utf8(&mut self, len: usize, op: u8, at: usize) -> Result<String, StorableError> {
        let bytes = self.take(len, Some(op), at)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StorableError::new(Problem::InvalidUtf8, Some(op), at))
    }

    fn enter(&self, depth: usize, op: u8, at: usize) -> Result<usize, StorableError> {
        // The top-level map is level 1; its values may nest MAX_DEPTH more,
        // the same bound the writers and the other codecs apply.
        if depth > MAX_DEPTH {
            return Err(StorableError::new(
                Problem::TooDeep { limit: MAX_DEPTH },
                Some(op),
                at,
            ));
        }
        Ok(depth + 1)
    }

    fn list(&mut self, depth: usize, at: usize) -> Result<Value, StorableError> {
        let inner = self.enter(depth, SX_ARRAY, at)?;
        let len = self.length(SX_ARRAY, at)?;
        let len = self.bounded(len, MIN_ITEM, SX_ARRAY, at)?;
        let mut items = Vec::with_capacity(reserve(len, depth));
        for _ in 0..len {
            items.push(self.value(inner)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, depth: usize, flagged: bool, at: usize) -> Result<Value, StorableError> {
        let op = if flagged { SX_FLAG_HASH } else { SX_HASH };
        let inner = self.enter(depth, op, at)?;
        if flagged {
            // SHV_RESTRICTED (a locked hash) only matters to Perl; the data
            // is an ordinary map.
            self.byte(Some(op), at)?;
        }
        let len = self.length(op, at)?;
        let len = self.bounded(len, MIN_ENTRY, op, at)?;
        // The entries in a vector first, then the map built from it at
        // once: `BTreeMap::from_iter` sorts (already sorted in our own
        // images) and fills its nodes in order, where an insert per key
        // would compare it against the keys before it.
        let mut entries = Vec::with_capacity(reserve(len, depth));
        for _ in 0..len {
            let value = self.value(inner)?;
            let key_at = self.pos;
            let flags = if flagged {
                self.byte(Some(op), key_at)?
            } else {
                0
            };
            if flags & SHV_K_ISSV != 0 {
                return Err(StorableError::new(
                    Problem::Unsupported("hash key stored as a scalar (SHV_K_ISSV)"),
                    Some(op),
                    key_at,
                ));
            }
            let key_len = self.length(op, key_at)?;
            let key_bytes = self.take(key_len, Some(op), key_at)?;
            if flags & SHV_K_PLACEHOLDER != 0 {
                // A deleted key of a restricted hash: not part of the data.
                continue;
            }
            let key = if flags & SHV_K_UTF8 != 0 {
                String::from_utf8(key_bytes.to_vec())
                    .map_err(|_| StorableError::new(Problem::InvalidUtf8, Some(op), key_at))?
            } else {
                // Plain and SHV_K_WASUTF8 keys are both Latin-1 bytes.
                latin1(key_bytes)
            };
            entries.push((key, value));
        }
        // Perl's hv_store keeps the last of duplicate keys, and so does
        // `from_iter` (its sort is stable and it keeps the last of equals).
        Ok(Value::Object(Map::from_iter(entries)))
    }
}

/// How many slots a collection of `len` items (already bounded by the
/// input left) reserves before its items are read. The top-level value
/// takes them all. A nested one takes a few and grows with what it really
/// reads, because every open level holds its reservation while the levels
/// inside it are read: a hundred nested lists each declaring the rest of
/// the input as their length would otherwise hold a hundred times the
/// input, where a bounded few per level hold a small constant.
pub(super) fn reserve(len: usize, depth: usize) -> usize {
    if depth == 0 {
        len
    } else {
        len.min(NESTED_RESERVE)
    }
}

/// Perl's view of a byte string: one character per byte, U+0000..=U+00FF.
fn latin1(bytes: &[u8]) -> String {
    // ASCII, the usual case, is the same bytes in UTF-8: checked and
    // copied a word at a time (`from_utf8` cannot fail on ASCII, and the
    // char loop below is the answer if it somehow did).
    if bytes.is_ascii()
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return text.to_owned();
    }
    // Each byte from 0x80 up takes two bytes in UTF-8.
    let high = bytes.iter().filter(|&&b| b >= 0x80).count();
    let mut text = String::with_capacity(bytes.len() + high);
    text.extend(bytes.iter().map(|&b| char::from(b)));
    text
}

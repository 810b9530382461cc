//! The MessagePack scanner: where each top-level field of a stored session
//! map lies, found in one pass without decoding anything (the contract is
//! in [`super`]).
//!
//! The full decode is `rmp_serde` into a `serde_json::Value` with a depth
//! limit of `MAX_DEPTH + 1` (see `Codec::decode`). What it refuses, and what
//! it accepts but turns into something else, decides what this scan answers
//! `None` for:
//!
//! - bin and ext values: a `Value` has no bytes, so the decode refuses them
//!   (ext comes as a newtype struct, refused too);
//! - a str that is not UTF-8: `rmp_serde` offers it as bytes, which a
//!   `Value` refuses;
//! - a map key that is not a str, at any depth (a `Value` map's keys are
//!   read as strings only);
//! - a key starting with `$serde_json::private::`: with serde_json's
//!   `raw_value` feature on (axum turns it on in the workspace build) a map
//!   whose first key is `$serde_json::private::RawValue` decodes as the JSON
//!   text of its value, not as a map;
//! - a NaN or infinite float: the decode turns it into `null`, so the stored
//!   bytes and the value no longer agree;
//! - a field value nesting `MAX_DEPTH` containers or more (the decode
//!   counts every container, an empty one too, and refuses the
//!   `MAX_DEPTH + 1`-th level including the top-level map);
//! - the reserved marker `0xc1`, a top level that is not a map, a length
//!   running past the input, and bytes after the top-level map (the decode
//!   ignores those, but a save could not re-emit them).
//!
//! An f32 is fine: the decode widens it to f64, and so does decoding the
//! field's value alone.

use std::ops::Range;

use super::{RawField, RawFields, RawName};
use crate::data::MAX_DEPTH;

/// The prefix of the map keys serde_json's `Value` treats specially when
/// its `raw_value` or `arbitrary_precision` feature is on.
const SERDE_PRIVATE: &[u8] = b"$serde_json::private::";

/// Fields up to this many are checked for repeated names pairwise, with a
/// bit mask and no allocation; more are sorted.
const PAIRWISE_MAX: usize = 64;

/// Scans a stored MessagePack session; `None`: run the full decode, which
/// decides (see the module docs for what is refused).
pub(crate) fn scan(bytes: &[u8]) -> Option<RawFields> {
    let mut r = Reader { bytes, pos: 0 };
    let count = match r.byte()? {
        m @ 0x80..=0x8f => usize::from(m & 0x0f),
        0xde => r.uint(2)?,
        0xdf => r.uint(4)?,
        _ => return None,
    };
    // An entry is at least two bytes (a name and a value marker): a header
    // claiming more cannot be honest, and the loop below stays bounded by
    // the input's length whatever it claims.
    if count > r.left() / 2 {
        return None;
    }
    let mut fields = RawFields::with_capacity(16);
    // The encoder writes names in order (the map is a BTreeMap), so
    // checking that each name is greater than the last rules out repeats
    // in one comparison per field.
    let mut ascending = true;
    for _ in 0..count {
        let start = r.pos;
        let name = r.key()?;
        let value_start = r.pos;
        r.value()?;
        if ascending
            && let Some(RawField {
                name: RawName::Span(last),
                ..
            }) = fields.last()
        {
            ascending = match (bytes.get(last.clone()), bytes.get(name.clone())) {
                (Some(a), Some(b)) => before(a, b),
                _ => false,
            };
        }
        fields.push(RawField {
            name: RawName::Span(name),
            entry: start..r.pos,
            value: value_start..r.pos,
        });
    }
    if r.pos != bytes.len() {
        return None;
    }
    if !ascending {
        drop_repeated(bytes, &mut fields);
    }
    Some(fields)
}

/// Removes every field whose name comes again later: the decode's map keeps
/// the last value, and the last entry keeps its place.
fn drop_repeated(bytes: &[u8], fields: &mut RawFields) {
    let name = |f| name_bytes(bytes, f);
    if fields.len() <= PAIRWISE_MAX {
        let mut repeated = 0u64;
        for (i, field) in fields.iter().enumerate() {
            let this = name(field);
            if fields.iter().skip(i + 1).any(|later| name(later) == this) {
                repeated |= 1 << i;
            }
        }
        if repeated != 0 {
            let mut i = 0;
            fields.retain(|_| {
                let keep = repeated & (1 << i) == 0;
                i += 1;
                keep
            });
        }
        return;
    }
    // Many fields out of order (a save appends the fields it changed after
    // the ones it copied): sorting an index costs one allocation, where
    // comparing pairs would be quadratic in a hostile input's length.
    let mut order: Vec<(&[u8], usize)> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (name(f), i))
        .collect();
    order.sort_unstable();
    let mut dropped = vec![false; fields.len()];
    for pair in order.windows(2) {
        if let [(a, i), (b, _)] = pair
            && a == b
            && let Some(d) = dropped.get_mut(*i)
        {
            *d = true;
        }
    }
    let mut i = 0;
    fields.retain(|_| {
        let keep = !dropped.get(i).copied().unwrap_or(false);
        i += 1;
        keep
    });
}

/// A field's name as bytes.
fn name_bytes<'a>(bytes: &'a [u8], field: &'a RawField) -> &'a [u8] {
    match &field.name {
        RawName::Span(r) => bytes.get(r.clone()).unwrap_or_default(),
        RawName::Owned(s) => s.as_bytes(),
    }
}

/// True when `bytes` are UTF-8. Most session strings are ASCII, and
/// `str::from_utf8` costs about four instructions a byte on short
/// strings, so a check for ASCII eight bytes at a time goes first.
fn is_utf8(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut acc = words.iter().fold(0, |acc, w| acc | u64::from_ne_bytes(*w));
    // The last few bytes: as the word ending the string when there is one
    // (overlapping the words before), else one by one, without branches.
    match bytes.last_chunk::<8>() {
        Some(last) => acc |= u64::from_ne_bytes(*last),
        None => acc |= u64::from(rest.iter().fold(0, |acc, &b| acc | b)),
    }
    acc & 0x8080_8080_8080_8080 == 0 || std::str::from_utf8(bytes).is_ok()
}

/// True when name `a` sorts before name `b`, as the encoder's `BTreeMap`
/// orders them. The first bytes nearly always decide, and comparing them
/// here saves a call to `memcmp` per field.
fn before(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// A cursor over the input; every read checks the length first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// An open container while skipping a value: the items still to read,
/// shifted left by one, and in bit 0 whether it is a map (whose items
/// alternate key, value, starting with a key).
type Frame = u64;

impl Reader<'_> {
    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// The next `n` bytes, skipped; their range.
    fn take(&mut self, n: usize) -> Option<Range<usize>> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let range = self.pos..end;
        self.pos = end;
        Some(range)
    }

    /// A big-endian unsigned length of `n` (1, 2 or 4) bytes.
    fn uint(&mut self, n: usize) -> Option<usize> {
        let range = self.take(n)?;
        let mut v = 0usize;
        for &b in self.bytes.get(range)? {
            v = v << 8 | usize::from(b);
        }
        Some(v)
    }

    /// The `n` bytes of a str's payload, which must be UTF-8.
    fn str_payload(&mut self, n: usize) -> Option<Range<usize>> {
        let range = self.take(n)?;
        is_utf8(self.bytes.get(range.clone())?).then_some(range)
    }

    /// A str of any width after its marker; its payload's range.
    fn str_after(&mut self, marker: u8) -> Option<Range<usize>> {
        let len = match marker {
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.uint(1)?,
            0xda => self.uint(2)?,
            0xdb => self.uint(4)?,
            _ => return None,
        };
        self.str_payload(len)
    }

    /// A map key: a str (not one serde_json reserves); its payload's range.
    fn key(&mut self) -> Option<Range<usize>> {
        let marker = self.byte()?;
        self.key_after(marker)
    }

    fn key_after(&mut self, marker: u8) -> Option<Range<usize>> {
        let range = self.str_after(marker)?;
        if self.bytes.get(range.clone())?.starts_with(SERDE_PRIVATE) {
            return None;
        }
        Some(range)
    }

    /// Skips one whole value, checking it as the module docs say.
    fn value(&mut self) -> Option<()> {
        let marker = self.byte()?;
        match self.scalar_or_container(marker)? {
            None => Some(()),
            Some(frame) => self.container(frame),
        }
    }

    /// Skips the scalar whose marker was just read (`None` inside), or
    /// gives the frame of the container it opens after checking its length.
    fn scalar_or_container(&mut self, marker: u8) -> Option<Option<Frame>> {
        let len = match marker {
            // fixint, nil, false, true.
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => return Some(None),
            0x80..=0x8f => return self.frame(usize::from(marker & 0x0f), true).map(Some),
            0x90..=0x9f => return self.frame(usize::from(marker & 0x0f), false).map(Some),
            0xa0..=0xbf | 0xd9..=0xdb => return self.str_after(marker).map(|_| None),
            0xca => {
                let range = self.take(4)?;
                let raw: [u8; 4] = self.bytes.get(range)?.try_into().ok()?;
                return f32::from_be_bytes(raw).is_finite().then_some(None);
            }
            0xcb => {
                let range = self.take(8)?;
                let raw: [u8; 8] = self.bytes.get(range)?.try_into().ok()?;
                return f64::from_be_bytes(raw).is_finite().then_some(None);
            }
            // u8..u64 (0xcc..=0xcf) and i8..i64 (0xd0..=0xd3): the low two
            // bits give the width, 1 << bits bytes.
            0xcc..=0xd3 => {
                self.take(1 << (marker & 0x03))?;
                return Some(None);
            }
            0xdc => self.uint(2)?,
            0xdd => self.uint(4)?,
            0xde => return self.uint(2).and_then(|n| self.frame(n, true)).map(Some),
            0xdf => return self.uint(4).and_then(|n| self.frame(n, true)).map(Some),
            // 0xc1 (reserved), bin (0xc4..=0xc6), ext (0xc7..=0xc9, 0xd4..=0xd8).
            _ => return None,
        };
        self.frame(len, false).map(Some)
    }

    /// The frame of a container of `n` entries; `None` when the input is
    /// too short to hold them (each item is at least one byte), which also
    /// bounds the work a hostile length can cause.
    fn frame(&self, n: usize, map: bool) -> Option<Frame> {
        let items = if map { n.checked_mul(2)? } else { n };
        if items > self.left() {
            return None;
        }
        Some(u64::try_from(items).ok()? << 1 | u64::from(map))
    }

    /// Skips the rest of a container whose header was read, iteratively:
    /// a stack of the open containers' remaining counts, as deep as a
    /// field may nest.
    fn container(&mut self, first: Frame) -> Option<()> {
        // Index i holds the container at level i + 1 of the field's value;
        // one at level MAX_DEPTH would not fit, which is the depth check.
        let mut stack: [Frame; MAX_DEPTH - 1] = [0; MAX_DEPTH - 1];
        *stack.first_mut()? = first;
        let mut open: usize = 1;
        while let Some(top) = open.checked_sub(1).and_then(|i| stack.get_mut(i)) {
            let left = *top >> 1;
            if left == 0 {
                open -= 1;
                continue;
            }
            let is_key = *top & 1 == 1 && left % 2 == 0;
            *top -= 2;
            let marker = self.byte()?;
            if is_key {
                self.key_after(marker)?;
                continue;
            }
            if let Some(frame) = self.scalar_or_container(marker)? {
                *stack.get_mut(open)? = frame;
                open += 1;
            }
        }
        Some(())
    }
}

#[cfg(test)]
#[path = "msgpack_tests.rs"]
mod tests;

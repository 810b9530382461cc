//! The JSON scanner: one pass over a stored JSON session that finds where
//! each top-level field's name and value lie, without decoding them.
//!
//! It accepts exactly what `serde_json::from_slice::<Value>` accepts when
//! that gives an object, minus the inputs it is not sure about (see
//! [`crate::scan`]); for those it answers `None` and the caller runs the
//! full decode. What it refuses on purpose, though serde_json may accept it:
//! - a field value nesting [`MAX_DEPTH`] levels or deeper (the encoder
//!   refuses those, so only a foreign writer makes them);
//! - a number that is neither a plain integer of at most 18 digits nor
//!   something serde_json itself parses (that is asked of serde_json, on the
//!   number's bytes alone, so floats and long integers get its exact
//!   verdict: `1e400` is out of range there);
//! - a `\u` escape of a lone surrogate (serde_json refuses those too) or of
//!   a surrogate pair split by anything.
//!
//! No recursion on the input's depth: nested values are walked with a depth
//! counter and one bit per open container (list or map), which is all that
//! is needed since only top-level spans are recorded.

use std::collections::HashSet;

use super::{RawField, RawFields, RawName};
use crate::data::MAX_DEPTH;

// The open containers of a value are one bit each in a u128.
const _: () = assert!(MAX_DEPTH < 128, "the container bits are a u128");

/// Up to this many fields, duplicates are dropped as they come (sessions
/// have about ten); beyond it, by a hashed pass at the end (see [`Names`]).
const PAIRWISE_DEDUP_MAX: usize = 32;

/// Scans a stored JSON session: each top-level field's name and spans, or
/// `None` when the bytes are not a JSON object the full decode accepts, or
/// when the scan is not sure (the caller then runs the full decode).
pub(crate) fn scan(bytes: &[u8]) -> Option<RawFields> {
    let mut s = Scanner {
        bytes,
        pos: 0,
        seen: 0,
    };
    s.skip_ws();
    s.eat(b'{')?;
    s.skip_ws();
    let mut fields = Vec::with_capacity(16);
    let mut names = Names::default();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            let name_start = s.pos;
            s.eat(b'"')?;
            let escaped = s.string()?;
            // The name's contents, between its quotes.
            let inner = name_start + 1..s.pos - 1;
            let name = if escaped {
                RawName::Owned(unescape(bytes.get(inner)?)?.into_boxed_str())
            } else {
                RawName::Span(inner)
            };
            s.skip_ws();
            s.eat(b':')?;
            s.skip_ws();
            let value_start = s.pos;
            s.value()?;
            names.forget_earlier(bytes, &mut fields, &name);
            fields.push(RawField {
                name,
                entry: name_start..s.pos,
                value: value_start..s.pos,
            });
            s.skip_ws();
            match s.next()? {
                b',' => s.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    if s.pos != bytes.len() {
        return None;
    }
    // Non-ASCII bytes outside strings were refused as syntax errors; in
    // strings, serde_json wants valid UTF-8. Every byte of every string has
    // been through `seen`, so a pure-ASCII session (the usual one) skips
    // the check; otherwise it is made once, on the whole input, which also
    // makes every name span valid text.
    if s.seen & 0x8080_8080_8080_8080 != 0 {
        std::str::from_utf8(bytes).ok()?;
    }
    if names.many {
        keep_last_of_each_name(bytes, &mut fields);
    }
    Some(fields)
}

/// A cursor over the input. Every read is checked: the end of the input,
/// like any unexpected byte, makes the scan answer `None`.
struct Scanner<'a> {
    /// The input.
    bytes: &'a [u8],
    /// The cursor: the next byte to read.
    pos: usize,
    /// The OR of the words strings were scanned in (they may run past a
    /// string's end, never before its start): a byte's high bit set here
    /// means a string may hold non-ASCII bytes.
    seen: u64,
}

impl Scanner<'_> {
    /// The byte at the cursor, if any.
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The byte at the cursor, moving past it.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Moves past `want`, or `None` when another byte (or the end) is there.
    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Moves past JSON's four whitespace bytes, exactly the ones serde_json
    /// skips.
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Moves past one complete value starting at the cursor (whitespace
    /// before it already skipped), refusing nesting of [`MAX_DEPTH`] or more.
    fn value(&mut self) -> Option<()> {
        // Containers open around the cursor, and one bit per open
        // container, the innermost lowest: 1 for a map, 0 for a list.
        let mut depth = 0usize;
        let mut maps: u128 = 0;
        loop {
            match self.next()? {
                b'"' => {
                    self.string()?;
                }
                b'{' => {
                    self.check_room(depth)?;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        depth += 1;
                        maps = (maps << 1) | 1;
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.check_room(depth)?;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        depth += 1;
                        maps <<= 1;
                        continue;
                    }
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                first @ (b'-' | b'0'..=b'9') => self.number(first)?,
                _ => return None,
            }
            // A value ended: a comma starts the next one in its container,
            // a closing bracket ends the container, which is a value ending.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.skip_ws();
                let in_map = maps & 1 == 1;
                match self.next()? {
                    b',' => {
                        self.skip_ws();
                        if in_map {
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if in_map => {}
                    b']' if !in_map => {}
                    _ => return None,
                }
                depth -= 1;
                maps >>= 1;
            }
        }
    }

    /// `None` when a list or map opened inside `depth` open ones would make
    /// the field nest [`MAX_DEPTH`] levels or more: the measure of
    /// `codec::depth`, where every list or map counts one level, empty or
    /// not (`1` is 0, `[]` and `[1]` are 1), and the encoder refuses
    /// MAX_DEPTH.
    #[inline]
    fn check_room(&self, depth: usize) -> Option<()> {
        (depth + 1 < MAX_DEPTH).then_some(())
    }

    /// Moves past a nested map's key and its colon, and the whitespace
    /// after that.
    fn key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string()?;
        self.skip_ws();
        self.eat(b':')?;
        self.skip_ws();
        Some(())
    }

    /// Moves past the rest of `true`, `false` or `null` (first byte read).
    #[inline]
    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.pos + rest.len();
        (self.bytes.get(self.pos..end)? == rest).then_some(())?;
        self.pos = end;
        Some(())
    }

    /// Moves past a number whose first byte (`-` or a digit) was read:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self, first: u8) -> Option<()> {
        let start = self.pos - 1;
        let lead = if first == b'-' { self.next()? } else { first };
        let digits_start = self.pos - 1;
        match lead {
            // A leading zero stands alone; a digit after it is then not
            // a comma or a bracket, so the caller refuses it, as serde_json.
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let int_digits = self.pos - digits_start;
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
            plain = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
            plain = false;
        }
        // At most 18 digits fit an i64 and a u64 both: serde_json reads them
        // as an integer, always. Anything else is asked of serde_json, which
        // reads the same bytes alone exactly as inside the map (its float
        // parsing is the same code, and refuses what overflows f64).
        if plain && int_digits <= 18 {
            return Some(());
        }
        serde_json::from_slice::<serde_json::Number>(self.bytes.get(start..self.pos)?)
            .ok()
            .map(drop)
    }

    /// Moves past any digits.
    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Moves past one digit or more; `None` when there is none.
    #[inline]
    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// Moves past the rest of a string whose opening quote was read, to
    /// after its closing quote. True when it has escapes. `None` for a raw
    /// control byte, a bad escape or a missing closing quote. Its UTF-8 is
    /// left to the end of the scan (see [`Scanner::seen`]).
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                // A control byte (below 0x20), which JSON forbids raw.
                _ => return None,
            }
        }
    }

    /// Moves to the next quote, backslash or control byte in a string (or
    /// to the end), eight bytes at a time: the same word trick serde_json
    /// uses, since strings are most of a session's bytes.
    #[inline(always)]
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::MAX / 255;
        const HIGHS: u64 = ONES << 7;
        // Locals, not fields: the loop then runs in registers.
        let bytes = self.bytes;
        let mut pos = self.pos;
        let mut seen = self.seen;
        let (words, _) = bytes.get(pos..).unwrap_or_default().as_chunks::<8>();
        for word in words {
            let w = u64::from_le_bytes(*word);
            seen |= w;
            // Each term sets a byte's high bit where that byte is below
            // 0x20, a quote or a backslash; borrows can only set bits above
            // the first such byte, so the lowest set bit is exact.
            let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
            let q = w ^ (ONES * u64::from(b'"'));
            let quote = q.wrapping_sub(ONES) & !q;
            let s = w ^ (ONES * u64::from(b'\\'));
            let slash = s.wrapping_sub(ONES) & !s;
            let hits = (ctrl | quote | slash) & HIGHS;
            if hits != 0 {
                self.pos = pos + (hits.trailing_zeros() / 8) as usize;
                self.seen = seen;
                return;
            }
            pos += 8;
        }
        while let Some(&b) = bytes.get(pos) {
            seen |= u64::from(b);
            if b < 0x20 || b == b'"' || b == b'\\' {
                break;
            }
            pos += 1;
        }
        self.pos = pos;
        self.seen = seen;
    }

    /// Moves past an escape whose backslash was read. `\u` escapes of
    /// surrogates must form a pair, written as two escapes back to back
    /// (serde_json refuses a lone one).
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => match self.hex4()? {
                0xD800..=0xDBFF => {
                    self.eat(b'\\')?;
                    self.eat(b'u')?;
                    matches!(self.hex4()?, 0xDC00..=0xDFFF).then_some(())
                }
                0xDC00..=0xDFFF => None,
                _ => Some(()),
            },
            _ => None,
        }
    }

    /// Reads the four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let end = self.pos + 4;
        let digits = self.bytes.get(self.pos..end)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16)?;
        }
        self.pos = end;
        Some(n)
    }
}

/// Decodes a string's contents (between its quotes) that the scanner has
/// already checked; `None` if it is not what the scanner accepts anyway.
fn unescape(inner: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut s = Scanner {
        bytes: inner,
        pos: 0,
        seen: 0,
    };
    loop {
        let run_start = s.pos;
        s.skip_plain();
        out.push_str(std::str::from_utf8(inner.get(run_start..s.pos)?).ok()?);
        let Some(b) = s.next() else {
            return Some(out);
        };
        if b != b'\\' {
            return None;
        }
        let c = match s.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let n = s.hex4()?;
                if (0xD800..=0xDBFF).contains(&n) {
                    s.eat(b'\\')?;
                    s.eat(b'u')?;
                    let low = s.hex4()?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x1_0000 + ((n - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    // A lone low surrogate gives None here.
                    char::from_u32(n)?
                }
            }
            _ => return None,
        };
        out.push(c);
    }
}

/// The name's bytes, given the bytes the scan ran on.
#[inline]
fn name_bytes<'a>(bytes: &'a [u8], name: &'a RawName) -> &'a [u8] {
    match name {
        RawName::Span(r) => bytes.get(r.clone()).unwrap_or_default(),
        RawName::Owned(s) => s.as_bytes(),
    }
}

/// The names met so far, to drop an earlier field of the same name as it
/// comes: the full decode keeps the last value of a name (`"a"` and
/// `"\u0061"` are the same name).
#[derive(Default)]
struct Names {
    /// One bit per name met, chosen by [`Names::bit`]: a name whose bit is
    /// clear is new, so the usual session (all names different) compares
    /// no names at all.
    bits: u64,
    /// Beyond [`PAIRWISE_DEDUP_MAX`] fields, duplicates are left for one
    /// hashed pass at the end, so that a hostile map of many fields (whose
    /// names all share a bit) costs linear time, not quadratic.
    many: bool,
}

impl Names {
    /// Removes the field named `name` from `fields`, if any, before `name`'s
    /// own field is pushed.
    #[inline]
    fn forget_earlier(&mut self, bytes: &[u8], fields: &mut RawFields, name: &RawName) {
        if self.many {
            return;
        }
        if fields.len() >= PAIRWISE_DEDUP_MAX {
            self.many = true;
            return;
        }
        let name = name_bytes(bytes, name);
        let bit = Self::bit(name);
        if self.bits & bit != 0
            && let Some(i) = fields
                .iter()
                .position(|f| name_bytes(bytes, &f.name) == name)
        {
            fields.remove(i);
        }
        self.bits |= bit;
    }

    /// A name's bit: from its length and its first and last bytes, which
    /// tell apart the names of a typical session.
    #[inline]
    fn bit(name: &[u8]) -> u64 {
        let first = name.first().copied().unwrap_or(0) as usize;
        let last = name.last().copied().unwrap_or(0) as usize;
        1 << ((name.len() * 7 + first * 3 + last) % 64)
    }
}

/// Drops every field whose name comes again later, by a hashed pass (see
/// [`Names::many`]).
fn keep_last_of_each_name(bytes: &[u8], fields: &mut RawFields) {
    let mut seen = HashSet::with_capacity(fields.len());
    let keep: Vec<bool> = fields
        .iter()
        .rev()
        .map(|f| seen.insert(name_bytes(bytes, &f.name)))
        .collect();
    drop(seen);
    let mut keep = keep.into_iter().rev();
    fields.retain(|_| keep.next().unwrap_or(true));
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;

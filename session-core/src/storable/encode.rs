//! The Storable writer: a `serde_json::Value` to `nfreeze` bytes that
//! Perl's `thaw` turns back into the same data.
//!
//! The choices (which opcode for which value) are the table in the module
//! docs of [`storable`](super); this file only follows it. Nesting is
//! bounded by [`MAX_DEPTH`] like every codec, so the recursion is shallow.
//!
//! Everything goes into one buffer, reserved for the whole session up
//! front, and strings go into it straight from their `&str`: an ASCII
//! string's bytes are its Latin-1 bytes, and the rare other strings are
//! converted char by char into the buffer, never into a `Vec` of their own
//! (issue #27 measured the per-string `Vec` and the buffer's doublings at
//! two thirds of an encode).

use serde_json::{Map, Number, Value};

use super::ops::*;
use super::{Problem, StorableError};
use crate::data::{MAX_DEPTH, SessionData};

/// Header, opcode and count of a hash (`SX_FLAG_HASH` adds a byte).
const HASH_HEAD: usize = 2 + 1 + 1 + 4;
/// Bytes an entry adds beyond its key and its value: a key flag byte (in
/// flagged hashes) and the key's 4-byte length.
const ENTRY_HEAD: usize = 1 + 4;
/// What a nested list or map is guessed to take before it is written (the
/// buffer grows past that if needed): the guess does not walk into
/// containers, so hostile nesting costs nothing here.
const CONTAINER_GUESS: usize = 32;

/// Encodes a session map as Perl's `nfreeze(\%session)` would.
pub fn encode_map(data: &SessionData) -> Result<Vec<u8>, StorableError> {
    let mut w = Writer::new(map_size(data));
    w.map(data, 0)?;
    Ok(w.out)
}

/// Encodes any value as the image of a reference to it (`nfreeze(\$v)`).
pub fn encode(value: &Value) -> Result<Vec<u8>, StorableError> {
    let size = match value {
        Value::Object(map) => map_size(map),
        other => 2 + value_size(other),
    };
    let mut w = Writer::new(size);
    w.value(value, 0)?;
    Ok(w.out)
}

/// The size of a map's image, at most a few bytes over for a flat session
/// (strings exactly, numbers at their longest), so that such a session is
/// written without the buffer ever growing; nested containers are guessed.
fn map_size(map: &Map<String, Value>) -> usize {
    map.iter().fold(HASH_HEAD, |size, (key, value)| {
        size.saturating_add(ENTRY_HEAD + key.len() + value_size(value))
    })
}

/// An upper bound of a scalar's image (a string's Latin-1 form is never
/// longer than its UTF-8; the rare u64 above `i64::MAX`, a string of up to
/// 22 bytes, grows the buffer), a guess for a container.
fn value_size(value: &Value) -> usize {
    match value {
        Value::Null => 1,
        Value::Bool(_) => 2,
        // SX_INTEGER and SX_DOUBLE: the longest of the usual forms.
        Value::Number(_) => 1 + 8,
        Value::String(s) => 1 + 4 + s.len(),
        Value::Array(_) | Value::Object(_) => CONTAINER_GUESS,
    }
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn new(size: usize) -> Self {
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&[(MAJOR << 1) | 1, MINOR_WRITTEN]);
        Writer { out }
    }

    #[cold]
    fn error(&self, problem: Problem, op: u8) -> StorableError {
        StorableError::new(problem, Some(op), self.out.len())
    }

    /// A 4-byte length as Perl reads it (a signed 32-bit count).
    fn length(&mut self, len: usize, op: u8) -> Result<(), StorableError> {
        let len = i32::try_from(len).map_err(|_| self.error(Problem::TooLong, op))?;
        self.out.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn value(&mut self, value: &Value, depth: usize) -> Result<(), StorableError> {
        match value {
            Value::Null => self.out.push(SX_UNDEF),
            // Storable 3.26 has no booleans: Perl's own 1 and 0.
            Value::Bool(b) => self.out.extend_from_slice(&[SX_BYTE, 128 + u8::from(*b)]),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.string(s)?,
            Value::Array(items) => {
                if depth > 0 {
                    self.out.push(SX_REF);
                }
                self.list(items, depth)?;
            }
            Value::Object(map) => {
                if depth > 0 {
                    self.out.push(SX_REF);
                }
                self.map(map, depth)?;
            }
        }
        Ok(())
    }

    fn number(&mut self, n: &Number) {
        if let Some(i) = n.as_i64() {
            if let Ok(small) = i8::try_from(i) {
                // SX_BYTE holds the value plus 128 (two's complement flip).
                self.out.extend_from_slice(&[SX_BYTE, (small as u8) ^ 0x80]);
            } else if let Ok(int) = i32::try_from(i) {
                self.out.push(SX_NETINT);
                self.out.extend_from_slice(&int.to_be_bytes());
            } else {
                self.out.push(SX_INTEGER);
                self.out.extend_from_slice(&i.to_le_bytes());
            }
        } else if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
            self.out.push(SX_DOUBLE);
            self.out.extend_from_slice(&f.to_le_bytes());
        } else {
            // A u64 above i64::MAX: Perl's own nfreeze writes such a UV as
            // its decimal string, and so do we.
            let text = n.to_string();
            self.out.push(SX_SCALAR);
            // At most 20 digits: always a short scalar.
            self.out.push(text.len() as u8);
            self.out.extend_from_slice(text.as_bytes());
        }
    }

    fn string(&mut self, s: &str) -> Result<(), StorableError> {
        // Every char <= U+00FF: a byte string (Latin-1), which Perl holds
        // as exactly these characters; otherwise a UTF-8 flagged string.
        match latin1_len(s) {
            Some(len) => {
                self.pv_head(len, SX_SCALAR, SX_LSCALAR)?;
                put_latin1(&mut self.out, s, len);
            }
            None => {
                self.pv_head(s.len(), SX_UTF8STR, SX_LUTF8STR)?;
                self.out.extend_from_slice(s.as_bytes());
            }
        }
        Ok(())
    }

    /// The opcode and length of a string of `len` bytes: the short form
    /// when the length fits a byte.
    fn pv_head(&mut self, len: usize, short: u8, long: u8) -> Result<(), StorableError> {
        if let Ok(len) = u8::try_from(len) {
            self.out.extend_from_slice(&[short, len]);
        } else {
            let at = self.out.len();
            self.out.push(long);
            if let Err(e) = self.length(len, long) {
                self.out.truncate(at);
                return Err(e);
            }
        }
        Ok(())
    }

    fn enter(&self, depth: usize, op: u8) -> Result<usize, StorableError> {
        if depth > MAX_DEPTH {
            return Err(self.error(Problem::TooDeep { limit: MAX_DEPTH }, op));
        }
        Ok(depth + 1)
    }

    fn list(&mut self, items: &[Value], depth: usize) -> Result<(), StorableError> {
        let inner = self.enter(depth, SX_ARRAY)?;
        self.out.push(SX_ARRAY);
        self.length(items.len(), SX_ARRAY)?;
        items.iter().try_for_each(|item| self.value(item, inner))
    }

    fn map(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), StorableError> {
        // Keys beyond Latin-1 need the flagged form, with SHV_K_UTF8 on them.
        let flagged = map.keys().any(|k| latin1_len(k).is_none());
        let op = if flagged { SX_FLAG_HASH } else { SX_HASH };
        let inner = self.enter(depth, op)?;
        self.out.push(op);
        if flagged {
            self.out.push(0); // hash flags: not restricted
        }
        self.length(map.len(), op)?;
        for (key, value) in map {
            self.value(value, inner)?;
            match latin1_len(key) {
                Some(len) => {
                    if flagged {
                        self.out.push(0);
                    }
                    self.length(len, op)?;
                    put_latin1(&mut self.out, key, len);
                }
                None => {
                    self.out.push(SHV_K_UTF8);
                    self.length(key.len(), op)?;
                    self.out.extend_from_slice(key.as_bytes());
                }
            }
        }
        Ok(())
    }
}

/// How many chars `s` has if every one fits in a byte (U+0000..=U+00FF),
/// else `None`. In UTF-8 those are the ASCII bytes and the two-byte
/// sequences led by 0xC2 or 0xC3; any other lead byte is a char beyond.
fn latin1_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    // The common case, checked a word at a time.
    if bytes.is_ascii() {
        return Some(bytes.len());
    }
    let mut continuations = 0;
    for &b in bytes {
        match b {
            0x00..=0x7f | 0xc2 | 0xc3 => {}
            0x80..=0xbf => continuations += 1,
            _ => return None,
        }
    }
    Some(bytes.len() - continuations)
}

/// Appends the Latin-1 bytes of `s`, whose `len` chars [`latin1_len`]
/// found all within U+00FF (so the `try_from` never drops one).
fn put_latin1(out: &mut Vec<u8>, s: &str, len: usize) {
    // As many chars as bytes: all ASCII, already Latin-1.
    if len == s.len() {
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend(s.chars().filter_map(|c| u8::try_from(c).ok()));
    }
}

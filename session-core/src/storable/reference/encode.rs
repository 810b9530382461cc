//! The encoder as it was before the single-buffer rewrite, kept verbatim
//! (only its `use` paths changed) as the reference the property tests
//! compare the new one with, byte for byte.

use serde_json::{Map, Number, Value};

use super::super::ops::*;
use super::super::{Problem, StorableError};
use crate::data::{MAX_DEPTH, SessionData};

/// Encodes a session map as Perl's `nfreeze(\%session)` would.
pub fn encode_map(data: &SessionData) -> Result<Vec<u8>, StorableError> {
    let mut w = Writer::new();
    w.map(data, 0)?;
    Ok(w.out)
}

/// Encodes any value as the image of a reference to it (`nfreeze(\$v)`).
pub fn encode(value: &Value) -> Result<Vec<u8>, StorableError> {
    let mut w = Writer::new();
    w.value(value, 0)?;
    Ok(w.out)
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn new() -> Self {
        Writer {
            out: vec![(MAJOR << 1) | 1, MINOR_WRITTEN],
        }
    }

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
        if let Some(bytes) = latin1(s) {
            self.pv(&bytes, SX_SCALAR, SX_LSCALAR)
        } else {
            self.pv(s.as_bytes(), SX_UTF8STR, SX_LUTF8STR)
        }
    }

    fn pv(&mut self, bytes: &[u8], short: u8, long: u8) -> Result<(), StorableError> {
        if let Ok(len) = u8::try_from(bytes.len()) {
            self.out.extend_from_slice(&[short, len]);
        } else {
            let at = self.out.len();
            self.out.push(long);
            if let Err(e) = self.length(bytes.len(), long) {
                self.out.truncate(at);
                return Err(e);
            }
        }
        self.out.extend_from_slice(bytes);
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
        let flagged = map.keys().any(|k| latin1(k).is_none());
        let op = if flagged { SX_FLAG_HASH } else { SX_HASH };
        let inner = self.enter(depth, op)?;
        self.out.push(op);
        if flagged {
            self.out.push(0); // hash flags: not restricted
        }
        self.length(map.len(), op)?;
        for (key, value) in map {
            self.value(value, inner)?;
            match latin1(key) {
                Some(bytes) => {
                    if flagged {
                        self.out.push(0);
                    }
                    self.length(bytes.len(), op)?;
                    self.out.extend_from_slice(&bytes);
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

/// The Latin-1 bytes of `s`, if every char fits in one.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c).ok()).collect()
}

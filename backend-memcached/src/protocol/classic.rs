//! The classic text protocol, limited to `gets`, `set`, `add`, `cas`,
//! `delete`, `touch` and `gats`: the commands that proxies (mcrouter,
//! twemproxy) route, so the store works behind them (twemproxy 0.5 does not
//! route `gats`, so `get_and_touch` fails behind it).
//!
//! Classic has no conditional delete, so [`Op::DeleteIf`] is refused before
//! any I/O (`store.rs` reports it as unsupported).
//!
//! What the classic protocol cannot tell: a write's new CAS (so `set`, `add`
//! and `cas` report `Stored(None)`) and an item's remaining TTL (so
//! [`Entry::ttl`] is `None`). Versions come from `gets`.

use std::collections::HashMap;

use session_core::Entry;

use super::StoreReply;

use super::frame::{Frame, Framing};
use super::{Op, Reply, StoreMode, error_line, parse_num, unexpected, version_of};
use crate::error::{Error, Result};

/// A parsed `VALUE <key> <flags> <bytes> [<cas>]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueLine {
    pub(crate) key: Vec<u8>,
    pub(crate) flags: u32,
    pub(crate) len: usize,
    pub(crate) cas: Option<u64>,
}

/// Parses a `VALUE` line (without CRLF); `None` if it is not one.
pub(crate) fn parse_value_line(line: &[u8]) -> Option<ValueLine> {
    let mut f = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    if f.next()? != b"VALUE" {
        return None;
    }
    let key = f.next()?.to_vec();
    let flags = parse_num(f.next()?)?;
    let len = parse_num(f.next()?)?;
    let cas = match f.next() {
        Some(c) => Some(parse_num(c)?),
        None => None,
    };
    if f.next().is_some() {
        return None;
    }
    Some(ValueLine {
        key,
        flags,
        len,
        cas,
    })
}

/// Appends the request for `op` to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, op: &Op<'_>) {
    let line = match *op {
        Op::Get(key) | Op::Version(key) => format!("gets {key}\r\n"),
        Op::Store {
            mode,
            key,
            value,
            flags,
            exptime,
        } => {
            let len = value.len();
            let line = match mode {
                StoreMode::Set => format!("set {key} {flags} {exptime} {len}\r\n"),
                StoreMode::Add => format!("add {key} {flags} {exptime} {len}\r\n"),
                StoreMode::Cas(cas) => format!("cas {key} {flags} {exptime} {len} {cas}\r\n"),
            };
            buf.extend_from_slice(line.as_bytes());
            buf.extend_from_slice(value);
            buf.extend_from_slice(b"\r\n");
            return;
        }
        Op::Delete(key) => format!("delete {key}\r\n"),
        Op::Touch(key, exptime) => format!("touch {key} {exptime}\r\n"),
        // `gats` answers like `gets`, CAS unique included.
        Op::GetAndTouch(key, exptime) => format!("gats {exptime} {key}\r\n"),
        // No classic command; refused by `execute` before any I/O.
        Op::DeleteIf(..) | Op::Scan { .. } | Op::Stats => return,
        Op::GetMany(keys) => {
            buf.extend_from_slice(b"gets");
            for key in keys {
                buf.push(b' ');
                buf.extend_from_slice(key.as_bytes());
            }
            buf.extend_from_slice(b"\r\n");
            return;
        }
    };
    buf.extend_from_slice(line.as_bytes());
}

/// The `VALUE` frames of a retrieval answer, keyed by key.
fn values(server: &str, op: &Op<'_>, frames: Vec<Frame>) -> Result<HashMap<Vec<u8>, Entry>> {
    let mut found = HashMap::with_capacity(frames.len());
    for frame in frames {
        let (Some(v), Some(value)) = (parse_value_line(&frame.line), frame.data) else {
            return Err(error_line(server, &frame.line, 0)
                .unwrap_or_else(|| unexpected(server, op, &frame.line)));
        };
        let cas = v.cas.ok_or_else(|| Error::Protocol {
            server: server.to_owned(),
            message: "VALUE line of gets lacks the CAS unique".into(),
        })?;
        // A `-C` server answers `gets` with CAS 0: an error, not a version.
        let version = version_of(server, cas)?;
        found.insert(
            v.key,
            Entry {
                value,
                flags: v.flags,
                version,
                ttl: None,
            },
        );
    }
    Ok(found)
}

/// How the answer to `op` is delimited (for one batch of a multi-get).
pub(crate) fn framing(op: &Op<'_>) -> Framing {
    match op {
        Op::GetMany(_) | Op::Get(_) | Op::Version(_) | Op::GetAndTouch(..) => {
            Framing::ClassicValues(1)
        }
        _ => Framing::ClassicLine,
    }
}

/// Turns the answer frames to `op` into its [`Reply`].
pub(crate) fn interpret(server: &str, op: &Op<'_>, frames: Vec<Frame>) -> Result<Reply> {
    let value_len = match op {
        Op::Store { value, .. } => value.len(),
        _ => 0,
    };
    match op {
        Op::GetMany(keys) => {
            let found = values(server, op, frames)?;
            // A key asked twice is answered twice; either copy will do.
            let out = keys.iter().map(|key| found.get(key.as_bytes()).cloned());
            return Ok(Reply::Entries(out.collect()));
        }
        Op::Get(key) | Op::Version(key) | Op::GetAndTouch(key, _) => {
            let entry = values(server, op, frames)?.remove(key.as_bytes());
            return Ok(match op {
                Op::Version(_) => Reply::Version(entry.map(|e| e.version)),
                _ => Reply::Entry(entry),
            });
        }
        _ => {}
    }
    let line = frames
        .into_iter()
        .next()
        .map(|f| f.line)
        .unwrap_or_default();
    let reply = match (op, line.as_slice()) {
        (Op::Store { .. }, b"STORED") => Reply::Stored(StoreReply::Stored(None)),
        (
            Op::Store {
                mode: StoreMode::Add,
                ..
            },
            b"NOT_STORED",
        ) => Reply::Stored(StoreReply::Exists),
        (
            Op::Store {
                mode: StoreMode::Cas(_),
                ..
            },
            b"EXISTS",
        ) => Reply::Stored(StoreReply::Conflict),
        (
            Op::Store {
                mode: StoreMode::Cas(_),
                ..
            },
            b"NOT_FOUND",
        ) => Reply::Stored(StoreReply::NotFound),
        (Op::Delete(_), b"DELETED") | (Op::Touch(..), b"TOUCHED") => Reply::Existed(true),
        (Op::Delete(_) | Op::Touch(..), b"NOT_FOUND") => Reply::Existed(false),
        _ => {
            return Err(error_line(server, &line, value_len)
                .unwrap_or_else(|| unexpected(server, op, &line)));
        }
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_value_lines() {
        assert_eq!(
            parse_value_line(b"VALUE k 5 3 99"),
            Some(ValueLine {
                key: b"k".to_vec(),
                flags: 5,
                len: 3,
                cas: Some(99)
            })
        );
        assert_eq!(parse_value_line(b"VALUE k 0 0").unwrap().cas, None);
        assert!(parse_value_line(b"VALUE k x 3").is_none());
        assert!(parse_value_line(b"VALUE k 0 3 1 2").is_none());
        assert!(parse_value_line(b"END").is_none());
    }

    #[test]
    fn encodes_requests() {
        let mut b = Vec::new();
        encode(
            &mut b,
            &Op::Store {
                mode: StoreMode::Cas(7),
                key: "k",
                value: b"v\0",
                flags: 1,
                exptime: 30,
            },
        );
        encode(
            &mut b,
            &Op::Store {
                mode: StoreMode::Add,
                key: "k",
                value: b"",
                flags: 0,
                exptime: 0,
            },
        );
        encode(&mut b, &Op::Touch("k", 9));
        encode(&mut b, &Op::Delete("k"));
        encode(&mut b, &Op::Get("k"));
        encode(&mut b, &Op::GetMany(&["a", "b"]));
        encode(&mut b, &Op::GetAndTouch("k", 50));
        assert_eq!(
            b,
            b"cas k 1 30 2 7\r\nv\0\r\nadd k 0 0 0\r\n\r\ntouch k 9\r\ndelete k\r\ngets k\r\ngets a b\r\ngats 50 k\r\n"
                .to_vec()
        );
    }
}

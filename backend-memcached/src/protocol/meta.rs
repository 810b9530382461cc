//! The meta protocol (memcached 1.6+): request encoding and answer parsing.
//!
//! Commands used, as answered by memcached 1.6.18 (measured):
//!
//! | op | request | answers |
//! |---|---|---|
//! | get | `mg <k> v f c t` | `VA <len> f<flags> c<cas> t<ttl>` + data, or `EN` |
//! | version | `mg <k> c` | `HD c<cas>` or `EN` |
//! | set | `ms <k> <len> F<flags> T<exp> c` | `HD c<new cas>` |
//! | add | `... c ME` | `HD c<new cas>` or `NS c0` |
//! | cas | `... c C<cas>` | `HD c<new cas>`, `EX c0` (changed) or `NF c0` (absent) |
//! | delete | `md <k>` | `HD` or `NF` |
//! | touch | `mg <k> T<exp>` | `HD` or `EN` (the CAS is unchanged) |
//! | delete_if | `md <k> C<cas>` | `HD`, `EX` (changed) or `NF` (absent) |
//! | get_and_touch | `mg <k> T<exp> v f c t` | `VA <len> f.. c.. t<new ttl>` + data, or `EN` |
//!
//! The `E` flag (explicit CAS) is not used: 1.6.18 does not support it.
//! Listing keys (`scan`) is the same command in both dialects (`scan.rs`).
//!
//! `t` reads `-1` for an item without expiry. Every request gets exactly one
//! answer, in order, so a pipelined multi-get needs no opaque tokens: it
//! sends one `mg` per key and reads as many answers.

use session_core::{DeleteOutcome, Entry, Ttl, Version};

use super::StoreReply;

use super::{GET_BATCH, Op, Reply, StoreMode, error_line, parse_num, unexpected, version_of};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// The status of a meta answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `VA <len>`: a value of this many bytes follows.
    Value(usize),
    /// `HD`: success without a value.
    Done,
    /// `EN`: miss.
    Miss,
    /// `NS`: not stored (add on an existing key).
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// `NF`: not found (cas, delete).
    NotFound,
}

/// One parsed meta answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) status: Status,
    pub(crate) cas: Option<u64>,
    pub(crate) flags: Option<u32>,
    pub(crate) ttl: Option<i64>,
}

/// Parses a meta answer line (without CRLF); `None` if it is not one.
pub(crate) fn parse_header(line: &[u8]) -> Option<Header> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let status = match fields.next()? {
        b"VA" => Status::Value(parse_num(fields.next()?)?),
        b"HD" => Status::Done,
        b"EN" => Status::Miss,
        b"NS" => Status::NotStored,
        b"EX" => Status::Exists,
        b"NF" => Status::NotFound,
        _ => return None,
    };
    let mut header = Header {
        status,
        cas: None,
        flags: None,
        ttl: None,
    };
    for field in fields {
        let (&letter, value) = field.split_first()?;
        match letter {
            b'c' => header.cas = Some(parse_num(value)?),
            b'f' => header.flags = Some(parse_num(value)?),
            b't' => header.ttl = Some(parse_num(value)?),
            // Flags we did not ask for carry nothing we need.
            _ => {}
        }
    }
    Some(header)
}

/// The remaining TTL a `t` flag reports: `-1` is "no expiry"; `0` means the
/// item expires within the second, which must not read as "never".
pub(crate) fn ttl_from_flag(t: i64) -> Ttl {
    match t {
        t if t < 0 => Ttl::NEVER,
        0 => Ttl::seconds(1),
        t => Ttl::seconds(u32::try_from(t).unwrap_or(u32::MAX)),
    }
}

/// Appends the request for `op` (except [`Op::GetMany`]) to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, op: &Op<'_>) {
    match *op {
        Op::Get(key) => push_line(buf, &["mg ", key, " v f c t"]),
        Op::Version(key) => push_line(buf, &["mg ", key, " c"]),
        Op::Store {
            mode,
            key,
            value,
            flags,
            exptime,
        } => {
            let mode = match mode {
                StoreMode::Set => String::new(),
                StoreMode::Add => " ME".to_owned(),
                StoreMode::Cas(cas) => format!(" C{cas}"),
            };
            let line = format!("ms {key} {} F{flags} T{exptime} c{mode}\r\n", value.len());
            buf.extend_from_slice(line.as_bytes());
            buf.extend_from_slice(value);
            buf.extend_from_slice(b"\r\n");
        }
        Op::Delete(key) => push_line(buf, &["md ", key]),
        Op::Touch(key, exptime) => {
            push_line(buf, &["mg ", key, " T", &exptime.to_string()]);
        }
        Op::GetMany(keys) => {
            for key in keys {
                push_line(buf, &["mg ", key, " v f c t"]);
            }
        }
        Op::DeleteIf(key, cas) => push_line(buf, &["md ", key, " C", &cas.to_string()]),
        Op::GetAndTouch(key, exptime) => {
            push_line(buf, &["mg ", key, " T", &exptime.to_string(), " v f c t"]);
        }
        // Sent by `scan.rs`, never encoded here.
        Op::Scan { .. } | Op::Stats => {}
    }
}

fn push_line(buf: &mut Vec<u8>, parts: &[&str]) {
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
}

/// Reads one answer: its header and, for `VA`, its data.
async fn read_answer(
    conn: &mut Connection,
    op: &Op<'_>,
    value_len: usize,
) -> Result<(Header, Vec<u8>)> {
    let line = conn.read_line(op.name()).await?;
    let Some(header) = parse_header(&line) else {
        return Err(error_line(conn.server(), &line, value_len)
            .unwrap_or_else(|| unexpected(conn.server(), op, &line)));
    };
    let data = match header.status {
        Status::Value(len) => conn.read_block(op.name(), len).await?,
        _ => Vec::new(),
    };
    Ok((header, data))
}

/// The version in an answer that must carry one (we asked for `c`).
fn require_cas(conn: &Connection, op: &Op<'_>, header: &Header) -> Result<Version> {
    let cas = header.cas.ok_or_else(|| Error::Protocol {
        server: conn.server().to_owned(),
        message: format!("answer to {} lacks the requested CAS", op.name()),
    })?;
    // `c0` from a server started with `-C` is an error, not a version.
    version_of(conn.server(), cas)
}

fn entry(conn: &Connection, op: &Op<'_>, header: Header, value: Vec<u8>) -> Result<Option<Entry>> {
    match header.status {
        Status::Value(_) => Ok(Some(Entry {
            value,
            // We asked for `f`: an answer without it is not "flags 0" (that
            // would make a session's codec unreadable), it is a broken peer.
            flags: header.flags.ok_or_else(|| Error::Protocol {
                server: conn.server().to_owned(),
                message: format!("answer to {} lacks the requested client flags", op.name()),
            })?,
            version: require_cas(conn, op, &header)?,
            ttl: header.ttl.map(ttl_from_flag),
        })),
        Status::Miss => Ok(None),
        _ => Err(Error::Protocol {
            server: conn.server().to_owned(),
            message: format!("unexpected {:?} answer to {}", header.status, op.name()),
        }),
    }
}

/// Sends `op` and reads its answer.
pub(crate) async fn execute(conn: &mut Connection, op: &Op<'_>) -> Result<Reply> {
    if let Op::Scan { .. } = op {
        return Err(Error::Protocol {
            server: conn.server().to_owned(),
            message: "internal error: scan is not a meta command".into(),
        });
    }
    if let Op::GetMany(keys) = op {
        let mut out = Vec::with_capacity(keys.len());
        for batch in keys.chunks(GET_BATCH) {
            let batch_op = Op::GetMany(batch);
            let mut buf = Vec::with_capacity(batch.len() * 32);
            encode(&mut buf, &batch_op);
            conn.send(op.name(), &buf).await?;
            for _ in batch {
                let (header, data) = read_answer(conn, op, 0).await?;
                out.push(entry(conn, op, header, data)?);
            }
        }
        return Ok(Reply::Entries(out));
    }

    let value_len = match op {
        Op::Store { value, .. } => value.len(),
        _ => 0,
    };
    let mut buf = Vec::with_capacity(64 + value_len);
    encode(&mut buf, op);
    conn.send(op.name(), &buf).await?;
    let (header, data) = read_answer(conn, op, value_len).await?;
    let bad = |conn: &Connection| {
        Err(Error::Protocol {
            server: conn.server().to_owned(),
            message: format!("unexpected {:?} answer to {}", header.status, op.name()),
        })
    };
    match op {
        Op::Get(_) | Op::GetAndTouch(..) => Ok(Reply::Entry(entry(conn, op, header, data)?)),
        Op::DeleteIf(..) => match header.status {
            Status::Done => Ok(Reply::Deleted(DeleteOutcome::Deleted)),
            Status::Exists => Ok(Reply::Deleted(DeleteOutcome::Conflict)),
            Status::NotFound => Ok(Reply::Deleted(DeleteOutcome::NotFound)),
            _ => bad(conn),
        },
        Op::Version(_) => match header.status {
            Status::Done => Ok(Reply::Version(Some(require_cas(conn, op, &header)?))),
            Status::Miss => Ok(Reply::Version(None)),
            _ => bad(conn),
        },
        Op::Store { mode, .. } => match (header.status, mode) {
            (Status::Done, _) => Ok(Reply::Stored(StoreReply::Stored(Some(require_cas(
                conn, op, &header,
            )?)))),
            (Status::NotStored, StoreMode::Add) => Ok(Reply::Stored(StoreReply::Exists)),
            (Status::Exists, StoreMode::Cas(_)) => Ok(Reply::Stored(StoreReply::Conflict)),
            (Status::NotFound, StoreMode::Cas(_)) => Ok(Reply::Stored(StoreReply::NotFound)),
            _ => bad(conn),
        },
        Op::Delete(_) => match header.status {
            Status::Done => Ok(Reply::Existed(true)),
            Status::NotFound => Ok(Reply::Existed(false)),
            _ => bad(conn),
        },
        Op::Touch(..) => match header.status {
            Status::Done => Ok(Reply::Existed(true)),
            Status::Miss => Ok(Reply::Existed(false)),
            _ => bad(conn),
        },
        Op::GetMany(_) | Op::Scan { .. } | Op::Stats => bad(conn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_header(b"VA 3 f5 c2 t99"),
            Some(Header {
                status: Status::Value(3),
                cas: Some(2),
                flags: Some(5),
                ttl: Some(99)
            })
        );
        let h = parse_header(b"HD c7").unwrap();
        assert_eq!((h.status, h.cas), (Status::Done, Some(7)));
        assert_eq!(parse_header(b"EN").unwrap().status, Status::Miss);
        assert_eq!(parse_header(b"NS c0").unwrap().status, Status::NotStored);
        assert_eq!(parse_header(b"EX c0").unwrap().status, Status::Exists);
        assert_eq!(parse_header(b"NF").unwrap().status, Status::NotFound);
        assert_eq!(parse_header(b"HD t-1").unwrap().ttl, Some(-1));
        assert_eq!(
            parse_header(b"VA 3 kfoo Oabc").unwrap().status,
            Status::Value(3)
        );
        assert!(parse_header(b"SERVER_ERROR object too large for cache").is_none());
        assert!(parse_header(b"VA x").is_none());
        assert!(parse_header(b"HD cX").is_none());
        assert!(parse_header(b"").is_none());
    }

    #[test]
    fn ttl_flag() {
        assert_eq!(ttl_from_flag(-1), Ttl::NEVER);
        assert_eq!(ttl_from_flag(0), Ttl::seconds(1));
        assert_eq!(ttl_from_flag(42), Ttl::seconds(42));
    }

    #[test]
    fn encodes_requests() {
        let mut b = Vec::new();
        encode(
            &mut b,
            &Op::Store {
                mode: StoreMode::Cas(9),
                key: "k",
                value: b"a\r\nb",
                flags: 3,
                exptime: 60,
            },
        );
        assert_eq!(b, b"ms k 4 F3 T60 c C9\r\na\r\nb\r\n");
        b.clear();
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
        assert_eq!(b, b"ms k 0 F0 T0 c ME\r\n\r\n");
        b.clear();
        encode(&mut b, &Op::Touch("k", 5));
        encode(&mut b, &Op::Delete("k"));
        encode(&mut b, &Op::Version("k"));
        encode(&mut b, &Op::GetMany(&["a", "b"]));
        assert_eq!(
            b,
            b"mg k T5\r\nmd k\r\nmg k c\r\nmg a v f c t\r\nmg b v f c t\r\n".to_vec()
        );
        b.clear();
        encode(&mut b, &Op::DeleteIf("k", 42));
        encode(&mut b, &Op::GetAndTouch("k", 300));
        assert_eq!(b, b"md k C42\r\nmg k T300 v f c t\r\n".to_vec());
    }
}

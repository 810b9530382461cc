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
//! answer, in order. Each request line also carries an opaque token
//! (`O<n>`, fresh per call, the same for every line of a multi-get), which
//! memcached copies into every meta answer, misses included: an answer
//! with another call's token means the stream is out of step (a lost or
//! duplicated answer), and is refused rather than handed to the wrong
//! caller (`frame.rs`). The answer line itself is parsed in `meta_header.rs`,
//! which `frame.rs` also reads (for a block's length and the token).

use session_core::{DeleteOutcome, Entry, Ttl, Version};

use super::StoreReply;
use super::frame::Frame;
use super::meta_header::{Header, Status, parse_header};
use super::{Op, Reply, StoreMode, error_line, unexpected, version_of};
use crate::error::{Error, Result};

/// The remaining TTL a `t` flag reports: `-1` is "no expiry"; `0` means the
/// item expires within the second, which must not read as "never".
pub(crate) fn ttl_from_flag(t: i64) -> Ttl {
    match t {
        t if t < 0 => Ttl::NEVER,
        0 => Ttl::seconds(1),
        t => Ttl::seconds(u32::try_from(t).unwrap_or(u32::MAX)),
    }
}

/// Appends the request for `op` to `buf`, every line carrying the token
/// `O<opaque>` (nothing for the ops that are not meta commands: scan and
/// stats).
pub(crate) fn encode(buf: &mut Vec<u8>, op: &Op<'_>, opaque: u32) {
    // Built from byte slices and `itoa` numbers rather than `write!`: the
    // formatting machinery was about 1.5% of a busy client's CPU.
    let mut line = Line { buf, opaque };
    match *op {
        Op::Get(key) => line.start(b"mg ", key).put(b" v f c t").end(),
        Op::Version(key) => line.start(b"mg ", key).put(b" c").end(),
        Op::Store {
            mode,
            key,
            value,
            flags,
            exptime,
        } => {
            line.start(b"ms ", key)
                .put(b" ")
                .num(value.len())
                .put(b" F")
                .num(flags)
                .put(b" T")
                .num(exptime)
                .put(b" c");
            match mode {
                StoreMode::Set => {}
                StoreMode::Add => {
                    line.put(b" ME");
                }
                StoreMode::Cas(cas) => {
                    line.put(b" C").num(cas);
                }
            }
            line.end();
            line.buf.extend_from_slice(value);
            line.buf.extend_from_slice(b"\r\n");
        }
        Op::Delete(key) => line.start(b"md ", key).end(),
        Op::Touch(key, exptime) => line.start(b"mg ", key).put(b" T").num(exptime).end(),
        Op::GetMany(keys) => {
            for key in keys {
                line.start(b"mg ", key).put(b" v f c t").end();
            }
        }
        Op::DeleteIf(key, cas) => line.start(b"md ", key).put(b" C").num(cas).end(),
        Op::GetAndTouch(key, exptime) => line
            .start(b"mg ", key)
            .put(b" T")
            .num(exptime)
            .put(b" v f c t")
            .end(),
        // Sent by `scan.rs`, never encoded here.
        Op::Scan { .. } | Op::Stats => {}
    }
}

/// Appends one request line to a buffer.
struct Line<'b> {
    buf: &'b mut Vec<u8>,
    opaque: u32,
}

impl Line<'_> {
    /// The command and its key.
    fn start(&mut self, command: &[u8], key: &str) -> &mut Self {
        self.put(command).put(key.as_bytes())
    }

    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    fn num(&mut self, n: impl itoa::Integer) -> &mut Self {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self
    }

    /// The opaque token and the line's end.
    fn end(&mut self) {
        let opaque = self.opaque;
        self.put(b" O").num(opaque).put(b"\r\n");
    }
}

/// The version in an answer that must carry one (we asked for `c`).
fn require_cas(server: &str, op: &Op<'_>, header: &Header) -> Result<Version> {
    let cas = header.cas.ok_or_else(|| Error::Protocol {
        server: server.to_owned(),
        message: format!("answer to {} lacks the requested CAS", op.name()),
    })?;
    // `c0` from a server started with `-C` is an error, not a version.
    version_of(server, cas)
}

fn entry(server: &str, op: &Op<'_>, header: Header, value: Vec<u8>) -> Result<Option<Entry>> {
    match header.status {
        Status::Value(_) => Ok(Some(Entry {
            value,
            // We asked for `f`: an answer without it is not "flags 0" (that
            // would make a session's codec unreadable), it is a broken peer.
            flags: header.flags.ok_or_else(|| Error::Protocol {
                server: server.to_owned(),
                message: format!("answer to {} lacks the requested client flags", op.name()),
            })?,
            version: require_cas(server, op, &header)?,
            ttl: header.ttl.map(ttl_from_flag),
        })),
        Status::Miss => Ok(None),
        _ => Err(Error::Protocol {
            server: server.to_owned(),
            message: format!("unexpected {:?} answer to {}", header.status, op.name()),
        }),
    }
}

/// The header of one answer frame, or the error its line reports.
fn header(server: &str, op: &Op<'_>, frame: &Frame, value_len: usize) -> Result<Header> {
    parse_header(&frame.line).ok_or_else(|| {
        error_line(server, &frame.line, value_len)
            .unwrap_or_else(|| unexpected(server, op, &frame.line))
    })
}

/// Turns the answer frames to `op` (one per request line, in order) into
/// its [`Reply`].
pub(crate) fn interpret(server: &str, op: &Op<'_>, frames: Vec<Frame>) -> Result<Reply> {
    let value_len = match op {
        Op::Store { value, .. } => value.len(),
        _ => 0,
    };
    let expected = match op {
        Op::GetMany(keys) => keys.len(),
        _ => 1,
    };
    if frames.len() != expected {
        return Err(Error::Protocol {
            server: server.to_owned(),
            message: format!(
                "{} answers to {} where {expected} were asked for",
                frames.len(),
                op.name()
            ),
        });
    }
    if let Op::GetMany(_) = op {
        let mut out = Vec::with_capacity(frames.len());
        for frame in frames {
            let header = header(server, op, &frame, 0)?;
            out.push(entry(server, op, header, frame.data.unwrap_or_default())?);
        }
        return Ok(Reply::Entries(out));
    }
    let Some(frame) = frames.into_iter().next() else {
        return Err(unexpected(server, op, b""));
    };
    let header = header(server, op, &frame, value_len)?;
    let bad = || {
        Err(Error::Protocol {
            server: server.to_owned(),
            message: format!("unexpected {:?} answer to {}", header.status, op.name()),
        })
    };
    match op {
        Op::Get(_) | Op::GetAndTouch(..) => Ok(Reply::Entry(entry(
            server,
            op,
            header,
            frame.data.unwrap_or_default(),
        )?)),
        Op::DeleteIf(..) => match header.status {
            Status::Done => Ok(Reply::Deleted(DeleteOutcome::Deleted)),
            Status::Exists => Ok(Reply::Deleted(DeleteOutcome::Conflict)),
            Status::NotFound => Ok(Reply::Deleted(DeleteOutcome::NotFound)),
            _ => bad(),
        },
        Op::Version(_) => match header.status {
            Status::Done => Ok(Reply::Version(Some(require_cas(server, op, &header)?))),
            Status::Miss => Ok(Reply::Version(None)),
            _ => bad(),
        },
        Op::Store { mode, .. } => match (header.status, mode) {
            (Status::Done, _) => Ok(Reply::Stored(StoreReply::Stored(Some(require_cas(
                server, op, &header,
            )?)))),
            (Status::NotStored, StoreMode::Add) => Ok(Reply::Stored(StoreReply::Exists)),
            (Status::Exists, StoreMode::Cas(_)) => Ok(Reply::Stored(StoreReply::Conflict)),
            (Status::NotFound, StoreMode::Cas(_)) => Ok(Reply::Stored(StoreReply::NotFound)),
            _ => bad(),
        },
        Op::Delete(_) => match header.status {
            Status::Done => Ok(Reply::Existed(true)),
            Status::NotFound => Ok(Reply::Existed(false)),
            _ => bad(),
        },
        Op::Touch(..) => match header.status {
            Status::Done => Ok(Reply::Existed(true)),
            Status::Miss => Ok(Reply::Existed(false)),
            _ => bad(),
        },
        Op::GetMany(_) | Op::Scan { .. } | Op::Stats => bad(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            7,
        );
        assert_eq!(b, b"ms k 4 F3 T60 c C9 O7\r\na\r\nb\r\n");
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
            7,
        );
        assert_eq!(b, b"ms k 0 F0 T0 c ME O7\r\n\r\n");
        b.clear();
        encode(&mut b, &Op::Touch("k", 5), 7);
        encode(&mut b, &Op::Delete("k"), 7);
        encode(&mut b, &Op::Version("k"), 7);
        encode(&mut b, &Op::GetMany(&["a", "b"]), 7);
        assert_eq!(
            b,
            b"mg k T5 O7\r\nmd k O7\r\nmg k c O7\r\nmg a v f c t O7\r\nmg b v f c t O7\r\n"
                .to_vec()
        );
        b.clear();
        encode(&mut b, &Op::DeleteIf("k", 42), 7);
        encode(&mut b, &Op::GetAndTouch("k", 300), 7);
        assert_eq!(b, b"md k C42 O7\r\nmg k T300 v f c t O7\r\n".to_vec());
        b.clear();
        // The extremes of every number a line carries.
        encode(&mut b, &Op::Get("k"), u32::MAX);
        encode(&mut b, &Op::Touch("k", -1), 0);
        encode(
            &mut b,
            &Op::Store {
                mode: StoreMode::Cas(u64::MAX),
                key: "k",
                value: b"v",
                flags: u32::MAX,
                exptime: i64::MIN,
            },
            1,
        );
        assert_eq!(
            b,
            b"mg k v f c t O4294967295\r\nmg k T-1 O0\r\n\
              ms k 1 F4294967295 T-9223372036854775808 c C18446744073709551615 O1\r\nv\r\n"
                .to_vec()
        );
        b.clear();
        encode(
            &mut b,
            &Op::Store {
                mode: StoreMode::Set,
                key: "k",
                value: b"",
                flags: 0,
                exptime: 0,
            },
            2,
        );
        assert_eq!(b, b"ms k 0 F0 T0 c O2\r\n\r\n".to_vec());
    }
}

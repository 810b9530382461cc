//! Several writes sent back to back on one [`RawConnection`] and answered
//! together: [`RawConnection::write_many`].
//!
//! Why: the replicator copies thousands of keys when a target comes back
//! empty, and one round trip per write (two syscalls on each side, a
//! wakeup, the scheduler) was most of that time; 64 writes in one request
//! cost about one round trip. Safe to send at once: each answer is one
//! short line, so memcached never blocks writing answers we have not read
//! yet while we are still writing the request (the reason multi-gets go
//! in batches of `GET_BATCH`, whose answers carry values).

use session_core::{DeleteOutcome, Ttl};

use super::{RawConnection, WriteOutcome, op_key};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::protocol::frame::{self, Framing};
use crate::protocol::{self, Op, Reply, StoreMode, StoreReply};

/// One write of [`RawConnection::write_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawWrite<'a> {
    /// Writes `key` unconditionally (as [`RawConnection::set`]).
    Set {
        /// The key.
        key: &'a str,
        /// The value bytes.
        value: &'a [u8],
        /// The client flags.
        flags: u32,
        /// Time to live.
        ttl: Ttl,
    },
    /// Writes `key` only if absent (as [`RawConnection::add`]).
    Add {
        /// The key.
        key: &'a str,
        /// The value bytes.
        value: &'a [u8],
        /// The client flags.
        flags: u32,
        /// Time to live.
        ttl: Ttl,
    },
    /// Writes `key` only while its CAS is `cas` (as [`RawConnection::cas`]).
    Cas {
        /// The key.
        key: &'a str,
        /// The value bytes.
        value: &'a [u8],
        /// The client flags.
        flags: u32,
        /// Time to live.
        ttl: Ttl,
        /// The CAS unique the item must still have.
        cas: u64,
    },
    /// Deletes `key` (as [`RawConnection::delete`]).
    Delete(&'a str),
    /// Deletes `key` only while its CAS is the given one (as
    /// [`RawConnection::delete_if`]).
    DeleteIf(&'a str, u64),
    /// Sets a new remaining TTL (as [`RawConnection::touch`]).
    Touch(&'a str, Ttl),
}

/// What one write of [`RawConnection::write_many`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawWritten {
    /// For `Set`, `Add` and `Cas`.
    Stored(WriteOutcome),
    /// For `Delete` and `Touch`: whether the item existed.
    Existed(bool),
    /// For `DeleteIf`.
    Deleted(DeleteOutcome),
}

impl<'a> RawWrite<'a> {
    fn op(&self) -> Op<'a> {
        let store = |mode, key, value, flags, ttl| Op::Store {
            mode,
            key,
            value,
            flags,
            exptime: protocol::exptime(ttl),
        };
        match *self {
            RawWrite::Set {
                key,
                value,
                flags,
                ttl,
            } => store(StoreMode::Set, key, value, flags, ttl),
            RawWrite::Add {
                key,
                value,
                flags,
                ttl,
            } => store(StoreMode::Add, key, value, flags, ttl),
            RawWrite::Cas {
                key,
                value,
                flags,
                ttl,
                cas,
            } => store(StoreMode::Cas(cas), key, value, flags, ttl),
            RawWrite::Delete(key) => Op::Delete(key),
            RawWrite::DeleteIf(key, cas) => Op::DeleteIf(key, cas),
            RawWrite::Touch(key, ttl) => Op::Touch(key, protocol::exptime(ttl)),
        }
    }
}

impl RawConnection {
    /// Sends every write of `writes` in one request and reads their
    /// answers, in order: one round trip for all. The server applies them
    /// in order, so several writes of one key keep their order.
    ///
    /// The outer error is the connection's (it is then unusable, see
    /// [`RawConnection::is_broken`]); an inner one is that write's own
    /// refusal that leaves the stream in step (`SERVER_ERROR`, e.g.
    /// [`Error::ServerTooLarge`]), the other writes stand.
    pub async fn write_many(&mut self, writes: &[RawWrite<'_>]) -> Result<Vec<Result<RawWritten>>> {
        if self.broken {
            return Err(Error::Protocol {
                server: self.server().to_owned(),
                message: "connection unusable after an earlier failure; reconnect".into(),
            });
        }
        let ops: Vec<Op<'_>> = writes.iter().map(RawWrite::op).collect();
        for op in &ops {
            if let Some(key) = op_key(op) {
                session_core::key::validate_key(key)?;
            }
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let opaque = protocol::next_opaque();
        let mut buf = Vec::with_capacity(
            writes
                .iter()
                .map(|w| match w {
                    RawWrite::Set { value, .. }
                    | RawWrite::Add { value, .. }
                    | RawWrite::Cas { value, .. } => 80 + value.len(),
                    _ => 64,
                })
                .sum(),
        );
        for op in &ops {
            protocol::encode(Protocol::Meta, op, opaque, &mut buf);
        }
        let framing = Framing::Meta {
            answers: ops.len(),
            opaque,
        };
        let conn = &mut self.conn;
        let exchange = async {
            conn.send("write_many", &buf).await?;
            frame::read_frames(conn.reader(), framing, "write_many").await
        };
        let frames = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => {
                self.broken = true;
                return Err(e);
            }
            Err(_) => {
                self.broken = true;
                return Err(Error::Timeout {
                    operation: "write_many",
                    server: self.server().to_owned(),
                    after: self.timeout,
                    sent: true,
                });
            }
        };
        if frames.iter().any(|f| !f.keeps_stream_in_sync()) {
            // `ERROR`/`CLIENT_ERROR`: the server misread the stream, so
            // the answers after it may belong to anything.
            self.broken = true;
            let line = frames
                .iter()
                .find(|f| !f.keeps_stream_in_sync())
                .map(|f| String::from_utf8_lossy(&f.line).into_owned())
                .unwrap_or_default();
            return Err(Error::Protocol {
                server: self.server().to_owned(),
                message: format!("write_many: {line}"),
            });
        }
        let server = self.server().to_owned();
        let mut out = Vec::with_capacity(ops.len());
        for (op, frame) in ops.iter().zip(frames) {
            let answer = protocol::interpret(Protocol::Meta, &server, op, vec![frame]);
            out.push(answer.and_then(|reply| written(&server, reply)));
        }
        Ok(out)
    }
}

/// One write's [`Reply`] as a [`RawWritten`].
fn written(server: &str, reply: Reply) -> Result<RawWritten> {
    Ok(match reply {
        Reply::Stored(StoreReply::Stored(v)) => {
            RawWritten::Stored(WriteOutcome::Stored(v.map(|v| v.get()).unwrap_or(0)))
        }
        Reply::Stored(StoreReply::Exists | StoreReply::Conflict) => {
            RawWritten::Stored(WriteOutcome::Conflict)
        }
        Reply::Stored(StoreReply::NotFound) => RawWritten::Stored(WriteOutcome::NotFound),
        Reply::Existed(e) => RawWritten::Existed(e),
        Reply::Deleted(d) => RawWritten::Deleted(d),
        _ => {
            return Err(Error::Protocol {
                server: server.to_owned(),
                message: "internal error: unexpected reply kind to write_many".into(),
            });
        }
    })
}

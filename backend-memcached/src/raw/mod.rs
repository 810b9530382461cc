//! Low-level access to **one** memcached server, for tools that copy items
//! between servers (the `replicator` crate) rather than keep sessions.
//!
//! [`RawConnection`] is one connection in the meta protocol, with one
//! deadline per call, reusing this crate's connection and protocol code:
//! read an item with its value, flags, remaining TTL and CAS
//! ([`RawConnection::get_many`]), write one with given flags and TTL
//! (`set`, `add`, `cas`), delete (plainly or only at a given CAS), touch,
//! several such writes in one round trip ([`RawConnection::write_many`]),
//! dump every key with its expiry (`lru_crawler metadump all`) and read
//! `stats`. [`Watch`] is a connection in memcached's `watch` mode (a log
//! stream, one line per event), and [`WatchEvent::parse`] reads its
//! `item_store` lines.
//!
//! Both open their connection from a **target**: `host:port` (plain TCP),
//! or a one-server store URL, `memcached://[user:password@]host:port` or
//! `memcacheds://...?ca=...` (see [`crate::config`]), for TLS and
//! authentication exactly as a store gets them. [`target_addr`] checks a
//! target without connecting and gives the address to print (never the
//! password).
//!
//! No routing, pooling or down-marking here: the caller owns the
//! connection, and any error leaves it unusable ([`RawConnection::is_broken`]),
//! since an answer may be half read; the caller reconnects.
//!
//! Measured on memcached 1.6.18: `watch mutations` prints one line per
//! successful or failed store
//! (`ts=<unix.micros> gid=<n> type=item_store key=<uri-encoded> status=stored cmd=set ttl=<n> ...`),
//! nothing for deletes, touches or `incr`; `watch deletions` answers
//! `ERROR` (it came in a later release). Lines a slow watcher missed are
//! not announced by 1.6.18: they show as gaps in `gid` (skipped by the
//! watcher) or only in the `stats` counters `log_worker_dropped` and
//! `log_watcher_skipped` (dropped before reaching any watcher).

mod pipeline;
mod target;

use std::time::Duration;

use session_core::{DeleteOutcome, Ttl};
use tokio::time::Instant;

use crate::config::Protocol;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::protocol::{self, Op, Reply, StoreMode, StoreReply};
pub use pipeline::{RawWrite, RawWritten};
use target::resolve;
pub use target::target_addr;

/// An item as read from one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawItem {
    /// The value bytes.
    pub value: Vec<u8>,
    /// The client flags.
    pub flags: u32,
    /// Remaining time to live; [`Ttl::NEVER`] for no expiry.
    pub ttl: Ttl,
    /// The server's CAS unique of the item.
    pub cas: u64,
}

/// One key of a metadump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedKey {
    /// The key.
    pub key: String,
    /// Expiry as a unix time; `None` for never.
    pub exp: Option<u64>,
}

/// What a conditional write answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the item's new CAS unique.
    Stored(u64),
    /// Not written: the item changed (cas) or exists (add) meanwhile.
    Conflict,
    /// Not written: the item is gone (cas).
    NotFound,
}

/// One meta-protocol connection to one server, with a deadline per call.
#[derive(Debug)]
pub struct RawConnection {
    conn: Connection,
    timeout: Duration,
    broken: bool,
}

/// The largest number of keys [`RawConnection::dump_keys`] accepts.
pub const MAX_DUMP_KEYS: usize = 50_000_000;

impl RawConnection {
    /// Connects to `target` (`host:port` or a one-server URL, see the
    /// [module docs](self)); every later call must finish within `timeout`.
    pub async fn connect(target: &str, timeout: Duration) -> Result<Self> {
        let (addr, connector) = resolve(target)?;
        let addr = addr.as_str();
        let deadline = Instant::now() + timeout;
        let mut conn = Connection::connect_until(&connector, addr, deadline, timeout).await?;
        let settings = tokio::time::timeout_at(deadline, protocol::read_settings(&mut conn))
            .await
            .map_err(|_| Error::Timeout {
                operation: "stats settings",
                server: addr.to_owned(),
                after: timeout,
                sent: true,
            })?
            .map_err(crate::connector::tls_refusal)?;
        if let Some(max) = settings.item_size_max {
            conn.set_max_block(max);
        }
        Ok(RawConnection {
            conn,
            timeout,
            broken: false,
        })
    }

    /// The server address.
    pub fn server(&self) -> &str {
        self.conn.server()
    }

    /// True once a call failed: the stream may hold half an answer, so the
    /// connection must be replaced.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    async fn run(&mut self, op: &Op<'_>) -> Result<Reply> {
        if self.broken {
            return Err(Error::Protocol {
                server: self.server().to_owned(),
                message: "connection unusable after an earlier failure; reconnect".into(),
            });
        }
        if let Some(key) = op_key(op) {
            session_core::key::validate_key(key)?;
        }
        let result = tokio::time::timeout(
            self.timeout,
            protocol::execute(Protocol::Meta, &mut self.conn, op),
        )
        .await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.broken = true;
                Err(e)
            }
            Err(_) => {
                self.broken = true;
                Err(Error::Timeout {
                    operation: op.name(),
                    server: self.server().to_owned(),
                    after: self.timeout,
                    sent: true,
                })
            }
        }
    }

    fn unexpected(&self, what: &str) -> Error {
        Error::Protocol {
            server: self.server().to_owned(),
            message: format!("internal error: unexpected reply kind to {what}"),
        }
    }

    /// Reads several items, pipelined; `None` for a missing key.
    pub async fn get_many(&mut self, keys: &[&str]) -> Result<Vec<Option<RawItem>>> {
        for key in keys {
            session_core::key::validate_key(key)?;
        }
        match self.run(&Op::GetMany(keys)).await? {
            Reply::Entries(entries) => Ok(entries
                .into_iter()
                .map(|e| {
                    e.map(|e| RawItem {
                        value: e.value,
                        flags: e.flags,
                        ttl: e.ttl.unwrap_or(Ttl::NEVER),
                        cas: e.version.get(),
                    })
                })
                .collect()),
            _ => Err(self.unexpected("get_many")),
        }
    }

    /// Reads one item.
    pub async fn get(&mut self, key: &str) -> Result<Option<RawItem>> {
        Ok(self.get_many(&[key]).await?.pop().flatten())
    }

    async fn store(
        &mut self,
        mode: StoreMode,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
    ) -> Result<WriteOutcome> {
        let op = Op::Store {
            mode,
            key,
            value,
            flags,
            exptime: protocol::exptime(ttl),
        };
        match self.run(&op).await? {
            Reply::Stored(StoreReply::Stored(v)) => {
                Ok(WriteOutcome::Stored(v.map(|v| v.get()).unwrap_or(0)))
            }
            Reply::Stored(StoreReply::Exists | StoreReply::Conflict) => Ok(WriteOutcome::Conflict),
            Reply::Stored(StoreReply::NotFound) => Ok(WriteOutcome::NotFound),
            _ => Err(self.unexpected("store")),
        }
    }

    /// Writes `key` unconditionally; returns its new CAS unique.
    pub async fn set(&mut self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<u64> {
        match self.store(StoreMode::Set, key, value, flags, ttl).await? {
            WriteOutcome::Stored(cas) => Ok(cas),
            _ => Err(self.unexpected("set")),
        }
    }

    /// Writes `key` only if it is absent ([`WriteOutcome::Conflict`] if not).
    pub async fn add(
        &mut self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
    ) -> Result<WriteOutcome> {
        self.store(StoreMode::Add, key, value, flags, ttl).await
    }

    /// Writes `key` only while its CAS unique is still `cas`.
    pub async fn cas(
        &mut self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        cas: u64,
    ) -> Result<WriteOutcome> {
        self.store(StoreMode::Cas(cas), key, value, flags, ttl)
            .await
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&mut self, key: &str) -> Result<bool> {
        match self.run(&Op::Delete(key)).await? {
            Reply::Existed(e) => Ok(e),
            _ => Err(self.unexpected("delete")),
        }
    }

    /// Deletes `key` only while its CAS unique is still `cas`.
    pub async fn delete_if(&mut self, key: &str, cas: u64) -> Result<DeleteOutcome> {
        match self.run(&Op::DeleteIf(key, cas)).await? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(self.unexpected("delete_if")),
        }
    }

    /// Sets a new remaining TTL on `key` (its CAS is unchanged); whether
    /// it existed.
    pub async fn touch(&mut self, key: &str, ttl: Ttl) -> Result<bool> {
        match self.run(&Op::Touch(key, protocol::exptime(ttl))).await? {
            Reply::Existed(e) => Ok(e),
            _ => Err(self.unexpected("touch")),
        }
    }

    /// Every live key of the server with its expiry, from one
    /// `lru_crawler metadump all`. Not a snapshot, and not exact: memcached
    /// leaves out items referenced at that instant (an item read a moment
    /// ago can be missing for ~100 ms), so a caller must not take a missing
    /// key for a deleted one without reading it. Keys that are not UTF-8
    /// are left out.
    pub async fn dump_keys(&mut self) -> Result<Vec<DumpedKey>> {
        if self.broken {
            return Err(Error::Protocol {
                server: self.server().to_owned(),
                message: "connection unusable after an earlier failure; reconnect".into(),
            });
        }
        let result = tokio::time::timeout(
            self.timeout,
            protocol::scan::dump_all(&mut self.conn, MAX_DUMP_KEYS),
        )
        .await;
        let items = match result {
            Ok(Ok(items)) => items,
            Ok(Err(e)) => {
                self.broken = true;
                return Err(e);
            }
            Err(_) => {
                self.broken = true;
                return Err(Error::Timeout {
                    operation: "metadump",
                    server: self.server().to_owned(),
                    after: self.timeout,
                    sent: true,
                });
            }
        };
        let now = unix_now();
        Ok(items
            .into_iter()
            .filter(|i| i.exp.is_none_or(|exp| exp > now))
            .filter_map(|i| {
                Some(DumpedKey {
                    key: String::from_utf8(i.key).ok()?,
                    exp: i.exp,
                })
            })
            .collect())
    }

    /// The server's `stats` counters, as name/value pairs.
    pub async fn stats(&mut self) -> Result<Vec<(String, String)>> {
        match self.run(&Op::Stats).await? {
            Reply::Stats(s) => Ok(s),
            _ => Err(self.unexpected("stats")),
        }
    }
}

fn op_key<'a>(op: &Op<'a>) -> Option<&'a str> {
    match *op {
        Op::Get(k)
        | Op::Version(k)
        | Op::Delete(k)
        | Op::Touch(k, _)
        | Op::DeleteIf(k, _)
        | Op::GetAndTouch(k, _) => Some(k),
        Op::Store { key, .. } => Some(key),
        Op::GetMany(_) | Op::Scan { .. } | Op::Stats => None,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A connection in memcached's `watch` mode: a stream of log lines.
#[derive(Debug)]
pub struct Watch {
    conn: Connection,
}

impl Watch {
    /// Opens a watch of `events` (`"mutations"`, `"deletions"`, ...,
    /// space separated) on `target` (`host:port` or a one-server URL, see
    /// the [module docs](self)). `Ok(None)` when the server does not know
    /// one of them (it answers `ERROR`, as 1.6.18 does for `deletions`).
    pub async fn open(target: &str, events: &str, timeout: Duration) -> Result<Option<Self>> {
        if events
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b' '))
        {
            return Err(Error::InvalidConfig(format!(
                "watch events must be words: {events:?}"
            )));
        }
        let (addr, connector) = resolve(target)?;
        let addr = addr.as_str();
        let deadline = Instant::now() + timeout;
        let mut conn = Connection::connect_until(&connector, addr, deadline, timeout).await?;
        let request = format!("watch {events}\r\n");
        let answer = tokio::time::timeout_at(deadline, async {
            conn.send("watch", request.as_bytes()).await?;
            conn.read_line("watch").await
        })
        .await
        .map_err(|_| Error::Timeout {
            operation: "watch",
            server: addr.to_owned(),
            after: timeout,
            sent: true,
        })??;
        match answer.as_slice() {
            b"OK" => Ok(Some(Watch { conn })),
            b"ERROR" => Ok(None),
            other => Err(Error::Protocol {
                server: addr.to_owned(),
                message: format!(
                    "unexpected answer to watch: {:?}",
                    String::from_utf8_lossy(&other[..other.len().min(100)])
                ),
            }),
        }
    }

    /// The next log line, without its line ending; waits as long as the
    /// server sends nothing (the caller bounds it if it must). An error
    /// (the server closed the stream) ends the watch.
    pub async fn next_line(&mut self) -> Result<Vec<u8>> {
        self.conn.read_lf_line("watch").await
    }
}

/// One `item_store` line of a `watch mutations` stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// When the server logged it (unix seconds, with microseconds).
    pub ts: Option<f64>,
    /// The server's log entry counter: a gap means entries this watcher
    /// did not get.
    pub gid: Option<u64>,
    /// The key, decoded.
    pub key: String,
    /// True when the item changed: `status=stored`, or a deletion.
    pub stored: bool,
}

/// Why a watch line is not an [`WatchEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchLine {
    /// Another known event type (ignored).
    Other,
    /// The server announces lines this watcher missed.
    Skipped,
    /// Not a line we can read.
    Malformed,
}

impl WatchEvent {
    /// Reads one watch line: `Ok(event)` for a store, else what it is.
    pub fn parse(line: &[u8]) -> std::result::Result<WatchEvent, WatchLine> {
        let Ok(text) = std::str::from_utf8(line) else {
            return Err(WatchLine::Malformed);
        };
        // `[skipped: N]`, the logger's own notice; never a key that
        // happens to contain the word.
        if text.starts_with("[skipped") {
            return Err(WatchLine::Skipped);
        }
        let (mut ts, mut gid, mut key, mut kind, mut status) = (None, None, None, None, None);
        for field in text.split(' ').filter(|f| !f.is_empty()) {
            let Some((name, value)) = field.split_once('=') else {
                continue;
            };
            match name {
                "ts" => ts = parse_ts(value),
                "gid" => gid = value.parse::<u64>().ok(),
                "type" => kind = Some(value),
                "key" => key = Some(value),
                "status" => status = Some(value),
                _ => {}
            }
        }
        match kind {
            // `deleted` comes from servers with `watch deletions` (newer
            // than 1.6.18): the key changed, the copier reads what is left.
            Some("item_store" | "deleted") => {}
            Some(_) => return Err(WatchLine::Other),
            None => return Err(WatchLine::Malformed),
        }
        let key = key
            .and_then(|k| protocol::scan::uri_decode(k.as_bytes()))
            .and_then(|k| String::from_utf8(k).ok())
            .filter(|k| session_core::key::validate_key(k).is_ok())
            .ok_or(WatchLine::Malformed)?;
        if kind == Some("item_store") && status.is_none() {
            return Err(WatchLine::Malformed);
        }
        Ok(WatchEvent {
            ts,
            gid,
            key,
            stored: status.is_none_or(|s| s == "stored"),
        })
    }
}

/// `ts=<secs>.<micros>`: memcached prints both with `%d`, so the part
/// after the dot is a count of microseconds without zero padding
/// (`1796308709.8144` is 8144 µs past the second, not .8144 s).
fn parse_ts(value: &str) -> Option<f64> {
    let (secs, micros) = value.split_once('.').unwrap_or((value, "0"));
    let secs = secs.parse::<u64>().ok()?;
    let micros = micros.parse::<u32>().ok().filter(|&m| m < 1_000_000)?;
    Some(secs as f64 + f64::from(micros) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_microseconds_are_not_zero_padded() {
        let e = WatchEvent::parse(
            b"ts=1796308709.8144 gid=9 type=item_store key=k status=stored cmd=set ttl=0",
        )
        .unwrap();
        assert!((e.ts.unwrap() - 1_796_308_709.008_144).abs() < 1e-6);
        assert_eq!(parse_ts("12.0"), Some(12.0));
        assert_eq!(parse_ts("12"), Some(12.0));
        assert_eq!(parse_ts("12.1000000"), None);
        assert_eq!(parse_ts("x.1"), None);
    }

    #[test]
    fn a_key_named_skipped_is_an_event() {
        let e =
            WatchEvent::parse(b"gid=5 type=item_store key=skipped status=stored cmd=set").unwrap();
        assert_eq!(e.key, "skipped");
    }

    #[test]
    fn parses_watch_lines() {
        let e = WatchEvent::parse(
            b"ts=1796027779.882920 gid=4 type=item_store key=a%25b status=stored cmd=set ttl=0 clsid=1 cfd=25 size=1",
        )
        .unwrap();
        assert_eq!(e.key, "a%b");
        assert_eq!(e.gid, Some(4));
        assert!(e.stored);
        assert!((e.ts.unwrap() - 1_796_027_779.882_92).abs() < 1e-3);
        let e =
            WatchEvent::parse(b"gid=5 type=item_store key=k status=not_stored cmd=add").unwrap();
        assert!(!e.stored && e.ts.is_none());
        for bad in [
            &b""[..],
            b"garbage",
            b"type=item_store status=stored",
            b"type=item_store key=a%2 status=stored",
            b"type=item_store key=k",
            b"type=item_store key=a%20b status=stored",
            b"\xff\xfe",
        ] {
            assert_eq!(WatchEvent::parse(bad), Err(WatchLine::Malformed), "{bad:?}");
        }
        assert_eq!(
            WatchEvent::parse(b"ts=1 gid=2 type=eviction key=k"),
            Err(WatchLine::Other)
        );
        assert_eq!(WatchEvent::parse(b"[skipped: 12]"), Err(WatchLine::Skipped));
    }
}

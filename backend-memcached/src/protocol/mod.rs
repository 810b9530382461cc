//! The two text protocol dialects behind one request/answer shape.
//!
//! The store turns each [`Store`](session_core::Store) call into an [`Op`],
//! and the dialect module ([`meta`] or [`classic`]) encodes it, sends it on
//! a [`Connection`] and reads its [`Reply`]. Keeping the op set closed lets
//! `server.rs` own pooling, deadlines and health once for both dialects.

pub(crate) mod classic;
pub(crate) mod frame;
pub(crate) mod meta;
mod meta_header;
pub(crate) mod scan;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use session_core::{DeleteOutcome, Entry, Ttl, Version};

use crate::config::{MAX_VALUE_SIZE_LIMIT, Protocol};
use crate::connection::Connection;
use crate::error::{Error, Result};
use frame::{Frame, Framing};

/// Keys per pipelined batch of a multi-get. A batch's request (at most
/// 64 x ~260 bytes) fits in the socket buffers, so writing it can never block
/// on a server that is itself blocked writing answers we have not read yet.
pub(crate) const GET_BATCH: usize = 64;

/// memcached reads an exptime above this many seconds (30 days) as an
/// absolute unix time.
pub(crate) const MAX_RELATIVE_EXPTIME: u32 = 60 * 60 * 24 * 30;

/// The largest `item_size_max` we believe a server: memcached itself
/// refuses `-I` above 1 GiB, so a larger claim is capped to that.
pub(crate) const ITEM_SIZE_MAX_CAP: usize = MAX_VALUE_SIZE_LIMIT;

/// How a storage command decides whether to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreMode {
    /// Unconditional.
    Set,
    /// Only if absent.
    Add,
    /// Only if the CAS unique still equals this.
    Cas(u64),
}

/// One request, in store terms.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Read one item with its version (and TTL in meta mode).
    Get(&'a str),
    /// Read only the version of one item.
    Version(&'a str),
    /// Write one item.
    Store {
        mode: StoreMode,
        key: &'a str,
        value: &'a [u8],
        flags: u32,
        exptime: i64,
    },
    /// Remove one item.
    Delete(&'a str),
    /// Set a new exptime.
    Touch(&'a str, i64),
    /// Read several items on one server, pipelined.
    GetMany(&'a [&'a str]),
    /// Remove one item only while its CAS unique is still this (meta only).
    DeleteIf(&'a str, u64),
    /// Read one item and set a new exptime in the same command.
    GetAndTouch(&'a str, i64),
    /// One page of this server's keys (`lru_crawler metadump all`): the
    /// `limit` smallest keys that start with `prefix` and sort after `after`.
    Scan {
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    },
    /// The server's general counters (`stats`), for operators.
    Stats,
}

impl Op<'_> {
    /// True for operations that change nothing on the server, so sending
    /// one twice (or to two servers) is harmless.
    pub(crate) fn is_read_only(&self) -> bool {
        matches!(
            self,
            Op::Get(_) | Op::Version(_) | Op::GetMany(_) | Op::Scan { .. } | Op::Stats
        )
    }

    /// The operation's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Get(_) => "get",
            Op::Version(_) => "version",
            Op::Store {
                mode: StoreMode::Set,
                ..
            } => "set",
            Op::Store {
                mode: StoreMode::Add,
                ..
            } => "add",
            Op::Store {
                mode: StoreMode::Cas(_),
                ..
            } => "cas",
            Op::Delete(_) => "delete",
            Op::Touch(..) => "touch",
            Op::GetMany(_) => "get_many",
            Op::DeleteIf(..) => "delete_if",
            Op::GetAndTouch(..) => "get_and_touch",
            Op::Scan { .. } => "scan",
            Op::Stats => "stats",
        }
    }

    /// True when sending the op twice leaves the server as sending it once
    /// did, so it may be resent after a connection broke once the request
    /// was (maybe) delivered. `add` and `cas` are not: a repeat of an
    /// applied one answers `Exists`/`Conflict` against our own write. A
    /// repeated `delete` leaves the same state but answers "not found"; a
    /// repeated `delete_if` would answer "not found" for its own deletion.
    pub(crate) fn is_idempotent(&self) -> bool {
        match self {
            Op::Get(_)
            | Op::Version(_)
            | Op::GetMany(_)
            | Op::Delete(_)
            | Op::Touch(..)
            | Op::GetAndTouch(..)
            | Op::Scan { .. }
            | Op::Stats
            | Op::Store {
                mode: StoreMode::Set,
                ..
            } => true,
            Op::Store {
                mode: StoreMode::Add | StoreMode::Cas(_),
                ..
            }
            | Op::DeleteIf(..) => false,
        }
    }
}

/// What a server's `stats settings` says that matters here. Every field is
/// `None` when the endpoint did not tell (a proxy answering `ERROR`, or
/// closing the connection as twemproxy does for commands it does not route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Settings {
    /// `STAT item_size_max N`: the largest item, per-item overhead included.
    pub(crate) item_size_max: Option<usize>,
    /// `STAT cas_enabled yes|no`: `no` for a server started with `-C`.
    pub(crate) cas_enabled: Option<bool>,
}

impl Settings {
    /// Reads one `STAT <name> <value>` line into `self`; false if `line` is
    /// not a `STAT` line.
    pub(crate) fn read_line(&mut self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(b"STAT ") else {
            return false;
        };
        let mut fields = rest.splitn(2, |&b| b == b' ');
        match (fields.next(), fields.next()) {
            // Capped: a bogus huge value must not make us accept (and
            // allocate for) gigantic data blocks or overflow `len + 2`.
            (Some(b"item_size_max"), Some(v)) => {
                self.item_size_max = parse_num::<usize>(v).map(|n| n.min(ITEM_SIZE_MAX_CAP));
            }
            (Some(b"cas_enabled"), Some(v)) => self.cas_enabled = Some(v == b"yes"),
            _ => {}
        }
        true
    }
}

/// Asks the server for its settings (`stats settings`, in both dialects).
/// An error line (the command is not passed on by a proxy) gives
/// [`Settings::default`] and leaves the stream in sync; a closed connection
/// is an I/O error for the caller to judge.
pub(crate) async fn read_settings(conn: &mut Connection) -> Result<Settings> {
    const OP: &str = "stats settings";
    conn.send(OP, b"stats settings\r\n").await?;
    let mut settings = Settings::default();
    loop {
        let line = conn.read_line(OP).await?;
        if line == b"END" {
            return Ok(settings);
        }
        if settings.read_line(&line) {
            continue;
        }
        if error_line(conn.server(), &line, 0).is_some() {
            return Ok(Settings::default());
        }
        return Err(Error::Protocol {
            server: conn.server().to_owned(),
            message: format!(
                "unexpected answer to stats settings: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(100)])
            ),
        });
    }
}

/// Reads the server's `stats` (the same command in both dialects) into
/// name/value pairs. Lines are bounded by the connection's line limit, and
/// memcached sends about a hundred of them.
async fn read_stats(conn: &mut Connection) -> Result<Reply> {
    const OP: &str = "stats";
    conn.send(OP, b"stats\r\n").await?;
    let mut stats = Vec::new();
    loop {
        let line = conn.read_line(OP).await?;
        if line == b"END" {
            return Ok(Reply::Stats(stats));
        }
        let text = String::from_utf8_lossy(&line);
        match text.strip_prefix("STAT ").and_then(|r| r.split_once(' ')) {
            Some((name, value)) => stats.push((name.to_owned(), value.to_owned())),
            None => {
                return Err(Error::Protocol {
                    server: conn.server().to_owned(),
                    message: format!(
                        "unexpected answer to stats: {:?}",
                        &text[..text.len().min(100)]
                    ),
                });
            }
        }
    }
}

/// The [`Version`] of a CAS unique the server reported where one is
/// required. memcached numbers CAS uniques from 1; it reports 0 only when
/// started with `-C`, and a 0 taken as a version would make every save
/// unconditional (or fail forever), so it is a typed error instead.
pub(crate) fn version_of(server: &str, cas: u64) -> Result<Version> {
    if cas == 0 {
        return Err(Error::CasDisabled {
            server: server.to_owned(),
        });
    }
    Ok(Version::new(cas))
}

/// What a server answered to a store command, as the wire says it. Which
/// answers a command may get depends on its mode (`NOT_STORED` only for an
/// add, `EXISTS` and `NOT_FOUND` only for a cas); `store.rs` turns them into
/// the contract's per-command outcome types and reports any other as a
/// protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreReply {
    /// `STORED` / `HD`, with the new CAS unique when the reply carries it.
    Stored(Option<Version>),
    /// `NOT_STORED` / `NS`: an add found the key present.
    Exists,
    /// `EXISTS` / `EX`: a cas found another version.
    Conflict,
    /// `NOT_FOUND` / `NF`: a cas found no item.
    NotFound,
}

/// The answer to an [`Op`], variant by variant.
#[derive(Debug)]
pub(crate) enum Reply {
    /// For [`Op::Get`].
    Entry(Option<Entry>),
    /// For [`Op::Version`].
    Version(Option<Version>),
    /// For [`Op::Store`].
    Stored(StoreReply),
    /// For [`Op::Delete`] and [`Op::Touch`]: whether the item existed.
    Existed(bool),
    /// For [`Op::GetMany`], in the order of the keys.
    Entries(Vec<Option<Entry>>),
    /// For [`Op::DeleteIf`].
    Deleted(DeleteOutcome),
    /// For [`Op::Scan`]: the page's keys, sorted, and whether the server
    /// holds more matching keys after the last one.
    Keys { keys: Vec<String>, more: bool },
    /// For [`Op::Stats`]: each `STAT <name> <value>` line, in server order.
    Stats(Vec<(String, String)>),
}

/// Sends `op` on `conn` in `protocol` and reads its whole answer.
pub(crate) async fn execute(
    protocol: Protocol,
    conn: &mut Connection,
    op: &Op<'_>,
) -> Result<Reply> {
    if let Op::Scan {
        prefix,
        after,
        limit,
    } = *op
    {
        // The same command in both dialects.
        return scan::execute(conn, prefix, after, limit).await;
    }
    if let Op::Stats = op {
        return read_stats(conn).await;
    }
    refuse_unsendable(protocol, conn.server(), op)?;
    let mut frames = Vec::new();
    let mut buf = Vec::with_capacity(request_capacity(op));
    let opaque = next_opaque();
    // One batch at a time: a batch's request fits in the socket buffers,
    // so writing it cannot block on a server blocked writing answers we
    // have not read yet (see [`GET_BATCH`]).
    for batch in batches(op) {
        buf.clear();
        let framing = encode(protocol, &batch, opaque, &mut buf);
        conn.send(op.name(), &buf).await?;
        let read = frame::read_frames(conn.reader(), framing, op.name()).await?;
        // Usually the only batch: take its frames as they are.
        if frames.is_empty() {
            frames = read;
        } else {
            frames.extend(read);
        }
    }
    interpret(protocol, conn.server(), op, frames)
}

/// Refuses, before any I/O, an op the dialect has no command for.
pub(crate) fn refuse_unsendable(protocol: Protocol, server: &str, op: &Op<'_>) -> Result<()> {
    let sendable = match op {
        Op::Scan { .. } | Op::Stats => false,
        Op::DeleteIf(..) => protocol == Protocol::Meta,
        _ => true,
    };
    if sendable {
        Ok(())
    } else {
        Err(Error::Protocol {
            server: server.to_owned(),
            message: format!(
                "internal error: {} is not a {protocol:?} key command",
                op.name()
            ),
        })
    }
}

/// The requests `op` is sent as: a multi-get in batches of [`GET_BATCH`]
/// keys (none for no keys), anything else as itself.
pub(crate) fn batches<'a>(op: &Op<'a>) -> impl Iterator<Item = Op<'a>> {
    let (keys, single) = match *op {
        Op::GetMany(keys) => (keys, None),
        other => (&[][..], Some(other)),
    };
    single
        .into_iter()
        .chain(keys.chunks(GET_BATCH).map(Op::GetMany))
}

/// A fresh token for a meta request's `O` flag: unique among the calls in
/// flight on any connection (it wraps after 2^32 calls).
pub(crate) fn next_opaque() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Appends the request for `op` (one batch, see [`batches`]), carrying the
/// token `opaque` in meta, to `buf` and says how its answer is delimited.
pub(crate) fn encode(protocol: Protocol, op: &Op<'_>, opaque: u32, buf: &mut Vec<u8>) -> Framing {
    match protocol {
        Protocol::Meta => {
            meta::encode(buf, op, opaque);
            Framing::Meta {
                answers: match op {
                    Op::GetMany(keys) => keys.len(),
                    _ => 1,
                },
                opaque,
            }
        }
        Protocol::Classic => {
            classic::encode(buf, op);
            classic::framing(op)
        }
    }
}

/// The whole of `op`'s requests (every batch of a multi-get, back to
/// back) and how all their answers are delimited: for a multiplexed
/// connection, whose reader runs apart from the writer, so a long request
/// cannot block against unread answers.
pub(crate) fn encode_all(protocol: Protocol, op: &Op<'_>) -> (Vec<u8>, Framing) {
    let mut buf = Vec::with_capacity(request_capacity(op));
    let opaque = next_opaque();
    let mut framing = Framing::Meta { answers: 0, opaque };
    for batch in batches(op) {
        framing = match (framing, encode(protocol, &batch, opaque, &mut buf)) {
            (Framing::Meta { answers: a, .. }, Framing::Meta { answers: b, .. }) => Framing::Meta {
                answers: a + b,
                opaque,
            },
            (Framing::ClassicValues(a), Framing::ClassicValues(b)) => Framing::ClassicValues(a + b),
            (_, single) => single,
        };
    }
    (buf, framing)
}

/// Room for `op`'s request, so that building it does not grow the buffer
/// step by step (a profile counted about 600 instructions per request of
/// reallocations without it).
fn request_capacity(op: &Op<'_>) -> usize {
    // 64: the command, the numbers, the flags and the line ends.
    match op {
        Op::Store { key, value, .. } => 64 + key.len() + value.len(),
        Op::Get(key)
        | Op::Version(key)
        | Op::Delete(key)
        | Op::Touch(key, _)
        | Op::DeleteIf(key, _)
        | Op::GetAndTouch(key, _) => 64 + key.len(),
        Op::GetMany(keys) => keys.iter().map(|k| 32 + k.len()).sum(),
        Op::Scan { .. } | Op::Stats => 64,
    }
}

/// Turns the frames of all of `op`'s answers into its [`Reply`].
pub(crate) fn interpret(
    protocol: Protocol,
    server: &str,
    op: &Op<'_>,
    frames: Vec<Frame>,
) -> Result<Reply> {
    match protocol {
        Protocol::Meta => meta::interpret(server, op, frames),
        Protocol::Classic => classic::interpret(server, op, frames),
    }
}

/// The exptime memcached needs for `ttl`, given the current unix time.
///
/// Up to 30 days it is the relative seconds; beyond, memcached would read
/// the number as a unix time, so we send `now + ttl` instead. memcached
/// parses exptime as a signed 32-bit number, so the absolute time saturates
/// at `i32::MAX` (2038-01-19).
pub(crate) fn exptime_at(ttl: Ttl, now_unix: u64) -> i64 {
    let secs = ttl.as_secs();
    if secs <= MAX_RELATIVE_EXPTIME {
        i64::from(secs)
    } else {
        let abs = now_unix.saturating_add(u64::from(secs));
        i64::try_from(abs.min(i32::MAX as u64)).unwrap_or(i64::from(i32::MAX))
    }
}

/// [`exptime_at`] with the system clock.
pub(crate) fn exptime(ttl: Ttl) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    exptime_at(ttl, now)
}

/// Recognises the error lines both dialects share (`ERROR`,
/// `CLIENT_ERROR ...`, `SERVER_ERROR ...`). `value_len` is the size of the
/// value being written, to report `object too large` as such.
pub(crate) fn error_line(server: &str, line: &[u8], value_len: usize) -> Option<Error> {
    if !is_error_line(line) {
        return None;
    }
    let text = String::from_utf8_lossy(line);
    if line.starts_with(b"SERVER_ERROR") && text.contains("too large") {
        return Some(Error::ServerTooLarge {
            server: server.to_owned(),
            size: value_len,
            // Filled in by `server.rs`, which knows the server's settings.
            limit: None,
        });
    }
    Some(Error::ServerError {
        server: server.to_owned(),
        message: text.into_owned(),
    })
}

/// True for the error lines both dialects share (`ERROR`, `CLIENT_ERROR
/// ...`, `SERVER_ERROR ...`): the one test of that, for classifying a line
/// without building its [`Error`].
pub(crate) fn is_error_line(line: &[u8]) -> bool {
    line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR")
}

/// The error for an answer the protocol does not allow here.
pub(crate) fn unexpected(server: &str, op: &Op<'_>, line: &[u8]) -> Error {
    Error::Protocol {
        server: server.to_owned(),
        message: format!(
            "unexpected answer to {}: {:?}",
            op.name(),
            String::from_utf8_lossy(&line[..line.len().min(100)])
        ),
    }
}

/// Parses an ASCII decimal number field: digits, with a leading `-` for
/// a signed type (meta's `t-1`, no expiry). By hand: every reply line
/// carries two to four numbers, and `str::parse` after a UTF-8 check cost
/// about a thousand instructions per load + save (callgrind).
pub(crate) fn parse_num<T: TryFrom<i128>>(field: &[u8]) -> Option<T> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    // 20 digits hold any u64; more is not a number memcached sends.
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    let n = i128::from(n);
    T::try_from(if negative { -n } else { n }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_memcached_writes_them() {
        assert_eq!(parse_num::<u32>(b"0"), Some(0));
        assert_eq!(parse_num::<u32>(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_num::<u32>(b"4294967296"), None);
        assert_eq!(parse_num::<u64>(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_num::<u64>(b"18446744073709551616"), None);
        assert_eq!(parse_num::<u64>(b"000000000000000000001"), None);
        assert_eq!(parse_num::<i64>(b"-1"), Some(-1));
        assert_eq!(parse_num::<i64>(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_num::<u64>(b"-1"), None);
        assert_eq!(parse_num::<usize>(b"1048576"), Some(1 << 20));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"0x10",
            b"1.5",
            b"\xff",
        ] {
            assert_eq!(
                parse_num::<u64>(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The same answers as `str::parse` for what both accept.
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            1234567890,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let text = n.to_string();
            assert_eq!(parse_num::<u64>(text.as_bytes()), text.parse().ok());
        }
    }

    #[test]
    fn exptime_conversion() {
        let now = 1_800_000_000;
        assert_eq!(exptime_at(Ttl::NEVER, now), 0);
        assert_eq!(exptime_at(Ttl::seconds(1), now), 1);
        assert_eq!(
            exptime_at(Ttl::seconds(MAX_RELATIVE_EXPTIME), now),
            2_592_000
        );
        assert_eq!(
            exptime_at(Ttl::seconds(MAX_RELATIVE_EXPTIME + 1), now),
            1_800_000_000 + 2_592_001
        );
        assert_eq!(exptime_at(Ttl::seconds(u32::MAX), now), i64::from(i32::MAX));
    }

    #[test]
    fn error_lines() {
        assert!(matches!(
            error_line("s", b"SERVER_ERROR object too large for cache", 5),
            Some(Error::ServerTooLarge { size: 5, .. })
        ));
        assert!(matches!(
            error_line("s", b"SERVER_ERROR out of memory storing object", 5),
            Some(Error::ServerError { .. })
        ));
        assert!(matches!(
            error_line("s", b"ERROR", 0),
            Some(Error::ServerError { .. })
        ));
        assert!(matches!(
            error_line("s", b"CLIENT_ERROR bad data chunk", 0),
            Some(Error::ServerError { .. })
        ));
        assert!(error_line("s", b"STORED", 0).is_none());
        assert!(error_line("s", b"HD c1", 0).is_none());
    }

    #[test]
    fn item_size_max_is_capped() {
        // Regression: any claimed size was trusted, and `usize::MAX` made
        // the block limit (and `len + 2`) overflow.
        let mut s = Settings::default();
        assert!(s.read_line(b"STAT item_size_max 18446744073709551615"));
        assert_eq!(s.item_size_max, Some(ITEM_SIZE_MAX_CAP));
        assert!(s.read_line(b"STAT item_size_max 2048"));
        assert_eq!(s.item_size_max, Some(2048));
    }

    #[test]
    fn settings_lines() {
        let mut s = Settings::default();
        assert!(s.read_line(b"STAT maxbytes 67108864"));
        assert!(s.read_line(b"STAT item_size_max 1048576"));
        assert!(s.read_line(b"STAT cas_enabled yes"));
        assert!(!s.read_line(b"END"));
        assert_eq!(
            s,
            Settings {
                item_size_max: Some(1_048_576),
                cas_enabled: Some(true)
            }
        );
        assert!(s.read_line(b"STAT cas_enabled no"));
        assert_eq!(s.cas_enabled, Some(false));
    }

    #[test]
    fn cas_zero_is_cas_disabled() {
        // Regression: a `-C` server's CAS 0 became `Version(0)`.
        let err = version_of("h:1", 0).unwrap_err();
        assert!(matches!(err, Error::CasDisabled { .. }), "{err:?}");
        let core = session_core::Error::from(err);
        assert!(
            matches!(&core, session_core::Error::InvalidConfig(m)
                if m.contains("memcached at h:1 runs with -C (CAS disabled); memorycached needs CAS")),
            "{core:?}"
        );
        assert_eq!(version_of("h:1", 7).unwrap(), Version::new(7));
    }

    #[test]
    fn only_safe_ops_are_idempotent() {
        let store = |mode| Op::Store {
            mode,
            key: "k",
            value: b"",
            flags: 0,
            exptime: 0,
        };
        assert!(store(StoreMode::Set).is_idempotent());
        assert!(!store(StoreMode::Add).is_idempotent());
        assert!(!store(StoreMode::Cas(1)).is_idempotent());
        for op in [
            Op::Get("k"),
            Op::Version("k"),
            Op::Delete("k"),
            Op::Touch("k", 1),
            Op::GetMany(&["k"]),
            Op::GetAndTouch("k", 1),
            Op::Scan {
                prefix: "",
                after: None,
                limit: 1,
            },
        ] {
            assert!(op.is_idempotent(), "{op:?}");
        }
        assert!(!Op::DeleteIf("k", 1).is_idempotent());
    }
}

//! Entry points for the workspace's fuzz targets (`fuzz/`), behind the
//! `fuzzing` cargo feature: the private answer parsers, reachable with
//! plain bytes. Not an API; nothing else may use it.
//!
//! Everything here runs the very code a connection runs (the same
//! [`Reader`], `read_frames` and dialect `interpret`), on an in-memory
//! stream instead of a socket, so a finding here is a finding there.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::config::Protocol;
use crate::connection::Reader;
use crate::error::{Error, Result};
use crate::protocol::{self, Op, Reply, Settings, StoreMode, classic, frame, scan};

/// The `O` token the fuzzed meta requests carry: answers must echo `O1`.
pub const OPAQUE: u32 = 1;

/// The longest data block the fuzzed reader accepts (memcached's default
/// item size, what a connection accepts before it knows the server's).
pub const MAX_BLOCK: usize = 1024 * 1024;

/// What the client made of an answer stream, for the target's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// One length per entry of a read (`None` for a miss); empty for
    /// answers that carry no entries.
    pub entries: Vec<Option<usize>>,
    /// Bytes of the stream the parser consumed.
    pub consumed: usize,
}

/// Reads the answer to one request, chosen by `op` (0..=10: get, version,
/// set, add, cas, delete, touch, get_many of `keys` keys, delete_if,
/// get_and_touch; larger values wrap), from `stream`, in `protocol`, then
/// interprets it as the store would.
pub fn answer(protocol: Protocol, op: u8, keys: u8, stream: &[u8]) -> Result<Answer> {
    let names: Vec<String> = (0..usize::from(keys).max(1))
        .map(|i| format!("k{i}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let store = |mode| Op::Store {
        mode,
        key: "k0",
        value: b"value",
        flags: 0x100,
        exptime: 60,
    };
    let op = match op % 10 {
        0 => Op::Get("k0"),
        1 => Op::Version("k0"),
        2 => store(StoreMode::Set),
        3 => store(StoreMode::Add),
        4 => store(StoreMode::Cas(7)),
        5 => Op::Delete("k0"),
        6 => Op::Touch("k0", 60),
        7 => Op::GetMany(&refs),
        8 => Op::DeleteIf("k0", 7),
        _ => Op::GetAndTouch("k0", 60),
    };
    protocol::refuse_unsendable(protocol, "fuzz", &op)?;
    let mut reader = Reader::new(stream, "fuzz".to_owned());
    reader.set_max_block(MAX_BLOCK);
    let mut frames = Vec::new();
    for batch in protocol::batches(&op) {
        let mut buf = Vec::new();
        let framing = protocol::encode(protocol, &batch, OPAQUE, &mut buf);
        frames.extend(ready(frame::read_frames(&mut reader, framing, op.name()))?);
    }
    let consumed = reader.read_count();
    let entries = match protocol::interpret(protocol, "fuzz", &op, frames)? {
        Reply::Entry(e) => vec![e.map(|e| e.value.len())],
        Reply::Entries(all) => all
            .iter()
            .map(|e| e.as_ref().map(|e| e.value.len()))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Answer { entries, consumed })
}

/// The key command count [`answer`] asked for: `keys` for a multi-get.
pub fn expected_entries(op: u8, keys: u8) -> Option<usize> {
    match op % 10 {
        0 | 9 => Some(1),
        7 => Some(usize::from(keys).max(1)),
        _ => None,
    }
}

/// One line through every line parser the client has: meta header,
/// classic `VALUE`, `stats settings`, metadump item. Returns the metadump
/// item's key and expiry, when the line is one.
pub fn line(line: &[u8]) -> Option<(Vec<u8>, Option<u64>)> {
    let _ = protocol::is_error_line(line);
    let _ = protocol::error_line("fuzz", line, 0);
    let _ = classic::parse_value_line(line);
    let mut settings = Settings::default();
    if settings.read_line(line)
        && let Some(max) = settings.item_size_max
    {
        // The server's claim is capped whatever it says.
        assert!(max <= protocol::ITEM_SIZE_MAX_CAP);
    }
    scan::parse_item(line).map(|item| (item.key, item.exp))
}

/// memcached's `%XX` key decoding, as the dump and `watch` readers use it.
pub fn uri_decode(encoded: &[u8]) -> Option<Vec<u8>> {
    scan::uri_decode(encoded)
}

/// Polls a future over an in-memory stream to its end: such a read never
/// waits, so a pending poll is a bug of the parser.
fn ready<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(Error::Protocol {
            server: "fuzz".to_owned(),
            message: "a read of an in-memory stream waited".to_owned(),
        }),
    }
}

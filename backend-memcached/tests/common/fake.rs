//! The one scripted fake memcached for protocol tests: misbehaviour a real
//! server never shows (stray bytes, lying lengths, a connection closed
//! after a write, a reply without a requested flag) has to be scripted.
//! Everything a real server does is tested against a real one instead.
//!
//! Shared by the crate's unit tests (`src/lib.rs` includes this file with
//! `#[path]`) and the integration tests (`tests/common`), so there is one
//! fake to trust rather than one per file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake does with one request line.
#[derive(Debug, Clone)]
pub enum Act {
    /// Writes these bytes (in one write).
    Reply(Vec<u8>),
    /// Writes the first bytes, waits, then writes the second.
    ReplyLater(Vec<u8>, Duration, Vec<u8>),
    /// Closes the connection without answering.
    Close,
    /// Writes these bytes, then closes the connection.
    ReplyClose(Vec<u8>),
    /// Answers nothing (a stalled server).
    Ignore,
}

/// [`Act::Reply`] of a string.
pub fn reply(s: &str) -> Act {
    Act::Reply(s.as_bytes().to_vec())
}

/// `(connection number, request line)` of every request, in arrival order.
pub type Log = Arc<Mutex<Vec<(usize, String)>>>;

/// `stats settings` as a default memcached 1.6 answers it (abridged).
pub const SETTINGS: &str =
    "STAT maxbytes 67108864\r\nSTAT item_size_max 1048576\r\nSTAT cas_enabled yes\r\nEND\r\n";

/// A fake server on a free loopback port: `script(connection number,
/// request line)` decides each answer. Storage commands' data blocks are
/// read and not passed on. Returns the address and the request log.
pub async fn fake(script: impl Fn(usize, &str) -> Act + Send + Sync + 'static) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log: Log = Arc::default();
    let script = Arc::new(script);
    let log2 = Arc::clone(&log);
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (script, log) = (Arc::clone(&script), Arc::clone(&log2));
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                loop {
                    let mut line = String::new();
                    if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let (line, opaque) = strip_opaque(line.trim_end());
                    let fields: Vec<&str> = line.split(' ').collect();
                    let data_len = match fields[0] {
                        "ms" => fields.get(2),
                        "set" | "add" | "cas" => fields.get(4),
                        _ => None,
                    };
                    if let Some(len) = data_len.and_then(|l| l.parse::<usize>().ok()) {
                        let mut data = vec![0; len + 2];
                        if socket.read_exact(&mut data).await.is_err() {
                            return;
                        }
                    }
                    log.lock().unwrap().push((n, line.clone()));
                    let echo = |b: &[u8]| echo_opaque(b, opaque.as_deref());
                    match script(n, &line) {
                        Act::Reply(b) => {
                            let _ = socket.get_mut().write_all(&echo(&b)).await;
                        }
                        Act::ReplyLater(a, wait, b) => {
                            let _ = socket.get_mut().write_all(&echo(&a)).await;
                            tokio::time::sleep(wait).await;
                            let _ = socket.get_mut().write_all(&echo(&b)).await;
                        }
                        Act::Close => return,
                        Act::ReplyClose(b) => {
                            let _ = socket.get_mut().write_all(&echo(&b)).await;
                            return;
                        }
                        Act::Ignore => {}
                    }
                }
            });
        }
    });
    (addr, log)
}

/// A meta request line without its `O<token>` field, and the token. The
/// client tags every meta request; scripts and the log see the line as if
/// it were untagged, and answers get the token back as memcached does.
fn strip_opaque(line: &str) -> (String, Option<String>) {
    let meta = ["mg ", "ms ", "md ", "ma ", "mn"]
        .iter()
        .any(|p| line.starts_with(p));
    if !meta {
        return (line.to_owned(), None);
    }
    let mut opaque = None;
    let kept: Vec<&str> = line
        .split(' ')
        .filter(|f| match f.strip_prefix('O') {
            Some(token) if opaque.is_none() => {
                opaque = Some(token.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    (kept.join(" "), opaque)
}

/// `reply` with ` O<token>` added to each meta answer line that does not
/// carry one already (data blocks after `VA` are copied untouched).
fn echo_opaque(reply: &[u8], opaque: Option<&str>) -> Vec<u8> {
    let Some(token) = opaque else {
        return reply.to_vec();
    };
    let mut out = Vec::with_capacity(reply.len() + 8);
    let mut rest = reply;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..end];
        rest = &rest[end + 2..];
        out.extend_from_slice(line);
        let status = line.get(..2).unwrap_or_default();
        let is_meta = [&b"VA"[..], b"HD", b"EN", b"NS", b"EX", b"NF", b"MN"].contains(&status)
            && (line.len() == 2 || line[2] == b' ');
        if is_meta && !line.split(|&b| b == b' ').any(|f| f.starts_with(b"O")) {
            out.extend_from_slice(format!(" O{token}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if is_meta && status == b"VA" {
            let len = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let take = len.saturating_add(2).min(rest.len());
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
    }
    out.extend_from_slice(rest);
    out
}

/// The logged requests whose line starts with `prefix`.
pub fn requests(log: &Log, prefix: &str) -> Vec<(usize, String)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.starts_with(prefix))
        .cloned()
        .collect()
}

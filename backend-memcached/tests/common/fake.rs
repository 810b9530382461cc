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
                    let line = line.trim_end().to_owned();
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
                    match script(n, &line) {
                        Act::Reply(b) => {
                            let _ = socket.get_mut().write_all(&b).await;
                        }
                        Act::ReplyLater(a, wait, b) => {
                            let _ = socket.get_mut().write_all(&a).await;
                            tokio::time::sleep(wait).await;
                            let _ = socket.get_mut().write_all(&b).await;
                        }
                        Act::Close => return,
                        Act::ReplyClose(b) => {
                            let _ = socket.get_mut().write_all(&b).await;
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

/// The logged requests whose line starts with `prefix`.
pub fn requests(log: &Log, prefix: &str) -> Vec<(usize, String)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.starts_with(prefix))
        .cloned()
        .collect()
}

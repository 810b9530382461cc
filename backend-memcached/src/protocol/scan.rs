//! Listing a server's keys for [`Store::scan`](session_core::Store::scan),
//! with `lru_crawler metadump all` (memcached 1.4.31+, a plain text command
//! in both dialects).
//!
//! memcached has no ordered or resumable key listing: `metadump` walks every
//! item of the server and prints one line per item
//! (`key=<uri-encoded key> exp=<unix time or -1> la=... cas=... ...`, ended
//! by `\n` only, then `END\r\n`). So one page costs one full dump of one
//! server, and a cursor cannot point into the dump. Instead a page keeps
//! the `limit` smallest matching keys that sort after the cursor's key
//! (a bounded heap: memory is O(limit), whatever the server holds), and the
//! next page dumps the same server again and resumes after the last key it
//! returned. Only one crawl runs per server at a time; a concurrent one
//! answers `BUSY`, and the request waits and asks again within its deadline.

use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Reply, error_line, parse_num};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// The request.
const METADUMP: &[u8] = b"lru_crawler metadump all\r\n";

/// Pause before asking again when another crawl is running.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// Dumps the server's keys and keeps one page: the `limit` (at least 1)
/// smallest live keys starting with `prefix` and sorting after `after`.
pub(crate) async fn execute(
    conn: &mut Connection,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Reply> {
    const OP: &str = "scan";
    let limit = limit.max(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Max-heap of the smallest `limit + 1` keys: the extra one says
    // whether there is more after this page.
    let mut page: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 2);
    metadump(conn, OP, |item| {
        // A key of another client that is not UTF-8 cannot match a
        // `&str` prefix we were given, nor be returned as a `String`.
        let Ok(key) = String::from_utf8(item.key) else {
            return Ok(());
        };
        let live = item.exp.is_none_or(|exp| exp > now);
        if !live || !key.starts_with(prefix) || after.is_some_and(|a| key.as_str() <= a) {
            return Ok(());
        }
        if page.len() <= limit {
            page.push(key);
        } else if page.peek().is_some_and(|largest| key < *largest) {
            page.pop();
            page.push(key);
        }
        Ok(())
    })
    .await?;
    let mut keys = page.into_sorted_vec();
    let more = keys.len() > limit;
    keys.truncate(limit);
    Ok(Reply::Keys { keys, more })
}

/// Dumps every live key of the server with its expiry, for the
/// replicator's full comparison. Keys that are not UTF-8 or not valid
/// memcached keys are skipped; more than `max_keys` keys is an error (so a
/// huge server cannot take unbounded memory).
pub(crate) async fn dump_all(conn: &mut Connection, max_keys: usize) -> Result<Vec<Item>> {
    const OP: &str = "metadump";
    let server = conn.server().to_owned();
    let mut items = Vec::new();
    metadump(conn, OP, |item| {
        if items.len() >= max_keys {
            return Err(Error::Protocol {
                server: server.clone(),
                message: format!("metadump lists more than {max_keys} keys"),
            });
        }
        items.push(item);
        Ok(())
    })
    .await?;
    Ok(items)
}

/// Runs one whole `lru_crawler metadump all` and hands each item to
/// `each`, in the server's order, until `END` (or the first error, from the
/// server or from `each`). A crawl already running (`BUSY`, which can only
/// be the first line) is waited out and asked again, within the caller's
/// deadline; no item has been handed over by then.
async fn metadump(
    conn: &mut Connection,
    op: &'static str,
    mut each: impl FnMut(Item) -> Result<()>,
) -> Result<()> {
    'dump: loop {
        conn.send(op, METADUMP).await?;
        let mut first = true;
        loop {
            let line = conn.read_lf_line(op).await?;
            if line == b"END" {
                return Ok(());
            }
            if first && line.starts_with(b"BUSY") {
                // Another client's crawl; ours was not started.
                tokio::time::sleep(BUSY_RETRY).await;
                continue 'dump;
            }
            first = false;
            let Some(item) = parse_item(&line) else {
                return Err(error_line(conn.server(), &line, 0).unwrap_or_else(|| {
                    Error::Protocol {
                        server: conn.server().to_owned(),
                        message: format!(
                            "unexpected metadump line: {:?}",
                            String::from_utf8_lossy(&line[..line.len().min(100)])
                        ),
                    }
                }));
            };
            each(item)?;
        }
    }
}

/// One item of a metadump.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Item {
    /// The key, decoded.
    pub(crate) key: Vec<u8>,
    /// Expiry as a unix time; `None` for never.
    pub(crate) exp: Option<u64>,
}

/// Parses `key=<uri-encoded> exp=<n> ...`; `None` if it is not such a line.
pub(crate) fn parse_item(line: &[u8]) -> Option<Item> {
    let mut key = None;
    let mut exp = None;
    for field in line.split(|&b| b == b' ') {
        if let Some(k) = field.strip_prefix(b"key=") {
            key = Some(uri_decode(k)?);
        } else if let Some(e) = field.strip_prefix(b"exp=") {
            exp = Some(if e == b"-1" {
                None
            } else {
                Some(parse_num::<u64>(e)?)
            });
        }
    }
    Some(Item {
        key: key?,
        exp: exp?,
    })
}

/// Undoes memcached's `%XX` encoding of keys in a dump (and in `watch`
/// log lines, which encode keys the same way).
pub(crate) fn uri_decode(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(*bytes.next()?).to_digit(16)?;
            let lo = char::from(*bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dump_lines() {
        // As memcached 1.6.18 prints them (key "foo%20bar", then "plain").
        assert_eq!(
            parse_item(
                b"key=foo%2520bar exp=1796016210 la=1796016110 cas=1 fetch=no cls=1 size=69"
            ),
            Some(Item {
                key: b"foo%20bar".to_vec(),
                exp: Some(1_796_016_210)
            })
        );
        assert_eq!(
            parse_item(b"key=s%3A1 exp=-1 la=1 cas=2 fetch=no cls=1 size=69"),
            Some(Item {
                key: b"s:1".to_vec(),
                exp: None
            })
        );
        assert_eq!(parse_item(b"key=a%2 exp=-1"), None);
        assert_eq!(parse_item(b"key=a exp=x"), None);
        assert_eq!(
            parse_item(b"BUSY currently processing crawler request"),
            None
        );
        assert_eq!(parse_item(b"ERROR"), None);
    }
}

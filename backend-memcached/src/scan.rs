//! How [`MemcachedStore`](crate::MemcachedStore) implements
//! [`Store::scan`](session_core::Store::scan), and what it costs.
//!
//! memcached cannot list keys in order or resume a listing. The one way to
//! see every key is `lru_crawler metadump all` (memcached 1.4.31 and later,
//! on by default), which walks all items of a server and prints one line
//! each. So:
//!
//! - **A page is one full dump of one server.** The client reads the whole
//!   dump but keeps only the `limit` smallest live keys that start with the
//!   prefix and sort after the cursor's key (memory O(`limit`)).
//! - **The cursor** is `<server index>:<last key returned>`, or
//!   `<server index>:` to start a server. The next page dumps the same
//!   server again and resumes after that key; when a server has no more
//!   matching keys, the cursor moves to the next server in configuration
//!   order, and after the last one the scan is complete. A key that stays on
//!   its server during the scan is therefore listed exactly once; keys
//!   written or deleted meanwhile may or may not be.
//! - **Cost.** With `k` matching keys on a server of `n` items, scanning that
//!   server takes `ceil(k / limit)` pages (at least one), each reading all
//!   `n` items over the network. Use a large `limit` (thousands) for a full
//!   scan; a small one multiplies the dumps. Each dump must finish within
//!   the request deadline (`connect_timeout + io_timeout`).
//! - **One crawl per server at a time.** memcached answers `BUSY` while a
//!   crawl runs; the request waits briefly and asks again, within its
//!   deadline.
//! - Works in both protocol modes (it is a plain text command), but not
//!   behind a proxy (twemproxy and mcrouter do not route it); every server
//!   must be up (a down server fails the page, whatever the failure policy).
//! - Keys that are not UTF-8 (written by another client) are skipped.
//! - **Not a snapshot, and not exact.** The crawler skips items memcached
//!   holds a reference to at that instant: measured on 1.6.18, an item read
//!   a moment ago can be missing from a dump for about 100 ms (it waits,
//!   referenced, for its asynchronous LRU bump). A page can therefore miss
//!   a live key that is being read meanwhile. Scan is for maintenance
//!   (listing or expiring sessions), not for decisions that need every key.

use session_core::ScanCursor;

use crate::error::{Error, Result};

/// The cursor of a page that starts after `last` on server `server` (at the
/// start of the server for `None`).
pub(crate) fn encode(server: usize, last: Option<&str>) -> ScanCursor {
    ScanCursor::new(format!("{server}:{}", last.unwrap_or("")))
}

/// The server index and the key to resume after, from a cursor of a store
/// with `servers` servers.
pub(crate) fn decode(cursor: &ScanCursor, servers: usize) -> Result<(usize, Option<String>)> {
    let bad = || {
        Error::Input(session_core::Error::InvalidKey {
            key: cursor.as_str().chars().take(80).collect(),
            reason: "not a scan cursor of this store",
        })
    };
    let (index, key) = cursor.as_str().split_once(':').ok_or_else(bad)?;
    let index: usize = index.parse().map_err(|_| bad())?;
    if index >= servers {
        return Err(bad());
    }
    Ok((index, (!key.is_empty()).then(|| key.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_input_errors() {
        assert_eq!(decode(&encode(0, None), 1).unwrap(), (0, None));
        assert_eq!(
            decode(&encode(2, Some("a:b")), 3).unwrap(),
            (2, Some("a:b".to_owned()))
        );
        for bad in ["", "x:k", "3:k", "-1:", "1"] {
            let err = decode(&ScanCursor::new(bad), 3).unwrap_err();
            assert!(session_core::Error::from(err).is_invalid_input(), "{bad:?}");
        }
    }
}

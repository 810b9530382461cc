//! The run marker: which run of a server the replicator talks to.
//!
//! A server restarted empty, or flushed, must not have its absences taken
//! for deletes. The copiers, the resync and the target monitor all tell
//! one run from the next the same way, through [`server_epoch`].

use backend_memcached::raw::{RawConnection, WriteOutcome};
use session_core::Ttl;

use crate::error::Result;

/// The key, on every node, that tells one run of the server from the next.
/// The replicator never copies it; tools that list keys may skip it.
///
/// `stats` alone cannot: a container restarted at once keeps pid 1 and the
/// same start second, and its connection count catches up with the old
/// run's within moments (a CI run saw exactly that, and the empty peer's
/// absences were taken for deletes). So the first replicator to meet a run
/// leaves a random token under this key. A copier reads it with every
/// batch (one more key in the same multi-get) and when it reconnects: a
/// token gone or changed means the server lost its items (a restart, or a
/// `flush_all`, which breaks no connection), and what we knew of that node
/// is void. If the token itself was evicted, that is a false alarm, and a
/// cheap one: keys are compared afresh, and an absence is then not a
/// delete. The key is never replicated (`replicated`).
pub const RUN_MARKER: &str = "memorycached.replicator.run";

/// False for keys the replicator keeps to itself: its run marker, and the
/// delete markers stores leave (`backend_memcached::delete_marker`),
/// which stand for a delete on their own server only.
pub(crate) fn replicated(key: &str) -> bool {
    key != RUN_MARKER
        && key != crate::HEARTBEAT_KEY
        && backend_memcached::delete_marker::deleted_by_marker(key).is_none()
}

/// Which run of a server we talk to: its `pid` and start time
/// (`time - uptime`) from `stats`, and the token under [`RUN_MARKER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Epoch {
    pid: i64,
    started: i64,
    /// The value under [`RUN_MARKER`].
    pub(crate) token: Vec<u8>,
}

impl Epoch {
    /// True while `now` can be the same run as `self` (read earlier).
    pub(crate) fn same_run(&self, now: &Epoch) -> bool {
        self.pid == now.pid && self.started == now.started && self.token == now.token
    }
}

/// The [`Epoch`] of the server behind `c`; leaves a token under
/// [`RUN_MARKER`] if the run has none yet.
pub(crate) async fn server_epoch(c: &mut RawConnection) -> Result<Epoch> {
    let stats = c.stats().await?;
    let get = |name: &str| {
        stats
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (pid, started) = (get("pid"), get("time") - get("uptime"));
    // Read, else add ours; a lost `add` race means another copier's token
    // is there now: read that one.
    for _ in 0..3 {
        if let Some(item) = c.get(RUN_MARKER).await? {
            return Ok(Epoch {
                pid,
                started,
                token: item.value,
            });
        }
        let token = session_core::SessionId::generate(32).map_err(|e| crate::Error::RunMarker {
            server: c.server().to_owned(),
            what: e.to_string(),
        })?;
        let token = token.as_str().as_bytes();
        if let WriteOutcome::Stored(_) = c.add(RUN_MARKER, token, 0, Ttl::NEVER).await? {
            return Ok(Epoch {
                pid,
                started,
                token: token.to_vec(),
            });
        }
    }
    Err(crate::Error::RunMarker {
        server: c.server().to_owned(),
        what: format!("{RUN_MARKER} neither reads nor adds"),
    })
}

#[cfg(test)]
mod tests {
    use super::Epoch;

    fn epoch(pid: i64, started: i64, token: &str) -> Epoch {
        Epoch {
            pid,
            started,
            token: token.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_restart_is_told_even_within_the_same_second() {
        let before = epoch(1, 1_000, "a");
        assert!(before.same_run(&epoch(1, 1_000, "a")));
        // A new process, a later start, or a container restarted at once
        // (pid 1 again, same start second, its items gone with the token).
        assert!(!before.same_run(&epoch(2, 1_000, "a")));
        assert!(!before.same_run(&epoch(1, 1_001, "a")));
        assert!(!before.same_run(&epoch(1, 1_000, "b")));
    }
}

//! What the tasks of one link share: its nodes, mode, settings, counters
//! and the resync request. A leaf: the link (`link.rs`) and its copiers
//! (`copier.rs`) both depend on it, never on each other's internals.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::metrics::LinkMetrics;

/// How a link decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Node 0 is the master, node 1 the slave.
    MasterSlave,
    /// Every node is a master.
    Mesh,
}

/// What the tasks of one link share.
pub(crate) struct LinkShared {
    pub(crate) name: String,
    /// The nodes as printed (logs, metrics, the state file): `host:port`,
    /// or a URL with its password masked.
    pub(crate) nodes: Vec<String>,
    /// What to connect to, in `nodes` order: `host:port`, or a one-server
    /// `memcached://`/`memcacheds://` URL (TLS, credentials). Never printed.
    pub(crate) targets: Vec<String>,
    pub(crate) mode: Mode,
    pub(crate) config: Config,
    pub(crate) metrics: Arc<LinkMetrics>,
    pub(crate) resync_pending: AtomicBool,
    pub(crate) resync_wake: Notify,
    /// Per node, in `nodes` order: news of it coming back.
    pub(crate) health: Vec<NodeHealth>,
    /// Unreadable feed lines are logged at most this often.
    pub(crate) malformed_log: RateLimit,
    /// Copies refused as too large are logged at most this often.
    pub(crate) too_large_log: RateLimit,
}

/// News of one node, from the link's monitor (`monitor.rs`).
#[derive(Default)]
pub(crate) struct NodeHealth {
    /// Bumped each time the node answers again after a failure, or
    /// answers as a new run (restarted, flushed): whoever keeps a backoff
    /// for it compares this number and may try at once.
    pub(crate) back: AtomicU64,
    /// Wakes whoever waits out a backoff for this node.
    pub(crate) wake: Notify,
}

impl NodeHealth {
    /// The node answers again (or answers as a new run).
    pub(crate) fn came_back(&self) {
        self.back.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_waiters();
    }
}

/// Lets one event through per period (a log line that would otherwise
/// repeat for every feed line).
pub(crate) struct RateLimit {
    period: Duration,
    last: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// At most once per `period`.
    pub(crate) fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            last: Mutex::new(None),
        }
    }

    /// True when the caller may go ahead now (and the period restarts).
    pub(crate) fn allow(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < self.period => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

impl LinkShared {
    /// Schedules a full comparison (coalesced with one already pending).
    pub(crate) fn request_resync(&self) {
        if !self.resync_pending.swap(true, Ordering::SeqCst) {
            self.resync_wake.notify_one();
        }
    }

    /// Schedules a full comparison to start as soon as possible: a node
    /// came back, so even a resync waiting out a backoff after a failure
    /// tries again now.
    pub(crate) fn resync_at_once(&self) {
        self.resync_pending.store(true, Ordering::SeqCst);
        self.resync_wake.notify_one();
    }
}

/// Sleeps `d`, or less if asked to stop; true when stopping.
pub(crate) async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    *stop.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_period() {
        let limit = RateLimit::new(Duration::from_secs(60));
        assert!(limit.allow());
        assert!(!limit.allow());
        let none = RateLimit::new(Duration::ZERO);
        assert!(none.allow() && none.allow());
    }
}

//! What the tasks of one link share: its nodes, mode, settings, counters
//! and the resync request. A leaf: the link (`link.rs`) and its copiers
//! (`copier.rs`) both depend on it, never on each other's internals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

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
    pub(crate) nodes: Vec<String>,
    pub(crate) mode: Mode,
    pub(crate) config: Config,
    pub(crate) metrics: Arc<LinkMetrics>,
    pub(crate) resync_pending: AtomicBool,
    pub(crate) resync_wake: Notify,
}

impl LinkShared {
    /// Schedules a full comparison (coalesced with one already pending).
    pub(crate) fn request_resync(&self) {
        if !self.resync_pending.swap(true, Ordering::SeqCst) {
            self.resync_wake.notify_one();
        }
    }
}

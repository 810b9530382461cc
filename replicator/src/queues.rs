//! The copiers' queues: the [`Job`]s a copier takes, and [`Queues`], which
//! sends each key to the one copier that handles it. A leaf under the
//! link, the resync and the copiers.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::state::Known;

/// Work for a copier.
#[derive(Debug)]
pub(crate) enum Job {
    /// Make this key equal on every node. `ts` is the source's event time
    /// (feed lines; the lag and the delay of a delete count from it);
    /// `listed` the Unix time a key-list comparison found the key's lists
    /// differing (a delete found so counts its delay from then).
    Key {
        key: String,
        ts: Option<f64>,
        listed: Option<f64>,
    },
    /// Answered once every job queued before it is done.
    Flush(oneshot::Sender<()>),
    /// Answered with what the copier knows now (the periodic save of the
    /// state file).
    Snapshot(oneshot::Sender<Known>),
}

/// The queue of each copier; a key always goes to the same one.
#[derive(Clone)]
pub(crate) struct Queues(pub(crate) Arc<Vec<mpsc::Sender<Job>>>);

impl Queues {
    /// The queue of the copier that handles `key`.
    pub(crate) fn of(&self, key: &str) -> &mpsc::Sender<Job> {
        &self.0[shard_of(key, self.0.len())]
    }
}

/// The copier (of `shards`) that handles `key`.
pub(crate) fn shard_of(key: &str, shards: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

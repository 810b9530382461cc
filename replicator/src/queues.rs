//! The copiers' queues: the [`Job`]s a copier takes, and [`Queues`], which
//! sends each key to the one copier that handles it. A leaf under the
//! link, the resync and the copiers.
//!
//! Each copier has two lanes: the **feed** lane (keys from the change
//! feeds: new client writes and deletes) and the **bulk** lane (the
//! comparisons' keys: a refill of a restarted node, key-list differences,
//! and the `Flush`/`Snapshot` requests that follow them). A copier takes
//! the feed lane first ([`Lanes::next`]), so a new write waits for at most
//! one bulk batch in flight, not behind a whole refill: with one lane, new
//! writes during a 10k-key refill waited behind up to 2 500 queued keys
//! per copier (lag p99 ~43 ms in the first 2 s after a slave restart,
//! issue #23). The bulk lane is still served at least once every
//! [`FEED_STREAK`] feed batches, so a feed that never pauses cannot starve
//! a refill.
//!
//! Reordering the lanes never copies an older value over a newer one: a
//! copier reads a key's value on every node when it copies it, never takes
//! it from the job, and one copier handles both lanes of a key one batch
//! at a time. A refill job that comes after the feed's job of the same key
//! reads the newer value (or finds it equal); one that comes before is
//! followed by the feed's job, which reads it again.

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
    /// Answered once every job queued before it on its lane is done (sent
    /// on the bulk lane: the end of a comparison's keys).
    Flush(oneshot::Sender<()>),
    /// Answered with what the copier knows now (the periodic save of the
    /// state file).
    Snapshot(oneshot::Sender<Known>),
}

/// The senders of one copier's two lanes.
pub(crate) struct Senders {
    /// Keys from the change feeds, served first.
    pub(crate) feed: mpsc::Sender<Job>,
    /// The comparisons' keys and their requests.
    pub(crate) bulk: mpsc::Sender<Job>,
}

/// The lanes of each copier; a key always goes to the same copier.
#[derive(Clone)]
pub(crate) struct Queues(pub(crate) Arc<Vec<Senders>>);

impl Queues {
    /// The feed lane of the copier that handles `key`.
    pub(crate) fn feed_of(&self, key: &str) -> &mpsc::Sender<Job> {
        &self.0[shard_of(key, self.0.len())].feed
    }

    /// The bulk lane of the copier that handles `key`.
    pub(crate) fn bulk_of(&self, key: &str) -> &mpsc::Sender<Job> {
        &self.0[shard_of(key, self.0.len())].bulk
    }

    /// Every copier's bulk lane (requests for all copiers).
    pub(crate) fn bulk_lanes(&self) -> impl Iterator<Item = &mpsc::Sender<Job>> {
        self.0.iter().map(|s| &s.bulk)
    }
}

/// A copier's two lanes, of `capacity` jobs each: the senders for
/// [`Queues`] and the receivers for the copier.
pub(crate) fn lanes(capacity: usize) -> (Senders, Lanes) {
    let (feed, feed_rx) = mpsc::channel(capacity);
    let (bulk, bulk_rx) = mpsc::channel(capacity);
    (
        Senders { feed, bulk },
        Lanes {
            feed: Some(feed_rx),
            bulk: Some(bulk_rx),
            streak: 0,
        },
    )
}

/// Feed batches in a row after which a waiting bulk batch goes first once.
pub(crate) const FEED_STREAK: usize = 8;

/// Which lane a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The change feeds.
    Feed,
    /// The comparisons.
    Bulk,
}

/// The receiving side of a copier's lanes.
pub(crate) struct Lanes {
    /// `None` once closed and drained.
    feed: Option<mpsc::Receiver<Job>>,
    bulk: Option<mpsc::Receiver<Job>>,
    /// Feed batches served in a row while the bulk lane may have waited.
    streak: usize,
}

impl Lanes {
    /// Waits for the next batch: up to `feed_max` jobs from the feed lane
    /// if it has any, else up to `bulk_max` from the bulk lane (first,
    /// once, after [`FEED_STREAK`] feed batches in a row). `None` once
    /// both lanes are closed and empty.
    pub(crate) async fn next(
        &mut self,
        jobs: &mut Vec<Job>,
        feed_max: usize,
        bulk_max: usize,
    ) -> Option<Lane> {
        let max = |lane| match lane {
            Lane::Feed => feed_max,
            Lane::Bulk => bulk_max,
        };
        loop {
            let order = if self.streak >= FEED_STREAK {
                [Lane::Bulk, Lane::Feed]
            } else {
                [Lane::Feed, Lane::Bulk]
            };
            for lane in order {
                if self.take(lane, jobs, max(lane)) > 0 {
                    self.served(lane);
                    return Some(lane);
                }
            }
            // Both empty: wait for the first job of either (`recv` is
            // cancel safe: the branch not taken loses nothing).
            let (lane, job) = match (self.feed.as_mut(), self.bulk.as_mut()) {
                (None, None) => return None,
                (Some(f), None) => (Lane::Feed, f.recv().await),
                (None, Some(b)) => (Lane::Bulk, b.recv().await),
                (Some(f), Some(b)) => tokio::select! {
                    biased;
                    job = f.recv() => (Lane::Feed, job),
                    job = b.recv() => (Lane::Bulk, job),
                },
            };
            match job {
                Some(job) => {
                    jobs.push(job);
                    self.take(lane, jobs, max(lane).saturating_sub(1));
                    self.served(lane);
                    return Some(lane);
                }
                None => *self.lane(lane) = None,
            }
        }
    }

    /// The receiver of `lane` (`None` once closed and drained).
    fn lane(&mut self, lane: Lane) -> &mut Option<mpsc::Receiver<Job>> {
        match lane {
            Lane::Feed => &mut self.feed,
            Lane::Bulk => &mut self.bulk,
        }
    }

    /// Takes up to `max` jobs waiting on `lane`, without waiting; how many.
    fn take(&mut self, lane: Lane, jobs: &mut Vec<Job>, max: usize) -> usize {
        let slot = self.lane(lane);
        let mut taken = 0;
        while taken < max {
            let Some(rx) = slot.as_mut() else { break };
            match rx.try_recv() {
                Ok(job) => {
                    jobs.push(job);
                    taken += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                // Only once drained: nothing is lost.
                Err(mpsc::error::TryRecvError::Disconnected) => *slot = None,
            }
        }
        taken
    }

    /// A batch was taken from `lane`: the feed's streak grows only while
    /// the bulk lane has work waiting (an idle bulk lane lost nothing).
    fn served(&mut self, lane: Lane) {
        self.streak = match lane {
            Lane::Bulk => 0,
            Lane::Feed if self.bulk.as_ref().is_some_and(|b| !b.is_empty()) => self.streak + 1,
            Lane::Feed => 0,
        };
    }
}

/// The copier (of `shards`) that handles `key`.
pub(crate) fn shard_of(key: &str, shards: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Job {
        Job::Key {
            key: k.to_owned(),
            ts: None,
            listed: None,
        }
    }

    fn names(jobs: &[Job]) -> Vec<String> {
        jobs.iter()
            .map(|j| match j {
                Job::Key { key, .. } => key.clone(),
                Job::Flush(_) => "flush".to_owned(),
                Job::Snapshot(_) => "snapshot".to_owned(),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_feed_lane_goes_before_a_queued_refill() {
        let (tx, mut rx) = lanes(100);
        for i in 0..10 {
            tx.bulk.send(key(&format!("refill{i}"))).await.unwrap();
        }
        tx.feed.send(key("new")).await.unwrap();
        let mut jobs = Vec::new();
        assert_eq!(rx.next(&mut jobs, 4, 4).await, Some(Lane::Feed));
        assert_eq!(names(&jobs), ["new"]);
        jobs.clear();
        // Bulk batches are bounded by their own maximum.
        assert_eq!(rx.next(&mut jobs, 4, 4).await, Some(Lane::Bulk));
        assert_eq!(names(&jobs), ["refill0", "refill1", "refill2", "refill3"]);
        jobs.clear();
        // A feed event that arrives mid-refill overtakes the rest of it.
        tx.feed.send(key("newer")).await.unwrap();
        assert_eq!(rx.next(&mut jobs, 4, 4).await, Some(Lane::Feed));
        assert_eq!(names(&jobs), ["newer"]);
    }

    #[tokio::test]
    async fn a_feed_that_never_pauses_does_not_starve_the_bulk_lane() {
        let (tx, mut rx) = lanes(1000);
        tx.bulk.send(key("refill")).await.unwrap();
        let mut served = Vec::new();
        for round in 0..(FEED_STREAK + 2) {
            // The feed lane is never empty when the copier looks.
            tx.feed.send(key(&format!("new{round}"))).await.unwrap();
            let mut jobs = Vec::new();
            served.push(rx.next(&mut jobs, 1, 1).await.unwrap());
        }
        let bulk_at = served.iter().position(|l| *l == Lane::Bulk);
        assert_eq!(bulk_at, Some(FEED_STREAK), "{served:?}");
    }

    #[tokio::test]
    async fn both_lanes_are_drained_before_the_end() {
        let (tx, mut rx) = lanes(10);
        tx.feed.send(key("a")).await.unwrap();
        tx.bulk.send(key("b")).await.unwrap();
        let (done, _wait) = oneshot::channel();
        tx.bulk.send(Job::Flush(done)).await.unwrap();
        drop(tx);
        let mut all = Vec::new();
        while rx.next(&mut all, 10, 10).await.is_some() {}
        assert_eq!(names(&all), ["a", "b", "flush"]);
    }
}

//! Key-list comparisons: where a source's feed has no `watch deletions`
//! (memcached 1.6.18), deletes are found by comparing the nodes' key
//! lists, often and cheaply. One `lru_crawler metadump all` per node; a key
//! listed on some nodes and not on all is queued for the copiers, which
//! read it everywhere and decide as for any event (a list is not exact:
//! memcached leaves out items busy at that instant, so a missing key is
//! only a reason to read it, never a delete by itself). Values are read
//! only for those keys. A key the previous comparison listed and this one
//! lists nowhere is queued too: deleted on one node while the crawler
//! skipped it on the others (an item being read is left out of a dump), it
//! would otherwise wait for a comparison where both dumps agree.
//!
//! The pace follows the cost: the next comparison starts `cost / budget`
//! after this one ended (5% of the time by default), never sooner than
//! `Config::key_list_interval`. The cost is the wall time of a comparison
//! (the nodes are dumped at once, each on its own connection), the median
//! of the last few, so that one stalled comparison on a busy machine does
//! not push the next far away. Run by the resync task, between full
//! comparisons, so two comparisons of one link never overlap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backend_memcached::raw::RawConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::copier::unix_now;
use crate::error::{Error, Result};
use crate::queues::{Job, Queues};
use crate::run_marker::replicated;
use crate::shared::LinkShared;

/// The connections a link's key-list comparisons reuse, one per node.
pub(crate) struct KeyLists {
    conns: Vec<Option<RawConnection>>,
    /// Every key the last comparison listed on some node.
    previous: HashSet<String>,
    /// The durations of the last few comparisons, newest last.
    costs: VecDeque<Duration>,
}

/// Comparisons whose median duration paces the next.
const COSTS_KEPT: usize = 5;

impl KeyLists {
    /// No connection yet.
    pub(crate) fn new(nodes: usize) -> KeyLists {
        KeyLists {
            conns: (0..nodes).map(|_| None).collect(),
            previous: HashSet::new(),
            costs: VecDeque::with_capacity(COSTS_KEPT),
        }
    }

    /// Whether comparisons are needed now: some source's feed is known to
    /// report no deletes.
    pub(crate) fn needed(shared: &LinkShared) -> bool {
        shared.config.key_list_interval.is_some()
            && shared.metrics.deletions_feed().values().any(|d| !d)
    }

    /// When the next comparison may start, after one that took `cost`.
    pub(crate) fn next_after(&mut self, shared: &LinkShared, cost: Duration) -> Instant {
        if self.costs.len() == COSTS_KEPT {
            self.costs.pop_front();
        }
        self.costs.push_back(cost);
        let mut sorted: Vec<Duration> = self.costs.iter().copied().collect();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let floor = shared
            .config
            .key_list_interval
            .unwrap_or(Duration::from_secs(1));
        let paced = median.div_f64(shared.config.key_list_budget);
        Instant::now() + floor.max(paced)
    }

    /// One comparison: every node's key list, the keys not on every node
    /// queued. Returns how long the lists and their comparison took (not
    /// the wait for room in the copiers' queues); `Ok(None)` when asked to
    /// stop.
    pub(crate) async fn compare(
        &mut self,
        shared: &Arc<LinkShared>,
        queues: &Queues,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<Duration>> {
        let started = Instant::now();
        let listed = unix_now();
        let nodes = shared.nodes.len();
        // Per key, on how many nodes it is listed.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let lists = tokio::select! {
            lists = self.dump_all(shared) => lists?,
            _ = stop.wait_for(|s| *s) => return Ok(None),
        };
        for keys in lists {
            for key in keys {
                *seen.entry(key).or_default() += 1;
            }
        }
        let mut differing: Vec<String> = self
            .previous
            .iter()
            .filter(|key| !seen.contains_key(*key))
            .cloned()
            .collect();
        differing.extend(
            seen.iter()
                .filter(|(key, count)| **count < nodes && replicated(key))
                .map(|(key, _)| key.clone()),
        );
        self.previous = seen.into_keys().filter(|key| replicated(key)).collect();
        // The comparison's own cost: queueing the differences below waits
        // for the copiers (many keys differ while a bulk write is being
        // copied), which is their work, not this comparison's.
        let took = started.elapsed();
        let m = &shared.metrics;
        m.key_list_differences
            .fetch_add(differing.len() as u64, Ordering::Relaxed);
        for key in differing {
            // The bulk lane: a bulk write's thousands of in-flight keys
            // must not hold up the feed's events.
            let queue = queues.bulk_of(&key).clone();
            let job = Job::Key {
                key,
                ts: None,
                listed: Some(listed),
            };
            tokio::select! {
                sent = queue.send(job) => if sent.is_err() { return Ok(None) },
                _ = stop.wait_for(|s| *s) => return Ok(None),
            }
            m.queue_depth.fetch_add(1, Ordering::Relaxed);
        }
        m.key_lists.fetch_add(1, Ordering::Relaxed);
        m.key_list_last_duration_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(Some(took))
    }

    /// Every node's keys, all nodes at once, each on its kept connection
    /// (reopened after a failure).
    async fn dump_all(&mut self, shared: &LinkShared) -> Result<Vec<Vec<String>>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (node, slot) in self.conns.iter_mut().enumerate() {
            let kept = slot.take().filter(|c| !c.is_broken());
            let addr = shared.targets[node].clone();
            let timeout = shared.config.dump_timeout;
            tasks.spawn(async move {
                let listed = async {
                    let mut c = match kept {
                        Some(c) => c,
                        None => RawConnection::connect(&addr, timeout).await?,
                    };
                    let keys = c.dump_keys().await?;
                    Ok::<_, backend_memcached::Error>((c, keys))
                }
                .await;
                (node, listed)
            });
        }
        let mut lists = vec![Vec::new(); self.conns.len()];
        let mut failed = None;
        while let Some(joined) = tasks.join_next().await {
            let (node, listed) =
                joined.map_err(|e| Error::InvalidConfig(format!("internal: key list: {e}")))?;
            match listed {
                Ok((c, keys)) => {
                    self.conns[node] = Some(c);
                    lists[node] = keys.into_iter().map(|k| k.key).collect();
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(lists),
        }
    }
}

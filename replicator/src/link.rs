//! A link: a set of nodes kept equal (a master and one slave, or all the
//! peers of a mesh), its change feeds, its copiers and its resync task.
//!
//! Feeds read `watch` lines from each source and put keys on the copiers'
//! bounded queues without waiting: a full queue drops the event, counts it
//! and schedules a resync (memcached itself drops watch lines for a slow
//! reader, so blocking the feed would only move the loss there). The
//! resync task enumerates every key of every node and queues them all,
//! waiting for room (it is our own producer, so backpressure is safe).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backend_memcached::raw::{RawConnection, Watch, WatchEvent, WatchLine};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::copier::{Copier, Job};
use crate::error::{Error, Result};
use crate::metrics::LinkMetrics;
use crate::run_marker::{self, replicated};
use crate::shared::{LinkShared, Mode};
use crate::state::Known;

/// The running tasks of a link.
pub(crate) struct Link {
    pub(crate) shared: Arc<LinkShared>,
    pub(crate) producers: Vec<JoinHandle<()>>,
    /// Each returns what it knew when it stopped (for the state file).
    pub(crate) copiers: Vec<JoinHandle<Known>>,
}

/// The queue of each copier; a key always goes to the same one.
#[derive(Clone)]
struct Queues(Arc<Vec<mpsc::Sender<Job>>>);

impl Queues {
    fn of(&self, key: &str) -> &mpsc::Sender<Job> {
        &self.0[shard_of(key, self.0.len())]
    }
}

/// The copier (of `shards`) that handles `key`.
fn shard_of(key: &str, shards: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

/// Splits what the previous run saved among the copiers, each key to the
/// copier that will handle it (each copier owns its share, and drops an
/// entry once it has settled that key).
fn split(carried: Option<Known>, shards: usize) -> Vec<Known> {
    let Some(carried) = carried else {
        return (0..shards).map(|_| Known::default()).collect();
    };
    let mut parts: Vec<Known> = (0..shards)
        .map(|_| Known {
            tokens: carried.tokens.clone(),
            keys: HashMap::new(),
        })
        .collect();
    for (key, prev) in carried.keys {
        parts[shard_of(&key, shards)].keys.insert(key, prev);
    }
    parts
}

impl Link {
    /// Starts a link over `nodes`, with feeds from `sources` (indexes).
    pub(crate) fn start(
        name: String,
        nodes: Vec<String>,
        sources: Vec<usize>,
        mode: Mode,
        config: Config,
        stop: watch::Receiver<bool>,
        carried: Option<Known>,
    ) -> Link {
        let shared = Arc::new(LinkShared {
            name,
            nodes,
            mode,
            metrics: Arc::new(LinkMetrics::default()),
            resync_pending: AtomicBool::new(false),
            resync_wake: Notify::new(),
            config,
        });
        let mut senders = Vec::new();
        let mut copiers = Vec::new();
        for carried in split(carried, shared.config.shards) {
            let (tx, rx) = mpsc::channel(shared.config.queue_capacity);
            senders.push(tx);
            copiers.push(tokio::spawn(
                Copier::new(Arc::clone(&shared), rx, carried).run(),
            ));
        }
        let queues = Queues(Arc::new(senders));
        let mut producers = Vec::new();
        for node in sources {
            producers.push(tokio::spawn(feed(
                Arc::clone(&shared),
                node,
                queues.clone(),
                stop.clone(),
            )));
        }
        producers.push(tokio::spawn(resync_loop(Arc::clone(&shared), queues, stop)));
        Link {
            shared,
            producers,
            copiers,
        }
    }
}

/// Sleeps `d`, or less if asked to stop; true when stopping.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    *stop.borrow()
}

/// The change feed of one source, reconnected with backoff.
async fn feed(
    shared: Arc<LinkShared>,
    node: usize,
    queues: Queues,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = shared.config.backoff_initial;
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let result = feed_once(&shared, node, &queues, &mut stop, &mut backoff, &mut first).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(link = %shared.name, server = %shared.nodes[node], error = %e, retry_in = ?backoff, "change feed down");
            }
        }
        if pause(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(shared.config.backoff_max);
    }
}

/// One connection's worth of feed; `Ok` when asked to stop.
async fn feed_once(
    shared: &Arc<LinkShared>,
    node: usize,
    queues: &Queues,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
    first: &mut bool,
) -> Result<()> {
    let addr = &shared.nodes[node];
    let timeout = shared.config.io_timeout;
    let mut watch = match Watch::open(addr, "mutations deletions", timeout).await? {
        Some(w) => {
            if *first {
                tracing::info!(link = %shared.name, server = %addr, "feed: watch mutations deletions");
            }
            w
        }
        None => match Watch::open(addr, "mutations", timeout).await? {
            Some(w) => {
                if *first {
                    tracing::info!(link = %shared.name, server = %addr, "feed: watch mutations (this server has no `watch deletions`: deletes are found by resyncs)");
                }
                w
            }
            None => {
                return Err(Error::Unsupported {
                    server: addr.clone(),
                    what: "no `watch mutations` (memcached 1.5.?+ needed)".into(),
                });
            }
        },
    };
    *first = false;
    // Overflow inside memcached (lines dropped before any watcher got
    // them) shows only in its counters: a separate task polls them, so
    // the line reader is never cancelled mid-line.
    let mut stats = RawConnection::connect(addr, timeout).await?;
    let mut baseline = dropped_lines(&mut stats).await?;
    shared
        .metrics
        .feeds_connected
        .fetch_add(1, Ordering::Relaxed);
    *backoff = shared.config.backoff_initial;
    // Whatever happened while we were not watching.
    shared.request_resync();
    let poller = {
        let shared = Arc::clone(shared);
        let poll = shared.config.stats_poll;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let now = match dropped_lines(&mut stats).await {
                    Ok(now) => now,
                    // Ends the feed too (a silent partition would
                    // otherwise leave it waiting forever).
                    Err(e) => return e,
                };
                if now > baseline {
                    shared.metrics.feed_gaps.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(link = %shared.name, dropped = now - baseline, "memcached dropped watch lines; resyncing");
                    shared.request_resync();
                }
                baseline = now;
            }
        })
    };
    let mut poller = poller;
    let result = tokio::select! {
        r = read_feed(shared, &mut watch, queues, stop) => r,
        lost = &mut poller => Err(match lost {
            Ok(source) => Error::FeedLost { server: addr.clone(), source },
            Err(_) => Error::InvalidConfig("internal: stats poller panicked".into()),
        }),
    };
    poller.abort();
    shared
        .metrics
        .feeds_connected
        .fetch_sub(1, Ordering::Relaxed);
    result
}

async fn read_feed(
    shared: &Arc<LinkShared>,
    watch: &mut Watch,
    queues: &Queues,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    let m = &shared.metrics;
    let mut last_gid: Option<u64> = None;
    loop {
        let line = tokio::select! {
            line = watch.next_line() => line?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match WatchEvent::parse(&line) {
            Ok(event) => {
                if let (Some(last), Some(gid)) = (last_gid, event.gid)
                    && gid > last + 1
                {
                    m.feed_gaps.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(link = %shared.name, missed = gid - last - 1, "feed skipped lines; resyncing");
                    shared.request_resync();
                }
                last_gid = event.gid.or(last_gid);
                if !event.stored || !replicated(&event.key) {
                    continue;
                }
                m.events.fetch_add(1, Ordering::Relaxed);
                let job = Job::Key {
                    key: event.key,
                    ts: event.ts,
                };
                match queues.of(job_key(&job)).try_send(job) {
                    Ok(()) => {
                        m.queue_depth.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        m.skipped.fetch_add(1, Ordering::Relaxed);
                        shared.request_resync();
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                }
            }
            Err(WatchLine::Other) => {}
            Err(WatchLine::Skipped) => {
                m.feed_gaps.fetch_add(1, Ordering::Relaxed);
                tracing::info!(link = %shared.name, "feed announced skipped lines; resyncing");
                shared.request_resync();
            }
            Err(WatchLine::Malformed) => {
                let n = m.malformed.fetch_add(1, Ordering::Relaxed);
                // The first few in full, then every thousandth.
                if n < 10 || n.is_multiple_of(1000) {
                    tracing::warn!(link = %shared.name, line = %String::from_utf8_lossy(&line[..line.len().min(200)]), count = n + 1, "unreadable feed line ignored");
                }
            }
        }
    }
}

fn job_key(job: &Job) -> &str {
    match job {
        Job::Key { key, .. } => key,
        Job::Flush(_) => "",
    }
}

/// `log_worker_dropped + log_watcher_skipped` from `stats`.
async fn dropped_lines(c: &mut RawConnection) -> Result<u64, backend_memcached::Error> {
    let stats = c.stats().await?;
    Ok(stats
        .iter()
        .filter(|(n, _)| n == "log_worker_dropped" || n == "log_watcher_skipped")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum())
}

/// Runs a resync whenever one is requested or the interval elapses.
async fn resync_loop(shared: Arc<LinkShared>, queues: Queues, mut stop: watch::Receiver<bool>) {
    let mut backoff = shared.config.backoff_initial;
    let mut next_periodic = shared.config.resync_interval.map(|d| Instant::now() + d);
    loop {
        let periodic = async {
            match next_periodic {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.resync_wake.notified() => {}
            _ = periodic => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        shared.resync_pending.store(false, Ordering::SeqCst);
        next_periodic = shared.config.resync_interval.map(|d| Instant::now() + d);
        let m = &shared.metrics;
        m.resync_running.store(1, Ordering::Relaxed);
        let result = resync_once(&shared, &queues, &mut stop).await;
        m.resync_running.store(0, Ordering::Relaxed);
        match result {
            Ok(true) => backoff = shared.config.backoff_initial,
            Ok(false) => return,
            Err(e) => {
                m.resync_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(link = %shared.name, error = %e, retry_in = ?backoff, "resync failed");
                shared.request_resync();
                if pause(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(shared.config.backoff_max);
            }
        }
    }
}

/// Dumps per node per resync (see `resync_once`).
const DUMPS: usize = 2;

/// Keys between progress lines of a long resync.
const PROGRESS_EVERY: usize = 10_000;

/// One full comparison: every key of every node is queued, then waited
/// for. `Ok(false)` when asked to stop meanwhile.
async fn resync_once(
    shared: &Arc<LinkShared>,
    queues: &Queues,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let started = Instant::now();
    let mut keys = HashSet::new();
    // Two dumps per node, united: memcached's crawler misses items the LRU
    // maintainer moves between segments during the walk (measured: ~0.5%
    // of keys written during a flood were missing from one dump).
    let dumps = async {
        for addr in &shared.nodes {
            let mut c = RawConnection::connect(addr, shared.config.dump_timeout).await?;
            // Leaves the node's run marker now, once, rather than in a race
            // between copiers that connect at the same moment.
            run_marker::server_epoch(&mut c).await?;
            for _ in 0..DUMPS {
                keys.extend(c.dump_keys().await?.into_iter().map(|k| k.key));
            }
        }
        Ok::<_, Error>(())
    };
    tokio::select! {
        done = dumps => done?,
        _ = stop.wait_for(|s| *s) => return Ok(false),
    }
    keys.retain(|k| replicated(k));
    let total = keys.len();
    let m = &shared.metrics;
    m.resync_keys.store(0, Ordering::Relaxed);
    tracing::info!(link = %shared.name, keys = total, "resync: comparing every key");
    for (i, key) in keys.into_iter().enumerate() {
        let job = Job::Key { key, ts: None };
        let queue = queues.of(job_key(&job)).clone();
        tokio::select! {
            sent = queue.send(job) => if sent.is_err() { return Ok(false) },
            _ = stop.wait_for(|s| *s) => return Ok(false),
        }
        m.queue_depth.fetch_add(1, Ordering::Relaxed);
        m.resync_keys.fetch_add(1, Ordering::Relaxed);
        if (i + 1) % PROGRESS_EVERY == 0 {
            tracing::info!(link = %shared.name, done = i + 1, of = total, "resync progress");
        }
    }
    let mut waits = Vec::new();
    for queue in queues.0.iter() {
        let (tx, rx) = oneshot::channel();
        tokio::select! {
            sent = queue.send(Job::Flush(tx)) => if sent.is_err() { return Ok(false) },
            _ = stop.wait_for(|s| *s) => return Ok(false),
        }
        waits.push(rx);
    }
    for rx in waits {
        tokio::select! {
            _ = rx => {}
            _ = stop.wait_for(|s| *s) => return Ok(false),
        }
    }
    m.resyncs.fetch_add(1, Ordering::Relaxed);
    tracing::info!(link = %shared.name, keys = total, took = ?started.elapsed(), "resync done");
    Ok(true)
}

//! A link: a set of nodes kept equal (a master and one slave, or all the
//! peers of a mesh), its change feeds, its copiers and its resync task.
//!
//! Feeds read `watch` lines from each source and put keys on the copiers'
//! bounded feed lanes (served before the comparisons' bulk lanes) without
//! waiting: a full queue drops the event, counts it
//! and schedules a resync (memcached itself drops watch lines for a slow
//! reader, so blocking the feed would only move the loss there). The
//! resync task enumerates every key of every node and queues them all on
//! the bulk lanes, waiting for room (it is our own producer, so backpressure is safe).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backend_memcached::delete_marker::deleted_by_marker;
use backend_memcached::raw::{RawConnection, Watch, WatchEvent, WatchLine};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::copier::Copier;
use crate::error::{Error, Result};
use crate::gids::{GidWindow, line_gid};
use crate::heartbeat::heartbeat;
use crate::metrics::LinkMetrics;
use crate::monitor::monitor;
use crate::queues::{Job, Queues, lanes, shard_of};
use crate::resync::resync_loop;
use crate::run_marker::replicated;
use crate::shared::{LinkShared, Mode, NodeHealth, RateLimit, pause};
use crate::state::Known;

/// The running tasks of a link.
pub(crate) struct Link {
    pub(crate) shared: Arc<LinkShared>,
    pub(crate) producers: Vec<JoinHandle<()>>,
    /// Each returns what it knew when it stopped (for the state file).
    pub(crate) copiers: Vec<JoinHandle<Known>>,
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
        let node_count = nodes.len();
        let shared = Arc::new(LinkShared {
            name,
            targets: nodes.clone(),
            nodes: nodes
                .iter()
                .map(|n| backend_memcached::redact_url(n))
                .collect(),
            mode,
            metrics: Arc::new(LinkMetrics::default()),
            resync_pending: AtomicBool::new(false),
            resync_wake: Notify::new(),
            health: (0..node_count).map(|_| NodeHealth::default()).collect(),
            malformed_log: RateLimit::new(Duration::from_secs(60)),
            too_large_log: RateLimit::new(Duration::from_secs(60)),
            config,
        });
        let mut senders = Vec::new();
        let mut copiers = Vec::new();
        for carried in split(carried, shared.config.shards) {
            let (tx, rx) = lanes(shared.config.queue_capacity);
            senders.push(tx);
            copiers.push(tokio::spawn(
                Copier::new(Arc::clone(&shared), rx, carried).run(),
            ));
        }
        let queues = Queues(Arc::new(senders));
        let mut producers = Vec::new();
        for &node in &sources {
            producers.push(tokio::spawn(heartbeat(
                Arc::clone(&shared),
                node,
                stop.clone(),
            )));
        }
        for node in sources {
            producers.push(tokio::spawn(feed(
                Arc::clone(&shared),
                node,
                queues.clone(),
                stop.clone(),
            )));
        }
        // Every node, sources or not: a target that comes back (or comes
        // back empty) is compared at once, not at the next periodic resync.
        for node in 0..shared.nodes.len() {
            producers.push(tokio::spawn(monitor(
                Arc::clone(&shared),
                node,
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
        // The monitor wakes us when the server answers again: no waiting
        // out a backoff grown while it was down.
        let woken = tokio::select! {
            stopping = pause(backoff, &mut stop) => if stopping { return } else { false },
            _ = shared.health[node].wake.notified() => true,
        };
        backoff = if woken {
            shared.config.backoff_initial
        } else {
            (backoff * 2).min(shared.config.backoff_max)
        };
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
    let target = &shared.targets[node];
    let timeout = shared.config.io_timeout;
    // A server without `watch deletions` answers ERROR (1.6.18); another
    // may answer CLIENT_ERROR or some other refusal: each means "not
    // here", and the feed falls back to mutations alone.
    let mut refusal = "ERROR".to_owned();
    let with_deletions = match Watch::open(target, "mutations deletions", timeout).await {
        Ok(w) => w,
        Err(backend_memcached::Error::Protocol { message, .. }) => {
            refusal = message;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut watch = match with_deletions {
        Some(w) => {
            if *first {
                tracing::info!(link = %shared.name, server = %addr, "feed: watch mutations deletions");
            }
            shared.metrics.set_deletions_feed(addr, true);
            w
        }
        None => match Watch::open(target, "mutations", timeout).await? {
            Some(w) => {
                if *first {
                    tracing::info!(link = %shared.name, server = %addr, answer = %refusal, "feed: watch mutations (this server refused `watch deletions`: deletes are found by key-list comparisons)");
                }
                shared.metrics.set_deletions_feed(addr, false);
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
    let mut stats = RawConnection::connect(target, timeout).await?;
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
    let mut gids = GidWindow::new();
    loop {
        let line = tokio::select! {
            line = watch.next_line() => line?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        // Every line takes a number, whatever its type: lines arrive out of
        // order, so only a number the window gave up on is a loss.
        if let Some(gid) = line_gid(&line) {
            let lost = gids.see(gid);
            if lost > 0 {
                m.feed_gaps.fetch_add(1, Ordering::Relaxed);
                tracing::info!(link = %shared.name, missed = lost, "feed lines never arrived; resyncing");
                shared.request_resync();
            }
        }
        match WatchEvent::parse(&line) {
            Ok(mut event) => {
                // A store's delete marker (memcached 1.6.18 reports no
                // deletes): the key it names was just deleted there.
                if let Some(deleted) = deleted_by_marker(&event.key) {
                    event.key = deleted.to_owned();
                }
                if !event.stored || !replicated(&event.key) {
                    continue;
                }
                m.events.fetch_add(1, Ordering::Relaxed);
                // The feed lane: served before a refill's keys.
                let queue = queues.feed_of(&event.key);
                let job = Job::Key {
                    key: event.key,
                    ts: event.ts,
                    listed: None,
                };
                match queue.try_send(job) {
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
                let count = m.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                // A server that writes a new line format writes it on every
                // event: one log line a minute says so, the counter counts.
                if shared.malformed_log.allow() {
                    tracing::warn!(link = %shared.name, line = %String::from_utf8_lossy(&line[..line.len().min(200)]), count, "unreadable feed line ignored (logged at most once a minute)");
                }
            }
        }
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

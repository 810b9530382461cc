//! The resync task of a link: full comparisons, one at a time, whenever
//! one is requested (start, feed reconnect, missed events, a node back)
//! and every `resync_interval` after the last one ended. A comparison that
//! overruns its interval is never run twice at once: there is one loop, and
//! the next periodic one is counted from the end of the previous.
//!
//! Between them, where a source has no deletions feed, the same task runs
//! the cheap key-list comparisons (`keylist.rs`) at their own pace.
//!
//! Between masters with a state file, each completed comparison is
//! followed by a save of what the copiers know (`state.rs`), written off
//! the runtime's threads, so a crash loses at most one interval.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use backend_memcached::raw::RawConnection;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::keylist::KeyLists;
use crate::queues::{Job, Queues};
use crate::run_marker::{replicated, server_epoch};
use crate::shared::{LinkShared, Mode, pause};
use crate::state;

/// Runs a resync whenever one is requested or the interval elapses.
pub(crate) async fn resync_loop(
    shared: Arc<LinkShared>,
    queues: Queues,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = shared.config.backoff_initial;
    let mut next_periodic = shared.config.resync_interval.map(|d| Instant::now() + d);
    let mut due_now = false;
    let mut lists = KeyLists::new(shared.nodes.len());
    let mut next_list = shared.config.key_list_interval.map(|d| Instant::now() + d);
    loop {
        if !due_now {
            let periodic = async {
                match next_periodic {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let list_due = async {
                match next_list {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mut list_now = false;
            tokio::select! {
                _ = shared.resync_wake.notified() => {}
                _ = periodic => {}
                _ = list_due => list_now = true,
                _ = stop.wait_for(|s| *s) => return,
            }
            if list_now {
                match key_list(&shared, &queues, &mut lists, &mut stop).await {
                    Some(at) => next_list = Some(at),
                    None => return,
                }
                continue;
            }
        }
        due_now = false;
        shared.resync_pending.store(false, Ordering::SeqCst);
        let m = &shared.metrics;
        m.resync_running.store(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = resync_once(&shared, &queues, &mut stop).await;
        m.resync_running.store(0, Ordering::Relaxed);
        // Counted from the end: a comparison longer than the interval is
        // followed by a pause, not by another one at once.
        next_periodic = shared.config.resync_interval.map(|d| Instant::now() + d);
        match result {
            Ok(true) => {
                backoff = shared.config.backoff_initial;
                m.record_resync(started.elapsed(), SystemTime::now());
                if !save_state(&shared, &queues, &mut stop).await {
                    return;
                }
            }
            Ok(false) => return,
            Err(e) => {
                m.resync_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(link = %shared.name, error = %e, retry_in = ?backoff, "resync failed");
                // Pending, but a plain request does not cut the backoff
                // short; a node coming back does (`resync_at_once`).
                shared.resync_pending.store(true, Ordering::SeqCst);
                tokio::select! {
                    stopping = pause(backoff, &mut stop) => if stopping { return },
                    _ = shared.resync_wake.notified() => {}
                }
                due_now = true;
                backoff = (backoff * 2).min(shared.config.backoff_max);
            }
        }
    }
}

/// One key-list comparison if a source lacks a deletions feed; when the
/// next may start (`None` when asked to stop).
async fn key_list(
    shared: &Arc<LinkShared>,
    queues: &Queues,
    lists: &mut KeyLists,
    stop: &mut watch::Receiver<bool>,
) -> Option<Instant> {
    let floor = shared
        .config
        .key_list_interval
        .unwrap_or(shared.config.backoff_max);
    if shared.resync_pending.load(Ordering::SeqCst) {
        // A full comparison is due (a node came back, lines were lost): it
        // goes first, and covers everything a key list would find.
        return Some(Instant::now() + floor);
    }
    if !KeyLists::needed(shared) {
        // Every feed reports deletes (or none is connected yet): look again
        // later, a feed may reconnect to another server.
        return Some(Instant::now() + floor);
    }
    match lists.compare(shared, queues, stop).await {
        Ok(Some(took)) => Some(lists.next_after(shared, took)),
        Ok(None) => None,
        Err(e) => {
            shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(link = %shared.name, error = %e, "key-list comparison failed");
            Some(Instant::now() + floor.max(shared.config.backoff_max))
        }
    }
}

/// Between masters with a state file: asks each copier what it knows now
/// and saves it (on a blocking thread: a million keys take a moment).
/// False when asked to stop meanwhile. A failed save is logged; the next
/// comparison tries again.
async fn save_state(
    shared: &Arc<LinkShared>,
    queues: &Queues,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let Some(path) = shared.config.state_file.clone() else {
        return true;
    };
    if shared.mode != Mode::Mesh {
        return true;
    }
    let mut answers = Vec::new();
    for queue in queues.bulk_lanes() {
        let (tx, rx) = oneshot::channel();
        tokio::select! {
            sent = queue.send(Job::Snapshot(tx)) => if sent.is_err() { return false },
            _ = stop.wait_for(|s| *s) => return false,
        }
        answers.push(rx);
    }
    let mut known = Vec::new();
    for rx in answers {
        tokio::select! {
            k = rx => match k {
                Ok(k) => known.push(k),
                Err(_) => return false,
            },
            _ = stop.wait_for(|s| *s) => return false,
        }
    }
    let links = vec![(shared.name.clone(), shared.nodes.clone(), known)];
    let file = path.clone();
    let saved = tokio::task::spawn_blocking(move || state::save(&file, links))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match saved {
        Ok(()) => {
            shared.metrics.state_saves.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(link = %shared.name, path = %path.display(), error = %e, "the in-sync state could not be saved");
        }
    }
    true
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
        for addr in &shared.targets {
            let mut c = RawConnection::connect(addr, shared.config.dump_timeout).await?;
            // Leaves the node's run marker now, once, rather than in a race
            // between copiers that connect at the same moment.
            server_epoch(&mut c).await?;
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
        let queue = queues.bulk_of(&key).clone();
        let job = Job::Key {
            key,
            ts: None,
            listed: None,
        };
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
    // After its keys on the same lanes: answered once they are copied.
    for queue in queues.bulk_lanes() {
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

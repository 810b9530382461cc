//! The memorycached replicator: keeps memcached servers equal, master→slave
//! or master↔master, for every key (sessions, reverse keys, anything a Perl
//! or Rust client writes), deletes included.
//!
//! # How
//!
//! - **Change feed.** One `watch mutations deletions` connection per
//!   source. Each `item_store` line, and each `deleted` line, names a key;
//!   the key goes on a bounded queue. A store line of a delete marker
//!   (`memorycached.deleted:<key>`, left by session-core's memcached store
//!   with `delete_markers=1`) stands for a delete of `<key>`; markers are
//!   never copied. A server without `watch deletions`
//!   (memcached 1.6.18 answers `ERROR`; any refusal, `CLIENT_ERROR`
//!   included, counts the same) gets `watch mutations` alone, said in one
//!   log line. A line that cannot be read is logged and counted, never
//!   fatal.
//! - **Key lists** (sources without a deletions feed only, `keylist.rs`).
//!   The nodes' key lists (one `lru_crawler metadump all` each, all nodes
//!   at once) are compared every [`Config::key_list_interval`] (1 s), or
//!   every `cost / key_list_budget` if longer (the median of the last five
//!   comparisons' durations; 5%: with a million keys, whose lists take a
//!   second or two, every half minute or so). A key listed on some nodes
//!   but not all, or listed last time and now nowhere, is queued like an
//!   event; only those keys are read. A list is not exact (memcached
//!   leaves out items being read at that instant), so a missing key is only
//!   ever a reason to read it.
//! - **Copy.** A copier reads the key on every node with meta `mg` (value,
//!   flags, remaining TTL, CAS), decides (below) and writes with the same
//!   flags and the remaining TTL. Values are read at copy time, never taken
//!   from the event, and one key always goes to the same copier, so the last
//!   copy carries the latest value whatever the order of events.
//! - **Resync (anti-entropy).** A full comparison — the union of every
//!   node's keys (`lru_crawler metadump all`), each key then compared like an
//!   event — at start, after every feed (re)connect, whenever events were
//!   missed (a full queue; a `gid` the feed never delivered, see below;
//!   memcached's skip notice, or its `log_worker_dropped`/
//!   `log_watcher_skipped` growing, i.e. lines it dropped for a slow
//!   watcher; a failed copy), as soon as a node answers again after a
//!   failure or as a new run (restarted, flushed: a monitor per node looks
//!   at start and every `stats_poll`; a copier that meets the new run
//!   first starts it too), and every `resync_interval` after the last one
//!   ended. One runs at a time: one that overruns its interval is never
//!   started twice. Progress is logged every 10 000 keys.
//! - **Lost lines, not late ones.** memcached's worker threads write watch
//!   lines out of `gid` order (`133,132,131,135,134`), so a line is taken
//!   for lost only when a window of the last 65 536 numbers slides past it
//!   unseen (`gids.rs`). Another client watching other event types on the
//!   same server (`watch fetchers`) takes numbers from the same counter and
//!   makes comparisons more frequent, never fewer. A line that cannot be
//!   read is counted and logged at most once a minute.
//! - **New writes first.** Each copier has two lanes: the feeds' keys go
//!   on its feed lane, the comparisons' (a refill, key-list differences)
//!   on its bulk lane, and the feed lane is served first (the bulk lane at
//!   least once every 8 feed batches, so a refill is never starved). A new
//!   write during a refill waits for at most one bulk batch (64 keys), not
//!   behind the refill. Safe because values are read at copy time: a
//!   refill's job that comes after the feed's reads the newer value.
//! - **Backpressure.** Feeds never block: a full feed lane drops the event,
//!   counts it (`skipped`) and schedules a resync, which copies it. The
//!   resync task itself waits for room. Memory is bounded by
//!   `2 × shards × queue_capacity` keys (plus, between masters, the
//!   in-sync memory below).
//!
//! # master → slave
//!
//! The slave ends equal to the master: missing or different items are
//! written with the master's exact flags and remaining TTL; items the
//! master no longer has are deleted from the slave (a delete comes from
//! the deletions feed, or from the next key-list comparison on 1.6.18;
//! expiries and evictions from a key list or the next full comparison). A differing TTL alone is corrected with a touch. Several slaves
//! are independent links: a dead slave delays only itself.
//!
//! # master ↔ master
//!
//! One link over all peers, with a feed from each. Nothing is added to the
//! session data; two mechanisms prevent loops:
//!
//! - **Compare before write.** The copier reads the key on every peer and
//!   writes only where the content differs. Our own write shows up in the
//!   other peer's feed, is read, found equal, and stops there: one client
//!   write costs exactly one copy per other peer (no ping-pong).
//! - **A marker in the flags.** Copies carry [`Config::marker_flag`]
//!   (default `FLAGS_REPLICATED`, `0x4000_0000`, reserved by session-core
//!   as a modifier). An item without it was written by a client, so it is
//!   newer than any copy. Configurable (`--marker-flag`, `marker_flag` in
//!   the file) to any one bit of `0xFFFF_0000` ([`config::MARKER_BITS`]);
//!   the codec's format bits and the compression/UTF-8 bits are refused.
//!   Known fine with the default: session-core (Rust, the bridge,
//!   sessionctl: readers ignore `0xFFFF_0000`), Perl's Cache::Memcached
//!   (reads bits 0-1) and Cache::Memcached::Fast (bits 0-2), hence
//!   Apache::Session::Memorycached. Clients that give the high 16 bits a
//!   meaning see it: PHP's memcached extension returns them as "user
//!   flags" (bit 30 reads as user flag `0x4000`); pick a bit such a client
//!   leaves unused. Changing the bit on a running mesh makes existing
//!   copies look like client writes until they are next written (harmless:
//!   equal content is never copied). Master→slave copies keep the master's
//!   flags exactly and carry no marker.
//!
//! Writes are conditional (`add` where the key was absent, `cas` at the
//! CAS just read, `md C<cas>` for deletes): a client write that lands
//! between our read and our write is never overwritten; the key is read
//! again and decided again.
//!
//! **The rule.** For each key the copier remembers the CAS each peer held
//! when the key was last in sync. On a difference, the peers whose item
//! changed since then are the candidates:
//!
//! 1. a candidate that *lost* an item that was in sync, before its
//!    remembered expiry, was **deleted** there (a raw `delete` by any
//!    client, a Perl logout, or an eviction): the key is deleted on every
//!    peer, and a delete wins over a concurrent write elsewhere, so a
//!    logout sticks;
//! 2. otherwise the candidate's value is copied to the others; among
//!    several candidates (concurrent writes of one key on two masters) an
//!    unmarked item beats a marked one and then **the first peer in
//!    configuration order wins**. The decision is taken once, by one copier
//!    for that key, and applied to all peers, so it is the same on both.
//! 3. Without memory of an in-sync state (replicator just started, memory
//!    full, or a peer restarted or flushed — detected by its `pid`, start
//!    time and the token the replicator leaves under [`RUN_MARKER`], which
//!    an emptied server no longer holds), an absence is not a delete:
//!    present items are copied to where they are missing. A delete made
//!    while the replicator was not running is therefore undone at its
//!    start, unless [`Config::state_file`] is set: the in-sync memory is
//!    then saved after each comparison and at a clean stop, and the next
//!    start uses it for every peer still in the same run (`state.rs`). One made
//!    while it runs is never undone.
//!
//! **Expiry is not a delete.** The in-sync memory keeps, with each peer's
//! CAS, when its item expires (remaining TTL plus the time it was seen).
//! A peer that lacks the key at (or within 2 s of) that time lost it to its
//! TTL: that decides nothing, so a newer write on another peer is copied
//! to it, never deleted. This matters because memcached counts TTLs in
//! whole seconds of its own clock: a copy can expire up to a second before
//! its original, and a login landing on the original's side in that second
//! (session-core's emptied index records live 2 s) was deleted on both
//! peers as if the expiry had been a logout. With no newer write anywhere,
//! what is left of the expiring item is deleted at its CAS (so a delete in
//! its last seconds sticks), unless a touch has lengthened it since (then
//! it is copied back). Details in `reconcile.rs`.
//!
//! **Evictions** are treated as deletes (memcached 1.6.18 tells them
//! apart from a delete only with extra watchers): an item evicted on one
//! master is removed from the others at the next resync. For sessions
//! that is the outcome of a single server too (the session is gone); give
//! peers the same memory so that evictions are rare.
//!
//! **Delete latency**, by memcached version (measured by
//! `tests/deletes.rs` with plain-text deletes as Perl sends them, and by
//! the bench's `replication` section):
//!
//! | server | how a delete travels | delay |
//! |---|---|---|
//! | 1.6.38 (Debian 13) and later | its `deleted` feed line | milliseconds (tests: p99 under 50 ms) |
//! | 1.6.18, a delete through session-core's memcached store with `delete_markers=1` | the marker's store line (`backend_memcached::delete_marker`) | milliseconds (tests: p99 under 50 ms) |
//! | 1.6.18 (Debian 12), any other delete | the next key-list comparison | about `key_list_interval` (1 s) with 10k keys (tests: p99 under 3 s); more as lists grow (5% pacing) |
//! | either, `key_list_interval` off | the next full comparison | up to `resync_interval` (60 s) |
//!
//! A full comparison costs one metadump per node and one pipelined `mg`
//! per key and node; a key-list comparison one metadump per node, plus an
//! `mg` per node for each differing key only.
//!
//! **Too large for a target.** A copy a target refuses with `SERVER_ERROR
//! object too large` (its `-I` is smaller than the source's) is counted
//! (`replicator_too_large_total`), logged at most once a minute, and not
//! tried again until the source's item changes (its CAS); the key stays
//! out of sync, not retried in a loop.
//!
//! **The state file** ([`Config::state_file`], master↔master) is saved
//! after each completed comparison (temp file and rename, on a blocking
//! thread) and at a clean stop: a crash loses at most one interval.
//!
//! # Metrics
//!
//! [`Replicator::metrics_text`] (the daemon's `/metrics`), label `link`:
//! `replicator_events_total`, `_malformed_lines_total`, `_skipped_total`,
//! `_feed_gaps_total`, `_copied_total`, `_deleted_total`, `_touched_total`,
//! `_unchanged_total`, `_conflicts_total`, `_retries_total`,
//! `_errors_total`, `_resyncs_total`, `_resync_failures_total`,
//! `_state_saves_total`, `_heartbeats_total` (counters); `replicator_resync_running`,
//! `_resync_keys`, `_feeds_connected`, `_queue_depth`,
//! `replicator_resync_last_end_timestamp_seconds` (Unix time the last
//! comparison ended), `replicator_resync_last_duration_seconds`,
//! `replicator_deletions_feed` (label `server` too: 1 when that source's
//! feed reports deletes), `replicator_key_list_last_duration_seconds`
//! (gauges); `replicator_key_lists_total`,
//! `replicator_key_list_differences_total` (keys queued by key lists),
//! `replicator_too_large_total` (counters); `replicator_lag_seconds` (from
//! a source's event to its copy) and `replicator_delete_delay_seconds`
//! (from a delete seen, by its feed line's time or the start of the
//! key-list comparison that found it, to its delete on a target)
//! (histograms).
//!
//! # Limits
//!
//! - Between masters, one link covers every peer: while one peer is down,
//!   keys are not copied among the others either (each key is decided
//!   with every peer's item in hand); they are caught up by the resync
//!   after it returns.
//! - A resync reads every key of every node; its cost grows with the
//!   number of keys, and missed events wait for it. Key lists are cheaper
//!   but still one metadump per node: with many keys they run less often
//!   (5% pacing), so on 1.6.18 a delete's delay grows with the key count.
//! - A key-list comparison sees keys, not values: a missed write whose
//!   key is on every node waits for the next full comparison.
//! - A key memcached's crawler leaves out of both dumps of a resync
//!   (items being moved or read at that instant) waits for the next one.
//!
//! # Layout
//!
//! - [`config`]: [`Config`], [`Topology`], the TOML [`FileConfig`].
//! - `link.rs`: starts a link; its change feeds.
//! - `gids.rs`: the window that tells lost feed lines from late ones.
//! - `resync.rs`: the comparisons, one at a time, and the state saves.
//! - `keylist.rs`: the key-list comparisons and their pacing.
//! - `monitor.rs`: per node, notices it coming back (or back empty).
//! - `heartbeat.rs`: per source, the write that keeps memcached's logger
//!   thread awake (feed lines in ms after an idle spell, not 100s of ms).
//! - `queues.rs`: the copiers' jobs and lanes (a key, one copier; the
//!   feed lane before the bulk lane).
//! - `shared.rs`: what a link's tasks share (a leaf).
//! - `run_marker.rs`: [`RUN_MARKER`] and telling one server run from the
//!   next.
//! - `copier.rs`: reads, decides, writes; reconnects with backoff.
//! - `writes.rs`: the write each decision stands for (a leaf).
//! - `reconcile.rs`: the decisions above, as pure functions.
//! - `state.rs`: the in-sync memory saved after each comparison and at a
//!   clean stop, read at start.
//! - [`metrics`]: counters and their Prometheus text.
//!
//! Everything memcached is spoken through `backend_memcached::raw`.

pub mod config;
mod copier;
pub mod error;
mod gids;
mod heartbeat;
mod keylist;
mod link;
pub mod metrics;
mod monitor;
mod queues;
mod reconcile;
mod resync;
mod run_marker;
mod shared;
mod state;
mod writes;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

pub use config::{Config, FileConfig, Topology};
pub use error::{Error, Result};
pub use heartbeat::HEARTBEAT_KEY;
pub use metrics::LinkMetrics;
pub use run_marker::RUN_MARKER;

use link::Link;
use shared::Mode;

/// A running replicator.
pub struct Replicator {
    links: Vec<Link>,
    stop: watch::Sender<bool>,
    drain_timeout: std::time::Duration,
    /// master↔master: where a clean stop saves the in-sync state.
    state_file: Option<std::path::PathBuf>,
}

/// What a stop left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// True when every queued key was handled before the deadline.
    pub drained: bool,
    /// Keys still queued (not copied) when the copiers were stopped; the
    /// next start's resync copies them.
    pub not_copied: u64,
    /// master↔master with a state file: whether the in-sync state was
    /// saved (only after a complete drain; otherwise the file is left as
    /// it was and the next start knows less).
    pub state_saved: bool,
}

impl Replicator {
    /// Validates `config` and starts every link on the current tokio
    /// runtime.
    pub fn start(config: Config) -> Result<Replicator> {
        config.validate()?;
        let (stop, stop_rx) = watch::channel(false);
        let links = match &config.topology {
            Topology::MasterSlave { master, slaves } => slaves
                .iter()
                .map(|slave| {
                    Link::start(
                        format!(
                            "{}>{}",
                            backend_memcached::redact_url(master),
                            backend_memcached::redact_url(slave)
                        ),
                        vec![master.clone(), slave.clone()],
                        vec![0],
                        Mode::MasterSlave,
                        config.clone(),
                        stop_rx.clone(),
                        None,
                    )
                })
                .collect(),
            Topology::Mesh { peers } => {
                // Printed forms only: names are metric labels and log
                // fields, and the state file lists the nodes.
                let printed: Vec<String> = peers
                    .iter()
                    .map(|p| backend_memcached::redact_url(p))
                    .collect();
                let name = printed.join("<>");
                let carried = config
                    .state_file
                    .as_deref()
                    .and_then(|path| state::load(path, &name, &printed));
                vec![Link::start(
                    name,
                    peers.clone(),
                    (0..peers.len()).collect(),
                    Mode::Mesh,
                    config.clone(),
                    stop_rx,
                    carried,
                )]
            }
        };
        Ok(Replicator {
            links,
            stop,
            drain_timeout: config.drain_timeout,
            state_file: match config.topology {
                Topology::Mesh { .. } => config.state_file.clone(),
                Topology::MasterSlave { .. } => None,
            },
        })
    }

    /// Each link's name and counters.
    pub fn links(&self) -> Vec<(String, Arc<LinkMetrics>)> {
        self.links
            .iter()
            .map(|l| (l.shared.name.clone(), Arc::clone(&l.shared.metrics)))
            .collect()
    }

    /// Every link's counters in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let links: Vec<(String, &LinkMetrics)> = self
            .links
            .iter()
            .map(|l| (l.shared.name.clone(), &*l.shared.metrics))
            .collect();
        metrics::render(&links)
    }

    /// Schedules a full comparison on every link now.
    pub fn resync_now(&self) {
        for l in &self.links {
            l.shared.request_resync();
        }
    }

    /// Stops: feeds and resyncs end at once, queued keys are copied for up
    /// to the configured drain timeout, and what was left is reported.
    /// After a complete drain, a mesh with a state file saves what its
    /// copiers knew (see `state.rs`).
    pub async fn stop(self) -> StopReport {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        let mut drained = true;
        let mut counters = Vec::new();
        let mut known = Vec::new();
        for link in self.links {
            // Producers watch the stop signal at every await point.
            for p in link.producers {
                let _ = p.await;
            }
            counters.push(Arc::clone(&link.shared.metrics));
            let mut copiers = Vec::new();
            for mut c in link.copiers {
                match tokio::time::timeout_at(deadline, &mut c).await {
                    Ok(Ok(k)) => copiers.push(k),
                    Ok(Err(_)) => drained = false,
                    Err(_) => {
                        drained = false;
                        c.abort();
                    }
                }
            }
            known.push((link.shared.name.clone(), link.shared.nodes.clone(), copiers));
        }
        let not_copied = if drained {
            0
        } else {
            counters
                .iter()
                .map(|m| m.queue_depth.load(Ordering::Relaxed))
                .sum()
        };
        let mut state_saved = false;
        if let Some(path) = &self.state_file {
            if drained {
                // Serialising a million keys and writing the file takes a
                // moment: off the runtime's threads.
                let file = path.clone();
                let saved = tokio::task::spawn_blocking(move || state::save(&file, known))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                match saved {
                    Ok(()) => state_saved = true,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "the in-sync state could not be saved");
                    }
                }
            } else {
                tracing::warn!(path = %path.display(), "not drained: the in-sync state is not saved");
            }
        }
        StopReport {
            drained,
            not_copied,
            state_saved,
        }
    }
}

//! A copier: one task per shard of a link. It takes keys in batches from
//! its two bounded lanes (`queues.rs`: the feeds' first, then the
//! comparisons'), reads each key on every node of the link (pipelined),
//! asks `reconcile` what to write, and writes (each node's writes of a
//! batch in one round trip: a 10k-key catch-up copies ~5x faster than
//! with a round trip per write). One key always lands on the
//! same copier, which copies one batch at a time, so copies of one key
//! never run at once; and the value is read at copy time, not taken from
//! the event, so the last copy of a key carries its latest value whatever
//! the lane or the order of its jobs (a refill's job served after the
//! feed's reads the newer value).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use backend_memcached::raw::{RawConnection, RawItem, RawWrite, RawWritten, WriteOutcome};
use session_core::DeleteOutcome;
use tokio::time::Instant;

use crate::error::Result;
use crate::queues::{Job, Lanes};
use crate::reconcile::{self, Action, Held, Prev};
use crate::run_marker::{Epoch, RUN_MARKER, server_epoch};
use crate::shared::{LinkShared, Mode};
use crate::state::Known;
use crate::writes::{Plan, write_of, write_of_one};

/// Keys taken from the feed lane per round trip.
const FEED_BATCH: usize = 64;
/// Keys taken from the bulk lane (a refill, key-list differences) per
/// round trip: a new write waits for at most one such batch in flight, so
/// it stays small (64 keys are read and written in ~1 ms on loopback).
const BULK_BATCH: usize = 64;
/// Refused copies remembered per copier (see `Copier::too_large`).
const TOO_LARGE_REMEMBERED: usize = 10_000;

/// When a queued key's change was seen, from the jobs that named it.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// The earliest feed line's timestamp.
    ts: Option<f64>,
    /// The earliest key-list comparison that found it.
    listed: Option<f64>,
}

impl Seen {
    /// Both, each the earliest of the two.
    fn earliest(self, other: Seen) -> Seen {
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Seen {
            ts: min(self.ts, other.ts),
            listed: min(self.listed, other.listed),
        }
    }

    /// When the change was first seen, by either.
    fn since(self) -> Option<f64> {
        match (self.ts, self.listed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Now, in Unix milliseconds.
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Attempts per key when a conditional write meets a concurrent client
/// write; then the key is left to the next resync.
const ATTEMPTS: usize = 5;

pub(crate) struct Copier {
    shared: Arc<LinkShared>,
    /// The feed lane, served first, and the bulk lane (`queues.rs`).
    rx: Lanes,
    conns: Vec<Option<RawConnection>>,
    /// Each node's identity (`pid` and start time) when last connected: a
    /// change means it restarted empty, so what we knew of it is void.
    epochs: Vec<Option<Epoch>>,
    /// master↔master: per key, what each node held when last in sync.
    state: HashMap<String, Vec<Prev>>,
    /// master↔master: this copier's share of what the previous run saved
    /// (`state.rs`), consulted for a key this run has not settled yet,
    /// node by node only while that node's run token is the saved one. An
    /// entry is dropped once its key is settled: from then on `state`
    /// speaks for it, and a stale entry must not outlive a delete.
    carried: Known,
    /// Copies a node refused as too large: (key, node) -> the source's CAS
    /// then. Not tried again until the source's item changes; bounded.
    too_large: HashMap<(String, usize), u64>,
    /// When each node may be tried again after a failure.
    retry_at: Vec<Option<Instant>>,
    backoff: Vec<std::time::Duration>,
    /// Each node's `NodeHealth::back` when last looked at: a newer number
    /// means the node answers again, so its backoff is over.
    seen_back: Vec<u64>,
}

impl Copier {
    pub(crate) fn new(shared: Arc<LinkShared>, rx: Lanes, carried: Known) -> Copier {
        let n = shared.nodes.len();
        let initial = shared.config.backoff_initial;
        Copier {
            shared,
            rx,
            conns: (0..n).map(|_| None).collect(),
            epochs: vec![None; n],
            state: HashMap::new(),
            carried,
            too_large: HashMap::new(),
            retry_at: vec![None; n],
            backoff: vec![initial; n],
            seen_back: vec![0; n],
        }
    }

    /// Runs until every sender is gone and both lanes are empty; returns
    /// what it knew then, for the state file.
    pub(crate) async fn run(mut self) -> Known {
        let mut jobs = Vec::with_capacity(FEED_BATCH.max(BULK_BATCH));
        loop {
            jobs.clear();
            let lane = self.rx.next(&mut jobs, FEED_BATCH, BULK_BATCH).await;
            if lane.is_none() {
                return self.known();
            }
            let queued = jobs.iter().filter(|j| matches!(j, Job::Key { .. })).count();
            self.shared
                .metrics
                .queue_depth
                .fetch_sub(queued as u64, Ordering::Relaxed);
            let mut keys: Vec<(String, Seen)> = Vec::new();
            let mut flushes = Vec::new();
            let mut snapshots = Vec::new();
            for job in jobs.drain(..) {
                match job {
                    Job::Key { key, ts, listed } => {
                        let seen = Seen { ts, listed };
                        if let Some(k) = keys.iter_mut().find(|(k, _)| *k == key) {
                            k.1 = k.1.earliest(seen);
                        } else {
                            keys.push((key, seen));
                        }
                    }
                    Job::Flush(done) => flushes.push(done),
                    Job::Snapshot(answer) => snapshots.push(answer),
                }
            }
            if !keys.is_empty() {
                let count = keys.len();
                let open: Vec<bool> = self.conns.iter().map(Option::is_some).collect();
                let mut result = self.batch(&keys).await;
                if result.as_ref().is_err_and(|e| self.went_stale(e, &open)) {
                    // A connection that worked before this batch broke at
                    // once (its server restarted meanwhile): once more, on
                    // a fresh one, rather than leave the batch to a
                    // second full comparison.
                    result = self.batch(&keys).await;
                }
                if let Err(e) = result {
                    let m = &self.shared.metrics;
                    m.errors.fetch_add(1, Ordering::Relaxed);
                    m.skipped.fetch_add(count as u64, Ordering::Relaxed);
                    tracing::debug!(link = %self.shared.name, error = %e, keys = count, "copy failed; left to a resync");
                    self.shared.request_resync();
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
            for answer in snapshots {
                let _ = answer.send(self.known());
            }
        }
    }

    /// Whether `error` came from a connection that was open before the
    /// batch (`open`, per node) and broke without a timeout: closed by a
    /// server that went away, probably back by now. A timeout (a silent
    /// server) is not tried again at once: that would only wait twice.
    fn went_stale(&self, error: &crate::Error, open: &[bool]) -> bool {
        let timeout = matches!(
            error,
            crate::Error::Memcached(backend_memcached::Error::Timeout { .. })
        );
        !timeout
            && self
                .conns
                .iter()
                .zip(open)
                .any(|(c, was)| *was && c.as_ref().is_some_and(RawConnection::is_broken))
    }

    /// A connection to `node`, (re)opened if needed, unless the node is in
    /// its backoff after a failure.
    async fn conn(&mut self, node: usize) -> Result<&mut RawConnection> {
        if self.conns[node].as_ref().is_some_and(|c| c.is_broken()) {
            self.conns[node] = None;
        }
        if self.conns[node].is_none() {
            let back = self.shared.health[node].back.load(Ordering::SeqCst);
            if back != self.seen_back[node] {
                // The monitor saw it answer again: try now.
                self.seen_back[node] = back;
                self.retry_at[node] = None;
                self.backoff[node] = self.shared.config.backoff_initial;
            }
            if let Some(at) = self.retry_at[node]
                && Instant::now() < at
            {
                return Err(crate::Error::Down {
                    server: self.shared.nodes[node].clone(),
                    retry_in: at - Instant::now(),
                });
            }
            let addr = self.shared.targets[node].clone();
            let opened = async {
                let mut c = RawConnection::connect(&addr, self.shared.config.io_timeout).await?;
                let epoch = server_epoch(&mut c).await?;
                Ok::<_, crate::Error>((c, epoch))
            }
            .await;
            match opened {
                Ok((c, epoch)) => {
                    if self.epochs[node]
                        .as_ref()
                        .is_some_and(|e| !e.same_run(&epoch))
                    {
                        // Restarted: its absences say nothing about deletes.
                        self.forget_node(node, "server restarted");
                    }
                    self.epochs[node] = Some(epoch);
                    self.retry_at[node] = None;
                    self.backoff[node] = self.shared.config.backoff_initial;
                    self.conns[node] = Some(c);
                }
                Err(e) => {
                    self.retry_at[node] = Some(Instant::now() + self.backoff[node]);
                    self.backoff[node] =
                        (self.backoff[node] * 2).min(self.shared.config.backoff_max);
                    return Err(e);
                }
            }
        }
        match self.conns[node].as_mut() {
            Some(c) => Ok(c),
            None => Err(crate::Error::InvalidConfig(
                "internal: no connection".into(),
            )),
        }
    }

    /// Reads `keys` on every node, each node's run marker in the same
    /// round trip: a node whose marker vanished or changed since we last
    /// looked lost its items (`flush_all`, which breaks no connection, or
    /// a restart another copier noticed first), so what we knew of it is
    /// void before anything is decided from its absences.
    async fn read_all(&mut self, keys: &[&str]) -> Result<Vec<Vec<Option<RawItem>>>> {
        let mut with_marker = Vec::with_capacity(keys.len() + 1);
        with_marker.extend_from_slice(keys);
        with_marker.push(RUN_MARKER);
        let mut out = Vec::with_capacity(self.conns.len());
        for node in 0..self.conns.len() {
            let mut items = self.conn(node).await?.get_many(&with_marker).await?;
            let token = items.pop().flatten().map(|item| item.value);
            if token.as_ref() != self.epochs[node].as_ref().map(|e| &e.token) {
                let epoch = server_epoch(self.conn(node).await?).await?;
                self.forget_node(node, "its items were dropped (flush_all or restart)");
                self.epochs[node] = Some(epoch);
            }
            out.push(items);
        }
        Ok(out)
    }

    /// What the previous run saved of `key`, for the nodes still in the
    /// run it saw (unknown for the others, and for every node without a
    /// saved entry).
    fn carried_prev(&self, key: &str, nodes: usize) -> Vec<Prev> {
        let Some(saved) = self.carried.keys.get(key) else {
            return vec![None; nodes];
        };
        (0..nodes)
            .map(|n| {
                let token = self.carried.tokens.get(n).and_then(Option::as_ref);
                let now = self.epochs[n].as_ref().map(|e| &e.token);
                match (token, now) {
                    (Some(saved_token), Some(now)) if saved_token == now => {
                        saved.get(n).copied().flatten()
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// What this copier knows now, for the state file: each node's run
    /// token (the saved one for a node it never reached), its settled keys,
    /// and the saved entries of keys it has not met this run, for the
    /// nodes still in the saved run.
    fn known(&self) -> Known {
        let tokens: Vec<Option<Vec<u8>>> = (0..self.epochs.len())
            .map(|n| match &self.epochs[n] {
                Some(epoch) => Some(epoch.token.clone()),
                None => self.carried.tokens.get(n).cloned().flatten(),
            })
            .collect();
        let mut keys = self.state.clone();
        for (key, saved) in &self.carried.keys {
            if keys.contains_key(key) {
                continue;
            }
            let prev: Vec<Prev> = saved
                .iter()
                .copied()
                .enumerate()
                .map(|(n, p)| {
                    let same_run = tokens[n].is_some()
                        && self.carried.tokens.get(n).is_some_and(|t| *t == tokens[n]);
                    if same_run { p } else { None }
                })
                .collect();
            if prev.iter().any(Option::is_some) {
                keys.insert(key.clone(), prev);
            }
        }
        Known { tokens, keys }
    }

    /// `node` refused `key` as too large (`SERVER_ERROR object too large`,
    /// its `-I` is smaller than the source's): counted, logged at most once
    /// a minute, and not tried again while the source's CAS is `cas`.
    fn refused_too_large(&mut self, key: &str, node: usize, cas: u64, size: usize) {
        let m = &self.shared.metrics;
        let count = m.too_large.fetch_add(1, Ordering::Relaxed) + 1;
        if self.shared.too_large_log.allow() {
            tracing::warn!(link = %self.shared.name, server = %self.shared.nodes[node], key, size, count, "item too large for this server: skipped until it changes (raise its -I; logged at most once a minute)");
        }
        if self.too_large.len() >= TOO_LARGE_REMEMBERED {
            // Forgotten keys are only tried (and refused) once more.
            self.too_large.clear();
        }
        self.too_large.insert((key.to_owned(), node), cas);
    }

    /// What we knew of `node` is void: its absences are no longer deletes.
    fn forget_node(&mut self, node: usize, why: &str) {
        for prev in self.state.values_mut() {
            prev[node] = None;
        }
        let server = &self.shared.nodes[node];
        tracing::info!(link = %self.shared.name, %server, why, "keys are compared afresh");
        // The node lost its items: have them all compared now. A copier
        // often meets the new run before the monitor's next look (a write
        // to copy right after the restart), and on a server with a
        // deletions feed no key list would find the missing keys: they
        // waited for the periodic comparison (issue #23).
        self.shared.resync_at_once();
    }

    /// Reads every key of the batch on every node (one round trip per
    /// node), decides each, then sends each node all of its writes in one
    /// round trip (`write_many`). A key whose conditional write met a
    /// concurrent client write is read and decided again, alone.
    async fn batch(&mut self, keys: &[(String, Seen)]) -> Result<()> {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let per_node = self.read_all(&names).await?;
        let items_of =
            |i: usize| -> Vec<Option<RawItem>> { per_node.iter().map(|n| n[i].clone()).collect() };
        let mut plans = Vec::with_capacity(keys.len());
        for (i, key) in names.iter().enumerate() {
            plans.push(self.decide(key, &items_of(i)));
        }
        // Per node, its writes in key order, and where each answer goes.
        let nodes = per_node.len();
        let mut writes: Vec<Vec<RawWrite<'_>>> = (0..nodes).map(|_| Vec::new()).collect();
        let mut slots: Vec<Vec<(usize, usize)>> = (0..nodes).map(|_| Vec::new()).collect();
        let mut outcomes: Vec<Vec<Option<backend_memcached::Result<RawWritten>>>> = plans
            .iter()
            .map(|p| p.actions.iter().map(|_| None).collect())
            .collect();
        for (k, plan) in plans.iter().enumerate() {
            for (a, action) in plan.actions.iter().enumerate() {
                let node = action.node();
                if let Some(w) = write_of(names[k], &per_node, k, action) {
                    writes[node].push(w);
                    slots[node].push((k, a));
                }
            }
        }
        for node in 0..nodes {
            if writes[node].is_empty() {
                continue;
            }
            let answers = self.conn(node).await?.write_many(&writes[node]).await?;
            for ((k, a), answer) in slots[node].iter().zip(answers) {
                outcomes[*k][*a] = Some(answer);
            }
        }
        for (i, ((key, seen), plan)) in keys.iter().zip(plans).enumerate() {
            let items = items_of(i);
            let outcome = std::mem::take(&mut outcomes[i]);
            let mut done = self.settle(key, &items, plan, outcome, seen.since())?;
            let mut attempt = 0;
            while !done {
                attempt += 1;
                self.shared.metrics.retries.fetch_add(1, Ordering::Relaxed);
                if attempt >= ATTEMPTS {
                    self.shared.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                    self.shared.request_resync();
                    break;
                }
                let items: Vec<Option<RawItem>> = self
                    .read_all(&[key.as_str()])
                    .await?
                    .into_iter()
                    .map(|mut v| v.pop().flatten())
                    .collect();
                done = self.key(key, &items, seen.since()).await?;
            }
            if let Some(ts) = seen.ts {
                self.shared.metrics.observe_lag(unix_now() - ts);
            }
        }
        Ok(())
    }

    /// Brings one key in line, its writes one round trip each; false when
    /// a conditional write lost to a concurrent write (read again and
    /// retry). `since`: when the change was seen, for the delay of a
    /// delete.
    async fn key(
        &mut self,
        key: &str,
        items: &[Option<RawItem>],
        since: Option<f64>,
    ) -> Result<bool> {
        let plan = self.decide(key, items);
        let mut outcomes = Vec::with_capacity(plan.actions.len());
        for action in &plan.actions {
            let answer = match write_of_one(key, items, action) {
                Some(w) => self
                    .conn(action.node())
                    .await?
                    .write_many(&[w])
                    .await?
                    .pop(),
                None => None,
            };
            outcomes.push(answer);
        }
        self.settle(key, items, plan, outcomes, since)
    }

    /// What to write for `key`, given its item on every node: the
    /// reconcile rule's actions, less copies a node refused as too large
    /// whose source has not changed since.
    fn decide(&mut self, key: &str, items: &[Option<RawItem>]) -> Plan {
        let slack = self.shared.config.ttl_slack_secs;
        let m = &self.shared.metrics;
        let actions = match self.shared.mode {
            Mode::MasterSlave => reconcile::master_slave(&items[0], &items[1], slack)
                .into_iter()
                .collect::<Vec<_>>(),
            Mode::Mesh => {
                let carried;
                let prev = match self.state.get(key) {
                    Some(prev) => prev,
                    None => {
                        carried = self.carried_prev(key, items.len());
                        &carried
                    }
                };
                let plan = reconcile::mesh(
                    items,
                    prev,
                    slack,
                    self.shared.config.marker_flag,
                    unix_now_ms(),
                );
                if plan.conflict {
                    m.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(link = %self.shared.name, key, "concurrent changes; settled by the rule");
                }
                plan.actions
            }
        };
        if actions.is_empty() {
            m.unchanged.fetch_add(1, Ordering::Relaxed);
        }
        let before = actions.len();
        let actions: Vec<Action> = actions
            .into_iter()
            .filter(|a| match *a {
                Action::Copy { node, from, .. } => items[from].as_ref().is_none_or(|src| {
                    // Refused before, and the source has not changed since:
                    // trying again would only be refused again.
                    self.too_large.get(&(key.to_owned(), node)) != Some(&src.cas)
                }),
                _ => true,
            })
            .collect();
        Plan {
            skipped_too_large: actions.len() < before,
            actions,
        }
    }

    /// Counts what the writes of `plan` did and, between masters,
    /// remembers the key as in sync. False when a conditional write lost
    /// to a concurrent client write (read again and decide again).
    fn settle(
        &mut self,
        key: &str,
        items: &[Option<RawItem>],
        plan: Plan,
        outcomes: Vec<Option<backend_memcached::Result<RawWritten>>>,
        since: Option<f64>,
    ) -> Result<bool> {
        let m = Arc::clone(&self.shared.metrics);
        // What each node holds once the writes are done, with when it
        // expires (an absence past it is an expiry, not a delete).
        let now_ms = unix_now_ms();
        let mut now: Vec<Option<Held>> = items
            .iter()
            .map(|i| i.as_ref().map(|i| Held::new(i.cas, i.ttl, now_ms)))
            .collect();
        let mut skipped_too_large = plan.skipped_too_large;
        let mut lost = false;
        for (action, outcome) in plan.actions.iter().zip(outcomes) {
            // No write was due (a copy whose source vanished).
            let Some(outcome) = outcome else { continue };
            match (*action, outcome) {
                (
                    Action::Copy { node, from, .. },
                    Ok(RawWritten::Stored(WriteOutcome::Stored(cas))),
                ) => {
                    m.copied.fetch_add(1, Ordering::Relaxed);
                    // Written with the source's remaining TTL.
                    let ttl = items[from]
                        .as_ref()
                        .map_or(session_core::Ttl::NEVER, |i| i.ttl);
                    now[node] = Some(Held::new(cas, ttl, now_ms));
                }
                (
                    Action::Copy { .. },
                    Ok(RawWritten::Stored(WriteOutcome::Conflict | WriteOutcome::NotFound)),
                )
                | (Action::Delete { .. }, Ok(RawWritten::Deleted(DeleteOutcome::Conflict))) => {
                    lost = true;
                }
                (
                    Action::Copy { node, from, .. },
                    Err(backend_memcached::Error::ServerTooLarge { size, .. }),
                ) => {
                    let cas = items[from].as_ref().map_or(0, |i| i.cas);
                    self.refused_too_large(key, node, cas, size);
                    skipped_too_large = true;
                }
                (
                    Action::Delete { node, .. },
                    Ok(RawWritten::Existed(_) | RawWritten::Deleted(_)),
                ) => {
                    m.deleted.fetch_add(1, Ordering::Relaxed);
                    if let Some(since) = since {
                        m.observe_delete_delay(unix_now() - since);
                    }
                    now[node] = None;
                }
                (Action::Touch { node, ttl }, Ok(RawWritten::Existed(_))) => {
                    m.touched.fetch_add(1, Ordering::Relaxed);
                    if let Some(held) = &mut now[node] {
                        held.expires_ms = reconcile::expiry_ms(ttl, now_ms);
                    }
                }
                (_, Err(e)) => return Err(e.into()),
                (_, Ok(other)) => {
                    return Err(crate::Error::InvalidConfig(format!(
                        "internal: {other:?} answers {action:?}"
                    )));
                }
            }
        }
        if lost {
            return Ok(false);
        }
        if skipped_too_large {
            // Not in sync: nothing is remembered as if it were.
            return Ok(true);
        }
        if self.shared.mode == Mode::Mesh {
            self.carried.keys.remove(key);
            if now.iter().all(Option::is_none) {
                self.state.remove(key);
            } else {
                if self.state.len() >= self.shared.config.max_tracked_keys
                    && !self.state.contains_key(key)
                {
                    // Forget one key: it falls back to the no-state rule.
                    if let Some(k) = self.state.keys().next().cloned() {
                        self.state.remove(&k);
                    }
                }
                self.state
                    .insert(key.to_owned(), now.into_iter().map(Some).collect());
            }
        }
        Ok(true)
    }
}

//! A copier: one task per shard of a link. It takes keys from its bounded
//! queue in batches, reads each key on every node of the link (pipelined),
//! asks `reconcile` what to write, and writes. One key always lands on the
//! same copier, so copies of one key never overtake each other; and the
//! value is read at copy time, not taken from the event, so the last copy
//! of a key always carries its latest value.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use backend_memcached::raw::{RawConnection, RawItem, WriteOutcome};
use session_core::DeleteOutcome;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Result;
use crate::queues::Job;
use crate::reconcile::{self, Action, Expect, Prev};
use crate::run_marker::{Epoch, RUN_MARKER, server_epoch};
use crate::shared::{LinkShared, Mode};
use crate::state::Known;

/// Keys taken from the queue per round trip.
const BATCH: usize = 64;
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
    rx: mpsc::Receiver<Job>,
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
    pub(crate) fn new(shared: Arc<LinkShared>, rx: mpsc::Receiver<Job>, carried: Known) -> Copier {
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

    /// Runs until every sender is gone and the queue is empty; returns
    /// what it knew then, for the state file.
    pub(crate) async fn run(mut self) -> Known {
        let mut jobs = Vec::with_capacity(BATCH);
        loop {
            jobs.clear();
            if self.rx.recv_many(&mut jobs, BATCH).await == 0 {
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
                if let Err(e) = self.batch(&keys).await {
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
    }

    async fn batch(&mut self, keys: &[(String, Seen)]) -> Result<()> {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let per_node = self.read_all(&names).await?;
        for (i, (key, seen)) in keys.iter().enumerate() {
            let mut items: Vec<Option<RawItem>> =
                per_node.iter().map(|items| items[i].clone()).collect();
            let mut attempt = 0;
            loop {
                if self.key(key, &items, seen.since()).await? {
                    break;
                }
                attempt += 1;
                self.shared.metrics.retries.fetch_add(1, Ordering::Relaxed);
                if attempt >= ATTEMPTS {
                    self.shared.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                    self.shared.request_resync();
                    break;
                }
                items = self
                    .read_all(&[key.as_str()])
                    .await?
                    .into_iter()
                    .map(|mut v| v.pop().flatten())
                    .collect();
            }
            if let Some(ts) = seen.ts {
                self.shared.metrics.observe_lag(unix_now() - ts);
            }
        }
        Ok(())
    }

    /// Brings one key in line; false when a conditional write lost to a
    /// concurrent write (read again and retry). `since`: when the change
    /// was seen, for the delay of a delete.
    async fn key(
        &mut self,
        key: &str,
        items: &[Option<RawItem>],
        since: Option<f64>,
    ) -> Result<bool> {
        let slack = self.shared.config.ttl_slack_secs;
        let m = Arc::clone(&self.shared.metrics);
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
                let plan = reconcile::mesh(items, prev, slack, self.shared.config.marker_flag);
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
        let mut now: Vec<Option<u64>> = items.iter().map(|i| i.as_ref().map(|i| i.cas)).collect();
        let mut skipped_too_large = false;
        for action in actions {
            match action {
                Action::Copy {
                    node,
                    from,
                    flags,
                    expect,
                } => {
                    let Some(src) = items[from].as_ref() else {
                        continue;
                    };
                    if self.too_large.get(&(key.to_owned(), node)) == Some(&src.cas) {
                        // Refused before, and the source has not changed
                        // since: trying again would only be refused again.
                        skipped_too_large = true;
                        continue;
                    }
                    let c = self.conn(node).await?;
                    let written = match expect {
                        Expect::Any => c
                            .set(key, &src.value, flags, src.ttl)
                            .await
                            .map(WriteOutcome::Stored),
                        Expect::Absent => c.add(key, &src.value, flags, src.ttl).await,
                        Expect::Cas(cas) => c.cas(key, &src.value, flags, src.ttl, cas).await,
                    };
                    let outcome = match written {
                        Ok(outcome) => outcome,
                        Err(backend_memcached::Error::ServerTooLarge { size, .. }) => {
                            self.refused_too_large(key, node, src.cas, size);
                            skipped_too_large = true;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    match outcome {
                        WriteOutcome::Stored(cas) => {
                            m.copied.fetch_add(1, Ordering::Relaxed);
                            now[node] = Some(cas);
                        }
                        WriteOutcome::Conflict | WriteOutcome::NotFound => return Ok(false),
                    }
                }
                Action::Delete { node, expect } => {
                    let c = self.conn(node).await?;
                    let gone = match expect {
                        Expect::Cas(cas) => c.delete_if(key, cas).await? != DeleteOutcome::Conflict,
                        Expect::Any | Expect::Absent => {
                            c.delete(key).await?;
                            true
                        }
                    };
                    if !gone {
                        return Ok(false);
                    }
                    m.deleted.fetch_add(1, Ordering::Relaxed);
                    if let Some(since) = since {
                        m.observe_delete_delay(unix_now() - since);
                    }
                    now[node] = None;
                }
                Action::Touch { node, ttl } => {
                    let c = self.conn(node).await?;
                    c.touch(key, ttl).await?;
                    m.touched.fetch_add(1, Ordering::Relaxed);
                }
            }
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

//! The faults: a seeded schedule, then its execution against the fleet.
//!
//! The run is cut into slots of about ten seconds between a warm-up and a
//! cool-down; each slot holds one fault, its kind drawn from a shuffled bag
//! of every kind (so each kind comes once before any comes twice), its
//! target node, start within the slot and length drawn from the seed. A
//! fault is healed (the server answers again, the daemon is ready again)
//! before the next one starts, and the history records both times.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::fleet::Fleet;
use super::history::{Fault, History, Node, Record};
use super::rng::Rng;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// kill -9 of a memcached, restarted empty after the fault's length.
    MemcachedRestart,
    /// SIGSTOP of a memcached, SIGCONT after the fault's length.
    MemcachedPause,
    /// The proxy resets every connection to a memcached, then heals.
    LinkCut,
    /// The proxy delays every chunk to and from a memcached by 100 ms.
    Latency,
    /// kill -9 of the replicator, restarted after the fault's length.
    ReplicatorKill,
    /// SIGTERM to the replicator (it must exit cleanly), restarted after.
    ReplicatorStop,
    /// SIGTERM to a bridge (it must exit cleanly), restarted at once.
    BridgeRestart,
}

impl Kind {
    /// Every kind, in a fixed order (the bag is shuffled from it).
    pub(crate) const ALL: [Kind; 7] = [
        Kind::MemcachedRestart,
        Kind::MemcachedPause,
        Kind::LinkCut,
        Kind::Latency,
        Kind::ReplicatorKill,
        Kind::ReplicatorStop,
        Kind::BridgeRestart,
    ];

    /// The name in the history.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::MemcachedRestart => "memcached_restart",
            Kind::MemcachedPause => "memcached_pause",
            Kind::LinkCut => "link_cut",
            Kind::Latency => "latency",
            Kind::ReplicatorKill => "replicator_kill",
            Kind::ReplicatorStop => "replicator_stop",
            Kind::BridgeRestart => "bridge_restart",
        }
    }
}

/// Added latency of [`Kind::Latency`] (each way, per chunk).
pub(crate) const LATENCY: Duration = Duration::from_millis(100);
/// The quiet start of a run, before the first fault.
pub(crate) const WARM_UP_MS: f64 = 8_000.0;
/// The quiet end of a run's load, after the last fault has healed.
pub(crate) const COOL_DOWN_MS: f64 = 12_000.0;

/// One planned fault.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// Its place in the schedule.
    pub(crate) id: u64,
    /// What.
    pub(crate) kind: Kind,
    /// The node (memcached or bridge) it hits; unused for the replicator.
    pub(crate) node: Node,
    /// When to inject it, ms since the start.
    pub(crate) at_ms: f64,
    /// How long it lasts before the heal step starts.
    pub(crate) length_ms: f64,
}

/// The schedule for a load of `duration_ms`.
pub(crate) fn schedule(rng: &mut Rng, duration_ms: f64) -> Vec<Planned> {
    let window = duration_ms - WARM_UP_MS - COOL_DOWN_MS;
    // At least one slot per kind when the window allows ~9 s each.
    let slots = ((window / 10_000.0).floor() as usize).max((window / 9_000.0).floor() as usize);
    let slot_ms = if slots == 0 {
        0.0
    } else {
        window / slots as f64
    };
    let mut bag: Vec<Kind> = Vec::new();
    let mut out = Vec::new();
    for i in 0..slots {
        if bag.is_empty() {
            bag = Kind::ALL.to_vec();
            rng.shuffle(&mut bag);
        }
        let Some(kind) = bag.pop() else { break };
        let node = if rng.below(2) == 0 { 'a' } else { 'b' };
        let start = WARM_UP_MS + slot_ms * i as f64;
        out.push(Planned {
            id: i as u64 + 1,
            kind,
            node,
            at_ms: start + rng.between(0.0, 1_500.0),
            length_ms: rng.between(1_500.0, 3_000.0),
        });
    }
    out
}

/// Runs `plan` against the fleet, each fault at its time, recording each
/// once healed. Returns the errors of steps that failed (the soak fails
/// with them).
pub(crate) async fn run(
    plan: Vec<Planned>,
    fleet: Arc<Mutex<Fleet>>,
    history: History,
    http: reqwest::Client,
    injected: Arc<std::sync::atomic::AtomicU64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for fault in plan {
        let wait = fault.at_ms - history.now_ms();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
        }
        let start_ms = history.now_ms();
        injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = inject(&fault, &fleet, &http).await;
        let end_ms = history.now_ms();
        let error = result.err().map(|e| format!("{e:#}"));
        let node = match fault.kind {
            Kind::ReplicatorKill | Kind::ReplicatorStop => None,
            _ => Some(fault.node),
        };
        let target = match fault.kind {
            Kind::ReplicatorKill | Kind::ReplicatorStop => "replicator".to_owned(),
            Kind::BridgeRestart => format!("bridge-{}", fault.node),
            _ => format!("memcached-{}", fault.node),
        };
        if let Some(e) = &error {
            problems.push(format!("fault {} ({}): {e}", fault.id, fault.kind.name()));
        }
        println!(
            "soak: {:>6.1}s fault {} {} on {target}, healed after {:.1}s{}",
            start_ms / 1000.0,
            fault.id,
            fault.kind.name(),
            (end_ms - start_ms) / 1000.0,
            error
                .as_deref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
        history.append(&Record::Fault(Fault {
            id: fault.id,
            kind: fault.kind.name().to_owned(),
            target,
            node,
            start_ms,
            end_ms,
            error,
        }));
    }
    problems
}

/// One step of a memcached fault.
#[derive(Clone, Copy)]
enum Step {
    Stop,
    Start,
    Pause,
    Unpause,
    Cut,
    Heal,
    Latency(Duration),
}

async fn inject(
    fault: &Planned,
    fleet: &Arc<Mutex<Fleet>>,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let length = Duration::from_secs_f64(fault.length_ms / 1000.0);
    // The fleet is locked for each step, not across the fault's length, so
    // the resource sampler keeps sampling while a fault lasts.
    let server_step = |step: Step| async move {
        let fleet = fleet.lock().await;
        let server = fleet.memcached(fault.node);
        match step {
            Step::Stop => server.stop().await,
            Step::Start => server.start().await,
            Step::Pause => server.pause().await,
            Step::Unpause => server.unpause().await,
            Step::Cut => server.cut().await,
            Step::Heal => server.heal().await,
            Step::Latency(d) => server.set_latency(d).await,
        }
    };
    match fault.kind {
        Kind::MemcachedRestart => {
            server_step(Step::Stop).await?;
            tokio::time::sleep(length).await;
            server_step(Step::Start).await?;
        }
        Kind::MemcachedPause => {
            server_step(Step::Pause).await?;
            tokio::time::sleep(length).await;
            server_step(Step::Unpause).await?;
        }
        Kind::LinkCut => {
            server_step(Step::Cut).await?;
            tokio::time::sleep(length).await;
            server_step(Step::Heal).await?;
        }
        Kind::Latency => {
            server_step(Step::Latency(LATENCY)).await?;
            tokio::time::sleep(length).await;
            server_step(Step::Latency(Duration::ZERO)).await?;
        }
        Kind::ReplicatorKill => {
            fleet.lock().await.replicator.kill9().await?;
            tokio::time::sleep(length).await;
            fleet.lock().await.replicator.start(http).await?;
        }
        Kind::ReplicatorStop => {
            let stopped = fleet.lock().await.replicator.terminate().await;
            tokio::time::sleep(length).await;
            // Restart even when the stop was not clean, then report it.
            fleet.lock().await.replicator.start(http).await?;
            stopped?;
        }
        Kind::BridgeRestart => {
            let mut fleet = fleet.lock().await;
            let bridge = fleet.bridge_mut(fault.node);
            let stopped = bridge.terminate().await;
            bridge.start(http).await?;
            stopped?;
        }
    }
    Ok(())
}

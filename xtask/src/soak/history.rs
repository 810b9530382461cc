//! The history file (`target/soak/history.jsonl`): one JSON object per
//! line, appended while the soak runs and read back by the checker. Every
//! request with its answer, every fault with its start and end, every
//! resource sample. Times are milliseconds since the soak started.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which memcached a request went to (through its bridge), or a daemon's
/// node.
pub(crate) type Node = char;

/// One line of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Record {
    /// The run's settings, first line.
    Meta(Meta),
    /// A request and its answer (boxed: by far the largest record).
    Op(Box<Op>),
    /// A fault, written when it has ended (healed).
    Fault(Fault),
    /// A daemon's memory and descriptors at one moment.
    Sample(Sample),
}

/// The run's settings, as the checker needs them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The seed of the schedules.
    pub(crate) seed: u64,
    /// Requests started per second.
    pub(crate) rate: u32,
    /// Length of the load, ms.
    pub(crate) duration_ms: f64,
    /// The replicator's promised copy delay on a healthy fleet, ms.
    pub(crate) copy_delay_ms: f64,
    /// The promised delay after a fault heals, ms.
    pub(crate) heal_delay_ms: f64,
    /// The bound on an error answer's time, ms.
    pub(crate) error_bound_ms: f64,
    /// The Unix time of the history's zero, for the replicator's times.
    pub(crate) start_unix: f64,
}

/// What a request did, as far as the client saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Acknowledged (2xx, or a SOAP result).
    Ok,
    /// The session does not exist (404, an empty SOAP result, `false`).
    NotFound,
    /// The answer is an error (also the state of a request not yet
    /// answered).
    #[default]
    Error,
}

/// A request and its answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Op {
    /// Request id, unique in the run.
    pub(crate) id: u64,
    /// Who sent it: `json`, `soap`, `app-N`, `sweep`.
    pub(crate) client: String,
    /// What: `create`, `read`, `patch`, `increment`, `logout`,
    /// `logout_everywhere`, `app_login`, `app_counter`, `app_logout`.
    pub(crate) op: String,
    /// The node (`a`, `b`) of the bridge or app it went to.
    pub(crate) node: Node,
    /// The session it names (the new one for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<String>,
    /// For an app login that rotated an id: the id it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) old_session: Option<String>,
    /// The user (`uid`) of a create or a "log out everywhere".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    /// Fields written (create, patch), with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) wrote: BTreeMap<String, Value>,
    /// The field incremented and by how much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) counter: Option<(String, i64)>,
    /// Two PATCHes sent at once share this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pair: Option<u64>,
    /// Start and end, ms since the soak's start.
    pub(crate) start_ms: f64,
    /// End (answer or client-side failure).
    pub(crate) end_ms: f64,
    /// What happened.
    pub(crate) outcome: Outcome,
    /// HTTP status, when an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// For errors: the class (the JSON `code`, the SOAP fault code, or
    /// `transport:...` / `untyped:...` when the answer was no typed error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) class: Option<String>,
    /// For store errors: `unknown` or `not_sent`, as the bridge said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delivery: Option<String>,
    /// A read's fields (only those the checker compares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) read: Option<BTreeMap<String, Value>>,
    /// An increment's answer (the new value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<i64>,
}

/// A fault, from its injection to its heal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fault {
    /// Fault id (its place in the schedule).
    pub(crate) id: u64,
    /// `memcached_restart`, `memcached_pause`, `link_cut`, `latency`,
    /// `replicator_kill`, `replicator_stop`, `bridge_restart`.
    pub(crate) kind: String,
    /// The daemon it hit (`memcached-a`, `replicator`, `bridge-b`, ...).
    pub(crate) target: String,
    /// The node it hit, for memcached and bridge faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<Node>,
    /// Injected at.
    pub(crate) start_ms: f64,
    /// Healed at: the server answers again, the daemon is ready again.
    pub(crate) end_ms: f64,
    /// Whether the healing step failed (then the soak fails too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// A daemon's resources at one moment (from /proc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// `bridge-a`, `replicator`, `memcached-b`, ...
    pub(crate) daemon: String,
    /// Its process id at the time.
    pub(crate) pid: u32,
    /// When.
    pub(crate) at_ms: f64,
    /// Resident set, KiB.
    pub(crate) rss_kib: u64,
    /// Open descriptors.
    pub(crate) fds: u64,
    /// The replicator's last comparison end (Unix seconds), from its
    /// `/metrics`: its state file is saved then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_resync_unix: Option<f64>,
}

/// The history writer, shared by every task of the soak.
#[derive(Clone)]
pub(crate) struct History {
    start: Instant,
    /// The Unix time of `start`, for the replicator's timestamps.
    start_unix: f64,
    out: Arc<Mutex<BufWriter<std::fs::File>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl History {
    /// A new history at `path` (truncated).
    pub(crate) fn create(path: &Path) -> anyhow::Result<History> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let start_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok(History {
            start: Instant::now(),
            start_unix,
            out: Arc::new(Mutex::new(BufWriter::new(file))),
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        })
    }

    /// Milliseconds since the soak started.
    pub(crate) fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The Unix time of the history's zero.
    pub(crate) fn start_unix(&self) -> f64 {
        self.start_unix
    }

    /// A new request id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Appends a record.
    pub(crate) fn append(&self, record: &Record) {
        // A poisoned lock means another task panicked mid-write: keep
        // writing, the line boundaries are still intact.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if serde_json::to_writer(&mut *out, record).is_ok() {
            let _ = out.write_all(b"\n");
        }
    }

    /// Flushes what was appended.
    pub(crate) fn flush(&self) -> anyhow::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush().context("writing the history")
    }
}

/// Reads a history file back.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a history record", path.display(), n + 1))?;
        out.push(record);
    }
    Ok(out)
}

//! The checker: reads the history back and judges each invariant of
//! `docs/soak.md`, giving for each the count of cases checked, the cases
//! excused by a documented limit (with why), and the first
//! counterexamples by request id.
//!
//! `timeline.rs` turns the faults into the times the promises depend on;
//! `sessions.rs` gathers what happened to each session; `invariants.rs`
//! holds one function per invariant.

mod invariants;
mod sessions;
mod timeline;

use serde::Serialize;

use super::history::{Fault, Meta, Op, Record, Sample};

pub(crate) use timeline::Timeline;

/// The verdict on one invariant.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Verdict {
    /// Short name.
    pub(crate) name: &'static str,
    /// The promise, in one sentence.
    pub(crate) statement: &'static str,
    /// Cases judged.
    pub(crate) checked: u64,
    /// Cases a documented limit excuses (not failures), counted apart.
    pub(crate) excused: u64,
    /// Cases that broke the promise.
    pub(crate) failed: u64,
    /// The first counterexamples (request ids and what was seen).
    pub(crate) examples: Vec<String>,
    /// Further facts worth reporting.
    pub(crate) notes: Vec<String>,
}

impl Verdict {
    fn new(name: &'static str, statement: &'static str) -> Verdict {
        Verdict {
            name,
            statement,
            checked: 0,
            excused: 0,
            failed: 0,
            examples: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether it held: no failure, and something was checked.
    pub(crate) fn passed(&self) -> bool {
        self.failed == 0 && self.checked > 0
    }

    fn fail(&mut self, example: String) {
        self.failed += 1;
        if self.examples.len() < 5 {
            self.examples.push(example);
        }
    }
}

/// The history split by record type.
pub(crate) struct Parsed {
    /// The run's settings.
    pub(crate) meta: Meta,
    /// Requests, by id.
    pub(crate) ops: Vec<Op>,
    /// Faults, by start.
    pub(crate) faults: Vec<Fault>,
    /// Resource samples.
    pub(crate) samples: Vec<Sample>,
}

/// Splits `records`; the first must be the meta line.
pub(crate) fn parse(records: Vec<Record>) -> anyhow::Result<Parsed> {
    let mut meta = None;
    let mut ops = Vec::new();
    let mut faults = Vec::new();
    let mut samples = Vec::new();
    for r in records {
        match r {
            Record::Meta(m) => meta = Some(m),
            Record::Op(o) => ops.push(*o),
            Record::Fault(f) => faults.push(f),
            Record::Sample(s) => samples.push(s),
        }
    }
    let meta = meta.ok_or_else(|| anyhow::anyhow!("the history has no meta line"))?;
    ops.sort_by_key(|o| o.id);
    faults.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    Ok(Parsed {
        meta,
        ops,
        faults,
        samples,
    })
}

/// Judges every invariant. `unix_to_ms` maps the replicator's Unix times
/// onto the history's clock; `stop_problems` are daemons that did not stop
/// cleanly at the end.
pub(crate) fn check(
    parsed: &Parsed,
    unix_to_ms: impl Fn(f64) -> f64,
    stop_problems: &[String],
) -> Vec<Verdict> {
    let meta = &parsed.meta;
    let timeline = Timeline::new(
        &parsed.faults,
        &parsed.samples,
        unix_to_ms,
        meta.copy_delay_ms,
        meta.heal_delay_ms,
    );
    let sessions = sessions::gather(&parsed.ops);
    vec![
        invariants::writes(&parsed.ops, &sessions, &timeline),
        invariants::logouts(&parsed.ops, &sessions, &timeline),
        invariants::counters(&parsed.ops, &sessions, &timeline),
        invariants::pairs(&parsed.ops, &sessions, &timeline),
        invariants::errors(&parsed.ops, &timeline, meta.error_bound_ms),
        invariants::resources(&parsed.samples, meta.duration_ms),
        invariants::faults(&parsed.faults, stop_problems),
    ]
}

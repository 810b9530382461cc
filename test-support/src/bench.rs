//! The load loop and result lines shared by the load-generator benchmarks
//! (`harness = false` bench targets) that `cargo xtask bench` runs.
//!
//! A benchmark reads its settings with [`BenchEnv::from_env`], drives each
//! scenario with [`drive`] (N concurrent tasks, bounded by time and by
//! operations per task, every operation's latency kept), and writes one
//! JSON line per measurement with [`Output::record`]. `cargo xtask bench`
//! turns every such line into a row of the report; the line format is
//! documented in `xtask/src/bench.rs`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use test_support::bench::{BenchEnv, Row, drive};
//!
//! let env = BenchEnv::from_env()?;
//! let mut out = env.output()?;
//! let sample = drive(16, env.time, u64::MAX, |task, i| async move {
//!     let _ = (task, i); // one operation
//!     Ok::<(), std::io::Error>(())
//! })
//! .await;
//! out.record(Row::new("memory/noop/16").baseline("memory/raw_pair/16"), sample)?;
//! # Ok(()) }
//! ```

use std::fmt::Display;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Error;

/// Where the result lines go (set by `cargo xtask bench`).
pub const OUT_ENV: &str = "MEMORYCACHED_BENCH_OUT";
/// Set (to anything) for a smoke run: short warm-up and measurement.
pub const QUICK_ENV: &str = "MEMORYCACHED_BENCH_QUICK";
/// One memcached `host:port` for single-server benchmarks.
pub const MEMCACHED_ENV: &str = "MEMORYCACHED_BENCH_MEMCACHED";
/// Three memcached `host:port`s, comma-separated (the first is [`MEMCACHED_ENV`]'s).
pub const MEMCACHED_CLUSTER_ENV: &str = "MEMORYCACHED_BENCH_MEMCACHED_CLUSTER";
/// A memcached `host:port` of its own for the local read-first cache.
pub const MEMCACHED_LOCAL_ENV: &str = "MEMORYCACHED_BENCH_MEMCACHED_LOCAL";
/// One Redis `host:port`.
pub const REDIS_ENV: &str = "MEMORYCACHED_BENCH_REDIS";
/// One Valkey 8.1+ `host:port` (a server with `SET ... IFEQ`).
pub const VALKEY_ENV: &str = "MEMORYCACHED_BENCH_VALKEY";

/// A benchmark's settings, from the environment `cargo xtask bench` sets.
#[derive(Debug, Clone)]
pub struct BenchEnv {
    /// The result file ([`OUT_ENV`]).
    pub out: PathBuf,
    /// A smoke run ([`QUICK_ENV`]).
    pub quick: bool,
    /// Warm-up before each measurement (not recorded).
    pub warm: Duration,
    /// Length of each measurement.
    pub time: Duration,
}

impl BenchEnv {
    /// Reads [`OUT_ENV`] and [`QUICK_ENV`]; a missing [`OUT_ENV`] is an
    /// error saying to run `cargo xtask bench`.
    pub fn from_env() -> Result<BenchEnv, Error> {
        let out = std::env::var_os(OUT_ENV).ok_or_else(|| not_set(OUT_ENV))?;
        let quick = std::env::var_os(QUICK_ENV).is_some();
        let (warm, time) = if quick {
            (Duration::from_millis(50), Duration::from_millis(150))
        } else {
            (Duration::from_millis(500), Duration::from_millis(1500))
        };
        Ok(BenchEnv {
            out: out.into(),
            quick,
            warm,
            time,
        })
    }

    /// The comma-separated `host:port` list in `var` (one of the
    /// `MEMCACHED_*ENV` constants); missing or empty is an error.
    pub fn servers(var: &str) -> Result<Vec<String>, Error> {
        let value = std::env::var(var).map_err(|_| not_set(var))?;
        let servers: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if servers.is_empty() {
            return Err(not_set(var));
        }
        Ok(servers)
    }

    /// Creates (truncates) the result file.
    pub fn output(&self) -> Result<Output, Error> {
        let file = File::create(&self.out)
            .map_err(Error::io(format!("creating {}", self.out.display())))?;
        Ok(Output { file })
    }
}

fn not_set(var: &str) -> Error {
    Error::SharedServers {
        var: var.to_owned(),
        problem: "is not set: run `cargo xtask bench`, which starts the servers".to_owned(),
    }
}

/// One measurement's outcome, from [`drive`].
#[derive(Debug, Default)]
pub struct Sample {
    /// Operations made (failed ones included).
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Wall time of the whole measurement.
    pub elapsed: Duration,
    /// Every operation's latency, unsorted.
    pub latencies: Vec<Duration>,
}

impl Sample {
    /// Operations per second of wall time.
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds one slice of a measurement taken in turns with others (so that
    /// a neighbour's load on a shared machine falls on every side alike):
    /// operations, errors, time and latencies add up.
    pub fn absorb(&mut self, slice: Sample) {
        self.ops += slice.ops;
        self.errors += slice.errors;
        if self.first_error.is_none() {
            self.first_error = slice.first_error;
        }
        self.elapsed += slice.elapsed;
        self.latencies.extend(slice.latencies);
    }

    /// Counts a failed post-condition (a lost write...) as an error.
    pub fn fail_check(&mut self, problem: String) {
        self.errors += 1;
        self.first_error = Some(problem);
    }
}

/// The variable that narrows a benchmark to some of its rows, for
/// profiling one row by hand: a comma-separated list of substrings.
pub const ROWS_ENV: &str = "MEMORYCACHED_BENCH_ROWS";

/// Whether row `name` is measured: every row when [`ROWS_ENV`] is unset,
/// else those whose name contains one of its substrings (their baselines
/// may then be missing from the output).
pub fn wanted(name: &str) -> bool {
    match std::env::var(ROWS_ENV) {
        Ok(rows) => rows.split(',').any(|r| name.contains(r.trim())),
        Err(_) => true,
    }
}

/// Runs `op(task, i)` on `tasks` concurrent tokio tasks until `time` is over
/// or each task made `max_ops_per_task` calls; records each call's latency
/// and counts failures (the first one's message is kept).
pub async fn drive<F, Fut, E>(tasks: usize, time: Duration, max_ops_per_task: u64, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    let started = Instant::now();
    let deadline = started + time;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first) = (0u64, None);
            for i in 0..max_ops_per_task {
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                if let Err(e) = op(t, i).await {
                    errors += 1;
                    // `#` shows an anyhow error's whole chain.
                    first.get_or_insert_with(|| format!("{e:#}"));
                }
                lat.push(t0.elapsed());
            }
            (lat, errors, first)
        }));
    }
    let mut sample = Sample::default();
    for h in handles {
        match h.await {
            Ok((lat, errors, first)) => {
                sample.ops += lat.len() as u64;
                sample.errors += errors;
                if sample.first_error.is_none() {
                    sample.first_error = first;
                }
                sample.latencies.extend(lat);
            }
            Err(e) => {
                sample.errors += 1;
                sample.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    sample.elapsed = started.elapsed();
    sample
}

/// The `q` quantile of sorted latencies, in microseconds (0 when empty).
pub fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// A result line's name and optional comparison fields.
#[derive(Debug, Clone)]
pub struct Row {
    name: String,
    baseline: Option<String>,
    target: Option<f64>,
}

impl Row {
    /// A row named `group/series/tasks` (the shape the report plots) or any
    /// other unique name.
    pub fn new(name: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            baseline: None,
            target: None,
        }
    }

    /// The row this one is divided by (ops/s over ops/s, same run).
    pub fn baseline(mut self, name: impl Into<String>) -> Row {
        self.baseline = Some(name.into());
        self
    }

    /// The ratio to the baseline the project aims for, shown beside it.
    pub fn target(mut self, ratio: f64) -> Row {
        self.target = Some(ratio);
        self
    }
}

/// The result file: one JSON object per line.
#[derive(Debug)]
pub struct Output {
    file: File,
}

impl Output {
    /// Writes one measurement (and echoes it, as progress).
    pub fn record(&mut self, row: Row, mut sample: Sample) -> Result<(), Error> {
        sample.latencies.sort();
        let line = json!({
            "name": row.name,
            "ops": sample.ops,
            "secs": sample.elapsed.as_secs_f64(),
            "ops_per_s": sample.ops_per_s(),
            "p50_us": quantile_us(&sample.latencies, 0.50),
            "p99_us": quantile_us(&sample.latencies, 0.99),
            "errors": sample.errors,
            "first_error": sample.first_error,
            "baseline": row.baseline,
            "target": row.target,
        });
        self.line(&line)
    }

    /// Writes any JSON object as a line (e.g. `{"name", "peak_rss_kib"}`).
    pub fn line(&mut self, line: &Value) -> Result<(), Error> {
        println!("{line}");
        writeln!(self.file, "{line}").map_err(Error::io("writing a bench result"))
    }

    /// Writes this process's peak resident memory as
    /// `{"name": name, "peak_rss_kib": ...}`.
    pub fn record_own_peak_rss(&mut self, name: &str) -> Result<(), Error> {
        let kib = peak_rss_kib(std::process::id()).ok_or_else(|| Error::Io {
            context: "reading VmHWM from /proc/self/status".to_owned(),
            source: std::io::Error::other("no VmHWM line"),
        })?;
        self.line(&json!({ "name": name, "peak_rss_kib": kib }))
    }
}

/// Items one scenario makes for a later one to use up (the ids `create`
/// made, for `delete`), shared by every task.
#[derive(Debug)]
pub struct Pool<T>(std::sync::Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> Pool<T> {
    fn items(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one item.
    pub fn push(&self, item: T) {
        self.items().push(item);
    }

    /// Takes one item, if any is left.
    pub fn pop(&self) -> Option<T> {
        self.items().pop()
    }

    /// An equal share per task of what is there: `max_ops_per_task` for
    /// [`drive`] when every operation takes one item.
    pub fn per_task(&self, tasks: usize) -> u64 {
        (self.items().len() / tasks.max(1)) as u64
    }
}

/// Peak resident memory (`VmHWM`) of process `pid`, in KiB; `None` when
/// it cannot be read (gone, or not Linux).
pub fn peak_rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile_us(&sorted, 0.5), 51.0);
        assert_eq!(quantile_us(&sorted, 0.99), 99.0);
        assert_eq!(quantile_us(&[], 0.5), 0.0);
    }

    #[tokio::test]
    async fn drive_counts_operations_and_failures() {
        let sample = drive(4, Duration::from_secs(5), 10, |task, i| async move {
            if task == 0 && i == 3 {
                return Err("boom");
            }
            Ok(())
        })
        .await;
        assert_eq!(sample.ops, 40);
        assert_eq!(sample.errors, 1);
        assert_eq!(sample.first_error.as_deref(), Some("boom"));
        assert_eq!(sample.latencies.len(), 40);
    }

    #[test]
    fn own_peak_rss_is_readable() {
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0.0));
    }
}

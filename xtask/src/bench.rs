//! `cargo xtask bench`: runs the criterion benchmarks against a real memcached
//! started for the run, then prints each measurement as a ratio to the
//! baseline measured in the same run (absolute times on shared, noisy
//! machines are not comparable across runs; ratios are).
//!
//! The server is a local process from test-support (readiness polled, killed
//! on drop, `-m 64` as `benches/sessions.rs` expects), reached directly
//! rather than through test-support's fault proxy.
//!
//! Three sections, each run `--runs` times, tables printed at the end:
//! the criterion session benchmarks (here), the SOAP bridge and the
//! contention / principal-index load tests ([`sections`]).

mod sections;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use test_support::{MemcachedOptions, Provider, ProviderKind};

use crate::project_root;

/// What `--quick` changes: criterion's own options for a shorter run.
const QUICK_ARGS: &[&str] = &["--warm-up-time", "1", "--measurement-time", "2"];

/// The session benchmarks and their baseline, per concurrency level.
const BASELINE: &str = "raw_pair";
const SUBJECTS: &[&str] = &["session_update_only", "session_full"];
const CONCURRENCY: &[&str] = &["1", "64"];
/// The target of the memcached backend issue: session ops at >= 0.9x of raw pairs.
const TARGET: f64 = 0.9;

/// The server's memory: `benches/sessions.rs` prefills past it, so every
/// benchmark runs against the same steady (evicting) state.
const MEMORY_MB: u32 = 64;

/// A local memcached process started through test-support (the process
/// provider: no container network between client and server), with its
/// direct address: the fault proxy in front of it would be measured too.
fn start_memcached(runtime: &tokio::runtime::Runtime) -> Result<(test_support::Server, String)> {
    runtime.block_on(async {
        let provider = Provider::new(ProviderKind::Process).await?;
        let server = provider
            .memcached_with(MemcachedOptions {
                memory_mb: MEMORY_MB,
                // As many connections as the 64-task benchmarks open, and more.
                extra_args: vec!["-c".to_owned(), "1024".to_owned()],
                ..MemcachedOptions::default()
            })
            .await?;
        let addr = server
            .direct_addr()
            .context("the memcached just started has no address")?;
        Ok((server, addr.to_string()))
    })
}

/// Runs the benchmarks `runs` times and prints each run's ratios and their
/// median. One run's ratio moves by tens of percent on a shared machine
/// (neighbours come and go between the baseline and the subject); the
/// median of a few runs is what we report.
pub fn run(quick: bool, runs: usize) -> Result<()> {
    let root = project_root();
    let runs = runs.max(1);
    // Kept for the whole run: the server lives as long as `_server`, and
    // its `Drop` (kill and reap) needs the runtime's background threads.
    let runtime = crate::runtime()?;
    let (_server, addr) = start_memcached(&runtime)?;
    // ratios[(subject, tasks)] = one ratio per run
    let mut ratios: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut loads = sections::Results::default();
    for run in 1..=runs {
        println!(
            "==> [{run}/{}] cargo bench -p backend-memcached (memcached on {addr})",
            runs + 1
        );
        let mut cmd = Command::new(crate::cargo());
        cmd.current_dir(&root)
            .args([
                "bench",
                "-p",
                "backend-memcached",
                "--bench",
                "sessions",
                "--",
            ])
            .env("MEMORYCACHED_BENCH_MEMCACHED", &addr);
        if quick {
            cmd.args(QUICK_ARGS);
        }
        let status = cmd.status().context("running cargo bench")?;
        if !status.success() {
            bail!("cargo bench failed ({status})");
        }
        let criterion = root.join("target/criterion/memcached");
        for tasks in CONCURRENCY {
            let raw = mean_ns(&criterion, BASELINE, tasks)?;
            for subject in SUBJECTS {
                // Throughput ratio: session ops per raw pair's time.
                let ratio = raw / mean_ns(&criterion, subject, tasks)?;
                ratios.entry((subject, tasks)).or_default().push(ratio);
            }
        }
        loads.run_once(&root, &addr, quick)?;
    }
    println!(
        "==> [{}/{}] ratios to the raw client's set+get pairs, same server, same run",
        runs + 1,
        runs + 1
    );
    println!(
        "{:<22} {:>6} {:>8}   per run",
        "benchmark", "tasks", "median"
    );
    let mut below = Vec::new();
    for ((subject, tasks), mut per_run) in ratios {
        let shown: Vec<String> = per_run.iter().map(|r| format!("{r:.2}")).collect();
        per_run.sort_by(f64::total_cmp);
        let median = per_run[per_run.len() / 2];
        println!(
            "{subject:<22} {tasks:>6} {median:>8.2}   {}",
            shown.join(" ")
        );
        if subject == "session_update_only" && median < TARGET {
            below.push(format!("{subject}/{tasks}: {median:.2}"));
        }
    }
    println!(
        "(ratio = raw pair time / session op time; session_update_only makes the same two round trips as a raw pair, session_full three)"
    );
    if below.is_empty() {
        println!(
            "target {TARGET}x met by session_update_only at every concurrency (median of {runs})"
        );
    } else {
        println!(
            "below the {TARGET}x target (median of {runs}): {}",
            below.join(", ")
        );
    }
    loads.print_bridge(runs)?;
    loads.print_contention(runs)?;
    loads.check()
}

/// criterion's mean estimate, in nanoseconds per iteration (= per operation).
fn mean_ns(dir: &Path, bench: &str, tasks: &str) -> Result<f64> {
    let path = dir.join(bench).join(tasks).join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (did the benchmark run?)", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json.pointer("/mean/point_estimate")
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("{} has no mean estimate", path.display()))
}

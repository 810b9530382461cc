//! `cargo xtask soak`: the whole fleet under a seeded load while a seeded
//! schedule of faults hits it, then a checker that reads the history back
//! and judges each promise the docs make (`docs/soak.md` states each one
//! precisely). Everything goes to `target/soak/`: `history.jsonl`,
//! `report.md`, `report.json`, `soak.svg`, and `logs/` (one file per
//! daemon). Exits non-zero if any invariant fails.
//!
//! Modules, each importing only those listed after it: `checker/` (the
//! invariants, over `history`), `report` and `plot` (the outputs),
//! `load` (the requests, through `clients`), `faults` and `resources`
//! (over `fleet`), `fleet` (the processes), `clients`, `history`, `rng`.

mod checker;
mod clients;
mod faults;
mod fleet;
mod history;
mod load;
mod plot;
mod report;
mod resources;
mod rng;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

use history::{History, Meta, Record};

/// The replicator's promised copy delay on a healthy fleet, with margin:
/// its docs measure p99 under 50 ms for a copy or a delete over the
/// `watch` feed; the soak allows 1 s on a loaded two-core machine.
const COPY_DELAY_MS: f64 = 1_000.0;
/// The promised delay after a fault heals: a node back is seen within
/// `stats_poll` (0.5 s), a feed reconnects within its backoff (at most
/// 5 s), then one full comparison (well under a second for the soak's few
/// thousand keys).
const HEAL_DELAY_MS: f64 = 10_000.0;
/// An error answer's bound: the store timeout (`timeout_ms` and
/// `connect_timeout_ms`, 500 ms each) for each of the up to four store
/// calls of one operation (a login writes the session, its reverse key
/// and its index entry), plus 1 s of margin.
const ERROR_BOUND_MS: f64 = 4.0 * fleet::STORE_TIMEOUT_MS as f64 + 1_000.0;

/// Flags of `cargo xtask soak`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long the load runs (`90s`, `10m`, `1h`); faults stop
    /// `12s` before its end, then every session is read on both nodes.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the load's and the faults' schedules: the same seed gives
    /// the same requests at the same times and the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests started per second (open loop: each at its time, whatever
    /// the answers take).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rate: u32,
    /// Only judge `target/soak/history.jsonl` again (no fleet, no load),
    /// e.g. after changing the checker.
    #[arg(long)]
    check_only: bool,
    /// Run the release binaries already in `target/release` instead of
    /// building them first (right after `cargo xtask dist`, or while
    /// another build holds cargo's lock); a missing one is an error.
    #[arg(long, conflicts_with = "check_only")]
    no_build: bool,
}

/// The release binaries as they are in `target/release`.
fn built_binaries() -> anyhow::Result<crate::release::Binaries> {
    let dir = crate::project_root().join("target/release");
    let bins = crate::release::Binaries {
        soap_bridge: dir.join("soap-bridge"),
        replicator: dir.join("replicator"),
        sessionctl: dir.join("sessionctl"),
        example_app: dir.join("examples/app"),
    };
    for path in [&bins.soap_bridge, &bins.replicator, &bins.example_app] {
        anyhow::ensure!(
            path.is_file(),
            "--no-build: {} is missing (run without --no-build)",
            path.display()
        );
    }
    Ok(bins)
}

/// `90s`, `10m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m or h (90s, 10m)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    if secs < 30 {
        return Err(format!(
            "{text:?}: at least 30s (a warm-up of {}s and a cool-down of {}s come first)",
            faults::WARM_UP_MS / 1000.0,
            faults::COOL_DOWN_MS / 1000.0
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Runs the soak.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = crate::project_root().join("target/soak");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let history_path = dir.join("history.jsonl");
    let stop_problems = if args.check_only {
        Vec::new()
    } else {
        let bins = if args.no_build {
            built_binaries()?
        } else {
            crate::release::build()?
        };
        let _ = std::fs::remove_dir_all(dir.join("logs"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        runtime.block_on(soak(&args, &bins, &dir))?
    };
    let records = history::read(&history_path)?;
    let parsed = checker::parse(records)?;
    let start_unix = parsed.meta.start_unix;
    let verdicts = checker::check(&parsed, |unix| (unix - start_unix) * 1000.0, &stop_problems);
    report::write(&dir, &parsed, &verdicts)?;
    println!(
        "soak: invariants (details in {}):",
        dir.join("report.md").display()
    );
    for v in &verdicts {
        println!(
            "  {:<5} {} (checked {}, excused {}, failed {})",
            if v.passed() { "pass" } else { "FAIL" },
            v.name,
            v.checked,
            v.excused,
            v.failed
        );
        for e in v.examples.iter().take(3) {
            println!("        {e}");
        }
    }
    Ok(if verdicts.iter().all(checker::Verdict::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts the fleet, runs the load and the faults, sweeps, stops the
/// fleet; returns the daemons that did not stop cleanly.
async fn soak(
    args: &Args,
    bins: &crate::release::Binaries,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let http = clients::http()?;
    println!(
        "soak: starting the fleet (logs in {})",
        dir.join("logs").display()
    );
    let fleet = fleet::Fleet::start(bins, dir, &http).await?;
    let endpoints = fleet.endpoints.clone();
    let fleet = Arc::new(tokio::sync::Mutex::new(fleet));
    let history = History::create(&dir.join("history.jsonl"))?;
    let duration_ms = args.duration.as_secs_f64() * 1000.0;
    history.append(&Record::Meta(Meta {
        seed: args.seed,
        rate: args.rate,
        duration_ms,
        copy_delay_ms: COPY_DELAY_MS,
        heal_delay_ms: HEAL_DELAY_MS,
        error_bound_ms: ERROR_BOUND_MS,
        start_unix: history.start_unix(),
    }));
    let mut rng = rng::Rng::new(args.seed);
    let mut fault_rng = rng.fork(1);
    let mut load_rng = rng.fork(2);
    let plan = faults::schedule(&mut fault_rng, duration_ms);
    println!(
        "soak: seed {}, {} requests/s for {:.0} s, {} faults planned",
        args.seed,
        args.rate,
        duration_ms / 1000.0,
        plan.len()
    );
    let injected = Arc::new(AtomicU64::new(0));
    let fault_task = tokio::spawn(faults::run(
        plan,
        fleet.clone(),
        history.clone(),
        http.clone(),
        injected.clone(),
    ));
    let sampler = tokio::spawn(resources::sample(
        fleet.clone(),
        history.clone(),
        http.clone(),
        endpoints.replicator_metrics.clone(),
        duration_ms,
    ));
    let load = load::Load::new(endpoints, history.clone())?;
    let progress = load.progress();
    let printer = {
        let history = history.clone();
        let injected = injected.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let (done, errors) = progress.counts();
                println!(
                    "soak: {:>6.1}s {done} requests answered, {errors} errors, {} faults",
                    history.now_ms() / 1000.0,
                    injected.load(Ordering::Relaxed)
                );
            }
        })
    };
    load.run(&mut load_rng, args.rate, duration_ms).await;
    let fault_problems = fault_task.await.context("the fault task")?;
    let _ = sampler.await;
    // The sweep starts once every promise is due: the copy delay after the
    // last request, the heal delay after the last fault.
    history.flush()?;
    let last_heal = {
        history::read(&dir.join("history.jsonl"))
            .ok()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| match r {
                Record::Fault(f) => Some(f.end_ms),
                _ => None,
            })
            .reduce(f64::max)
            .unwrap_or(0.0)
    };
    let sweep_at = (last_heal + HEAL_DELAY_MS).max(history.now_ms() + COPY_DELAY_MS);
    let wait = sweep_at - history.now_ms();
    if wait > 0.0 {
        println!(
            "soak: waiting {:.1} s for the promised delays, then reading every session on both nodes",
            wait / 1000.0
        );
        tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
    }
    load.sweep().await;
    printer.abort();
    // Faults that failed are in their history records already.
    let _ = fault_problems;
    let problems = fleet.lock().await.stop().await;
    history.flush()?;
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("120"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}

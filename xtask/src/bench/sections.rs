//! The two load-generator sections of `cargo xtask bench`: the SOAP bridge
//! (`soap-bridge/benches/bridge.rs`) and contention / principal index
//! (`backend-memcached/benches/contention.rs`). Each bench writes one JSON
//! object per measurement; here they become ratios to the baseline measured
//! in the same run, and the median over runs is printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The original SOAP::Lite daemon's best `getSession` rate, as reported for
/// it (a stated constant: it is not measured by this run).
const ORIGINAL_BEST_GET_PER_S: f64 = 840.0;

/// One measurement of one run.
#[derive(Debug, Clone, Copy)]
struct Measured {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Every run's measurements, by name (`memory/soap_get/16`, `contended_save`...).
#[derive(Default)]
pub struct Results {
    runs: BTreeMap<String, Vec<Measured>>,
    /// Measurements that reported errors or failed checks.
    problems: Vec<String>,
    /// Peak resident memory of the bridge benchmark's process, per run (KiB).
    bridge_rss_kib: Vec<f64>,
}

/// A section's bench: crate, bench target, output file stem.
const BRIDGE: (&str, &str) = ("soap-bridge", "bridge");
const CONTENTION: (&str, &str) = ("backend-memcached", "contention");

impl Results {
    /// Runs both sections once against memcached at `addr`.
    pub fn run_once(&mut self, root: &Path, addr: &str, quick: bool) -> Result<()> {
        for (krate, bench) in [BRIDGE, CONTENTION] {
            self.run_bench(root, krate, bench, addr, quick)?;
        }
        Ok(())
    }

    fn run_bench(
        &mut self,
        root: &Path,
        krate: &str,
        bench: &str,
        addr: &str,
        quick: bool,
    ) -> Result<()> {
        let dir = root.join("target/bench-results");
        std::fs::create_dir_all(&dir)?;
        let out = dir.join(format!("{bench}.jsonl"));
        // A stale file from an earlier run must not pass for this one.
        let _ = std::fs::remove_file(&out);
        println!("==> cargo bench -p {krate} --bench {bench} (memcached on {addr})");
        let mut cmd = Command::new(crate::cargo());
        cmd.current_dir(root)
            .args(["bench", "-p", krate, "--bench", bench])
            .env("MEMORYCACHED_BENCH_MEMCACHED", addr)
            .env("MEMORYCACHED_BENCH_OUT", &out);
        if quick {
            cmd.env("MEMORYCACHED_BENCH_QUICK", "1");
        }
        let status = cmd.status().context("running cargo bench")?;
        if !status.success() {
            bail!("cargo bench -p {krate} --bench {bench} failed ({status})");
        }
        let text = std::fs::read_to_string(&out)
            .with_context(|| format!("reading {} (did the benchmark run?)", out.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", out.display()))?;
            let num = |k: &str| {
                v.get(k)
                    .and_then(serde_json::Value::as_f64)
                    .with_context(|| format!("{}: no {k} in {line}", out.display()))
            };
            if let Some(kib) = v.get("peak_rss_kib").and_then(serde_json::Value::as_f64) {
                self.bridge_rss_kib.push(kib);
                continue;
            }
            let name = v
                .get("name")
                .and_then(serde_json::Value::as_str)
                .with_context(|| format!("{}: no name in {line}", out.display()))?
                .to_owned();
            if num("errors")? > 0.0 || num("ops")? == 0.0 {
                let first = v.get("first_error").and_then(serde_json::Value::as_str);
                self.problems.push(format!(
                    "{name}: {} errors of {} ops (first: {})",
                    num("errors")?,
                    num("ops")?,
                    first.unwrap_or("none")
                ));
            }
            self.runs.entry(name).or_default().push(Measured {
                ops_per_s: num("ops_per_s")?,
                p50_us: num("p50_us")?,
                p99_us: num("p99_us")?,
            });
        }
        Ok(())
    }

    /// Per-run values of `f(subject, baseline)`, paired by run.
    fn paired(
        &self,
        subject: &str,
        baseline: &str,
        f: impl Fn(&Measured, &Measured) -> f64,
    ) -> Result<Vec<f64>> {
        let (Some(s), Some(b)) = (self.runs.get(subject), self.runs.get(baseline)) else {
            bail!("no results for {subject} or {baseline} (did the benchmark run?)");
        };
        Ok(s.iter().zip(b).map(|(s, b)| f(s, b)).collect())
    }

    /// Prints the SOAP bridge table.
    pub fn print_bridge(&self, runs: usize) -> Result<()> {
        println!();
        println!(
            "SOAP bridge (in-process, same tokio runtime as the load generator), requests/s as ratios to the raw Store op on the same store, median of {runs}"
        );
        println!(
            "{:<10} {:<11} {:>5} {:>11} {:>10} {:>12}   per run (ratio)",
            "store", "operation", "conns", "soap/raw", "soap req/s", "x original"
        );
        for store in ["memory", "memcached"] {
            for (op, raw, soap) in [
                ("getSession", "raw_get", "soap_get"),
                ("setSession", "raw_set", "soap_set"),
            ] {
                for conns in [1, 16] {
                    let subject = format!("{store}/{soap}/{conns}");
                    let ratios =
                        self.paired(&subject, &format!("{store}/{raw}/{conns}"), |s, b| {
                            s.ops_per_s / b.ops_per_s
                        })?;
                    let rates = self.paired(&subject, &subject, |s, _| s.ops_per_s)?;
                    let rate = median(&rates);
                    let original = if op == "getSession" {
                        format!("{:.1}x", rate / ORIGINAL_BEST_GET_PER_S)
                    } else {
                        "-".to_owned()
                    };
                    println!(
                        "{store:<10} {op:<11} {conns:>5} {:>11.2} {rate:>10.0} {original:>12}   {}",
                        median(&ratios),
                        shown(&ratios)
                    );
                }
            }
        }
        println!(
            "(soap/raw = bridge requests/s / raw Store::get|set ops/s, same concurrency; soap req/s is this machine's absolute rate and drifts between runs;"
        );
        println!(
            " \"x original\" = getSession req/s / {ORIGINAL_BEST_GET_PER_S}, the original SOAP::Lite daemon's best as reported for it: a stated constant, not measured in this run)"
        );
        if !self.bridge_rss_kib.is_empty() {
            println!(
                "peak RSS of the bridge benchmark's process (bridge + load generator, an upper bound of the bridge's own): {:.1} MiB (median of {})",
                median(&self.bridge_rss_kib) / 1024.0,
                self.bridge_rss_kib.len()
            );
        }
        Ok(())
    }

    /// Prints the contention and principal-index table.
    pub fn print_contention(&self, runs: usize) -> Result<()> {
        println!();
        println!(
            "Contention and principal index, 64 tasks, one memcached, one Sessions; ratios subject/baseline, median of {runs}"
        );
        println!(
            "{:<16} {:<17} {:>8} {:>8} {:>8} {:>10}   per run (ops/s ratio)",
            "subject", "baseline", "ops/s", "p50", "p99", "subj ops/s"
        );
        for (subject, baseline) in [
            ("contended_save", "uncontended_save"),
            ("update_counter", "uncontended_save"),
            ("login_indexed", "login_plain"),
            ("save_indexed", "save_plain"),
        ] {
            let ops = self.paired(subject, baseline, |s, b| s.ops_per_s / b.ops_per_s)?;
            let p50 = self.paired(subject, baseline, |s, b| s.p50_us / b.p50_us.max(1e-3))?;
            let p99 = self.paired(subject, baseline, |s, b| s.p99_us / b.p99_us.max(1e-3))?;
            let rate = self.paired(subject, subject, |s, _| s.ops_per_s)?;
            println!(
                "{subject:<16} {baseline:<17} {:>8.2} {:>8.2} {:>8.2} {:>10.0}   {}",
                median(&ops),
                median(&p50),
                median(&p99),
                median(&rate),
                shown(&ops)
            );
        }
        println!(
            "(ops/s ratio < 1 = slower than the baseline; p50/p99 ratios > 1 = slower; contended = 64 tasks each setting its own field of ONE session, load+save;"
        );
        println!(
            " uncontended = one session per task; update_counter = Sessions::update of one counter; indexed = principal_index set, plain = principal only)"
        );
        Ok(())
    }

    /// Fails when a measurement reported errors or a failed check.
    pub fn check(&self) -> Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        bail!(
            "benchmark operations failed:\n  {}",
            self.problems.join("\n  ")
        )
    }
}

/// The median (upper median for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn shown(values: &[f64]) -> String {
    values
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

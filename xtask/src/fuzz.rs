//! `cargo xtask fuzz [--time 60s] [TARGET...]`: every cargo-fuzz target of
//! `fuzz/` (or the named ones) for a fixed time each.
//!
//! The targets are built once (`cargo +nightly fuzz build`, release with
//! debug assertions, no sanitizer: the workspace forbids `unsafe`, and
//! each target asserts its own memory limit through a counting allocator),
//! into `target/fuzz/`; then each target's binary runs directly, so the
//! build is reused. A target reads its committed seeds from
//! `fuzz/seeds/<target>/` and grows a working corpus in
//! `target/fuzz/corpus/<target>/` (kept between runs, never committed).
//! libFuzzer's own limits bound every run: `-timeout` per input (a hang is
//! a finding), `-rss_limit_mb` for the process.
//!
//! Progress: libFuzzer's pulse lines as they come, then one line per
//! target with its executions. The full output of each target is kept in
//! `target/fuzz/logs/<target>.log`; a crash or timeout leaves its input in
//! `target/fuzz/artifacts/<target>/` and makes the command exit non-zero.
//! cargo-fuzz must be installed (`cargo install cargo-fuzz`) and the
//! nightly toolchain present; `.ci/run` installs the former when missing.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::project_root;

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long each target runs: `30s`, `5m`, `1h` or plain seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time: Duration,
    /// Seconds one input may take before it counts as a hang (a finding).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Memory limit of a target's process, in MiB (over it is a finding).
    #[arg(long, default_value_t = 2048)]
    rss_limit_mb: u64,
    /// Targets to run (default: every target of fuzz/Cargo.toml).
    targets: Vec<String>,
}

/// What one target's run came to.
struct Outcome {
    target: String,
    executions: Option<u64>,
    corpus: Option<u64>,
    elapsed: Duration,
    failure: Option<String>,
}

/// Builds the targets once, runs each for `--time`, prints a summary.
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let root = project_root();
    let fuzz_dir = root.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let chosen: Vec<String> = if args.targets.is_empty() {
        all
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}; the targets are: {}", all.join(", "));
            }
        }
        args.targets.clone()
    };
    let target_dir = root.join("target").join("fuzz");
    let started = Instant::now();
    println!(
        "==> building {} fuzz target(s) (cargo +nightly fuzz build, into {})",
        chosen.len(),
        target_dir.display()
    );
    build(&root, &target_dir)?;
    println!("    built in {:.1?}", started.elapsed());
    let bin_dir = target_dir.join(host_triple()?).join("release");
    let mut outcomes = Vec::new();
    for (i, target) in chosen.iter().enumerate() {
        println!(
            "==> [{}/{}] {target} for {}s",
            i + 1,
            chosen.len(),
            args.time.as_secs()
        );
        let outcome = run_target(&args, &root, &bin_dir, &target_dir, target)?;
        match &outcome.failure {
            None => println!(
                "    ok: {} executions in {:.1?}, corpus {}",
                show(outcome.executions),
                outcome.elapsed,
                show(outcome.corpus)
            ),
            Some(why) => println!("    FAILED: {why}"),
        }
        outcomes.push(outcome);
    }
    println!();
    println!(
        "xtask fuzz: {:<20} {:>14} {:>8}  result",
        "target", "executions", "corpus"
    );
    for o in &outcomes {
        println!(
            "xtask fuzz: {:<20} {:>14} {:>8}  {}",
            o.target,
            show(o.executions),
            show(o.corpus),
            o.failure.as_deref().unwrap_or("ok")
        );
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    println!(
        "xtask fuzz: {} target(s) ran, {failed} failed, in {:.1?}",
        outcomes.len(),
        started.elapsed()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`, in file order.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let manifest = fuzz_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name") {
            let name = value
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            names.push(name.to_owned());
        }
    }
    if names.is_empty() {
        bail!("{} declares no [[bin]] target", manifest.display());
    }
    Ok(names)
}

/// A `cargo +nightly ...` command, without the variables the outer cargo
/// set for xtask (they name the stable toolchain).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly");
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    cmd
}

fn build(root: &Path, target_dir: &Path) -> Result<()> {
    let probe = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        bail!(
            "cargo-fuzz on the nightly toolchain is needed: rustup toolchain install nightly \
             && cargo install cargo-fuzz"
        );
    }
    let status = nightly_cargo()
        .current_dir(root)
        .args(["fuzz", "build", "--sanitizer", "none", "--fuzz-dir", "fuzz"])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("running cargo +nightly fuzz build")?;
    if !status.success() {
        bail!("cargo +nightly fuzz build failed ({status})");
    }
    Ok(())
}

/// The nightly compiler's host triple: cargo-fuzz builds for it, under
/// `target/fuzz/<triple>/release/`.
fn host_triple() -> Result<String> {
    let mut cmd = Command::new("rustc");
    cmd.args(["+nightly", "-vV"]);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTC"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().context("running rustc +nightly -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc +nightly -vV names no host")
}

fn run_target(
    args: &Args,
    root: &Path,
    bin_dir: &Path,
    target_dir: &Path,
    target: &str,
) -> Result<Outcome> {
    let corpus = target_dir.join("corpus").join(target);
    let artifacts = target_dir.join("artifacts").join(target);
    let logs = target_dir.join("logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seeds = root.join("fuzz").join("seeds").join(target);
    let log_path = logs.join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(bin_dir.join(target));
    cmd.arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg(format!("-max_total_time={}", args.time.as_secs().max(1)))
        .arg(format!("-timeout={}", args.timeout))
        .arg(format!("-rss_limit_mb={}", args.rss_limit_mb))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin_dir.join(target).display()))?;
    // libFuzzer writes everything to stderr; stdout (a target's prints)
    // goes to the log from its own thread, so neither pipe can fill up.
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut out_log = log.try_clone()?;
    let out_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(out_log, "{line}");
        }
    });
    let stderr = child.stderr.take().context("the child's stderr")?;
    let (mut executions, mut corpus_size, mut artifact, mut crash_lines) = (None, None, None, 0);
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        writeln!(log, "{line}")?;
        if line.contains("pulse") || line.contains(" DONE ") {
            println!("    {line}");
        }
        if crash_lines > 0 || is_crash_line(&line) {
            // The crash report, up to a bounded number of lines.
            if crash_lines < 40 {
                println!("    | {line}");
            }
            crash_lines += 1;
        }
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = n.trim().parse().ok();
        }
        if let Some(rest) = line.strip_prefix('#')
            && let Some(n) = rest.split_whitespace().next()
            && let Ok(n) = n.parse::<u64>()
        {
            executions = executions.max(Some(n));
        }
        if let Some(at) = line.find("corp: ")
            && let Some(n) = line[at + 6..].split('/').next()
            && let Ok(n) = n.parse::<u64>()
        {
            corpus_size = Some(n);
        }
        if let Some(at) = line.find("Test unit written to ") {
            artifact = Some(PathBuf::from(line[at + 21..].trim()));
        }
    }
    let status = child.wait()?;
    let _ = out_thread.join();
    let failure = if status.success() {
        None
    } else {
        Some(format!(
            "{status}; input {}; log {}",
            artifact.map_or_else(|| "not written".to_owned(), |p| p.display().to_string()),
            log_path.display()
        ))
    };
    Ok(Outcome {
        target: target.to_owned(),
        executions,
        corpus: corpus_size,
        elapsed: started.elapsed(),
        failure,
    })
}

/// The first line of a libFuzzer finding (panic, timeout, out of memory).
fn is_crash_line(line: &str) -> bool {
    line.starts_with("==")
        || line.contains("panicked at")
        || line.contains("ALARM: working on the last Unit")
        || line.contains("out-of-memory")
        || line.contains("deadly signal")
}

fn show(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// `30s`, `5m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (30s, 5m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn every_target_of_the_fuzz_manifest() {
        let names = targets(&project_root().join("fuzz")).unwrap();
        assert!(names.contains(&"storable_decode".to_owned()), "{names:?}");
        // Each has its source file.
        for n in &names {
            let path = project_root()
                .join("fuzz/fuzz_targets")
                .join(format!("{n}.rs"));
            assert!(path.is_file(), "{}", path.display());
        }
    }
}

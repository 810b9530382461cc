//! `target/bench/report.md` and `report.json`: when, where, what was
//! measured; the main table (ours against the floor and the peers, with the
//! issue's targets), one table per section, memory, and links to the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use serde_json::{Value, json};

use super::plots;
use super::sections::{Results, Row, Section, median};

/// The machine and commit the report was measured on.
pub struct Machine {
    pub date: String,
    pub commit: String,
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
}

/// Command output, trimmed; `fallback` when it cannot run.
fn output(cmd: &mut Command, fallback: &str) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| fallback.to_owned())
}

impl Machine {
    pub fn read(root: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let commit = output(
            Command::new("git")
                .current_dir(root)
                .args(["rev-parse", "--short", "HEAD"]),
            "unknown",
        );
        let dirty = !output(
            Command::new("git").current_dir(root).args([
                "status",
                "--porcelain",
                "--untracked-files=no",
            ]),
            "",
        )
        .is_empty();
        Machine {
            date: output(
                Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
                "unknown",
            ),
            commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
                .unwrap_or_else(|| "unknown CPU".to_owned()),
            memory_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB, Linux {}",
            self.cores, self.cpu, self.memory_gib, self.kernel
        )
    }
}

/// What the report says about itself.
pub struct Info {
    pub machine: Machine,
    pub quick: bool,
    pub runs: usize,
    pub secs: f64,
}

/// The main table's comparisons: (what, subject series, baseline series,
/// target); cells at 1, 16 and 64 concurrent tasks.
const MAIN: &[(&str, &str, &str, &str)] = &[
    (
        "raw set+get pairs: our client / memcslap",
        "memcached/ours_raw_pair",
        "memcached/memcslap_pair",
        "",
    ),
    (
        "raw gets: our client / memcslap",
        "memcached/ours_raw_get",
        "memcached/memcslap_get",
        ">= 1.5x at 64",
    ),
    (
        "raw gets: our client, multiplexed mode / memcslap",
        "memcached/ours_raw_get_multiplexed",
        "memcached/memcslap_get",
        "",
    ),
    (
        "raw gets: our client, pooled mode / memcslap",
        "memcached/ours_raw_get_pooled",
        "memcached/memcslap_get",
        "",
    ),
    (
        "load+change+save, 1 memcached: ours (Storable) / Perl Cache::Memcached",
        "memcached/ours_load_save",
        "memcached/perl_load_save",
        ">= 5x at 1, >= 20x at 64",
    ),
    // The Storable row's ceiling, from the same run: a bare set+get pair
    // (no session layer at all) against Perl's path, and how close ours
    // comes to that pair.
    (
        "ceiling: raw set+get pairs, our client / Perl Cache::Memcached's load+change+save",
        "memcached/ours_raw_pair",
        "memcached/perl_load_save",
        "",
    ),
    (
        "load+change+save, 1 memcached: ours (Storable) / raw set+get pairs",
        "memcached/ours_load_save",
        "memcached/ours_raw_pair",
        "",
    ),
    (
        "create, memory: ours / tower-sessions",
        "memory/ours_create",
        "memory/tower_create",
        ">= 1x",
    ),
    (
        "load, memory: ours / tower-sessions",
        "memory/ours_load",
        "memory/tower_load",
        ">= 1x",
    ),
    (
        "load+change+save, memory: ours / tower-sessions",
        "memory/ours_load_save",
        "memory/tower_load_save",
        ">= 1x",
    ),
    (
        "delete, memory: ours / tower-sessions",
        "memory/ours_delete",
        "memory/tower_delete",
        ">= 1x",
    ),
    (
        "load, 1 memcached / raw pair",
        "memcached1/load",
        "memcached1/raw_pair",
        "",
    ),
    (
        "load+change+save, 1 memcached, no principal (2 round trips) / raw pair",
        "memcached1_plain/save_changed",
        "memcached1_plain/raw_pair",
        ">= 0.9x at 64",
    ),
    (
        "update, 1 memcached, no principal / raw pair",
        "memcached1_plain/update",
        "memcached1_plain/raw_pair",
        "",
    ),
    (
        "load+change+save, 1 memcached, with principal (3 round trips) / raw pair",
        "memcached1/save_changed",
        "memcached1/raw_pair",
        "",
    ),
    (
        "create, 1 memcached: adaptive (default) / pooled mode",
        "memcached1/create",
        "memcached1_pooled/create",
        "",
    ),
    (
        "load, 1 memcached: adaptive (default) / pooled mode",
        "memcached1/load",
        "memcached1_pooled/load",
        "",
    ),
    (
        "update, 1 memcached: adaptive (default) / pooled mode",
        "memcached1/update",
        "memcached1_pooled/update",
        "",
    ),
    (
        "load, 1 memcached: multiplexed / pooled mode",
        "memcached1_multiplexed/load",
        "memcached1_pooled/load",
        "",
    ),
    (
        "load+change+save, 3 memcached / raw pair",
        "memcached3/save_changed",
        "memcached3/raw_pair",
        "",
    ),
    (
        "load, with local cache / raw pair",
        "local/load",
        "local/raw_pair",
        "",
    ),
    (
        "session load+save, Redis / raw GET+SET",
        "redis/session_load_save",
        "redis/raw_get_set",
        ">= 0.9x",
    ),
    (
        "create: ours on Redis / tower-sessions-redis-store",
        "redis_peer/ours_create",
        "redis_peer/tower_create",
        ">= 1x",
    ),
    (
        "load: ours on Redis / tower-sessions-redis-store",
        "redis_peer/ours_load",
        "redis_peer/tower_load",
        ">= 1x",
    ),
    (
        "update: ours on Redis / tower-sessions-redis-store",
        "redis_peer/ours_update",
        "redis_peer/tower_update",
        ">= 1x",
    ),
    (
        "load: ours (MessagePack, the peer's format) on Redis / tower-sessions-redis-store",
        "redis_peer/ours_msgpack_load",
        "redis_peer/tower_load",
        "",
    ),
    (
        "update: ours (MessagePack) on Redis / tower-sessions-redis-store",
        "redis_peer/ours_msgpack_update",
        "redis_peer/tower_update",
        "",
    ),
    (
        "session load+save, Valkey 8.1 / raw GET+SET",
        "valkey/session_load_save",
        "valkey/raw_get_set",
        ">= 0.9x",
    ),
    (
        "create: ours on Valkey 8.1 / tower-sessions-redis-store",
        "valkey_peer/ours_create",
        "valkey_peer/tower_create",
        ">= 1x",
    ),
    (
        "load: ours on Valkey 8.1 / tower-sessions-redis-store",
        "valkey_peer/ours_load",
        "valkey_peer/tower_load",
        ">= 1x",
    ),
    (
        "update: ours on Valkey 8.1 / tower-sessions-redis-store",
        "valkey_peer/ours_update",
        "valkey_peer/tower_update",
        ">= 1x",
    ),
    (
        "load: ours (MessagePack) on Valkey 8.1 / tower-sessions-redis-store",
        "valkey_peer/ours_msgpack_load",
        "valkey_peer/tower_load",
        "",
    ),
    (
        "update: ours (MessagePack) on Valkey 8.1 / tower-sessions-redis-store",
        "valkey_peer/ours_msgpack_update",
        "valkey_peer/tower_update",
        "",
    ),
    (
        "create: ours on memcached / tower-sessions-redis-store on Redis",
        "redis_peer/memcached_create",
        "redis_peer/tower_create",
        ">= 1x at 64",
    ),
    (
        "load: ours on memcached / tower-sessions-redis-store on Redis",
        "redis_peer/memcached_load",
        "redis_peer/tower_load",
        ">= 1x at 64",
    ),
    (
        "update: ours on memcached / tower-sessions-redis-store on Redis",
        "redis_peer/memcached_update",
        "redis_peer/tower_update",
        ">= 1x at 64",
    ),
];
const LEVELS: [usize; 3] = [1, 16, 64];

fn rate(ops_per_s: f64) -> String {
    if ops_per_s >= 10_000.0 {
        format!("{:.0}k", ops_per_s / 1000.0)
    } else if ops_per_s >= 1000.0 {
        format!("{:.1}k", ops_per_s / 1000.0)
    } else {
        format!("{ops_per_s:.0}")
    }
}

/// One cell of the main table: the ratio (median of the runs' ratios when
/// the subject row names this baseline) and the subject's rate.
fn cell(results: &Results, subject: &str, baseline: &str, level: usize) -> (String, Option<f64>) {
    let (Some(s), Some(b)) = (
        results.find(&format!("{subject}/{level}")),
        results.find(&format!("{baseline}/{level}")),
    ) else {
        return ("-".to_owned(), None);
    };
    let ratio = match (&s.baseline, s.ratio) {
        (Some(named), Some(r)) if named == &format!("{baseline}/{level}") => r,
        _ => s.ops_per_s / b.ops_per_s.max(1e-9),
    };
    (
        format!(
            "{ratio:.2}x ({}/s vs {}/s)",
            rate(s.ops_per_s),
            rate(b.ops_per_s)
        ),
        Some(ratio),
    )
}

/// The main table, as markdown (also printed at the end of the run).
pub fn main_table(results: &Results) -> String {
    let mut t = String::from(
        "| ratio (ours/s vs theirs/s) | 1 task | 16 tasks | 64 tasks | target |\n|---|---|---|---|---|\n",
    );
    for (what, subject, baseline, target) in MAIN {
        let cells: Vec<String> = LEVELS
            .iter()
            .map(|&n| cell(results, subject, baseline, n).0)
            .collect();
        if cells.iter().all(|c| c == "-") {
            continue;
        }
        let _ = writeln!(t, "| {what} | {} | {target} |", cells.join(" | "));
    }
    t
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

fn section_table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| name | ops/s | p50 µs | p99 µs | ratio | to | target | errors |\n|---|---:|---:|---:|---:|---|---:|---:|\n",
    );
    for r in rows {
        let ratio = r.ratio.map_or_else(String::new, |x| format!("{x:.2}x"));
        let target = match (r.target, r.ratio) {
            (Some(t), Some(x)) => format!("{t}x {}", if x >= t { "met" } else { "**not met**" }),
            (Some(t), None) => format!("{t}x"),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "| {} | {:.0} | {} | {} | {ratio} | {} | {target} | {} |",
            r.name,
            r.ops_per_s,
            us(r.p50_us),
            us(r.p99_us),
            r.baseline.as_deref().unwrap_or(""),
            r.errors
        );
    }
    t
}

/// Peak RSS rows of a section: (process, MiB median over runs, reset flag).
fn memory_rows(section: &Section) -> Vec<(String, f64, bool)> {
    let mut names: Vec<String> = Vec::new();
    for (n, _) in &section.own_rss {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut rows: Vec<(String, f64, bool)> = names
        .iter()
        .map(|n| {
            let v: Vec<f64> = section
                .own_rss
                .iter()
                .filter(|(x, _)| x == n)
                .map(|(_, k)| *k)
                .collect();
            (n.clone(), median(&v) / 1024.0, true)
        })
        .collect();
    let mut daemons: Vec<String> = Vec::new();
    for (d, _, _) in &section.daemon_rss {
        if !daemons.contains(d) {
            daemons.push(d.clone());
        }
    }
    for d in daemons {
        let all: Vec<&(String, Option<f64>, bool)> = section
            .daemon_rss
            .iter()
            .filter(|(x, _, _)| x == &d)
            .collect();
        let v: Vec<f64> = all.iter().filter_map(|(_, k, _)| *k).collect();
        if !v.is_empty() {
            rows.push((
                format!("{d} (daemon)"),
                median(&v) / 1024.0,
                all.iter().all(|(_, _, r)| *r),
            ));
        }
    }
    rows
}

/// Writes the report and plots under `dir`; returns report.md's path.
pub fn write(dir: &Path, info: &Info, results: &Results) -> Result<PathBuf> {
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir)?;
    let m = &info.machine;
    let mut md = String::new();
    let _ = writeln!(md, "# memorycached benchmark report\n");
    let _ = writeln!(md, "- date: {}", m.date);
    let _ = writeln!(md, "- commit: {}", m.commit);
    let _ = writeln!(md, "- machine: {}", m.line());
    let _ = writeln!(
        md,
        "- mode: {}, {} run(s), {:.0} s in all; values are medians over the runs, ratios the median of each run's ratio (both sides measured in the same run, on the same servers)\n",
        if info.quick {
            "--quick (a smoke run: short measurements, dev-profile build; the numbers mean little)"
        } else {
            "full"
        },
        info.runs,
        info.secs
    );
    let _ = writeln!(md, "## Main table\n\n{}", main_table(results));
    let mut json_sections = Vec::new();
    for section in &results.sections {
        let rows = results.rows(section);
        let _ = writeln!(
            md,
            "## {} (`{}`)\n\n{}",
            section.title,
            section.bench,
            section_table(&rows)
        );
        let files = plots::section(&plot_dir, &section.bench, &rows)?;
        for f in &files {
            let _ = writeln!(md, "![{f}](plots/{f})");
        }
        let memory = memory_rows(section);
        if !memory.is_empty() {
            let _ = writeln!(
                md,
                "\nPeak RSS during this section (MiB; a daemon's peak is reset to its current RSS \
                 when the section starts, and memcached keeps the memory of earlier sections' \
                 items):\n\n| process | peak RSS |\n|---|---:|"
            );
            for (name, mib, reset) in &memory {
                let note = if *reset {
                    ""
                } else {
                    " (since start: peak not resettable)"
                };
                let _ = writeln!(md, "| {name} | {mib:.1}{note} |");
            }
        }
        let _ = writeln!(md);
        json_sections.push(json!({
            "bench": section.bench,
            "title": section.title,
            "rows": rows.iter().map(|r| json!({
                "name": r.name, "ops_per_s": r.ops_per_s, "p50_us": r.p50_us, "p99_us": r.p99_us,
                "errors": r.errors, "ops": r.ops, "first_error": r.first_error,
                "baseline": r.baseline, "ratio": r.ratio, "ratios": r.ratios, "target": r.target,
            })).collect::<Vec<Value>>(),
            "peak_rss_mib": memory.iter().map(|(n, mib, reset)| json!({"process": n, "mib": mib, "reset_before": reset})).collect::<Vec<Value>>(),
            "plots": files,
        }));
    }
    let main: Vec<Value> = MAIN
        .iter()
        .map(|(what, subject, baseline, target)| {
            let ratios: Vec<Value> = LEVELS
                .iter()
                .map(|&n| json!({"tasks": n, "ratio": cell(results, subject, baseline, n).1}))
                .collect();
            json!({"what": what, "subject": subject, "baseline": baseline, "target": target, "ratios": ratios})
        })
        .collect();
    let report = json!({
        "date": m.date,
        "commit": m.commit,
        "machine": {"cores": m.cores, "cpu": m.cpu, "memory_gib": m.memory_gib, "kernel": m.kernel},
        "quick": info.quick,
        "runs": info.runs,
        "secs": info.secs,
        "main": main,
        "sections": json_sections,
    });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

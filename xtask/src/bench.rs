//! `cargo xtask bench`: one report of memorycached against the floor and
//! its peers, as ratios measured in the same run, with plots.
//!
//! It starts its own servers (local processes through test-support, reached
//! directly rather than through the fault proxy: three memcached, one more
//! memcached for the local cache, one Redis 7, one Valkey 8.1), runs every
//! bench target in [`SECTIONS`] `--runs` times against them, and writes
//! `target/bench/report.md`, `target/bench/report.json` and the SVG plots
//! in `target/bench/plots/`. Absolute rates on a shared, noisy machine drift
//! between runs; ratios to rows measured in the same run hold.
//!
//! # Adding a section
//!
//! Write a `harness = false` bench target that prints the lines below
//! (`test_support::bench` has the load loop and the writer), and add one
//! line `(crate, bench, title)` to [`SECTIONS`]. Its rows become a table,
//! its `group/series/N` rows plots, its own peak RSS lines rows of the
//! memory table, beside each daemon's peak RSS during its run.
//!
//! # Environment given to every bench target
//!
//! | variable | value |
//! |---|---|
//! | `MEMORYCACHED_BENCH_OUT` | the file to write the JSON lines to |
//! | `MEMORYCACHED_BENCH_QUICK` | set for `--quick` (a smoke run: measure briefly) |
//! | `MEMORYCACHED_BENCH_MEMCACHED` | one memcached `host:port` |
//! | `MEMORYCACHED_BENCH_MEMCACHED_CLUSTER` | three memcached, comma-separated (the first is the one above) |
//! | `MEMORYCACHED_BENCH_MEMCACHED_LOCAL` | a memcached of its own, for a local read-first cache |
//! | `MEMORYCACHED_BENCH_REDIS` | one Redis `host:port` |
//! | `MEMORYCACHED_BENCH_VALKEY` | one Valkey 8.1+ `host:port` (has `SET ... IFEQ`) |
//!
//! # The JSON line format
//!
//! One JSON object per line in `MEMORYCACHED_BENCH_OUT` (other output of
//! the bench goes to the terminal as progress). A measurement:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `name` | string | unique in the section; `group/series/N` (N = concurrency) is plotted: one chart per group, one line per series |
//! | `ops` | number | operations made, failed ones included |
//! | `errors` | number | failed operations and failed checks; any > 0 fails the run |
//! | `ops_per_s` | number | operations per second of wall time |
//! | `p50_us`, `p99_us` | number or null | latency percentiles in µs (null: not measured, e.g. an outside tool) |
//! | `first_error` | string or null | the first failure's message |
//! | `baseline` | string, optional | a row of the same run (this section first, then any) this one is divided by: ratio = ops_per_s / baseline's |
//! | `target` | number, optional | the ratio aimed for, shown beside it |
//!
//! A memory line: `{"name": "...", "peak_rss_kib": N}` (a process's own
//! `VmHWM`; the daemons' are read by xtask itself).
//!
//! `--quick` builds the bench targets with the dev profile (reusing the test
//! build) and measures briefly: CI runs it to check that the report is
//! written, not for the numbers.

mod plots;
mod report;
mod sections;

use std::process::Command;

use anyhow::{Context, Result, bail};
use test_support::bench as env_names;
use test_support::{MemcachedOptions, Provider, ProviderKind, Server};

use crate::project_root;

/// Every section of the report, in order: (crate, bench target, title).
/// One line per bench target; see the module docs for what it must print.
/// Bench target names must be unique across the workspace (every `cargo
/// bench` names all these crates, see [`packages`]).
pub const SECTIONS: &[(&str, &str, &str)] = &[
    (
        "memorycached-bench",
        "ops",
        "Ours: session operations on each store, beside raw set+get pairs",
    ),
    (
        "memorycached-bench",
        "seal",
        "Sealed at rest: load and save of a 10-field session, sealed beside plain, and the cipher alone",
    ),
    (
        "memorycached-bench",
        "peers",
        "Floor and peers: memcslap, Perl Cache::Memcached + Storable, tower-sessions",
    ),
    (
        "soap-bridge",
        "bridge",
        "SOAP bridge: requests/s beside the raw store ops",
    ),
    (
        "backend-memcached",
        "contention",
        "Contention and principal index, 64 tasks, one memcached",
    ),
    (
        "backend-memcached",
        "tls",
        "memcached over TLS (memcacheds://) beside plain TCP, 1 and 64 tasks, same run",
    ),
    (
        "backend-redis",
        "redis",
        "Redis and Valkey: session load+save beside raw GET+SET pairs, same client",
    ),
    (
        "memorycached-bench",
        "redis_peers",
        "Redis peer: create, load, update beside tower-sessions-redis-store (fred), on Redis and Valkey",
    ),
    (
        "tower-sessions-memorycached",
        "app",
        "axum app (tower-sessions): counter page, our store beside tower-sessions' MemoryStore",
    ),
    (
        "replicator",
        "lag",
        "Replication lag: a write on the master until it is visible on the slave",
    ),
    (
        "replicator",
        "catch_up",
        "Replication catch-up: a slave restarted empty, time until its keys are back and the lag of new writes meanwhile",
    ),
];

/// memcached's memory: enough that nothing one section writes is evicted (a
/// session read later must still be there). Every server is emptied before
/// each section ([`empty_servers`]), so sections do not add up.
const MEMORY_MB: u32 = 2048;

/// Flags of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// A smoke run of about a minute (plus the build): dev-profile build,
    /// short measurements, one run. Checks that everything runs and the
    /// report is written; its numbers mean little.
    #[arg(long)]
    pub quick: bool,
    /// How many times to run every section; medians are reported (ratios:
    /// the median of each run's ratio). Default: 3, or 1 with --quick.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Only the sections whose bench target is named here (repeatable),
    /// e.g. `--only ops --only peers`.
    #[arg(long)]
    pub only: Vec<String>,
}

/// The servers of the run, kept alive until it ends.
pub struct Servers {
    /// (label, server): the three memcached, the local cache, Redis, Valkey.
    pub daemons: Vec<(String, Server)>,
    env: Vec<(&'static str, String)>,
}

fn direct(server: &Server) -> Result<String> {
    Ok(server
        .direct_addr()
        .context("a server just started has no address")?
        .to_string())
}

/// Local processes (no container network between client and server).
fn start_servers(runtime: &tokio::runtime::Runtime) -> Result<Servers> {
    runtime.block_on(async {
        let provider = Provider::new(ProviderKind::Process).await?;
        let options = || MemcachedOptions {
            memory_mb: MEMORY_MB,
            // 64 tasks' pools on each store, 64 Perl processes, memcslap.
            extra_args: vec!["-c".to_owned(), "4096".to_owned()],
            ..MemcachedOptions::default()
        };
        let mut daemons = Vec::new();
        for label in [
            "memcached A",
            "memcached B",
            "memcached C",
            "memcached local",
        ] {
            daemons.push((label.to_owned(), provider.memcached_with(options()).await?));
        }
        daemons.push(("redis".to_owned(), provider.redis().await?));
        daemons.push(("valkey".to_owned(), provider.valkey().await?));
        let addrs = daemons
            .iter()
            .map(|(_, s)| direct(s))
            .collect::<Result<Vec<_>>>()?;
        let env = vec![
            (env_names::MEMCACHED_ENV, addrs[0].clone()),
            (env_names::MEMCACHED_CLUSTER_ENV, addrs[..3].join(",")),
            (env_names::MEMCACHED_LOCAL_ENV, addrs[3].clone()),
            (env_names::REDIS_ENV, addrs[4].clone()),
            (env_names::VALKEY_ENV, addrs[5].clone()),
        ];
        Ok(Servers { daemons, env })
    })
}

/// The packages every `cargo bench` of the run names. Always the same set,
/// whichever section runs: cargo unifies dependency features over the
/// packages it is given, so a different set per section would rebuild the
/// dependencies for each. `--quick` takes the whole workspace, as the test
/// build does, so that CI's smoke run reuses the test build's artifacts.
fn packages(quick: bool) -> Vec<String> {
    if quick {
        return vec!["--workspace".to_owned()];
    }
    let mut args: Vec<String> = Vec::new();
    for (krate, _, _) in SECTIONS {
        if !args.iter().any(|a| a == krate) {
            args.extend(["-p".to_owned(), (*krate).to_owned()]);
        }
    }
    args
}

/// Resets each daemon's peak-RSS counter (`/proc/PID/clear_refs` = 5), so
/// that the next reading is the peak of the next section alone.
/// Empties every server (`flush_all`, `FLUSHALL`): a section must not find
/// memory filled by the ones before it, where memcached would evict the
/// sessions it reads back (seen once the client got fast enough to write
/// a gigabyte in a run).
fn empty_servers(servers: &Servers) -> Result<()> {
    use std::io::{BufRead as _, BufReader, Write as _};
    for (label, server) in &servers.daemons {
        let (request, ok) = if label == "redis" || label == "valkey" {
            ("FLUSHALL\r\n", "+OK")
        } else {
            ("flush_all\r\n", "OK")
        };
        let addr = direct(server)?;
        let stream = std::net::TcpStream::connect(&addr)
            .with_context(|| format!("connecting to {label} at {addr} to empty it"))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        (&stream).write_all(request.as_bytes())?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer)?;
        if answer.trim_end() != ok {
            bail!(
                "{label} at {addr} answered {answer:?} to {}",
                request.trim_end()
            );
        }
    }
    Ok(())
}

fn reset_peaks(servers: &Servers) -> bool {
    servers.daemons.iter().all(|(_, s)| {
        s.pid()
            .is_some_and(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    })
}

/// Runs the report; see the module docs.
pub fn run(args: Args) -> Result<()> {
    let root = project_root();
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let sections: Vec<_> = SECTIONS
        .iter()
        .filter(|(_, bench, _)| args.only.is_empty() || args.only.iter().any(|o| o == bench))
        .collect();
    if sections.is_empty() {
        bail!(
            "--only names no section; the bench targets are: {:?}",
            SECTIONS.iter().map(|s| s.1).collect::<Vec<_>>()
        );
    }
    let started = std::time::Instant::now();
    let machine = report::Machine::read(&root);
    // Kept for the whole run: the servers' `Drop` needs the runtime's threads.
    let runtime = crate::runtime()?;
    println!("==> starting 4 memcached, 1 Redis and 1 Valkey (local processes)");
    let servers = start_servers(&runtime)?;
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(out_dir.join("results"))?;
    let mut results = sections::Results::new();
    let steps = runs * sections.len();
    let mut step = 0;
    for run in 1..=runs {
        for &&(krate, bench, title) in &sections {
            step += 1;
            println!(
                "==> [{step}/{steps}] run {run}/{runs}: {title} ({krate}, bench {bench}{}), {:.0}s so far",
                if args.quick { " --profile dev" } else { "" },
                started.elapsed().as_secs_f64()
            );
            let out = out_dir.join(format!("results/{bench}-{run}.jsonl"));
            // A stale file from an earlier run must not pass for this one.
            let _ = std::fs::remove_file(&out);
            empty_servers(&servers)?;
            let reset = reset_peaks(&servers);
            let mut cmd = Command::new(crate::cargo());
            cmd.current_dir(&root)
                .arg("bench")
                .args(packages(args.quick))
                .args(["--bench", bench])
                .env(env_names::OUT_ENV, &out);
            if args.quick {
                cmd.args(["--profile", "dev"])
                    .env(env_names::QUICK_ENV, "1");
            }
            for (k, v) in &servers.env {
                cmd.env(k, v);
            }
            let status = cmd.status().context("running cargo bench")?;
            if !status.success() {
                bail!("cargo bench -p {krate} --bench {bench} failed ({status})");
            }
            let text = std::fs::read_to_string(&out)
                .with_context(|| format!("reading {} (did the benchmark run?)", out.display()))?;
            let daemons: Vec<(String, Option<f64>)> = servers
                .daemons
                .iter()
                .map(|(label, s)| {
                    (
                        label.clone(),
                        s.pid().and_then(test_support::bench::peak_rss_kib),
                    )
                })
                .collect();
            results.add(bench, title, run, &text, daemons, reset)?;
        }
    }
    let info = report::Info {
        machine,
        quick: args.quick,
        runs,
        secs: started.elapsed().as_secs_f64(),
    };
    let written = report::write(&out_dir, &info, &results)?;
    println!("{}", report::main_table(&results));
    println!(
        "==> wrote {} ({:.0}s)",
        written.display(),
        started.elapsed().as_secs_f64()
    );
    drop(servers);
    results.check()
}

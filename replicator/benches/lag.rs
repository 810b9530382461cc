//! Replication, master -> slave on loopback, on both memcached versions the
//! tests use: Debian 12's 1.6.18 (no deletions feed: deletes travel by
//! key-list comparisons) and Debian 13's 1.6.38 (`watch deletions`; from
//! `bash .ci/memcached-trixie`, left out with a note when absent).
//!
//! - **Lag** (`replication_lag/<version>/<rate>`): from a write's answer on
//!   the master to its visibility on the slave, at 1k, 5k and 10k writes/s.
//!   Four writer connections share the rate (one connection's round trips
//!   cannot reach 10k/s on a busy machine); ops_per_s is the rate reached.
//!   Every 4th key is watched on the slave by one checker that reads all
//!   watched keys, pipelined, in a tight loop, so the resolution is one
//!   round trip.
//! - **Delete delay** (`replication_delete/<version>/<keys>`): with 10k and
//!   100k keys on the pair, plain-text `delete`s on the master one after
//!   the other, each timed until the key is gone from the slave; ops =
//!   deletes, ops_per_s = deletes per second of that loop, p50/p99 the
//!   delay.
//! - **Marker delete delay** (`replication_marker_delete/<version>/<keys>`):
//!   the same, each delete made through session-core's memcached store
//!   with `delete_markers=1` (the bridge, sessionctl, Rust apps).
//! - **Key lists** (`replication_key_list/<version>/<keys>`, 1.6.18 only):
//!   while the pair is idle, ops = key-list comparisons in 5 s (at least
//!   two, within a minute), ops_per_s
//!   their rate, p50/p99 their duration. Their CPU
//!   (`replication_key_list_cpu/<version>/<keys>`): the process's CPU
//!   (utime + stime from /proc/self/stat) over that window, p50_us = per
//!   comparison (mean, not a percentile), ops_per_s = the share of one
//!   core in percent; the bench's own idle polling is in it.
//!
//! One JSON object per row goes to `MEMORYCACHED_BENCH_OUT` (name, ops,
//! errors = keys never seen or deletes never arriving, ops_per_s, p50_us,
//! p99_us, first_error); `MEMORYCACHED_BENCH_QUICK` runs one short rate and
//! 10k keys with three deletes; the full run adds 100k and 1M keys (1M:
//! three deletes, each waiting for a paced key list: minutes). A human
//! summary goes to stdout.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backend_memcached::raw::RawConnection;
use replicator::{Config, LinkMetrics, Replicator, Topology};
use serde_json::json;
use session_core::Ttl;
use test_support::{MemcachedOptions, Provider, ProviderKind, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a written key may take to show up before it counts as lost.
const GIVE_UP: Duration = Duration::from_secs(5);
/// How long a delete may take to arrive before it counts as lost.
const DELETE_GIVE_UP: Duration = Duration::from_secs(60);
/// How long a raw delete may take before it counts as lost: a minute, or
/// longer where key-list comparisons are paced further apart than that
/// (1M keys on 1.6.18: 4.7 s per comparison at 5% of a core, one every
/// 94 s), two and a half paced intervals.
fn delete_give_up(p: &Pair) -> Duration {
    let last = Duration::from_micros(p.metrics.key_list_last_duration_us.load(Ordering::Relaxed));
    DELETE_GIVE_UP.max(last.mul_f64(2.5 / p.key_list_budget))
}

/// Writer connections sharing a rate.
const WRITERS: u64 = 4;

struct Outcome {
    written: u64,
    elapsed: Duration,
    lags: Vec<Duration>,
    lost: u64,
    first_error: Option<String>,
}

/// One writer's share: `rate / WRITERS` keys per second for `time`.
async fn write_share(
    master: String,
    prefix: String,
    share: u64,
    time: Duration,
    pending: Arc<Mutex<VecDeque<(String, Instant)>>>,
) -> Res<(u64, Option<String>)> {
    let mut w = RawConnection::connect(&master, Duration::from_secs(5)).await?;
    let value = vec![b'x'; 100];
    let started = Instant::now();
    let mut written = 0u64;
    let mut first_error = None;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while started.elapsed() < time {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * share as f64) as u64;
        while written < due {
            let key = format!("{prefix}:{written}");
            match w.set(&key, &value, 0, Ttl::seconds(600)).await {
                Ok(_) => {
                    if written.is_multiple_of(4) {
                        pending.lock().await.push_back((key, Instant::now()));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                    w = RawConnection::connect(&master, Duration::from_secs(5)).await?;
                }
            }
            written += 1;
        }
    }
    Ok((written, first_error))
}

async fn measure(master: &str, slave: &str, rate: u64, time: Duration, run: &str) -> Res<Outcome> {
    let pending: Arc<Mutex<VecDeque<(String, Instant)>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let pending = Arc::clone(&pending);
        let done = Arc::clone(&done);
        let mut c = RawConnection::connect(slave, Duration::from_secs(5)).await?;
        tokio::spawn(async move {
            let mut lags = Vec::new();
            let mut lost = 0u64;
            loop {
                let batch: Vec<(String, Instant)> =
                    pending.lock().await.iter().take(256).cloned().collect();
                if batch.is_empty() {
                    if done.load(Ordering::SeqCst) {
                        return Ok::<_, backend_memcached::Error>((lags, lost));
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let keys: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
                let items = c.get_many(&keys).await?;
                let now = Instant::now();
                let mut seen = std::collections::HashSet::new();
                for ((key, at), item) in batch.iter().zip(items) {
                    if item.is_some() {
                        lags.push(now - *at);
                        seen.insert(key.clone());
                    } else if now - *at > GIVE_UP {
                        lost += 1;
                        seen.insert(key.clone());
                    }
                }
                pending.lock().await.retain(|(k, _)| !seen.contains(k));
            }
        })
    };
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        writers.push(tokio::spawn(write_share(
            master.to_owned(),
            format!("lag:{run}:{rate}:{w}"),
            rate / WRITERS,
            time,
            Arc::clone(&pending),
        )));
    }
    let mut written = 0;
    let mut first_error = None;
    for w in writers {
        let (n, error) = w.await??;
        written += n;
        first_error = first_error.or(error);
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (mut lags, lost) = checker.await??;
    lags.sort();
    Ok(Outcome {
        written,
        elapsed,
        lags,
        lost,
        first_error,
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Where the bench talks to `s`: the server itself, not the fault proxy.
fn direct(s: &Server) -> String {
    s.direct_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| s.addr())
}

/// Appends one JSON row and prints nothing.
fn emit(out: &mut Option<std::fs::File>, line: serde_json::Value) -> Res<()> {
    if let Some(f) = out.as_mut() {
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// A master and a slave of one version, and the replicator between them.
struct Pair {
    _master: Server,
    _slave: Server,
    m: String,
    s: String,
    replicator: Replicator,
    metrics: Arc<LinkMetrics>,
    /// The share of a core the key-list comparisons are paced to.
    key_list_budget: f64,
}

async fn pair(provider: &Provider, version: &str) -> Res<Option<Pair>> {
    let opts = MemcachedOptions {
        memory_mb: 512,
        ..Default::default()
    };
    let (master, slave) = if version == "1.6.38" {
        match provider.memcached_feed(opts.clone()).await {
            Ok(master) => (master, provider.memcached_feed(opts).await?),
            Err(e) => {
                println!("  memcached 1.6.38 left out: {e}");
                return Ok(None);
            }
        }
    } else {
        (
            provider.memcached_with(opts.clone()).await?,
            provider.memcached_with(opts).await?,
        )
    };
    let (m, s) = (direct(&master), direct(&slave));
    let mut config = Config::new(Topology::MasterSlave {
        master: m.clone(),
        slaves: vec![s.clone()],
    });
    config.resync_interval = None;
    let key_list_budget = config.key_list_budget;
    let replicator = Replicator::start(config)?;
    let (_, metrics) = replicator.links().pop().ok_or("no link")?;
    let wait = Instant::now();
    while metrics.resyncs.load(Ordering::Relaxed) == 0
        || metrics.feeds_connected.load(Ordering::Relaxed) == 0
    {
        if wait.elapsed() > Duration::from_secs(10) {
            return Err("the replicator's start resync did not finish in 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Some(Pair {
        _master: master,
        _slave: slave,
        m,
        s,
        replicator,
        metrics,
        key_list_budget,
    }))
}

/// `count` keys `del:{i}` on `addr`, 8 connections at once.
async fn fill(addr: &str, count: usize) -> Res<()> {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = RawConnection::connect(&addr, Duration::from_secs(5)).await?;
            for i in (w..count).step_by(8) {
                c.set(&format!("del:{i}"), b"session", 0, Ttl::seconds(3600))
                    .await?;
            }
            Ok::<_, backend_memcached::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Keys metadump lists on `addr`.
async fn listed(addr: &str) -> Res<usize> {
    let mut c = RawConnection::connect(addr, Duration::from_secs(60)).await?;
    Ok(c.dump_keys().await?.len())
}

/// `delete KEY` in plain text, as Perl's Cache::Memcached sends it.
async fn text_delete(stream: &mut tokio::net::TcpStream, key: &str) -> Res<bool> {
    stream
        .write_all(format!("delete {key}\r\n").as_bytes())
        .await?;
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.push(stream.read_u8().await?);
    }
    Ok(line == b"DELETED\r\n")
}

/// Process CPU time (user + system) so far, from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// The delete rows (and, without a deletions feed, the key-list row) of
/// one version at `keys` keys.
async fn deletes(
    p: &Pair,
    version: &str,
    keys: usize,
    count: usize,
    out: &mut Option<std::fs::File>,
) -> Res<()> {
    fill(&p.m, keys).await?;
    let wait = Instant::now();
    while listed(&p.s).await? < keys {
        if wait.elapsed() > Duration::from_secs(120) {
            return Err(format!("{keys} keys not on the slave within 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let feed = p.metrics.deletions_feed().values().all(|d| *d);
    let label = if keys >= 1000 {
        format!("{}k", keys / 1000)
    } else {
        keys.to_string()
    };
    if !feed {
        // Idle: what the key lists cost, and how often they run.
        let (lists0, cpu0, at0) = (
            p.metrics.key_lists.load(Ordering::Relaxed),
            cpu_time(),
            Instant::now(),
        );
        let mut durations = Vec::new();
        let mut last = lists0;
        // At least 5 s and two comparisons (with 100k keys they are
        // several seconds apart), at most a minute.
        while (at0.elapsed() < Duration::from_secs(5) || durations.len() < 2)
            && at0.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = p.metrics.key_lists.load(Ordering::Relaxed);
            if now != last {
                last = now;
                durations.push(Duration::from_micros(
                    p.metrics.key_list_last_duration_us.load(Ordering::Relaxed),
                ));
            }
        }
        let window = at0.elapsed();
        let spent = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let cpu = match spent {
            Some(d) => format!("{:.1}%", d.as_secs_f64() / window.as_secs_f64() * 100.0),
            None => "?".to_owned(),
        };
        durations.sort();
        let comparisons = last - lists0;
        println!(
            "  {version} {label} keys idle: {comparisons} key lists in {window:.1?}, each p50 {:.1} ms, process CPU {cpu} of one core",
            pct(&durations, 0.5) / 1000.0
        );
        emit(
            out,
            json!({
                "name": format!("replication_key_list/{version}/{label}"),
                "ops": comparisons,
                "errors": 0,
                "ops_per_s": comparisons as f64 / window.as_secs_f64(),
                "p50_us": pct(&durations, 0.5),
                "p99_us": pct(&durations, 0.99),
            }),
        )?;
        if let Some(spent) = spent {
            emit(
                out,
                json!({
                    "name": format!("replication_key_list_cpu/{version}/{label}"),
                    "ops": comparisons,
                    "errors": 0,
                    "ops_per_s": spent.as_secs_f64() / window.as_secs_f64() * 100.0,
                    "p50_us": spent.as_secs_f64() * 1e6 / comparisons.max(1) as f64,
                    "p99_us": null,
                }),
            )?;
        }
    }
    let mut text = tokio::net::TcpStream::connect(&p.m).await?;
    let mut reader = RawConnection::connect(&p.s, Duration::from_secs(5)).await?;
    let poll = if feed {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    };
    let mut delays = Vec::new();
    let mut lost = 0;
    let mut first_error = None;
    let give_up = delete_give_up(p);
    let started = Instant::now();
    for i in 0..count {
        // Spread over the key space.
        let key = format!("del:{}", i * (keys / count.max(1)));
        let at = Instant::now();
        if !text_delete(&mut text, &key).await? {
            first_error.get_or_insert_with(|| format!("{key} was not on the master"));
            continue;
        }
        loop {
            if reader.get_many(&[key.as_str()]).await?[0].is_none() {
                delays.push(at.elapsed());
                break;
            }
            if at.elapsed() > give_up {
                lost += 1;
                first_error.get_or_insert_with(|| format!("{key} still on the slave"));
                break;
            }
            tokio::time::sleep(poll).await;
        }
    }
    let elapsed = started.elapsed();
    delays.sort();
    println!(
        "  {version} {label} keys: delete p50 {:.1} ms  p99 {:.1} ms  ({} deletes, {lost} lost)",
        pct(&delays, 0.5) / 1000.0,
        pct(&delays, 0.99) / 1000.0,
        delays.len()
    );
    emit(
        out,
        json!({
            "name": format!("replication_delete/{version}/{label}"),
            "ops": delays.len(),
            "errors": lost,
            "ops_per_s": delays.len() as f64 / elapsed.as_secs_f64(),
            "p50_us": pct(&delays, 0.5),
            "p99_us": pct(&delays, 0.99),
            "first_error": first_error,
        }),
    )?;
    marker_deletes(p, version, &label, keys, count, out).await
}

/// The marker-delete row: `count` deletes through session-core's memcached
/// store with `delete_markers=1`, each timed until gone from the slave.
async fn marker_deletes(
    p: &Pair,
    version: &str,
    label: &str,
    keys: usize,
    count: usize,
    out: &mut Option<std::fs::File>,
) -> Res<()> {
    use session_core::Store as _;
    let store = backend_memcached::MemcachedStore::from_url(&format!(
        "memcached://{}?delete_markers=1",
        p.m
    ))?;
    let mut reader = RawConnection::connect(&p.s, Duration::from_secs(5)).await?;
    let (mut delays, mut lost, mut first_error) = (Vec::new(), 0, None);
    let started = Instant::now();
    for i in 0..count {
        // Other keys than the raw deletes took (those are spread from 0).
        let key = format!("del:{}", i * (keys / count.max(1)) + 1);
        let at = Instant::now();
        if !store.delete(&key).await? {
            first_error.get_or_insert_with(|| format!("{key} was not on the master"));
            continue;
        }
        loop {
            if reader.get_many(&[key.as_str()]).await?[0].is_none() {
                delays.push(at.elapsed());
                break;
            }
            if at.elapsed() > DELETE_GIVE_UP {
                lost += 1;
                first_error.get_or_insert_with(|| format!("{key} still on the slave"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = started.elapsed();
    delays.sort();
    println!(
        "  {version} {label} keys: marker delete p50 {:.1} ms  p99 {:.1} ms  ({} deletes, {lost} lost)",
        pct(&delays, 0.5) / 1000.0,
        pct(&delays, 0.99) / 1000.0,
        delays.len()
    );
    emit(
        out,
        json!({
            "name": format!("replication_marker_delete/{version}/{label}"),
            "ops": delays.len(),
            "errors": lost,
            "ops_per_s": delays.len() as f64 / elapsed.as_secs_f64(),
            "p50_us": pct(&delays, 0.5),
            "p99_us": pct(&delays, 0.99),
            "first_error": first_error,
        }),
    )
}

async fn run() -> Res<()> {
    let quick = std::env::var_os("MEMORYCACHED_BENCH_QUICK").is_some();
    let out_path = std::env::var("MEMORYCACHED_BENCH_OUT").ok();
    let provider = Provider::new(ProviderKind::Process).await?;
    let mut out = match &out_path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let (rates, time): (&[u64], _) = if quick {
        (&[5000], Duration::from_secs(2))
    } else {
        (&[1000, 5000, 10_000], Duration::from_secs(8))
    };
    let sizes: &[(usize, usize)] = if quick {
        &[(10_000, 3)]
    } else {
        &[(10_000, 20), (100_000, 10), (1_000_000, 3)]
    };
    for version in ["1.6.18", "1.6.38"] {
        println!("memcached {version}, master -> slave on loopback");
        for (run, &rate) in rates.iter().enumerate() {
            // A fresh pair per row: nothing left from the previous one.
            let Some(p) = pair(&provider, version).await? else {
                break;
            };
            let o = measure(&p.m, &p.s, rate, time, &run.to_string()).await?;
            let achieved = o.written as f64 / o.elapsed.as_secs_f64();
            let (p50, p99) = (pct(&o.lags, 0.5), pct(&o.lags, 0.99));
            println!(
                "  target {rate:>6}/s  written {achieved:>8.0}/s  lag p50 {:>8.2} ms  p99 {:>8.2} ms  lost {}",
                p50 / 1000.0,
                p99 / 1000.0,
                o.lost
            );
            emit(
                &mut out,
                json!({
                    "name": format!("replication_lag/{version}/{rate}"),
                    "ops": o.lags.len(),
                    "errors": o.lost,
                    "ops_per_s": achieved,
                    "p50_us": p50,
                    "p99_us": p99,
                    "first_error": o.first_error,
                }),
            )?;
            p.replicator.stop().await;
        }
        for &(keys, count) in sizes {
            let Some(p) = pair(&provider, version).await? else {
                break;
            };
            deletes(&p, version, keys, count, &mut out).await?;
            p.replicator.stop().await;
        }
    }
    Ok(())
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lag bench: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("lag bench failed: {e}");
        std::process::exit(1);
    }
}

//! Replication lag, master -> slave, at steady write rates on loopback:
//! from a write's answer on the master to its visibility on the slave.
//!
//! Starts two memcached servers (test-support's process provider, talking
//! to them directly, without its fault proxy) and the replicator in this
//! process. A writer sets new keys at a fixed rate; every 4th key is
//! watched on the slave by one checker that reads all watched keys,
//! pipelined, in a tight loop, so the resolution is one round trip. One
//! JSON object per rate goes to `MEMORYCACHED_BENCH_OUT` (name, ops =
//! keys seen, errors = keys never seen within 5 s, ops_per_s = write rate
//! reached, p50_us, p99_us, first_error); `MEMORYCACHED_BENCH_QUICK` runs
//! one short rate. A human summary goes to stdout.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memcached::raw::RawConnection;
use replicator::{Config, Replicator, Topology};
use serde_json::json;
use session_core::Ttl;
use test_support::{Provider, ProviderKind};
use tokio::sync::Mutex;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a written key may take to show up before it counts as lost.
const GIVE_UP: Duration = Duration::from_secs(5);

struct Outcome {
    written: u64,
    elapsed: Duration,
    lags: Vec<Duration>,
    lost: u64,
    first_error: Option<String>,
}

async fn measure(master: &str, slave: &str, rate: u64, time: Duration, run: usize) -> Res<Outcome> {
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
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
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
    let mut w = RawConnection::connect(master, Duration::from_secs(5)).await?;
    let value = vec![b'x'; 100];
    let started = Instant::now();
    let mut written = 0u64;
    let mut first_error = None;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while started.elapsed() < time {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while written < due {
            let key = format!("lag:{run}:{rate}:{written}");
            match w.set(&key, &value, 0, Ttl::seconds(600)).await {
                Ok(_) => {
                    if written.is_multiple_of(4) {
                        pending.lock().await.push_back((key, Instant::now()));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                    w = RawConnection::connect(master, Duration::from_secs(5)).await?;
                }
            }
            written += 1;
        }
    }
    let elapsed = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
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

async fn run() -> Res<()> {
    let quick = std::env::var_os("MEMORYCACHED_BENCH_QUICK").is_some();
    let out_path = std::env::var("MEMORYCACHED_BENCH_OUT").ok();
    let provider = Provider::new(ProviderKind::Process).await?;
    let master = provider.memcached().await?;
    let slave = provider.memcached().await?;
    let addr = |s: &test_support::Server| {
        s.direct_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| s.addr())
    };
    let (m, s) = (addr(&master), addr(&slave));
    let mut config = Config::new(Topology::MasterSlave {
        master: m.clone(),
        slaves: vec![s.clone()],
    });
    config.resync_interval = None;
    let replicator = Replicator::start(config)?;
    // Let the start resync finish on the empty servers.
    let (_, metrics) = replicator.links().pop().ok_or("no link")?;
    let wait = Instant::now();
    while metrics.resyncs.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        if wait.elapsed() > Duration::from_secs(10) {
            return Err("the replicator's start resync did not finish in 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (rates, time): (&[u64], _) = if quick {
        (&[5000], Duration::from_secs(2))
    } else {
        (&[1000, 5000, 10_000, 20_000], Duration::from_secs(8))
    };
    let mut out = match &out_path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    println!(
        "replication lag, master -> slave on loopback (write answered -> visible on the slave)"
    );
    for (run, &rate) in rates.iter().enumerate() {
        let o = measure(&m, &s, rate, time, run).await?;
        let achieved = o.written as f64 / o.elapsed.as_secs_f64();
        let (p50, p99) = (pct(&o.lags, 0.5), pct(&o.lags, 0.99));
        println!(
            "  target {rate:>6}/s  written {achieved:>8.0}/s  lag p50 {:>8.2} ms  p99 {:>8.2} ms  lost {}",
            p50 / 1000.0,
            p99 / 1000.0,
            o.lost
        );
        let line = json!({
            "name": format!("replication_lag/{rate}"),
            "ops": o.lags.len(),
            "errors": o.lost,
            "ops_per_s": achieved,
            "p50_us": p50,
            "p99_us": p99,
            "first_error": o.first_error,
        });
        if let Some(f) = out.as_mut() {
            writeln!(f, "{line}")?;
        }
    }
    let report = replicator.stop().await;
    println!("  replicator stopped: {report:?}");
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

//! Requests per second of the example app's counter page (`GET /counter`:
//! load, increment, save, cookie) with our store on memcached, against
//! tower-sessions' own `MemoryStore`, in the same run; our store on
//! session-core's `MemoryStore` too, to separate the store's cost from the
//! network's.
//!
//! Each of `CLIENTS` tasks is a browser with its own cookie jar (its own
//! session) on a kept-alive connection, looping until the time is over;
//! every answer must be the previous count plus one, or it counts as an
//! error. The app runs in this process on 127.0.0.1. Memcached comes from
//! `MEMORYCACHED_BENCH_MEMCACHED`, results go to `MEMORYCACHED_BENCH_OUT`
//! (one JSON object per line, read by `cargo xtask bench`),
//! `MEMORYCACHED_BENCH_QUICK` shortens the run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/app/routes.rs"]
#[allow(dead_code)]
mod routes;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use session_core::{MemoryStore, PrincipalIndex, Sessions, SessionsConfig, Store, Ttl};
use tower_sessions::SessionStore;
use tower_sessions_memorycached::SessionsStore;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Concurrent browsers.
const CLIENTS: usize = 16;

/// One measurement's outcome.
struct Sample {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Serves the app on `store` on a free port; returns its counter URL.
async fn serve<S: SessionStore + Clone>(store: S, sessions: Option<Sessions>) -> Res<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/counter", listener.local_addr()?);
    let state = routes::AppState {
        sessions,
        rendezvous: None,
    };
    let app = routes::app(store, state, time::Duration::hours(1));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("app server: {e}");
        }
    });
    Ok(url)
}

/// `CLIENTS` browsers hitting `url` until `time` is over.
async fn drive(url: &str, time: Duration) -> Sample {
    let started = Instant::now();
    let deadline = started + time;
    let mut handles = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.to_owned();
        handles.push(tokio::spawn(async move {
            let jar = Arc::new(reqwest::cookie::Jar::default());
            let http = reqwest::Client::builder()
                .cookie_provider(jar)
                .build()
                .map_err(|e| e.to_string());
            let (mut lat, mut errors, mut first) = (Vec::new(), 0u64, None);
            let http = match http {
                Ok(h) => h,
                Err(e) => return (lat, 1, Some(e)),
            };
            let mut expected = 1u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let answer = match http.get(&url).send().await {
                    Ok(res) => res.text().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                lat.push(t0.elapsed());
                match answer {
                    Ok(body) if body == format!("count={expected}") => expected += 1,
                    Ok(body) => {
                        errors += 1;
                        first.get_or_insert(format!("expected count={expected}, got {body}"));
                        // Resynchronise on what the server says.
                        if let Some(n) = body.strip_prefix("count=").and_then(|n| n.parse().ok()) {
                            expected = n;
                            expected += 1;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first)
        }));
    }
    let mut sample = Sample {
        ops: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
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

/// The `q` quantile of sorted latencies, in microseconds.
fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// Writes one result line.
fn record(out: &mut std::fs::File, name: &str, mut s: Sample) -> Res<()> {
    s.latencies.sort();
    let line = json!({
        "name": name,
        "ops": s.ops,
        "secs": s.elapsed.as_secs_f64(),
        "ops_per_s": s.ops as f64 / s.elapsed.as_secs_f64().max(1e-9),
        "p50_us": quantile_us(&s.latencies, 0.50),
        "p99_us": quantile_us(&s.latencies, 0.99),
        "errors": s.errors,
        "first_error": s.first_error,
    });
    println!("{line}");
    writeln!(out, "{line}")?;
    Ok(())
}

/// Our store over `servers`, configured as the example app is.
fn ours(servers: Arc<dyn Store>) -> Res<(SessionsStore, Sessions)> {
    let config = SessionsConfig {
        timeout: Ttl::seconds(3600),
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        ..Default::default()
    };
    let sessions = Sessions::new(servers, config)?;
    Ok((SessionsStore::new(sessions.clone())?, sessions))
}

async fn bench(out: &mut std::fs::File, addr: &str, warm: Duration, time: Duration) -> Res<()> {
    let memcached = store_url::open_one(&format!("memcached://{addr}"))?;
    let (on_memcached, s1) = ours(memcached)?;
    let (on_memory, s2) = ours(Arc::new(MemoryStore::new()))?;
    let targets = [
        (
            "app_counter/ours_memcached",
            serve(on_memcached, Some(s1)).await?,
        ),
        ("app_counter/ours_memory", serve(on_memory, Some(s2)).await?),
        (
            "app_counter/tower_sessions_memory",
            serve(tower_sessions::MemoryStore::default(), None).await?,
        ),
    ];
    for (name, url) in &targets {
        drive(url, warm).await;
        let sample = drive(url, time).await;
        record(out, name, sample)?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let Ok(addr) = std::env::var("MEMORYCACHED_BENCH_MEMCACHED") else {
        return Err("MEMORYCACHED_BENCH_MEMCACHED is not set: run `cargo xtask bench`, which starts memcached".into());
    };
    let Ok(out_path) = std::env::var("MEMORYCACHED_BENCH_OUT") else {
        return Err("MEMORYCACHED_BENCH_OUT is not set: run `cargo xtask bench`".into());
    };
    let quick = std::env::var_os("MEMORYCACHED_BENCH_QUICK").is_some();
    let (warm, time) = if quick {
        (Duration::from_millis(300), Duration::from_secs(1))
    } else {
        (Duration::from_secs(1), Duration::from_secs(3))
    };
    let mut out = std::fs::File::create(&out_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&mut out, &addr, warm, time))
}

//! Session round trips on Redis against raw `GET`+`SET` pairs with the same
//! client, same server, same run, at 1 and 64 concurrent tasks.
//!
//! - `redis/raw_get_set/N`: one operation is a `GET` then a `SET` of a plain
//!   key holding as many bytes as a stored session, on one multiplexed
//!   connection of the `redis` crate (the connection `RedisStore` uses);
//! - `redis/session_load_save/N`: one operation is `Sessions::load`, one
//!   field changed, `Sessions::save` (a read script, then the `cas` script);
//! - `redis/store_get_cas/N`: the same two store calls without the session
//!   layer (`Store::get`, then `Store::cas` of the bytes read).
//!
//! Each task works on its own key or session. Each measurement is bounded
//! by time and by operation count; per-operation latencies give p50/p99.
//! Set `MEMORYCACHED_BENCH_REDIS=host:port` (a Redis nobody else uses),
//! `MEMORYCACHED_BENCH_OUT` (one JSON object per line is written there, the
//! format `cargo xtask bench` reads) and optionally `MEMORYCACHED_BENCH_QUICK`:
//!
//! ```text
//! MEMORYCACHED_BENCH_REDIS=127.0.0.1:6379 MEMORYCACHED_BENCH_OUT=target/redis.jsonl \
//!   cargo bench -p backend-redis --bench redis
//! ```
//!
//! A failed operation is counted and reported, not hidden.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_redis::RedisStore;
use serde_json::json;
use session_core::{Sessions, SessionsConfig, Store};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 200_000;

/// One measurement's outcome.
struct Sample {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Runs `op(task, i)` on `tasks` tasks until `time` is over.
async fn drive<F, Fut>(tasks: usize, time: Duration, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + time;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first) = (0u64, None);
            for i in 0..MAX_OPS_PER_TASK {
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                if let Err(e) = op(t, i).await {
                    errors += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
                lat.push(t0.elapsed());
            }
            (lat, errors, first)
        }));
    }
    let mut s = Sample {
        ops: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for h in handles {
        match h.await {
            Ok((lat, errors, first)) => {
                s.ops += lat.len() as u64;
                s.errors += errors;
                if s.first_error.is_none() {
                    s.first_error = first;
                }
                s.latencies.extend(lat);
            }
            Err(e) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    s.elapsed = started.elapsed();
    s
}

fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// Writes one result line and returns its rate.
fn record(out: &mut std::fs::File, name: &str, mut s: Sample) -> Res<f64> {
    s.latencies.sort();
    let rate = s.ops as f64 / s.elapsed.as_secs_f64().max(1e-9);
    let line = json!({
        "name": name,
        "ops": s.ops,
        "secs": s.elapsed.as_secs_f64(),
        "ops_per_s": rate,
        "p50_us": quantile_us(&s.latencies, 0.50),
        "p99_us": quantile_us(&s.latencies, 0.99),
        "errors": s.errors,
        "first_error": s.first_error,
    });
    println!("{line}");
    writeln!(out, "{line}")?;
    Ok(rate)
}

async fn bench(out: &mut std::fs::File, addr: &str, warm: Duration, time: Duration) -> Res<()> {
    let run = session_core::SessionId::generate(16)?;
    let url = format!("redis://{addr}?prefix=bench{run}%3A");
    let store: Arc<dyn Store> = Arc::new(RedisStore::from_url(&url)?);
    let sessions = Arc::new(Sessions::new(store.clone(), SessionsConfig::default())?);
    let client = redis::Client::open(format!("redis://{addr}"))?;
    let conn = client.get_multiplexed_async_connection().await?;

    for tasks in [1usize, 64] {
        // One session per task, with a realistic handful of fields.
        let mut ids = Vec::new();
        for t in 0..tasks {
            let mut s = sessions.create().await?;
            s.insert("uid", format!("user{t}"))?;
            s.insert("cn", format!("User Number {t}"))?;
            s.insert("mail", format!("user{t}@example.org"))?;
            s.insert("groups", vec!["staff", "admins", "vpn"])?;
            s.insert("seen", 0u64)?;
            sessions.save(&mut s).await?;
            ids.push(s.id().as_str().to_owned());
        }
        let stored = store.get(&ids[0]).await?.ok_or("session gone")?;
        let value = Arc::new(vec![b'x'; stored.value.len() + backend_redis::HEADER_LEN]);
        let ids = Arc::new(ids);

        let raw = {
            let (conn, value) = (conn.clone(), Arc::clone(&value));
            let raw_prefix = format!("bench{run}:raw");
            move |t: usize, _i: u64| {
                let (mut conn, value) = (conn.clone(), Arc::clone(&value));
                let key = format!("{raw_prefix}{t}");
                async move {
                    let _: Option<Vec<u8>> =
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                    let _: () = redis::cmd("SET")
                        .arg(&key)
                        .arg(&value[..])
                        .query_async(&mut conn)
                        .await?;
                    Ok(())
                }
            }
        };
        let session = {
            let (sessions, ids) = (Arc::clone(&sessions), Arc::clone(&ids));
            move |t: usize, i: u64| {
                let (sessions, ids) = (Arc::clone(&sessions), Arc::clone(&ids));
                async move {
                    let mut s = sessions.load(&ids[t]).await?.ok_or("session gone")?;
                    s.insert("seen", i)?;
                    sessions.save(&mut s).await?;
                    Ok(())
                }
            }
        };
        // The store alone: what a session load+save asks of it.
        let store_pair = {
            let (store, ids) = (Arc::clone(&store), Arc::clone(&ids));
            move |t: usize, _i: u64| {
                let (store, ids) = (Arc::clone(&store), Arc::clone(&ids));
                async move {
                    let e = store.get(&ids[t]).await?.ok_or("session gone")?;
                    let stored = store
                        .cas(
                            &ids[t],
                            &e.value,
                            e.flags,
                            session_core::Ttl::seconds(300),
                            e.version,
                        )
                        .await?;
                    if !stored.is_stored() {
                        return Err(format!("cas answered {stored:?}").into());
                    }
                    Ok(())
                }
            }
        };
        drive(tasks, warm, store_pair.clone()).await;
        record(
            out,
            &format!("redis/store_get_cas/{tasks}"),
            drive(tasks, time, store_pair).await,
        )?;
        drive(tasks, warm, raw.clone()).await;
        drive(tasks, warm, session.clone()).await;
        let raw_rate = record(
            out,
            &format!("redis/raw_get_set/{tasks}"),
            drive(tasks, time, raw).await,
        )?;
        let session_rate = record(
            out,
            &format!("redis/session_load_save/{tasks}"),
            drive(tasks, time, session).await,
        )?;
        eprintln!(
            "redis, {tasks} task(s): session load+save / raw GET+SET = {:.2}x",
            session_rate / raw_rate.max(1e-9)
        );
    }
    // Leave the server as we found it.
    let mut conn = conn;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("bench{run}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let Ok(addr) = std::env::var("MEMORYCACHED_BENCH_REDIS") else {
        return Err(
            "MEMORYCACHED_BENCH_REDIS is not set: start a redis-server and export \
                    MEMORYCACHED_BENCH_REDIS=host:port"
                .into(),
        );
    };
    let Ok(out_path) = std::env::var("MEMORYCACHED_BENCH_OUT") else {
        return Err("MEMORYCACHED_BENCH_OUT is not set: name the JSON-lines output file".into());
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

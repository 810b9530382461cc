//! Session round trips on Redis against raw `GET`+`SET` pairs with the same
//! client, same server, same run, at 1 and 64 concurrent tasks; once on
//! Redis 7 (rows `redis/...`), once on Valkey 8.1 (rows `valkey/...`),
//! where `cas` after a read is a `SET ... IFEQ` instead of a script.
//!
//! - `redis/raw_get_set/N`: one operation is a `GET` then a `SET` of a plain
//!   key holding as many bytes as a stored session, on one multiplexed
//!   connection of the `redis` crate (the connection `RedisStore` uses);
//! - `redis/session_load_save/N`: one operation is `Sessions::load`, one
//!   field changed, `Sessions::save` (`GET`+`PTTL`, then the `cas` script;
//!   on Valkey `SET ... IFEQ`);
//! - `redis/store_get_cas/N`: the same two store calls without the session
//!   layer (`Store::get`, then `Store::cas` of the bytes read).
//!
//! Each task works on its own key or session. The load loop and the result
//! lines are `test_support::bench`'s (bounded by time and by operation
//! count; per-operation latencies give p50/p99). The three scenarios take
//! turns in [`ROUNDS`] short slices and each row sums its slices, so a
//! neighbour's load on a shared machine (the two-core CI box runs other
//! work) falls on all three alike instead of on whichever ran then. `cargo xtask bench` runs it;
//! by hand, set `MEMORYCACHED_BENCH_REDIS=host:port` (a Redis nobody else
//! uses), `MEMORYCACHED_BENCH_VALKEY` (likewise a Valkey 8.1+),
//! `MEMORYCACHED_BENCH_OUT` (one JSON object per line is written there)
//! and optionally `MEMORYCACHED_BENCH_QUICK`:
//!
//! ```text
//! MEMORYCACHED_BENCH_REDIS=127.0.0.1:6379 MEMORYCACHED_BENCH_VALKEY=127.0.0.1:6380 \
//!   MEMORYCACHED_BENCH_OUT=target/redis.jsonl cargo bench -p backend-redis --bench redis
//! ```
//!
//! A failed operation is counted and reported, not hidden.

use std::sync::Arc;

use backend_redis::RedisStore;
use session_core::{Sessions, SessionsConfig, Store};
use test_support::bench::{self, BenchEnv, Output, Row, Sample};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// The allocator our binaries use (see the workspace manifest); all three
/// scenarios of this process run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 200_000;

/// Slices each measurement is cut into, the scenarios taking turns.
const ROUNDS: u32 = 6;

/// The backend issue's aim: a session load+save at >= 0.9x of raw pairs.
const TARGET: f64 = 0.9;

/// The three rows at 1 and 64 tasks on the server at `addr`, named
/// `{server}/...` (`redis` or `valkey`).
async fn run(out: &mut Output, env: &BenchEnv, server: &str, addr: &str) -> Res<()> {
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
                    Ok::<(), BoxError>(())
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
                    Ok::<(), BoxError>(())
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
                    Ok::<(), BoxError>(())
                }
            }
        };
        let (warm, max) = (env.warm, MAX_OPS_PER_TASK);
        let slice = env.time / ROUNDS;
        bench::drive(tasks, warm, max, store_pair.clone()).await;
        bench::drive(tasks, warm, max, raw.clone()).await;
        bench::drive(tasks, warm, max, session.clone()).await;
        let (mut s_store, mut s_raw, mut s_session) =
            (Sample::default(), Sample::default(), Sample::default());
        for _ in 0..ROUNDS {
            s_store.absorb(bench::drive(tasks, slice, max, store_pair.clone()).await);
            s_raw.absorb(bench::drive(tasks, slice, max, raw.clone()).await);
            s_session.absorb(bench::drive(tasks, slice, max, session.clone()).await);
        }
        let row = |what: &str| Row::new(format!("{server}/{what}/{tasks}"));
        let raw_row = format!("{server}/raw_get_set/{tasks}");
        out.record(row("store_get_cas").baseline(&raw_row), s_store)?;
        out.record(row("raw_get_set"), s_raw)?;
        out.record(
            row("session_load_save").baseline(&raw_row).target(TARGET),
            s_session,
        )?;
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
    let env = BenchEnv::from_env()?;
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for (server, var) in [("redis", bench::REDIS_ENV), ("valkey", bench::VALKEY_ENV)] {
        let addr = BenchEnv::servers(var)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{var} names no server"))?;
        println!("-- {server} at {addr}");
        rt.block_on(run(&mut out, &env, server, &addr))?;
    }
    Ok(())
}

//! Session round trips against the raw client's own set+get pairs, on the
//! same memcached server, in the same run (`cargo xtask bench` starts the
//! server and prints the ratios; absolute times on shared machines mean little).
//!
//! Groups, each at 1 and 64 concurrent tasks (one element = one operation):
//! - `raw_pair`: `set` + `get` of a session-sized value through `MemcachedStore`.
//! - `session_update_only`: `create` (no I/O with `update_only`), one field
//!   set, `save` (an `add`), `load` (a `get`): two round trips, like a raw pair.
//! - `session_full`: `create` (an `add`), `load` (a `get`), one field set,
//!   `save` (a `cas`): three round trips.
//!
//! Every operation writes a new item, so the server's memory fills during
//! the run. Before measuring, the server (started with `-m 64`) is filled
//! past its limit, so that every benchmark runs against the same steady
//! state (evicting) instead of the first ones paying for fresh memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memcached::MemcachedStore;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use session_core::{Sessions, SessionsConfig, Store, Ttl};

const CONCURRENCY: [u64; 2] = [1, 64];

fn server() -> String {
    match std::env::var("MEMORYCACHED_BENCH_MEMCACHED") {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!(
                "MEMORYCACHED_BENCH_MEMCACHED is not set: run `cargo xtask bench`, which starts memcached"
            );
            std::process::exit(2);
        }
    }
}

fn store() -> Arc<MemcachedStore> {
    match MemcachedStore::from_url(&format!("memcached://{}?pool_size=64", server())) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot configure the store: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs `iters` operations spread over `tasks` concurrent tasks; returns the wall time.
async fn spread<F, Fut>(iters: u64, tasks: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        let share = iters / tasks + u64::from(t < iters % tasks);
        handles.push(tokio::spawn(async move {
            for i in 0..share {
                op(t * 1_000_000 + i).await;
            }
        }));
    }
    for h in handles {
        if let Err(e) = h.await {
            eprintln!("benchmark task failed: {e}");
            std::process::exit(1);
        }
    }
    started.elapsed()
}

fn fail(what: &str, e: session_core::Error) -> ! {
    eprintln!("{what} failed during the benchmark: {e}");
    std::process::exit(1);
}

/// Items written before measuring: more than a 64 MB server holds.
const PREFILL: u64 = 120_000;

fn prefill(rt: &tokio::runtime::Runtime, store: &Arc<MemcachedStore>, value: &[u8]) {
    let (s, v) = (store.clone(), Arc::new(value.to_vec()));
    let took = rt.block_on(spread(PREFILL, 64, move |n| {
        let (s, v) = (s.clone(), v.clone());
        async move {
            ok(
                "prefill set",
                s.set(&format!("bench:fill:{n}"), &v, 0, Ttl::NEVER).await,
            );
        }
    }));
    println!("prefilled the server with {PREFILL} items in {took:.1?}");
}

fn benches(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    let store = store();
    // A session of a typical SSO size, so raw pairs move as many bytes.
    let value = vec![b'x'; 600];
    let config = SessionsConfig {
        timeout: Ttl::seconds(300),
        ..Default::default()
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let full = ok("config", Sessions::new(dyn_store.clone(), config.clone()));
    let update_only = ok(
        "config",
        Sessions::new(
            dyn_store,
            SessionsConfig {
                update_only: true,
                ..config
            },
        ),
    );
    let filler = "y".repeat(540);
    prefill(&rt, &store, &value);

    let mut group = c.benchmark_group("memcached");
    group.throughput(Throughput::Elements(1));
    for tasks in CONCURRENCY {
        let (s, v) = (store.clone(), Arc::new(value.clone()));
        measure(&mut group, &rt, "raw_pair", tasks, move |n| {
            let (s, v) = (s.clone(), v.clone());
            async move {
                let key = format!("bench:raw:{n}");
                ok("set", s.set(&key, &v, 0x100, Ttl::seconds(300)).await);
                ok("get", s.get(&key).await);
            }
        });
        let (sessions, profile) = (update_only.clone(), filler.clone());
        measure(&mut group, &rt, "session_update_only", tasks, move |_| {
            let (sessions, filler) = (sessions.clone(), profile.clone());
            async move {
                let mut s = ok("create", sessions.create().await);
                ok("insert", s.insert("profile", &filler));
                ok("save", sessions.save(&mut s).await);
                ok("load", sessions.load_id(s.id()).await);
            }
        });
        let (sessions, profile) = (full.clone(), filler.clone());
        measure(&mut group, &rt, "session_full", tasks, move |_| {
            let (sessions, filler) = (sessions.clone(), profile.clone());
            async move {
                let created = ok("create", sessions.create().await);
                let Some(mut s) = ok("load", sessions.load_id(created.id()).await) else {
                    fail(
                        "load",
                        session_core::Error::SessionGone {
                            id: created.id().to_string(),
                        },
                    )
                };
                ok("insert", s.insert("profile", &filler));
                ok("save", sessions.save(&mut s).await);
            }
        });
    }
    group.finish();
}

/// One benchmark: `op(n)` run `iters` times over `tasks` concurrent tasks.
fn measure<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    tasks: u64,
    op: F,
) where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
        b.to_async(rt)
            .iter_custom(|iters| spread(iters, tasks, op.clone()))
    });
}

/// The value of a call that must succeed during a benchmark.
fn ok<T>(what: &str, result: session_core::Result<T>) -> T {
    result.unwrap_or_else(|e| fail(what, e))
}

criterion_group! {
    name = sessions;
    // Command-line flags (`cargo xtask bench --quick`) override these.
    config = Criterion::default()
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(sessions);

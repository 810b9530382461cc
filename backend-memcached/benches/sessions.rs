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
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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
            if let Err(e) = s.set(&format!("bench:fill:{n}"), &v, 0, Ttl::NEVER).await {
                fail("prefill set", e);
            }
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
    let full =
        Sessions::new(dyn_store.clone(), config.clone()).unwrap_or_else(|e| fail("config", e));
    let update_only = Sessions::new(
        dyn_store,
        SessionsConfig {
            update_only: true,
            ..config
        },
    )
    .unwrap_or_else(|e| fail("config", e));
    let filler = "y".repeat(540);
    prefill(&rt, &store, &value);

    let mut group = c.benchmark_group("memcached");
    group.throughput(Throughput::Elements(1));
    for tasks in CONCURRENCY {
        let (s, v) = (store.clone(), Arc::new(value.clone()));
        group.bench_with_input(BenchmarkId::new("raw_pair", tasks), &tasks, |b, &tasks| {
            b.to_async(&rt).iter_custom(|iters| {
                let (s, v) = (s.clone(), v.clone());
                spread(iters, tasks, move |n| {
                    let (s, v) = (s.clone(), v.clone());
                    async move {
                        let key = format!("bench:raw:{n}");
                        if let Err(e) = s.set(&key, &v, 0x100, Ttl::seconds(300)).await {
                            fail("set", e);
                        }
                        if let Err(e) = s.get(&key).await {
                            fail("get", e);
                        }
                    }
                })
            })
        });
        let (sessions, filler) = (update_only.clone(), filler.clone());
        group.bench_with_input(
            BenchmarkId::new("session_update_only", tasks),
            &tasks,
            |b, &tasks| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (sessions, filler) = (sessions.clone(), filler.clone());
                    spread(iters, tasks, move |_| {
                        let (sessions, filler) = (sessions.clone(), filler.clone());
                        async move {
                            let mut s = sessions
                                .create()
                                .await
                                .unwrap_or_else(|e| fail("create", e));
                            s.insert("profile", &filler)
                                .unwrap_or_else(|e| fail("insert", e));
                            sessions
                                .save(&mut s)
                                .await
                                .unwrap_or_else(|e| fail("save", e));
                            sessions
                                .load_id(s.id())
                                .await
                                .unwrap_or_else(|e| fail("load", e));
                        }
                    })
                })
            },
        );
        let (sessions, filler) = (full.clone(), filler.clone());
        group.bench_with_input(
            BenchmarkId::new("session_full", tasks),
            &tasks,
            |b, &tasks| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (sessions, filler) = (sessions.clone(), filler.clone());
                    spread(iters, tasks, move |_| {
                        let (sessions, filler) = (sessions.clone(), filler.clone());
                        async move {
                            let s = sessions
                                .create()
                                .await
                                .unwrap_or_else(|e| fail("create", e));
                            let mut s = match sessions.load_id(s.id()).await {
                                Ok(Some(s)) => s,
                                Ok(None) => fail(
                                    "load",
                                    session_core::Error::SessionGone {
                                        id: s.id().to_string(),
                                    },
                                ),
                                Err(e) => fail("load", e),
                            };
                            s.insert("profile", &filler)
                                .unwrap_or_else(|e| fail("insert", e));
                            sessions
                                .save(&mut s)
                                .await
                                .unwrap_or_else(|e| fail("save", e));
                        }
                    })
                })
            },
        );
    }
    group.finish();
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

//! The multiplexed connection mode against a real memcached: many tasks
//! share two connections and every caller gets its own answer, also while
//! callers are cancelled mid-flight; and the server sees two connections,
//! not one per task. Also the adaptive (default) mode's choice: lone calls
//! pooled, overlapping ones multiplexed. (Scripted misbehaviour — a lost, split or foreign
//! answer — is in the crate's unit tests, `src/server/mux_tests.rs`; the
//! fault tests in `failure.rs` run in both modes.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backend_memcached::{ConnectionMode, MemcachedConfig, MemcachedStore, Protocol};
use common::{memcached, spec};
use session_core::{SessionId, Store, Ttl};

const TASKS: usize = 64;
const ROUNDS: usize = 50;

fn store_on(server: &common::Server, protocol: Protocol) -> Arc<MemcachedStore> {
    store_in(server, protocol, ConnectionMode::Multiplexed)
}

fn store_in(
    server: &common::Server,
    protocol: Protocol,
    mode: ConnectionMode,
) -> Arc<MemcachedStore> {
    let mut config = MemcachedConfig::with_servers(vec![spec(server)]);
    config.protocol = protocol;
    config.mode = mode;
    config.connections = 2;
    // Generous: this checks answers, not speed, on a busy machine.
    config.io_timeout = Duration::from_secs(5);
    Arc::new(MemcachedStore::connect(config).unwrap())
}

/// memcached's own count of connections ever accepted.
async fn total_connections(store: &MemcachedStore) -> u64 {
    let stats = store.server_stats().await.remove(0).1.unwrap();
    let (_, n) = stats
        .iter()
        .find(|(name, _)| name == "total_connections")
        .expect("memcached reports total_connections");
    n.parse().unwrap()
}

/// Every task writes and reads its own keys with values only it writes;
/// any answer handed to the wrong caller shows as a foreign value.
async fn every_task_reads_its_own_writes(protocol: Protocol) {
    let server = memcached().await;
    let store = store_on(&server, protocol);
    let run = SessionId::generate(16).unwrap();
    // The first call learns the server's settings on a pooled connection.
    store.get(&format!("{run}:warm-up")).await.unwrap();
    let before = total_connections(&store).await;

    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, run) = (store.clone(), run.clone());
        tasks.spawn(async move {
            for round in 0..ROUNDS {
                let key = format!("{run}:t{t}:k{}", round % 5);
                let value = format!("task {t} round {round}").into_bytes();
                store.set(&key, &value, 7, Ttl::seconds(60)).await.unwrap();
                let got = store.get(&key).await.unwrap().expect("just written");
                assert_eq!(got.value, value, "task {t} got another caller's answer");
                assert_eq!(got.flags, 7);
                let many: Vec<String> = (0..5).map(|k| format!("{run}:t{t}:k{k}")).collect();
                let many: Vec<&str> = many.iter().map(String::as_str).collect();
                let found = store.get_many(&many).await.unwrap();
                assert_eq!(found[round % 5].as_ref().map(|e| &e.value), Some(&value));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let opened = total_connections(&store).await - before;
    // Two multiplexed connections (plus the `stats` call's pooled one,
    // which reads the counter after it is counted), not one per task.
    assert!(opened <= 3, "{opened} connections for {TASKS} tasks");
    assert_eq!(store.stats()[0].multiplexed_connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_reads_its_own_writes_meta() {
    every_task_reads_its_own_writes(Protocol::Meta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_reads_its_own_writes_classic() {
    every_task_reads_its_own_writes(Protocol::Classic).await;
}

/// Callers dropped at every stage (before their request is written, while
/// it is in flight, as its answer arrives) leave no answer behind for the
/// next caller, and no connection is given up for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_leave_every_answer_in_step() {
    let server = memcached().await;
    // A little latency, so cancellations land while requests are in flight.
    server.set_latency(Duration::from_millis(1)).await.unwrap();
    let store = store_on(&server, Protocol::Meta);
    let run = SessionId::generate(16).unwrap();
    for k in 0..20 {
        let key = format!("{run}:{k}");
        store
            .set(&key, key.as_bytes(), 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    let before = total_connections(&store).await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, run) = (store.clone(), run.clone());
        tasks.spawn(async move {
            let mut answered = 0;
            for round in 0..40u64 {
                let key = format!("{run}:{}", (t as u64 + round) % 20);
                // Cancelled after 50 µs .. 100 ms, spread over powers of
                // two whatever this machine's speed: some never written,
                // some in flight, some answered.
                let patience = Duration::from_micros(50 << ((t as u64 + round) % 12));
                if let Ok(got) = tokio::time::timeout(patience, store.get(&key)).await {
                    let got = got.unwrap().expect("written before");
                    assert_eq!(got.value, key.as_bytes(), "foreign answer");
                    answered += 1;
                }
                // An uncancelled call right after must be in step.
                let got = store.get(&key).await.unwrap().expect("written before");
                assert_eq!(
                    got.value,
                    key.as_bytes(),
                    "foreign answer after a cancellation"
                );
            }
            answered
        });
    }
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        answered += done.unwrap();
    }
    // Both outcomes happened, or the test did not test cancellation.
    assert!(
        answered > 0 && answered < TASKS * 40,
        "{answered} of {} patient calls answered",
        TASKS * 40
    );
    let opened = total_connections(&store).await - before;
    assert!(
        opened <= 1,
        "connections replaced after cancellations: {opened} opened"
    );
}

/// The default mode: a lone caller uses a pooled connection (no shared one
/// is even opened), overlapping callers share the multiplexed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_mode_multiplexes_only_overlapping_calls() {
    let server = memcached().await;
    let store = store_in(&server, Protocol::Meta, ConnectionMode::default());
    let run = SessionId::generate(16).unwrap();
    for k in 0..20 {
        let key = format!("{run}:{k}");
        store
            .set(&key, key.as_bytes(), 0, Ttl::NEVER)
            .await
            .unwrap();
        assert_eq!(
            store.get(&key).await.unwrap().unwrap().value,
            key.as_bytes()
        );
    }
    assert_eq!(
        store.stats()[0].multiplexed_connections,
        0,
        "lone calls pooled"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, run) = (store.clone(), run.clone());
        tasks.spawn(async move {
            for round in 0..ROUNDS {
                let key = format!("{run}:{}", (t + round) % 20);
                let got = store.get(&key).await.unwrap().expect("written before");
                assert_eq!(got.value, key.as_bytes(), "foreign answer");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert!(
        store.stats()[0].multiplexed_connections > 0,
        "{TASKS} overlapping tasks never shared a connection"
    );
}

//! Failure handling against real, killed and frozen memcached processes:
//! typed errors within the deadlines, down-marking with backoff, recovery,
//! and the rehash policy.

// Test code: a panic is the failure report. clippy's allow-unwrap-in-tests
// covers `#[test]` functions only, not the shared check functions here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use backend_memcached::{
    FailurePolicy, MemcachedConfig, MemcachedStore, Protocol, ServerSpec, ServerState,
};
use common::{Server, start_memcached};
use session_core::{Error, Store, Ttl};

const IO_TIMEOUT: Duration = Duration::from_millis(300);

fn store_on(servers: &[&Server], tweak: impl FnOnce(&mut MemcachedConfig)) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(
        servers
            .iter()
            .map(|s| ServerSpec::new("127.0.0.1", s.port))
            .collect(),
    );
    config.io_timeout = IO_TIMEOUT;
    config.connect_timeout = IO_TIMEOUT;
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    tweak(&mut config);
    MemcachedStore::connect(config).unwrap()
}

async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    // A hang is a failure too, not a stuck test run.
    let out = tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("call hung for 10 s");
    (out, start.elapsed())
}

fn is_unavailable_or_timeout(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Timeout { .. })
}

/// Polls `get` until it succeeds, for at most 10 s.
async fn wait_until_up(store: &MemcachedStore, key: &str) -> Duration {
    let start = Instant::now();
    loop {
        match store.get(key).await {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(is_unavailable_or_timeout(&e), "{e:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_server_then_restart(protocol: Protocol) {
    let mut s = start_memcached();
    let store = store_on(&[&s], |c| c.protocol = protocol);
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert!(store.get("k").await.unwrap().is_some());

    s.kill();
    let (r, took) = timed(store.get("k")).await;
    let e = r.unwrap_err();
    assert!(is_unavailable_or_timeout(&e), "{e:?}");
    assert!(
        took < IO_TIMEOUT * 2 + Duration::from_millis(500),
        "took {took:?}"
    );

    // Marked down: the next calls fail fast without I/O.
    let (r, took) = timed(store.set("k", b"v2", 0, Ttl::NEVER)).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert!(took < Duration::from_millis(150), "fail-fast took {took:?}");
    let stats = &store.stats()[0];
    assert_eq!(stats.marked_down, 1);
    assert!(matches!(stats.state, ServerState::Down { .. }), "{stats:?}");
    assert!(stats.errors >= 2);

    // Let a few retries fail so the backoff grows, then bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = store.get("k").await;
    s.restart();
    let took = wait_until_up(&store, "k").await;
    assert!(took < Duration::from_secs(3), "recovered after {took:?}");
    // A fresh server is empty; writes work again.
    assert!(store.get("k").await.unwrap().is_none());
    store.set("k", b"back", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"back");
    let stats = &store.stats()[0];
    assert_eq!(stats.state, ServerState::Up);
    assert_eq!(stats.marked_up, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_gives_typed_error_and_recovers_meta() {
    killed_server_then_restart(Protocol::Meta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_gives_typed_error_and_recovers_classic() {
    killed_server_then_restart(Protocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_times_out_and_recovers() {
    let s = start_memcached();
    let store = store_on(&[&s], |_| {});
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();

    s.pause();
    // On the pooled connection: written, never answered.
    let (r, took) = timed(store.get("k")).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(
        took >= IO_TIMEOUT - Duration::from_millis(20),
        "took {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let stats = &store.stats()[0];
    assert_eq!((stats.timeouts, stats.marked_down), (1, 1), "{stats:?}");

    // After the backoff, a probe on a new connection (the kernel still
    // accepts it) times out too, and the backoff doubles.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (r, took) = timed(store.set("k", b"v2", 0, Ttl::NEVER)).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took < Duration::from_secs(2));
    match store.stats()[0].state {
        ServerState::Down { backoff, .. } => assert_eq!(backoff, Duration::from_millis(200)),
        other => panic!("expected down, got {other:?}"),
    }

    s.resume();
    wait_until_up(&store, "k").await;
    let e = store.get("k").await.unwrap().unwrap();
    // The timed-out set may or may not have been applied: both are allowed.
    assert!(e.value == b"v" || e.value == b"v2");
    assert_eq!(store.stats()[0].state, ServerState::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_on_frozen_server_never_hangs() {
    let s = start_memcached();
    let store = store_on(&[&s], |c| c.pool_size = 2);
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    s.pause();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move { timed(store.get("k")).await });
    }
    while let Some(r) = tasks.join_next().await {
        let (r, took) = r.unwrap();
        let e = r.unwrap_err();
        assert!(is_unavailable_or_timeout(&e), "{e:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    s.resume();
    wait_until_up(&store, "k").await;
}

#[tokio::test]
async fn nothing_listening_is_unavailable_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store =
        MemcachedStore::from_url(&format!("memcached://127.0.0.1:{port}?timeout_ms=300")).unwrap();
    let (r, took) = timed(store.get("k")).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert!(took < Duration::from_millis(300));
    let (r, _) = timed(store.get_many(&["a", "b"])).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehash_moves_keys_off_a_dead_server() {
    let (a, mut b, c) = (start_memcached(), start_memcached(), start_memcached());
    let rehash = store_on(&[&a, &b, &c], |cfg| cfg.failure = FailurePolicy::Rehash);
    let fail = store_on(&[&a, &b, &c], |_| {});
    let keys: Vec<String> = (0..120).map(|i| format!("rehash:{i}")).collect();
    let dead_addr = b.addr.clone();
    let homeless: Vec<&String> = keys
        .iter()
        .filter(|k| rehash.server_for(k) == dead_addr)
        .collect();
    assert!(homeless.len() > 10, "some keys live on the server we kill");
    b.kill();

    for k in &keys {
        let (r, took) = timed(rehash.set(k, k.as_bytes(), 0, Ttl::NEVER)).await;
        r.unwrap();
        assert!(took < Duration::from_secs(1));
    }
    for k in &keys {
        assert_eq!(
            rehash.get(k).await.unwrap().unwrap().value,
            k.as_bytes(),
            "{k}"
        );
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let many = rehash.get_many(&refs).await.unwrap();
    assert!(
        many.iter()
            .zip(&keys)
            .all(|(e, k)| e.as_ref().unwrap().value == k.as_bytes())
    );
    let stats = rehash.stats();
    assert_eq!(stats[1].marked_down, 1);
    assert!(stats[0].requests > 0 && stats[2].requests > 0);

    // The Fail policy on the same servers: the dead server's keys error out,
    // the others are still served.
    for k in &keys {
        let r = fail.get(k).await;
        if fail.server_for(k) == dead_addr {
            assert!(matches!(r, Err(Error::Unavailable { .. })), "{k}: {r:?}");
        } else {
            assert_eq!(r.unwrap().unwrap().value, k.as_bytes());
        }
    }
    let r = fail.get_many(&refs).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
}

#[tokio::test]
async fn from_url_rejects_bad_config() {
    for url in ["memcached://h:1?bogus=1", "memcached://", "redis://h"] {
        let err = MemcachedStore::from_url(url).unwrap_err();
        let core: Error = err.into();
        assert!(matches!(core, Error::InvalidConfig(_)), "{url}: {core:?}");
    }
}

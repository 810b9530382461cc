//! Failure handling against a real Redis under test-support's faults
//! (`stop`/`start`, `pause`/`unpause`, `cut`/`heal`), on containers or
//! processes alike: typed errors within the deadlines, fail-fast while the
//! reconnect backoff runs, and recovery without recreating the store.
//!
//! Every wait is bounded: a call that hangs, or a recovery that never comes,
//! fails the test instead of stalling the run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_redis::{RedisConfig, RedisStore};
use common::{Server, redis, timed};
use session_core::{Delivery, Error, Store, Ttl};

/// The response and connect deadline of every store here.
const TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded two-core machine running tests in parallel.
const MARGIN: Duration = Duration::from_millis(700);
/// How long a recovery may take: the longest backoff (1 s) plus slack.
const RECOVERY: Duration = Duration::from_secs(4);

fn store_on(server: &Server, tweak: impl FnOnce(&mut RedisConfig)) -> RedisStore {
    let mut config = RedisConfig::from_url(&format!("redis://{}", server.addr())).unwrap();
    config.response_timeout = TIMEOUT;
    config.connect_timeout = TIMEOUT;
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    tweak(&mut config);
    RedisStore::connect(config).unwrap()
}

fn is_unavailable_or_timeout(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Timeout { .. })
}

/// Polls `get` until it succeeds, for at most [`RECOVERY`]; every failure
/// on the way must be typed. Returns how long it took.
async fn wait_until_up(store: &RedisStore, key: &str) -> Duration {
    let start = Instant::now();
    loop {
        match timed(store.get(key)).await.0 {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(is_unavailable_or_timeout(&e), "{e:?}"),
        }
        assert!(
            start.elapsed() < RECOVERY,
            "no recovery within {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_run_gives_typed_errors_then_recovers_the_same_store() {
    let s = redis().await;
    let store = store_on(&s, |_| {});
    store.set("k", b"v", 7, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().flags, 7);

    s.stop().await.unwrap();
    let (r, took) = timed(store.get("k")).await;
    let e = r.unwrap_err();
    assert!(is_unavailable_or_timeout(&e) && e.is_retryable(), "{e:?}");
    assert!(took < TIMEOUT * 2 + MARGIN, "took {took:?}");

    // The reconnect fails and starts the backoff: calls then fail fast,
    // without I/O, and say the request was not sent.
    let mut fast = None;
    for _ in 0..5 {
        let (r, took) = timed(store.set("k", b"v2", 0, Ttl::NEVER)).await;
        let e = r.unwrap_err();
        assert!(is_unavailable_or_timeout(&e), "{e:?}");
        if e.to_string().contains("next connect attempt") {
            assert_eq!(e.delivery(), Some(Delivery::NotSent), "{e:?}");
            fast = Some(took);
            break;
        }
    }
    let fast = fast.expect("no fail-fast error while the server was down");
    assert!(fast < Duration::from_millis(100), "fail-fast took {fast:?}");

    s.start().await.unwrap();
    let took = wait_until_up(&store, "k").await;
    assert!(took < RECOVERY, "recovered after {took:?}");
    // A restarted server has empty memory; writes work again on the same store.
    assert!(
        store.get("k").await.unwrap().is_none(),
        "data survived a restart"
    );
    store.set("k", b"back", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"back");
}

/// Per writer: calls that succeeded before any failure, failed, and
/// succeeded after a failure.
type Counts = Arc<Mutex<Vec<[u32; 3]>>>;

/// Polls until every writer's counts pass `done`, for at most [`RECOVERY`].
async fn wait_for_writers(counts: &Counts, what: &str, done: impl Fn(&[u32; 3]) -> bool) {
    let start = Instant::now();
    while !counts.lock().unwrap().iter().all(&done) {
        assert!(
            start.elapsed() < RECOVERY,
            "writers never saw {what}: {:?}",
            counts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_running_through_a_restart_see_only_typed_errors() {
    const WRITERS: usize = 4;
    let s = redis().await;
    // Several connections, so a restart breaks them all and the next
    // generation replaces them all (the other tests use the default one).
    let store = Arc::new(store_on(&s, |c| c.connections = 3));
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Counts = Arc::new(Mutex::new(vec![[0; 3]; WRITERS]));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, stop, counts) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&counts));
        writers.push(tokio::spawn(async move {
            let key = format!("w{w}");
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = timed(store.set(&key, &i.to_be_bytes(), 0, Ttl::NEVER))
                    .await
                    .0;
                {
                    let mut counts = counts.lock().unwrap();
                    let c = &mut counts[w];
                    match r {
                        Ok(_) if c[1] > 0 => c[2] += 1,
                        Ok(_) => c[0] += 1,
                        Err(e) => {
                            assert!(is_unavailable_or_timeout(&e), "writer {w}: {e:?}");
                            c[1] += 1;
                        }
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    wait_for_writers(&counts, "a successful write", |c| c[0] > 0).await;
    s.stop().await.unwrap();
    wait_for_writers(&counts, "a failed write", |c| c[1] > 0).await;
    s.start().await.unwrap();
    wait_for_writers(&counts, "a successful write after the restart", |c| {
        c[2] > 0
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_fails_each_call_by_its_timeout_and_keeps_data() {
    let s = redis().await;
    let store = store_on(&s, |_| {});
    store.set("k", b"kept", 0, Ttl::NEVER).await.unwrap();

    s.pause().await.unwrap();
    for call in 0..3 {
        let (r, took) = timed(store.get("k")).await;
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Timeout {
                    delivery: Delivery::Unknown,
                    ..
                }
            ),
            "call {call}: {e:?}"
        );
        assert!(
            took >= TIMEOUT,
            "call {call} failed before its timeout: {took:?}"
        );
        assert!(took < TIMEOUT + MARGIN, "call {call} took {took:?}");
    }
    // A conditional write times out the same way: its outcome is unknown.
    let (r, _) = timed(store.add("new", b"x", 0, Ttl::NEVER)).await;
    assert!(r.unwrap_err().is_timeout());

    s.unpause().await.unwrap();
    wait_until_up(&store, "k").await;
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_gives_typed_errors_then_heals_with_data() {
    let s = redis().await;
    let store = store_on(&s, |_| {});
    store
        .set("k", b"before the cut", 0, Ttl::NEVER)
        .await
        .unwrap();

    s.cut().await.unwrap();
    for _ in 0..3 {
        let (r, took) = timed(store.set("other", b"x", 0, Ttl::NEVER)).await;
        let e = r.unwrap_err();
        assert!(is_unavailable_or_timeout(&e), "{e:?}");
        assert!(took < TIMEOUT * 2 + MARGIN, "took {took:?}");
    }
    s.heal().await.unwrap();
    wait_until_up(&store, "k").await;
    assert_eq!(
        store.get("k").await.unwrap().unwrap().value,
        b"before the cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_at_all_is_typed_and_not_sent() {
    let dead = test_support::dead_port().unwrap();
    let store = RedisStore::from_url(&format!(
        "redis://127.0.0.1:{}?timeout_ms=300&connect_timeout_ms=300",
        dead.port()
    ))
    .unwrap();
    let (r, took) = timed(store.cas("k", b"v", 0, Ttl::NEVER, session_core::Version::new(1))).await;
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert_eq!(e.delivery(), Some(Delivery::NotSent), "{e:?}");
    assert!(took < TIMEOUT + MARGIN, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_at_the_size_limit() {
    let s = redis().await;
    for limit in [backend_redis::DEFAULT_MAX_VALUE_SIZE, 4 << 20] {
        let store = store_on(&s, |c| {
            c.max_value_size = limit;
            // Four MiB through the proxy on a loaded machine.
            c.response_timeout = Duration::from_secs(5);
        });
        let value: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
        let v1 = store
            .set("big", &value, 0x100, Ttl::seconds(60))
            .await
            .unwrap();
        let read = store.get("big").await.unwrap().unwrap();
        assert_eq!(
            (read.value.len(), read.flags, Some(read.version)),
            (limit, 0x100, v1)
        );
        assert!(
            read.value == value,
            "the value at the limit came back changed"
        );
        let cas = store
            .cas("big", &value, 0x100, Ttl::seconds(60), read.version)
            .await
            .unwrap();
        assert!(cas.is_stored(), "{cas:?}");

        // One byte more is refused before any I/O, and the old value stays.
        let over = vec![0u8; limit + 1];
        let e = store.set("big", &over, 0, Ttl::NEVER).await.unwrap_err();
        assert!(
            matches!(e, Error::ValueTooLarge { size, limit: l } if size == limit + 1 && l == limit),
            "{e:?}"
        );
        let e = store.add("fresh", &over, 0, Ttl::NEVER).await.unwrap_err();
        assert!(matches!(e, Error::ValueTooLarge { .. }), "{e:?}");
        assert_eq!(store.get("big").await.unwrap().unwrap().value.len(), limit);
        assert!(store.get("fresh").await.unwrap().is_none());
        assert!(store.delete("big").await.unwrap());
    }
}

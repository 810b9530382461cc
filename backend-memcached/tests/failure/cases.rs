//! The failure cases, compiled once per connection mode by `../failure.rs`
//! (its `multiplexed` and `pooled` modules each name their `MODE` and make
//! this file their `cases` module): each mode must fail and recover the
//! same way.

use super::MODE;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, dead_port, memcached, memcacheds, spec};
use backend_memcached::{FailurePolicy, MemcachedConfig, MemcachedStore, Protocol, ServerState};
use session_core::{Error, Store, Ttl};

/// The I/O and connect deadline of every store here.
const IO_TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded two-core machine running tests in parallel.
const MARGIN: Duration = Duration::from_millis(500);
/// How long a recovery may take: the longest backoff (1 s) plus slack.
const RECOVERY: Duration = Duration::from_secs(3);

fn store_on(servers: &[&Server], tweak: impl FnOnce(&mut MemcachedConfig)) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(servers.iter().map(|s| spec(s)).collect());
    config.io_timeout = IO_TIMEOUT;
    config.connect_timeout = IO_TIMEOUT;
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    config.mode = MODE;
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

/// Polls the server's state until its retry is due (the backoff ran out),
/// for at most [`RECOVERY`]; it must be down meanwhile.
async fn wait_until_probe_due(store: &MemcachedStore) {
    let start = Instant::now();
    loop {
        match store.stats()[0].state {
            ServerState::Down { retry_in, .. } if retry_in.is_zero() => return,
            ServerState::Down { .. } => {}
            ServerState::Up => panic!("expected the server to be marked down"),
            other => panic!("unexpected state {other:?}"),
        }
        assert!(
            start.elapsed() < RECOVERY,
            "retry not due after {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `get` until it succeeds, for at most [`RECOVERY`]; every failure on
/// the way must be typed. Returns how long it took.
async fn wait_until_up(store: &MemcachedStore, key: &str) -> Duration {
    let start = Instant::now();
    loop {
        match store.get(key).await {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(is_unavailable_or_timeout(&e), "{e:?}"),
        }
        assert!(
            start.elapsed() < RECOVERY,
            "no recovery within {RECOVERY:?}: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stopped_server_then_start(protocol: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], |c| c.protocol = protocol);
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert!(store.get("k").await.unwrap().is_some());

    s.stop().await.unwrap();
    let (r, took) = timed(store.get("k")).await;
    let e = r.unwrap_err();
    assert!(is_unavailable_or_timeout(&e), "{e:?}");
    assert!(took < IO_TIMEOUT * 2 + MARGIN, "took {took:?}");

    // Marked down: the next calls fail fast without I/O.
    let (r, took) = timed(store.set("k", b"v2", 0, Ttl::NEVER)).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert!(took < Duration::from_millis(150), "fail-fast took {took:?}");
    let stats = &store.stats()[0];
    assert_eq!(stats.marked_down, 1);
    assert!(matches!(stats.state, ServerState::Down { .. }), "{stats:?}");
    assert!(stats.errors >= 2);

    // Let a retry fail so the backoff grows, then bring the server back.
    wait_until_probe_due(&store).await;
    let (r, _) = timed(store.get("k")).await;
    assert!(r.is_err(), "the probe of a stopped server fails: {r:?}");
    match store.stats()[0].state {
        ServerState::Down { backoff, .. } => assert_eq!(backoff, Duration::from_millis(200)),
        other => panic!("expected down, got {other:?}"),
    }
    s.start().await.unwrap();
    let took = wait_until_up(&store, "k").await;
    assert!(took < RECOVERY, "recovered after {took:?}");
    // A started server has empty memory; writes work again.
    assert!(
        store.get("k").await.unwrap().is_none(),
        "data survived a stop"
    );
    store.set("k", b"back", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"back");
    let stats = &store.stats()[0];
    assert_eq!(stats.state, ServerState::Up);
    assert_eq!(stats.marked_up, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_gives_typed_error_and_comes_back_empty_meta() {
    stopped_server_then_start(Protocol::Meta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_gives_typed_error_and_comes_back_empty_classic() {
    stopped_server_then_start(Protocol::Classic).await;
}

async fn restart_behind_idle_connection(protocol: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], |c| c.protocol = protocol);
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.stats()[0].idle_connections, 1);
    // `start` on a running server restarts it: the pooled connection is
    // reset while idle, and the server comes back empty.
    s.start().await.unwrap();
    // The reset idle connection fails before any answer byte, so the call
    // is retried once on a fresh connection: no error reaches the caller.
    let (r, _) = timed(store.get("k")).await;
    assert!(r.unwrap().is_none(), "a restarted server is empty");
    store.set("k", b"again", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"again");
    let stats = &store.stats()[0];
    assert_eq!((stats.errors, stats.marked_down), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_behind_an_idle_connection_is_transparent_meta() {
    restart_behind_idle_connection(Protocol::Meta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_behind_an_idle_connection_is_transparent_classic() {
    restart_behind_idle_connection(Protocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_and_recovers() {
    let s = memcached().await;
    let store = store_on(&[&s], |_| {});
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();

    s.pause().await.unwrap();
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

    // After the backoff, a probe on a new connection (still accepted: only
    // the server process is frozen) times out too, and the backoff doubles.
    wait_until_probe_due(&store).await;
    let (r, took) = timed(store.set("k", b"v2", 0, Ttl::NEVER)).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took < Duration::from_secs(2));
    match store.stats()[0].state {
        ServerState::Down { backoff, .. } => assert_eq!(backoff, Duration::from_millis(200)),
        other => panic!("expected down, got {other:?}"),
    }

    s.unpause().await.unwrap();
    wait_until_up(&store, "k").await;
    let e = store.get("k").await.unwrap().unwrap();
    // The timed-out set may or may not have been applied: both are allowed,
    // but a pause loses no data.
    assert!(e.value == b"v" || e.value == b"v2");
    assert_eq!(store.stats()[0].state, ServerState::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_on_paused_server_never_hangs() {
    let s = memcached().await;
    let store = store_on(&[&s], |c| c.pool_size = 2);
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    s.pause().await.unwrap();
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
    s.unpause().await.unwrap();
    wait_until_up(&store, "k").await;
}

/// What the background client of the cut test saw for one call.
struct Call {
    result: Result<(), Error>,
    took: Duration,
    ended: Instant,
}

/// Waits, at most 5 s, until the calls seen so far satisfy `done`.
async fn wait_for(calls: &Mutex<Vec<Call>>, what: &str, done: impl Fn(&[Call]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if done(&calls.lock().unwrap()) {
            return;
        }
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_mid_run_gives_typed_errors_then_heals_with_data() {
    let s = memcached().await;
    let store = store_on(&[&s], |_| {});
    store
        .set("kept", b"before the cut", 0, Ttl::NEVER)
        .await
        .unwrap();

    // A client running all along: one write per iteration, every call timed.
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let client = {
        let (store, calls, running) = (store.clone(), Arc::clone(&calls), Arc::clone(&running));
        tokio::spawn(async move {
            let mut i = 0u32;
            while running.load(Ordering::SeqCst) {
                let key = format!("run:{i}");
                let (r, took) = timed(store.set(&key, key.as_bytes(), 0, Ttl::NEVER)).await;
                calls.lock().unwrap().push(Call {
                    result: r.map(drop),
                    took,
                    ended: Instant::now(),
                });
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    wait_for(&calls, "5 writes before the cut", |c| {
        c.iter().filter(|c| c.result.is_ok()).count() >= 5
    })
    .await;
    let cut_at = Instant::now();
    s.cut().await.unwrap();
    wait_for(&calls, "3 failed writes after the cut", |c| {
        c.iter()
            .filter(|c| c.ended > cut_at && c.result.is_err())
            .count()
            >= 3
    })
    .await;
    // A read during the cut fails too, typed and within the deadline.
    let (r, took) = timed(store.get("kept")).await;
    let e = r.unwrap_err();
    assert!(is_unavailable_or_timeout(&e), "{e:?}");
    assert!(took < IO_TIMEOUT + MARGIN, "took {took:?}");

    s.heal().await.unwrap();
    let healed_at = Instant::now();
    wait_for(&calls, "a successful write after the heal", |c| {
        c.iter().any(|c| c.ended > healed_at && c.result.is_ok())
    })
    .await;
    let recovered_after = healed_at.elapsed();
    running.store(false, Ordering::SeqCst);
    client.await.unwrap();

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    for call in &calls {
        assert!(
            call.took < IO_TIMEOUT + MARGIN,
            "a call took {:?}",
            call.took
        );
        if let Err(e) = &call.result {
            assert!(is_unavailable_or_timeout(e), "{e:?}");
            assert!(call.ended > cut_at, "a call failed before the cut: {e:?}");
        }
    }
    // The backoff is at most 1 s, so the first probe after the heal comes
    // within about that.
    assert!(
        recovered_after < Duration::from_secs(1) + MARGIN,
        "recovered {recovered_after:?} after the heal"
    );
    // A cut is not a restart: the server kept everything it had, and every
    // write the client saw succeed is there.
    assert_eq!(
        store.get("kept").await.unwrap().unwrap().value,
        b"before the cut"
    );
    for (i, call) in calls.iter().enumerate() {
        if call.result.is_ok() {
            let key = format!("run:{i}");
            let entry = store.get(&key).await.unwrap();
            assert_eq!(entry.unwrap().value, key.as_bytes(), "{key}");
        }
    }
    let stats = &store.stats()[0];
    assert_eq!(stats.state, ServerState::Up);
    assert!(stats.marked_down >= 1 && stats.marked_up >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_times_out_within_the_io_timeout() {
    let s = memcached().await;
    let store = store_on(&[&s], |_| {});
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();

    s.blackhole().await.unwrap();
    // On the pooled connection: the request goes nowhere, nothing comes back.
    let (r, took) = timed(store.get("k")).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(
        took >= IO_TIMEOUT - Duration::from_millis(20),
        "took {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let stats = &store.stats()[0];
    assert_eq!((stats.timeouts, stats.marked_down), (1, 1), "{stats:?}");

    // Half-open: after the backoff, the probe's new connection is accepted,
    // so it is the request, not the connect, that times out.
    wait_until_probe_due(&store).await;
    let (r, took) = timed(store.get("k")).await;
    match r {
        Err(Error::Timeout { operation, .. }) => assert_ne!(operation, "connect"),
        other => panic!("expected a request timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");

    s.heal().await.unwrap();
    let took = wait_until_up(&store, "k").await;
    assert!(took < RECOVERY, "recovered after {took:?}");
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
    store.set("k", b"v2", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_below_the_io_timeout_is_served_above_it_times_out() {
    let s = memcached().await;
    let store = store_on(&[&s], |_| {});
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();

    // 50 ms each way: a round trip of about 100 ms, well inside 300 ms.
    s.set_latency(Duration::from_millis(50)).await.unwrap();
    let (r, took) = timed(store.get("k")).await;
    assert_eq!(r.unwrap().unwrap().value, b"v");
    assert!(
        took >= Duration::from_millis(100),
        "latency was applied: {took:?}"
    );
    assert!(took < IO_TIMEOUT, "took {took:?}");

    // 400 ms each way: beyond the deadline, a typed timeout at the deadline.
    s.set_latency(Duration::from_millis(400)).await.unwrap();
    let (r, took) = timed(store.get("k")).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(
        took >= IO_TIMEOUT - Duration::from_millis(20),
        "took {took:?}"
    );
    assert!(took < IO_TIMEOUT + MARGIN, "took {took:?}");

    s.set_latency(Duration::ZERO).await.unwrap();
    let took = wait_until_up(&store, "k").await;
    assert!(took < RECOVERY, "recovered after {took:?}");
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
    assert_eq!(store.stats()[0].state, ServerState::Up);
}

#[tokio::test]
async fn nothing_listening_is_unavailable_fast() {
    let dead = dead_port();
    let store = MemcachedStore::from_url(&format!(
        "memcached://127.0.0.1:{}?timeout_ms=300",
        dead.port
    ))
    .unwrap();
    let (r, took) = timed(store.get("k")).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert!(took < Duration::from_millis(300));
    let (r, _) = timed(store.get_many(&["a", "b"])).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehash_moves_keys_off_a_stopped_server() {
    let servers = memcacheds(3).await;
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    // A long backoff keeps the stopped server down for the whole test: a
    // probe of it in the middle (after the default 100 ms) would fail a
    // write typed, which is right but not what this test is about.
    let rehash = store_on(&[a, b, c], |cfg| {
        cfg.failure = FailurePolicy::Rehash;
        cfg.backoff_initial = Duration::from_secs(60);
        cfg.backoff_max = Duration::from_secs(60);
    });
    let fail = store_on(&[a, b, c], |_| {});
    let keys: Vec<String> = (0..120).map(|i| format!("rehash:{i}")).collect();
    let dead_addr = spec(b).addr();
    let homeless: Vec<&String> = keys
        .iter()
        .filter(|k| rehash.server_for(k) == dead_addr)
        .collect();
    assert!(homeless.len() > 10, "some keys live on the server we stop");
    // Everything is written while all servers are up.
    for k in &keys {
        rehash.set(k, k.as_bytes(), 0, Ttl::NEVER).await.unwrap();
    }
    b.stop().await.unwrap();

    // A stopped server behind the proxy accepts the connect and then resets
    // it. When the reset comes before the request is sent, the connect
    // fails and the call moves to the next server; when after, the request
    // may have reached the server, so the call is not moved (it could be
    // applied twice) and fails typed. Either way the server is marked down,
    // and from then on its keys rehash without I/O to it.
    let (r, took) = timed(rehash.set(homeless[0], b"x", 0, Ttl::NEVER)).await;
    assert!(matches!(r, Ok(_) | Err(Error::Unavailable { .. })), "{r:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(rehash.stats()[1].marked_down, 1);

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

    // The Fail policy on the same servers: the stopped server's keys error
    // out, the others are still served.
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

/// Under `Rehash`, a read whose server breaks the connection after the
/// request went out is asked of the next server, not failed: unlike a write,
/// a read sent twice changes nothing. With a 1 ms backoff nearly every read
/// below probes the stopped server again (the proxy accepts, then resets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehash_reads_move_on_when_a_probe_breaks_after_sending() {
    let servers = memcacheds(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let rehash = store_on(&[a, b], |cfg| {
        cfg.failure = FailurePolicy::Rehash;
        cfg.backoff_initial = Duration::from_millis(1);
        cfg.backoff_max = Duration::from_millis(1);
    });
    let dead_addr = spec(b).addr();
    let homeless: Vec<String> = (0..200)
        .map(|i| format!("probe:{i}"))
        .filter(|k| rehash.server_for(k) == dead_addr)
        .take(20)
        .collect();
    assert!(homeless.len() == 20, "keys homed on the server we stop");
    b.stop().await.unwrap();
    for k in &homeless {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(2)).await; // let the backoff pass
            let r = rehash.get(k).await;
            assert!(matches!(r, Ok(None)), "{k}: {r:?}");
        }
    }
    let refs: Vec<&str> = homeless.iter().map(String::as_str).collect();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let r = rehash.get_many(&refs).await;
        assert!(
            matches!(&r, Ok(v) if v.iter().all(Option::is_none)),
            "{r:?}"
        );
    }
    assert!(rehash.stats()[1].errors > 0, "the stopped server was asked");
}

#[tokio::test]
async fn from_url_rejects_bad_config() {
    for url in ["memcached://h:1?bogus=1", "memcached://", "redis://h"] {
        let err = MemcachedStore::from_url(url).unwrap_err();
        let core: Error = err.into();
        assert!(matches!(core, Error::InvalidConfig(_)), "{url}: {core:?}");
    }
}

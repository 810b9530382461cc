//! Test helpers: Redis servers from `test-support` (containers or local
//! processes, as `MEMORYCACHED_PROVIDER` says; `auto` when unset), each
//! behind test-support's proxy so its address survives `stop`/`start` and
//! the network faults behave the same on both providers. A missing binary,
//! image or Docker daemon FAILS the test with what to install or set.

// Each test binary uses a subset of these helpers; a helper that cannot do
// its job panics, and that panic is the failure report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

pub use test_support::Server;
use test_support::{PROVIDER_ENV, Provider};

/// A Redis without persistence, started and ready.
pub async fn redis() -> Server {
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    provider
        .redis()
        .await
        .unwrap_or_else(|e| panic!("starting redis ({}): {e}", provider.description()))
}

/// Runs `f`, failing the test if it takes 10 s (a hang is a failure, not a
/// stuck run); returns its output and how long it took.
pub async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("call hung for 10 s");
    (out, start.elapsed())
}

/// One command on a fresh plain connection to `addr` (for setting up the
/// server: ACL users, passwords, raw values).
pub async fn raw(addr: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://{addr}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

/// Which master serves `key`, by asking the cluster (`CLUSTER KEYSLOT`,
/// then `CLUSTER SLOTS`): the port it announces.
pub async fn owner(addr: &str, key: &str) -> i64 {
    let slot = match raw(addr, &["CLUSTER", "KEYSLOT", key]).await.unwrap() {
        redis::Value::Int(s) => s,
        other => panic!("KEYSLOT answered {other:?}"),
    };
    let slots = raw(addr, &["CLUSTER", "SLOTS"]).await.unwrap();
    let redis::Value::Array(ranges) = slots else {
        panic!("CLUSTER SLOTS answered {slots:?}")
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        if let (redis::Value::Int(a), redis::Value::Int(b), redis::Value::Array(master)) =
            (&parts[0], &parts[1], &parts[2])
            && (*a..=*b).contains(&slot)
            && let redis::Value::Int(port) = master[1]
        {
            return port;
        }
    }
    panic!("no master for slot {slot}")
}

/// One key per master of the cluster at `addrs` (in node order).
pub async fn one_key_per_master(addrs: &[String]) -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; addrs.len()];
    for i in 0..1000 {
        let key = format!("k{i}");
        let port = owner(&addrs[0], &key).await;
        let node = addrs
            .iter()
            .position(|a| a.ends_with(&format!(":{port}")))
            .unwrap();
        keys[node].get_or_insert(key);
        if keys.iter().all(Option::is_some) {
            break;
        }
    }
    keys.into_iter()
        .map(|k| k.expect("a master owns none of 1000 keys"))
        .collect()
}

/// Reads `keys[i]` for every master `i` but `down` until each answers with
/// its value. A call may fail up to `max_failures` times, with an error
/// `allowed` accepts (the client refreshing its slot map while one master
/// is out), and no more.
pub async fn others_keep_serving(
    store: &backend_redis::RedisStore,
    keys: &[String],
    down: usize,
    max_failures: usize,
    allowed: fn(&session_core::Error) -> bool,
) {
    use session_core::Store as _;
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| *i != down) {
        let mut failures = 0;
        loop {
            match timed(store.get(key)).await.0 {
                Ok(found) => {
                    assert!(found.is_some(), "key of master {i} while {down} is out");
                    break;
                }
                Err(e) => {
                    assert!(allowed(&e), "master {i} while {down} is out: {e:?}");
                    failures += 1;
                    assert!(failures <= max_failures, "master {i} kept failing: {e:?}");
                }
            }
        }
    }
}

/// Writes `value` under every key, retrying retryable errors for at most
/// `limit` per key: the arrange step of the tests that run a cluster of
/// their own. A cluster that just formed is answered by a client that
/// still has to connect to every master and read the slot map, and on a
/// loaded CI machine that first call can overrun a short test timeout;
/// what those tests check starts after this.
pub async fn seed(
    store: &backend_redis::RedisStore,
    keys: &[String],
    value: &[u8],
    limit: Duration,
) {
    use session_core::Store as _;
    for key in keys {
        let start = Instant::now();
        loop {
            match timed(store.set(key, value, 0, session_core::Ttl::NEVER))
                .await
                .0
            {
                Ok(_) => break,
                Err(e) => assert!(e.is_retryable(), "seeding {key}: {e:?}"),
            }
            assert!(
                start.elapsed() < limit,
                "seeding {key}: the cluster never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `key` until the store answers for it (retryable errors meanwhile,
/// nothing else), for at most `limit`; returns what it read.
pub async fn until_served(
    store: &backend_redis::RedisStore,
    key: &str,
    limit: Duration,
) -> Option<session_core::Entry> {
    use session_core::Store as _;
    let start = Instant::now();
    loop {
        match timed(store.get(key)).await.0 {
            Ok(found) => return found,
            Err(e) => assert!(e.is_retryable(), "{e:?}"),
        }
        assert!(start.elapsed() < limit, "{key}'s master never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

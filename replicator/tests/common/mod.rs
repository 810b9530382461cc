//! Test helpers: memcached servers from `test-support` (containers or local
//! processes, as `MEMORYCACHED_PROVIDER` says), a raw client to write and
//! read them, snapshots of a server's whole content, and polling with a
//! deadline (never a fixed sleep).

// Each test binary uses a subset; a helper that cannot do its job panics,
// and that panic is the test's failure report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use backend_memcached::raw::RawConnection;
use replicator::{Config, Topology};
use session_core::Ttl;
use session_core::codec::FLAGS_REPLICATED;
pub use test_support::Server;
use test_support::{PROVIDER_ENV, Provider};

/// `n` memcached servers (64 MB), started concurrently.
pub async fn memcacheds(n: usize) -> Vec<Server> {
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            provider
                .memcached()
                .await
                .unwrap_or_else(|e| panic!("starting memcached ({}): {e}", provider.description())),
        );
    }
    out
}

/// A raw connection to `server`.
pub async fn conn(server: &Server) -> RawConnection {
    RawConnection::connect(&server.addr(), Duration::from_secs(5))
        .await
        .unwrap()
}

/// `flush_all` on `server`, as an operator would send it.
pub async fn flush_all(server: &Server) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(b"flush_all\r\n").await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"OK\r\n");
}

/// A config that reacts fast: short backoffs and stats polls.
pub fn fast(topology: Topology) -> Config {
    let mut c = Config::new(topology);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c.stats_poll = Duration::from_millis(100);
    c.io_timeout = Duration::from_secs(2);
    c.resync_interval = Some(Duration::from_millis(700));
    c
}

/// What one item looks like for comparisons: value, flags (without the
/// replication marker when `strip_marker`), and whether it expires.
pub type Snapshot = BTreeMap<String, (Vec<u8>, u32, bool)>;

/// The keys metadump lists on `server`, united over three dumps (one dump
/// can miss items memcached holds or moves at that instant).
pub async fn dumped_keys(server: &Server) -> BTreeSet<String> {
    let mut c = conn(server).await;
    let mut keys = BTreeSet::new();
    for _ in 0..3 {
        keys.extend(c.dump_keys().await.unwrap().into_iter().map(|k| k.key));
    }
    // The replicator's own key, different on every node by design.
    keys.remove(replicator::RUN_MARKER);
    keys
}

/// The items of `server` under `keys` (read with `mg`, so exact).
pub async fn read(server: &Server, keys: &BTreeSet<String>, strip_marker: bool) -> Snapshot {
    let mut c = conn(server).await;
    let keys: Vec<&String> = keys.iter().collect();
    let mut snap = Snapshot::new();
    for chunk in keys.chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
        let items = c.get_many(&refs).await.unwrap();
        for (k, item) in chunk.iter().zip(items) {
            if let Some(it) = item {
                let flags = if strip_marker {
                    it.flags & !FLAGS_REPLICATED
                } else {
                    it.flags
                };
                snap.insert((*k).clone(), (it.value, flags, it.ttl != Ttl::NEVER));
            }
        }
    }
    snap
}

/// Every item of `server` that its dumps list.
pub async fn snapshot(server: &Server, strip_marker: bool) -> Snapshot {
    let keys = dumped_keys(server).await;
    read(server, &keys, strip_marker).await
}

/// Polls `check` until it returns true, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every server holds the same items, then returns them. The
/// keys compared are those any server's dumps list plus `known` (keys the
/// test wrote), each read with `mg` on every server.
pub async fn converged_on(
    servers: &[&Server],
    strip_marker: bool,
    limit: Duration,
    known: &[String],
) -> Snapshot {
    let start = Instant::now();
    loop {
        let mut keys: BTreeSet<String> = known.iter().cloned().collect();
        for s in servers {
            keys.extend(dumped_keys(s).await);
        }
        let first = read(servers[0], &keys, strip_marker).await;
        let mut all = true;
        let mut diff = String::new();
        for s in &servers[1..] {
            let other = read(s, &keys, strip_marker).await;
            if other != first {
                all = false;
                let only_a: Vec<_> = first
                    .keys()
                    .filter(|k| !other.contains_key(*k))
                    .take(5)
                    .collect();
                let only_b: Vec<_> = other
                    .keys()
                    .filter(|k| !first.contains_key(*k))
                    .take(5)
                    .collect();
                let differ: Vec<_> = first
                    .iter()
                    .filter(|(k, v)| other.get(*k).is_some_and(|o| o != *v))
                    .map(|(k, _)| k)
                    .take(5)
                    .collect();
                diff = format!(
                    "{} vs {} items; only first {only_a:?}; only other {only_b:?}; differ {differ:?}",
                    first.len(),
                    other.len()
                );
            }
        }
        if all {
            return first;
        }
        assert!(
            start.elapsed() < limit,
            "servers did not converge within {limit:?}: {diff}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`converged_on`] with no known keys.
pub async fn converged(servers: &[&Server], strip_marker: bool, limit: Duration) -> Snapshot {
    converged_on(servers, strip_marker, limit, &[]).await
}

/// `prefix0`, `prefix1`, ... `prefix{n-1}`.
pub fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A server's counter from `stats`.
pub async fn stat(server: &Server, name: &str) -> u64 {
    let mut c = conn(server).await;
    c.stats()
        .await
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

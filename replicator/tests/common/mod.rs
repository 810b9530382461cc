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
    // The replicator's own keys: the run marker, different on every node
    // by design, and the heartbeat, on sources only.
    keys.remove(replicator::RUN_MARKER);
    keys.remove(replicator::HEARTBEAT_KEY);
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

/// `n` memcached 1.6.38 servers (Debian 13's, with `watch deletions`;
/// always local processes: `bash .ci/memcached-trixie` installs it).
pub async fn memcacheds_feed(n: usize) -> Vec<Server> {
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            provider
                .memcached_feed(test_support::MemcachedOptions::default())
                .await
                .unwrap_or_else(|e| panic!("starting memcached 1.6.38: {e}")),
        );
    }
    out
}

/// A memcached of the system's version (1.6.18 on Debian 12) with `opts`.
pub async fn memcached_with(opts: test_support::MemcachedOptions) -> Server {
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    provider
        .memcached_with(opts)
        .await
        .unwrap_or_else(|e| panic!("starting memcached ({}): {e}", provider.description()))
}

/// `count` keys `prefix{i}` = `v{i}` written on `server`, 8 connections
/// at once.
pub async fn fill(server: &Server, prefix: &str, count: usize) {
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut c = conn(server).await;
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(writers) {
                c.set(
                    &format!("{prefix}{i}"),
                    format!("v{i}").as_bytes(),
                    0,
                    Ttl::NEVER,
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A plain-text connection, as Perl's Cache::Memcached speaks: `delete
/// KEY\r\n`, no meta command.
pub struct TextClient(tokio::net::TcpStream);

impl TextClient {
    /// Connects to `server`.
    pub async fn connect(server: &Server) -> TextClient {
        TextClient(tokio::net::TcpStream::connect(server.addr()).await.unwrap())
    }

    /// `delete KEY`; true for `DELETED`, false for `NOT_FOUND`.
    pub async fn delete(&mut self, key: &str) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.0
            .write_all(format!("delete {key}\r\n").as_bytes())
            .await
            .unwrap();
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            let mut byte = [0u8; 1];
            self.0.read_exact(&mut byte).await.unwrap();
            line.push(byte[0]);
        }
        match &line[..] {
            b"DELETED\r\n" => true,
            b"NOT_FOUND\r\n" => false,
            other => panic!("delete {key}: {:?}", String::from_utf8_lossy(other)),
        }
    }
}

/// The `q`-th quantile (0..=1) of `samples`, nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Deletes each of `keys` on `from` with a plain `delete` (one at a time,
/// `gap` apart) and measures how long each takes to be gone from `to`
/// (read every `poll`, for at most `limit` each).
pub async fn delete_delays(
    from: &Server,
    to: &Server,
    keys: &[String],
    gap: Duration,
    poll: Duration,
    limit: Duration,
) -> Vec<Duration> {
    let mut text = TextClient::connect(from).await;
    let mut reader = conn(to).await;
    let mut delays = Vec::new();
    for key in keys {
        assert!(
            reader.get_many(&[key.as_str()]).await.unwrap()[0].is_some(),
            "{key} is not on the other side before its delete"
        );
        let start = Instant::now();
        assert!(text.delete(key).await, "{key} was not on {}", from.addr());
        loop {
            if reader.get_many(&[key.as_str()]).await.unwrap()[0].is_none() {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "{key} still on {} {limit:?} after its delete on {}",
                to.addr(),
                from.addr()
            );
            tokio::time::sleep(poll).await;
        }
        delays.push(start.elapsed());
        tokio::time::sleep(gap).await;
    }
    delays
}

/// A loopback port nothing listens on now (bound, then let go), for the
/// daemon's metrics server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The whole answer to `GET path` on `addr` (2 s read timeout), or `None`
/// while nothing answers there.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

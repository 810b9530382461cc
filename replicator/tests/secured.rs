//! The replicator between memcached servers that require TLS (`-Z`, with a
//! client certificate) and authentication (`-Y`), every node given as a
//! `memcacheds://USER:PASSWORD@H:P?ca=..&cert=..&key=..` URL: the binary
//! master -> slave (`--master`/`--slave`), the library master <-> master
//! (peers), writes and deletes reaching the other side with their values
//! and flags, and the password in none of the links' names, `/metrics`
//! or the daemon's logs. Then a session sealed by session-core on the
//! master: the slave holds byte-identical value and flags (the replicator
//! copies sealed bytes untouched, it holds no key), and `Sessions` on the
//! slave with the same keys opens it.
//!
//! The servers come from the provider the run uses
//! (`MEMORYCACHED_PROVIDER`), certificates made by `openssl` through
//! `test_support::tls`. memcached 1.6.18 serves `watch` over TLS (checked:
//! both feeds connected), but the assertions are on final keys and values, so a
//! comparison-only run would pass them too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backend_memcached::MemcachedStore;
use backend_memcached::raw::RawConnection;
use common::{eventually, fast, free_port, http_get, keys};
use replicator::{Replicator, Topology};
use session_core::codec::{FLAGS_REPLICATED, FLAGS_SEALED};
use session_core::{Keyring, SealConfig, Sessions, SessionsConfig, Store, Ttl};
use test_support::tls::Certificates;
use test_support::{MemcachedOptions, MemcachedSecurity, MemcachedTls, Provider, Server};

const USER: &str = "repl";
/// Distinctive, so a leak is found by a plain substring search.
const PASSWORD: &str = "Repl-Pw-5b8e2a71-never-shown";
const LIMIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_replicator");
const SEAL_KEY: &str = "7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Certificates, and TLS+auth servers that trust them.
struct World {
    certs: Certificates,
    servers: Vec<Server>,
}

async fn world(n: usize) -> World {
    // The library's logs, shown with a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_test_writer()
        .try_init();
    let certs = Certificates::new("repl-tls").unwrap();
    certs
        .add_cert("client", "ca", 1, Certificates::CLIENT_EXT)
        .unwrap();
    std::fs::write(certs.path("auth"), format!("{USER}:{PASSWORD}\n")).unwrap();
    let provider = Provider::from_env().await.unwrap();
    let mut servers = Vec::new();
    for _ in 0..n {
        let security = MemcachedSecurity {
            tls: Some(MemcachedTls {
                chain_cert: certs.path("server.pem"),
                key: certs.path("server.key"),
                client_ca: Some(certs.path("ca.pem")),
            }),
            auth_file: Some(certs.path("auth")),
        };
        servers.push(
            provider
                .memcached_secured(MemcachedOptions::default(), security)
                .await
                .unwrap_or_else(|e| panic!("secured memcached ({}): {e}", provider.description())),
        );
    }
    World { certs, servers }
}

impl World {
    /// Server `i`'s URL: TLS, the client certificate, the credentials.
    fn url(&self, i: usize) -> String {
        format!(
            "memcacheds://{USER}:{PASSWORD}@{}?ca={}&cert={}&key={}&connect_timeout_ms=3000&timeout_ms=3000",
            self.servers[i].addr(),
            self.certs.url_path("ca.pem"),
            self.certs.url_path("client.pem"),
            self.certs.url_path("client.key"),
        )
    }

    async fn conn(&self, i: usize) -> RawConnection {
        RawConnection::connect(&self.url(i), Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// Value and flags (replication marker removed) of `keys` on server `i`.
    async fn read(&self, i: usize, keys: &BTreeSet<String>) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut c = self.conn(i).await;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut out = BTreeMap::new();
        for chunk in refs.chunks(200) {
            for (k, item) in chunk.iter().zip(c.get_many(chunk).await.unwrap()) {
                if let Some(it) = item {
                    out.insert((*k).to_owned(), (it.value, it.flags & !FLAGS_REPLICATED));
                }
            }
        }
        out
    }

    /// Waits until servers `a` and `b` hold the same items under `known`
    /// plus every key either lists; returns them.
    async fn converged(
        &self,
        a: usize,
        b: usize,
        known: &[String],
    ) -> BTreeMap<String, (Vec<u8>, u32)> {
        let start = Instant::now();
        loop {
            let mut keys: BTreeSet<String> = known.iter().cloned().collect();
            for i in [a, b] {
                let listed = self.conn(i).await.dump_keys().await.unwrap();
                keys.extend(listed.into_iter().map(|k| k.key));
            }
            // The replicator's own keys, per node by design.
            keys.remove(replicator::RUN_MARKER);
            keys.remove(replicator::HEARTBEAT_KEY);
            let (left, right) = (self.read(a, &keys).await, self.read(b, &keys).await);
            if left == right {
                return left;
            }
            if start.elapsed() > LIMIT {
                let only_left: Vec<_> = left
                    .keys()
                    .filter(|k| !right.contains_key(*k))
                    .take(5)
                    .collect();
                let only_right: Vec<_> = right
                    .keys()
                    .filter(|k| !left.contains_key(*k))
                    .take(5)
                    .collect();
                let differ: Vec<_> = left
                    .iter()
                    .filter(|(k, v)| right.get(*k).is_some_and(|o| o != *v))
                    .map(|(k, _)| k)
                    .take(5)
                    .collect();
                panic!(
                    "not converged within {LIMIT:?}: {} vs {} items; only on {a}: {only_left:?}; only on {b}: {only_right:?}; differ: {differ:?}",
                    left.len(),
                    right.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The daemon, killed on drop (a failed assertion must not leave it running).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary, `--master URL --slave URL`: sets and deletes on the master
/// reach the slave over TLS+auth; `/metrics` and the logs never show the
/// password; SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_replicates_master_to_slave_over_tls_and_auth() {
    let w = world(2).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon(
        Command::new(BIN)
            .args(["--master", &w.url(0), "--slave", &w.url(1)])
            .args(["--resync-interval", "1", "--metrics", &metrics])
            .env("RUST_LOG", "debug")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut daemon.0;
    let mut mc = w.conn(0).await;
    for i in 0..50 {
        mc.set(
            &format!("t{i}"),
            format!("tls-{i}").as_bytes(),
            0x100 + i,
            Ttl::NEVER,
        )
        .await
        .unwrap();
    }
    let known = keys("t", 50);
    let snap = w.converged(0, 1, &known).await;
    assert_eq!(snap.len(), 50, "{:?}", snap.keys());
    assert_eq!(snap["t7"], (b"tls-7".to_vec(), 0x107));
    for i in 0..10 {
        assert!(mc.delete(&format!("t{i}")).await.unwrap());
    }
    let snap = w.converged(0, 1, &known).await;
    assert_eq!(snap.len(), 40);
    assert!(!snap.contains_key("t3"));
    let addr = metrics.clone();
    let mut text = String::new();
    eventually(LIMIT, "/metrics with a copy counted", || {
        let got = http_get(&addr, "/metrics");
        let ok = got
            .as_deref()
            .is_some_and(|t| t.contains("200 OK") && t.contains("replicator_copied_total{link="));
        if let Some(t) = got {
            text = t;
        }
        async move { ok }
    })
    .await;
    assert!(
        !text.contains(PASSWORD),
        "/metrics shows the password:\n{text}"
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the log shows the password:\n{log}"
    );
}

/// The library, master <-> master over TLS+auth: writes on either peer
/// reach the other, the feed is up on both (memcached 1.6.18's `watch`
/// over TLS), and no link name or metric shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_over_tls_and_auth_converge_both_ways() {
    let w = world(2).await;
    let r = Replicator::start(fast(Topology::Mesh {
        peers: vec![w.url(0), w.url(1)],
    }))
    .unwrap();
    let (mut a, mut b) = (w.conn(0).await, w.conn(1).await);
    for i in 0..30 {
        a.set(
            &format!("a{i}"),
            format!("from-a-{i}").as_bytes(),
            1,
            Ttl::NEVER,
        )
        .await
        .unwrap();
        b.set(
            &format!("b{i}"),
            format!("from-b-{i}").as_bytes(),
            2,
            Ttl::seconds(600),
        )
        .await
        .unwrap();
    }
    let mut known = keys("a", 30);
    known.extend(keys("b", 30));
    let snap = w.converged(0, 1, &known).await;
    assert_eq!(snap.len(), 60);
    assert_eq!(snap["a4"], (b"from-a-4".to_vec(), 1));
    assert_eq!(snap["b9"], (b"from-b-9".to_vec(), 2));
    // An update and a delete, one on each side.
    b.set("a4", b"changed-on-b", 3, Ttl::NEVER).await.unwrap();
    assert!(a.delete("b9").await.unwrap());
    let snap = w.converged(0, 1, &known).await;
    assert_eq!(snap.len(), 59);
    assert_eq!(snap["a4"], (b"changed-on-b".to_vec(), 3));
    assert!(!snap.contains_key("b9"));
    // One change feed per peer, both connected over TLS.
    let (_, metrics) = r.links().pop().unwrap();
    eventually(LIMIT, "both feeds connected over TLS", || {
        let n = metrics.feeds_connected.load(Ordering::Relaxed);
        async move { n == 2 }
    })
    .await;
    assert!(metrics.copied.load(Ordering::Relaxed) >= 60);
    let text = r.metrics_text();
    assert!(text.contains("replicator_feeds_connected{link="), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    for (name, _) in r.links() {
        assert!(!name.contains(PASSWORD), "{name}");
    }
    let report = r.stop().await;
    assert!(report.drained, "{report:?}");
}

/// A session sealed by session-core on the master reaches the slave
/// byte for byte (value and flags, seal flag included), opens there with
/// the same keys, and stays unreadable without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_sessions_are_copied_untouched() {
    let w = world(2).await;
    let r = Replicator::start(fast(Topology::MasterSlave {
        master: w.url(0),
        slaves: vec![w.url(1)],
    }))
    .unwrap();
    let sessions = |i: usize| {
        let store: Arc<dyn Store> = Arc::new(MemcachedStore::from_url(&w.url(i)).unwrap());
        let config = SessionsConfig {
            timeout: Ttl::seconds(3600),
            seal: Some(SealConfig::new(Keyring::parse(SEAL_KEY).unwrap())),
            ..SessionsConfig::default()
        };
        Sessions::new(store, config).unwrap()
    };
    let (on_master, on_slave) = (sessions(0), sessions(1));
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut s = on_master.create().await.unwrap();
        s.insert("uid", format!("sealed-user-{i}")).unwrap();
        s.insert("roles", vec!["admin", "ops"]).unwrap();
        on_master.save(&mut s).await.unwrap();
        ids.push(s.id().clone());
    }
    let store_keys: Vec<String> = ids.iter().map(|id| on_master.key_of(id)).collect();
    let snap = w.converged(0, 1, &store_keys).await;
    let (mut m, mut sl) = (w.conn(0).await, w.conn(1).await);
    for (i, key) in store_keys.iter().enumerate() {
        let on_m = m.get(key).await.unwrap().expect("on the master");
        let on_s = sl.get(key).await.unwrap().expect("on the slave");
        assert_ne!(
            on_m.flags & FLAGS_SEALED,
            0,
            "sealed: flags {:#x}",
            on_m.flags
        );
        assert_eq!(on_s.value, on_m.value, "{key}: the bytes differ");
        assert_eq!(on_s.flags, on_m.flags, "{key}: the flags differ");
        assert_eq!(snap[key].0, on_m.value);
        let user = format!("sealed-user-{i}");
        assert!(
            !on_s.value.windows(user.len()).any(|w| w == user.as_bytes()),
            "{user} readable on the slave"
        );
        let opened = on_slave
            .load_id(&ids[i])
            .await
            .unwrap()
            .expect("opens on the slave");
        assert_eq!(opened.get::<String>("uid").unwrap(), Some(user));
        assert_eq!(
            opened.get::<Vec<String>>("roles").unwrap(),
            Some(vec!["admin".to_owned(), "ops".to_owned()])
        );
    }
    // Without the key the slave's copy is no session (not a decoding of it).
    let other = {
        let store: Arc<dyn Store> = Arc::new(MemcachedStore::from_url(&w.url(1)).unwrap());
        let key = "7:f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
        let config = SessionsConfig {
            seal: Some(SealConfig::new(Keyring::parse(key).unwrap())),
            ..SessionsConfig::default()
        };
        Sessions::new(store, config).unwrap()
    };
    assert!(other.load_id(&ids[0]).await.unwrap().is_none());
    r.stop().await;
}

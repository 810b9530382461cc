//! "Never sent" versus "sent, outcome unknown", end to end on a real
//! memcached behind test-support's fault proxy: an `add` that the server
//! applies but whose answer the client never gets must not leave an orphan
//! session behind `Sessions::create` / `create_with`.
//!
//! test-support has no "forward the request, then drop the answer" fault.
//! The closest real one is latency, which delays every chunk in each
//! direction: with a latency `L` and an I/O timeout `T`, `L < T < 2L`, the
//! request reaches memcached after `L` (applied) and its answer would come
//! back after `2L`, past the deadline. The store reports a timeout with
//! `Delivery::Unknown`; session-core then reads the key back. A thin
//! `Store` wrapper removes the latency and waits until the store's backoff
//! lets a probe through at that moment (the network healed), so the
//! read-back sees what the server holds. It forwards every other call
//! unchanged (a `session_core::wrapper::StoreWrapper`).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_memcached::{MemcachedConfig, MemcachedStore, ServerState};
use common::{Server, memcached, spec};
use session_core::wrapper::StoreWrapper;
use session_core::{
    AddOutcome, Delivery, Result, SessionData, Sessions, SessionsConfig, Store, Ttl,
};

/// Per-chunk delay on the way to memcached and back.
const LATENCY: Duration = Duration::from_millis(1000);
/// Between one latency (the request arrives) and two (the answer would).
const IO_TIMEOUT: Duration = Duration::from_millis(1500);

/// Forwards everything to `inner`; when an `add` fails with "outcome
/// unknown", heals the network before handing the error back.
#[derive(Debug)]
struct HealAfterLostAdd {
    inner: MemcachedStore,
    server: Arc<Server>,
    unknown_adds: AtomicUsize,
}

#[async_trait]
impl StoreWrapper for HealAfterLostAdd {
    type Inner = MemcachedStore;

    fn inner(&self) -> &MemcachedStore {
        &self.inner
    }

    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        let result = self.inner.add(key, value, flags, ttl).await;
        if let Err(e) = &result {
            assert_eq!(e.delivery(), Some(Delivery::Unknown), "{e:?}");
            self.unknown_adds.fetch_add(1, Ordering::SeqCst);
            self.server.set_latency(Duration::ZERO).await.unwrap();
            // The timeout marked the server down; wait (polling) until the
            // backoff lets the read-back through, as it would in production
            // a moment later.
            let start = Instant::now();
            while let ServerState::Down { retry_in, .. } = self.inner.stats()[0].state {
                if retry_in.is_zero() {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(3), "still down");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        result
    }
}

/// memcached's own count of items (`stats`: `curr_items`).
async fn curr_items(server: &Server) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut conn = BufReader::new(tokio::net::TcpStream::connect(server.addr()).await.unwrap());
    conn.get_mut().write_all(b"stats\r\n").await.unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            conn.read_line(&mut line).await.unwrap() > 0,
            "stats ended early"
        );
        if let Some(n) = line.trim_end().strip_prefix("STAT curr_items ") {
            return n.parse().unwrap();
        }
        assert_ne!(line.trim_end(), "END", "no curr_items in stats");
    }
}

/// Every key the server holds.
async fn all_keys(store: &MemcachedStore) -> Vec<String> {
    let page = store.scan("", None, 10_000).await.unwrap();
    assert!(page.next.is_none(), "one server, one page");
    page.keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_add_whose_answer_is_lost_leaves_no_orphan() {
    let server = Arc::new(memcached().await);
    let mut config = MemcachedConfig::with_servers(vec![spec(&server)]);
    config.io_timeout = IO_TIMEOUT;
    config.connect_timeout = IO_TIMEOUT;
    config.backoff_initial = Duration::from_millis(20);
    let inner = MemcachedStore::connect(config).unwrap();
    let store = Arc::new(HealAfterLostAdd {
        inner: inner.clone(),
        server: Arc::clone(&server),
        unknown_adds: AtomicUsize::new(0),
    });
    let sessions = Sessions::new(store.clone(), SessionsConfig::default()).unwrap();
    // Settings learned and a connection pooled before the latency.
    assert!(all_keys(&inner).await.is_empty());

    for (round, with_fields) in [(1, false), (2, true)] {
        server.set_latency(LATENCY).await.unwrap();
        let started = Instant::now();
        let session = if with_fields {
            let mut fields = SessionData::new();
            fields.insert("user".into(), "alice".into());
            sessions.create_with(fields, None).await.unwrap()
        } else {
            sessions.create().await.unwrap()
        };
        assert!(started.elapsed() >= IO_TIMEOUT, "the add did time out");
        assert_eq!(store.unknown_adds.load(Ordering::SeqCst), round);

        // Kept: the session is the one the server holds, and nothing else
        // was written (no second session under a new id).
        let key = sessions.key_of(session.id());
        let loaded = sessions.load_id(session.id()).await.unwrap().unwrap();
        assert_eq!(loaded.id(), session.id());
        // Counted by the server itself: the crawler behind `scan` skips
        // items memcached holds a reference to at that instant (one just
        // read, waiting for its LRU bump), so scan is polled only to show
        // the key is listed.
        assert_eq!(curr_items(&server).await, round, "an orphan was left");
        let start = Instant::now();
        let mut keys = all_keys(&inner).await;
        while !keys.contains(&key) {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "not listed: {keys:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            keys = all_keys(&inner).await;
        }
        assert!(keys.len() <= round, "{keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_is_never_sent() {
    let dead = common::dead_port();
    let store = MemcachedStore::from_url(&format!("memcached://127.0.0.1:{}", dead.port)).unwrap();
    let err = store.add("k", b"v", 0, Ttl::NEVER).await.unwrap_err();
    assert_eq!(err.delivery(), Some(Delivery::NotSent), "{err:?}");
    // Marked down now: still never sent.
    let err = store.add("k", b"v", 0, Ttl::NEVER).await.unwrap_err();
    assert_eq!(err.delivery(), Some(Delivery::NotSent), "{err:?}");
}

//! master <-> master against real memcached servers: an expiry is not a
//! delete. memcached counts TTLs in whole seconds of its own clock, so a
//! copy can expire up to a second before its original; a write landing on
//! the original's side in that window (a login adding a member to an
//! emptied principal index record, whose TTL is 2 s) must be copied, never
//! deleted as if the expired copy had been deleted. A real delete made
//! well before the expiry still wins over a concurrent write (a logout
//! sticks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TextClient, conn, eventually, memcacheds};
use replicator::{Config, LinkMetrics, Replicator, Topology};
use session_core::Ttl;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(30);

/// Keys per test, each rewritten at its own moment of the window.
const KEYS: usize = 10;

fn mesh(servers: &[&common::Server]) -> Topology {
    Topology::Mesh {
        peers: servers.iter().map(|s| s.addr()).collect(),
    }
}

/// Defaults (key lists every second, as the daemon runs), without the
/// periodic full comparison, whose reads would make the window rarer.
fn config(topology: Topology) -> Config {
    let mut c = common::fast(topology);
    c.resync_interval = None;
    c
}

async fn started(metrics: &LinkMetrics) {
    eventually(LIMIT, "start comparison and both feeds", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= 1
            && metrics.feeds_connected.load(Ordering::Relaxed) == 2
    })
    .await;
}

/// The value of `key` on `server`, if any.
async fn value(server: &common::Server, key: &str) -> Option<Vec<u8>> {
    conn(server).await.get(key).await.unwrap().map(|i| i.value)
}

/// Waits for `rounds` more key-list comparisons: every key that differs
/// between the nodes has been looked at since.
async fn key_lists(metrics: &LinkMetrics, rounds: u64) {
    let from = metrics.key_lists.load(Ordering::Relaxed);
    eventually(LIMIT, "key-list comparisons", || async {
        metrics.key_lists.load(Ordering::Relaxed) >= from + rounds
    })
    .await;
}

/// Only the feed looks at a key: no full comparison, no key lists.
fn feed_only(topology: Topology) -> Config {
    let mut c = config(topology);
    c.key_list_interval = None;
    c
}

/// The window staged, not left to the servers' clocks: each key is
/// written on `a` with a 2 s TTL and copied to `b`, then touched on `a` to
/// 30 s (a touch is no store: no feed line, the copy keeps its 2 s). Once
/// `b`'s copy has expired, the key is written again at once, on `a` for
/// even keys and on `b` (another value) for odd ones: the feed line of
/// that write is the only thing that makes the replicator look, so it
/// finds `b` empty where it last saw the key in sync. The new write must
/// end on both masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_copy_expired_is_copied_not_deleted() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(feed_only(mesh(&[a, b]))).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    started(&metrics).await;
    let names: Vec<String> = (0..KEYS).map(|i| format!("staged{i}")).collect();
    let mut ca = conn(a).await;
    let mut cb = conn(b).await;
    for k in &names {
        ca.set(k, b"emptied", 0, Ttl::seconds(2)).await.unwrap();
    }
    for k in &names {
        eventually(LIMIT, "the 2 s item copied to b", || async {
            value(b, k).await.as_deref() == Some(b"emptied".as_slice())
        })
        .await;
        assert!(ca.touch(k, Ttl::seconds(30)).await.unwrap(), "touch {k}");
    }
    let mut expected = Vec::new();
    for (i, k) in names.iter().enumerate() {
        let deadline = Instant::now() + LIMIT;
        while cb.get(k).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{k}'s copy on b never expired");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let new: &[u8] = if i % 2 == 0 {
            ca.set(k, b"login on a", 0, Ttl::seconds(3600))
                .await
                .unwrap();
            b"login on a"
        } else {
            cb.set(k, b"login on b", 0, Ttl::seconds(3600))
                .await
                .unwrap();
            b"login on b"
        };
        expected.push((k, new));
    }
    for (k, new) in &expected {
        eventually(LIMIT, "the new write on both masters", || async {
            value(a, k).await.as_deref() == Some(*new) && value(b, k).await.as_deref() == Some(*new)
        })
        .await;
    }
    // Every write was decided (no event is still queued) and none of them
    // was a delete.
    eventually(LIMIT, "queues drained", || async {
        metrics.queue_depth.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(
        metrics.deleted.load(Ordering::Relaxed),
        0,
        "a key was deleted"
    );
    for (k, new) in &expected {
        assert_eq!(value(a, k).await.as_deref(), Some(*new), "{k} on a");
        assert_eq!(value(b, k).await.as_deref(), Some(*new), "{k} on b");
    }
    r.stop().await;
}

/// The same left to the servers' clocks, as the soak met it, with key
/// lists on: each key rewritten on `a` at its own moment from 1.5 s to
/// ~2.05 s after its 2 s write. Whether the copy or the original expires
/// first, and whether a key list looks in between, the new write ends on
/// both masters and stays there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_while_the_copy_expires_survives_on_both_masters_with_key_lists() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(config(mesh(&[a, b]))).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    started(&metrics).await;
    let names: Vec<String> = (0..KEYS).map(|i| format!("index{i}")).collect();
    let mut ca = conn(a).await;
    let set_at = Instant::now();
    for k in &names {
        ca.set(k, b"emptied", 0, Ttl::seconds(2)).await.unwrap();
    }
    for k in &names {
        eventually(LIMIT, "the 2 s item copied to b", || async {
            value(b, k).await.as_deref() == Some(b"emptied".as_slice())
        })
        .await;
    }
    // Rewrite each key at its own moment from 1.5 s to ~2.05 s after the
    // first write: the copy on b expires in there, up to a second before
    // the original on a.
    for (i, k) in names.iter().enumerate() {
        let at = set_at + Duration::from_millis(1_500 + 60 * i as u64);
        tokio::time::sleep_until(at).await;
        ca.set(k, b"login", 0, Ttl::seconds(3600)).await.unwrap();
    }
    for k in &names {
        eventually(LIMIT, "the new write on both masters", || async {
            value(a, k).await.as_deref() == Some(b"login".as_slice())
                && value(b, k).await.as_deref() == Some(b"login".as_slice())
        })
        .await;
    }
    // Past every old expiry, and looked at again by key lists: still there.
    tokio::time::sleep_until(set_at + Duration::from_secs(3)).await;
    key_lists(&metrics, 3).await;
    for k in &names {
        assert_eq!(
            value(a, k).await.as_deref(),
            Some(b"login".as_slice()),
            "{k} on a"
        );
        assert_eq!(
            value(b, k).await.as_deref(),
            Some(b"login".as_slice()),
            "{k} on b"
        );
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_before_the_expiry_still_wins_over_a_write_on_the_other_master() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(config(mesh(&[a, b]))).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    started(&metrics).await;
    let mut ca = conn(a).await;
    // Long enough that the delete is seconds before the expiry.
    let ttl = Ttl::seconds(20);
    ca.set("raced", b"session", 0, ttl).await.unwrap();
    ca.set("alone", b"session", 0, ttl).await.unwrap();
    for k in ["raced", "alone"] {
        eventually(LIMIT, "copied to b", || async {
            value(b, k).await.as_deref() == Some(b"session".as_slice())
        })
        .await;
    }
    let deleted_at = Instant::now();
    let mut tb = TextClient::connect(b).await;
    assert!(tb.delete("raced").await);
    assert!(tb.delete("alone").await);
    // A write on a right after the delete on b: the delete wins.
    ca.set("raced", b"write", 0, Ttl::seconds(3600))
        .await
        .unwrap();
    for k in ["raced", "alone"] {
        eventually(LIMIT, "the delete on both masters", || async {
            value(a, k).await.is_none() && value(b, k).await.is_none()
        })
        .await;
    }
    assert!(
        deleted_at.elapsed() < Duration::from_secs(15),
        "gone by the delete, not by the expiry ({:?})",
        deleted_at.elapsed()
    );
    // And it stays gone.
    key_lists(&metrics, 3).await;
    for k in ["raced", "alone"] {
        assert_eq!(value(a, k).await, None, "{k} on a");
        assert_eq!(value(b, k).await, None, "{k} on b");
    }
    r.stop().await;
}

//! master <-> master against real memcached servers: writes on either side
//! converge with a bounded number of writes (no ping-pong); concurrent
//! writes of one key converge to the same value on both; a raw delete on
//! either master reaches the other and never comes back; a partition
//! (cut/heal) converges; a peer restarted or flushed empty is refilled,
//! never wiped into the other. Every test ends by comparing whole contents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use backend_memcached::raw::RawConnection;
use common::{
    conn, converged, converged_on, eventually, fast, flush_all, keys, memcacheds, read, stat,
};
use replicator::{Replicator, Topology};
use session_core::Ttl;
use session_core::codec::FLAGS_REPLICATED;

const LIMIT: Duration = Duration::from_secs(20);

fn mesh(servers: &[&common::Server]) -> Topology {
    Topology::Mesh {
        peers: servers.iter().map(|s| s.addr()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_both_sides_converge_without_ping_pong() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let mut config = fast(mesh(&[a, b]));
    // Writes are counted from `cmd_set`, which counts heartbeats too.
    config.feed_heartbeat = None;
    let r = Replicator::start(config).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    eventually(LIMIT, "start resync", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= 1
    })
    .await;
    let (sets_a, sets_b) = (stat(a, "cmd_set").await, stat(b, "cmd_set").await);
    let mut ca = conn(a).await;
    let mut cb = conn(b).await;
    for i in 0..100 {
        ca.set(&format!("a{i}"), b"from a", 0x101, Ttl::seconds(600))
            .await
            .unwrap();
        cb.set(&format!("b{i}"), b"from b", 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    let mut known = keys("a", 100);
    known.extend(keys("b", 100));
    let snap = converged_on(&[a, b], true, LIMIT, &known).await;
    assert_eq!(snap.len(), 200);
    assert_eq!(snap["a5"], (b"from a".to_vec(), 0x101, true));
    assert_eq!(snap["b5"], (b"from b".to_vec(), 0, false));
    // Copies carry the marker; the originals do not.
    assert_eq!(
        cb.get("a5").await.unwrap().unwrap().flags,
        0x101 | FLAGS_REPLICATED
    );
    assert_eq!(ca.get("a5").await.unwrap().unwrap().flags, 0x101);
    // Let several more resyncs and feed echoes pass: nothing bounces.
    let done = metrics.resyncs.load(Ordering::Relaxed);
    eventually(LIMIT, "two more resyncs", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= done + 2
    })
    .await;
    let writes_a = stat(a, "cmd_set").await - sets_a;
    let writes_b = stat(b, "cmd_set").await - sets_b;
    // 100 client writes and 100 copies on each side, nothing more.
    assert_eq!((writes_a, writes_b), (200, 200));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_key_converge_to_the_same_value() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(fast(mesh(&[a, b]))).unwrap();
    let writers = [a.addr(), b.addr()].map(|addr| {
        tokio::spawn(async move {
            let mut c =
                backend_memcached::raw::RawConnection::connect(&addr, Duration::from_secs(2))
                    .await
                    .unwrap();
            for round in 0..300 {
                for k in 0..5 {
                    c.set(
                        &format!("hot{k}"),
                        format!("{addr}#{round}").as_bytes(),
                        0,
                        Ttl::NEVER,
                    )
                    .await
                    .unwrap();
                }
            }
        })
    });
    for w in writers {
        w.await.unwrap();
    }
    let snap = converged_on(&[a, b], true, LIMIT, &keys("hot", 5)).await;
    assert_eq!(snap.len(), 5);
    for k in 0..5 {
        let v = String::from_utf8(snap[&format!("hot{k}")].0.clone()).unwrap();
        assert!(v.ends_with("#299"), "the last write of one side: {v}");
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_delete_on_either_master_reaches_the_other_and_never_comes_back() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(fast(mesh(&[a, b]))).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    let mut ca = conn(a).await;
    let mut cb = conn(b).await;
    for i in 0..20 {
        ca.set(&format!("s{i}"), b"session", 0x101, Ttl::NEVER)
            .await
            .unwrap();
    }
    converged(&[a, b], true, LIMIT).await;
    // Make sure the copier saw the keys in sync on both sides.
    let done = metrics.resyncs.load(Ordering::Relaxed);
    eventually(LIMIT, "a resync after the copies", || async {
        metrics.resyncs.load(Ordering::Relaxed) > done
    })
    .await;
    // A delete on the side that wrote, and one on the side that got copies.
    assert!(ca.delete("s1").await.unwrap());
    assert!(cb.delete("s2").await.unwrap());
    let snap = converged_on(&[a, b], true, LIMIT, &keys("s", 20)).await;
    assert_eq!(snap.len(), 18);
    assert!(!snap.contains_key("s1") && !snap.contains_key("s2"));
    // Several resyncs later, still gone.
    let done = metrics.resyncs.load(Ordering::Relaxed);
    eventually(LIMIT, "three more resyncs", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= done + 3
    })
    .await;
    for c in [&mut ca, &mut cb] {
        assert!(c.get("s1").await.unwrap().is_none());
        assert!(c.get("s2").await.unwrap().is_none());
    }
    assert!(metrics.deleted.load(Ordering::Relaxed) >= 2);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_converges() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(fast(mesh(&[a, b]))).unwrap();
    let mut ca = conn(a).await;
    for i in 0..50 {
        ca.set(&format!("before{i}"), b"v", 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    converged(&[a, b], true, LIMIT).await;
    // The replicator (and every client) loses b; a's clients go on.
    b.cut().await.unwrap();
    for i in 0..50 {
        ca.set(&format!("during{i}"), b"v", 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    ca.set("before1", b"changed during the cut", 0, Ttl::NEVER)
        .await
        .unwrap();
    b.heal().await.unwrap();
    let mut known = keys("before", 50);
    known.extend(keys("during", 50));
    let snap = converged_on(&[a, b], true, LIMIT, &known).await;
    assert_eq!(snap.len(), 100);
    assert_eq!(snap["before1"].0, b"changed during the cut");
    r.stop().await;
}

/// Two peers in a mesh with a replicator running, `k0`..`k99` written on
/// the first and copied to the second; and a connection to the first.
async fn two_peers_in_sync() -> (Vec<common::Server>, Replicator, RawConnection) {
    let s = memcacheds(2).await;
    let r = Replicator::start(fast(mesh(&[&s[0], &s[1]]))).unwrap();
    let mut ca = conn(&s[0]).await;
    for i in 0..100 {
        ca.set(&format!("k{i}"), b"v", 0, Ttl::NEVER).await.unwrap();
    }
    converged(&[&s[0], &s[1]], true, LIMIT).await;
    (s, r, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarted_empty_is_refilled_not_wiped_into_the_other() {
    let (s, r, _) = two_peers_in_sync().await;
    let (a, b) = (&s[0], &s[1]);
    b.start().await.unwrap(); // restart: b comes back empty
    let snap = converged_on(&[a, b], true, LIMIT, &keys("k", 100)).await;
    assert_eq!(snap.len(), 100, "a restart is not a mass delete");
    assert_eq!(
        read(b, &keys("k", 100).into_iter().collect(), true)
            .await
            .len(),
        100
    );
    r.stop().await;
}

/// `flush_all` on one peer empties it without breaking any connection, so
/// only the run marker tells that its absences are not deletes. A key
/// written on the other peer meanwhile must survive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_peer_is_refilled_not_wiped_into_the_other() {
    let (s, r, mut ca) = two_peers_in_sync().await;
    let (a, b) = (&s[0], &s[1]);
    flush_all(b).await;
    ca.set("k0", b"written after the flush", 0, Ttl::NEVER)
        .await
        .unwrap();
    let snap = converged_on(&[a, b], true, LIMIT, &keys("k", 100)).await;
    assert_eq!(snap.len(), 100, "a flush of one peer is not a mass delete");
    assert_eq!(snap["k0"].0, b"written after the flush");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_converge_and_a_delete_reaches_all() {
    let s = memcacheds(3).await;
    let peers: Vec<&common::Server> = s.iter().collect();
    let r = Replicator::start(fast(mesh(&peers))).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    let mut known = Vec::new();
    for (p, server) in peers.iter().enumerate() {
        let mut c = conn(server).await;
        for i in 0..30 {
            let key = format!("p{p}k{i}");
            c.set(&key, format!("from {p}").as_bytes(), p as u32, Ttl::NEVER)
                .await
                .unwrap();
            known.push(key);
        }
    }
    let snap = converged_on(&peers, true, LIMIT, &known).await;
    assert_eq!(snap.len(), 90);
    assert_eq!(snap["p2k3"], (b"from 2".to_vec(), 2, false));
    let done = metrics.resyncs.load(Ordering::Relaxed);
    eventually(LIMIT, "a resync after the copies", || async {
        metrics.resyncs.load(Ordering::Relaxed) > done
    })
    .await;
    assert!(conn(peers[1]).await.delete("p0k0").await.unwrap());
    let snap = converged_on(&peers, true, LIMIT, &known).await;
    assert_eq!(snap.len(), 89);
    assert!(!snap.contains_key("p0k0"));
    r.stop().await;
}

/// A mesh of two peers with `k0`..`k99` in sync, replicated with a state
/// file (in a folder of its own, removed by the caller), then stopped
/// cleanly so the state is saved; and a connection to the first peer.
async fn two_peers_stopped_with_state()
-> (Vec<common::Server>, replicator::Config, std::path::PathBuf) {
    let s = memcacheds(2).await;
    let dir = std::env::temp_dir().join(format!(
        "replicator-mesh-state-{}-{}",
        std::process::id(),
        s[0].addr().replace([':', '.'], "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = fast(mesh(&[&s[0], &s[1]]));
    config.state_file = Some(dir.join("state.json"));
    let r = Replicator::start(config.clone()).unwrap();
    let mut ca = conn(&s[0]).await;
    for i in 0..100 {
        ca.set(&format!("k{i}"), b"v", 0, Ttl::NEVER).await.unwrap();
    }
    converged_on(&[&s[0], &s[1]], true, LIMIT, &keys("k", 100)).await;
    let report = r.stop().await;
    assert!(report.drained && report.state_saved, "{report:?}");
    (s, config, dir)
}

/// With a state file, a delete made while the replicator is stopped (a
/// logout during an upgrade) reaches the other peer at the next start
/// instead of being undone from it; a key written on one peer meanwhile is
/// still copied. (Without the file, k0..k9 come back: crate docs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_state_file_a_delete_made_while_stopped_sticks() {
    let (s, config, dir) = two_peers_stopped_with_state().await;
    let (a, b) = (&s[0], &s[1]);
    let mut ca = conn(a).await;
    for i in 0..10 {
        assert!(ca.delete(&format!("k{i}")).await.unwrap());
    }
    conn(b)
        .await
        .set("new", b"written while stopped", 0, Ttl::NEVER)
        .await
        .unwrap();

    let r = Replicator::start(config).unwrap();
    let mut known = keys("k", 100);
    known.push("new".into());
    let snap = converged_on(&[a, b], true, LIMIT, &known).await;
    let back: Vec<String> = keys("k", 10)
        .into_iter()
        .filter(|k| snap.contains_key(k))
        .collect();
    assert!(
        back.is_empty(),
        "deleted while stopped, then restored: {back:?}"
    );
    assert_eq!(snap.len(), 91, "90 kept + the new one");
    assert_eq!(snap["new"].0, b"written while stopped");
    r.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The saved state is trusted only for a peer still in the run it was
/// saved in: a peer restarted (empty) while the replicator was stopped is
/// refilled, and its absences are not taken for deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_does_not_turn_a_restarted_peer_into_deletes() {
    let (s, config, dir) = two_peers_stopped_with_state().await;
    let (a, b) = (&s[0], &s[1]);
    b.start().await.unwrap(); // restart: b comes back empty
    let r = Replicator::start(config).unwrap();
    let snap = converged_on(&[a, b], true, LIMIT, &keys("k", 100)).await;
    assert_eq!(snap.len(), 100, "a restart is not a mass delete");
    r.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A saved entry speaks only for the first time this run meets its key:
/// a key deleted on both peers while running (a logout) and written again
/// later (the user's next login re-creates the same reverse key) is a new
/// write to copy, not a delete to carry out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_entry_does_not_outlive_the_key_it_describes() {
    let (s, config, dir) = two_peers_stopped_with_state().await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(config).unwrap();
    let mut ca = conn(a).await;
    assert!(ca.delete("k0").await.unwrap());
    eventually(LIMIT, "k0 deleted on both", || async {
        conn(b).await.get("k0").await.unwrap().is_none()
    })
    .await;
    ca.set("k0", b"next login", 0, Ttl::NEVER).await.unwrap();
    let snap = converged_on(&[a, b], true, LIMIT, &keys("k", 100)).await;
    assert_eq!(
        snap.get("k0").map(|v| v.0.as_slice()),
        Some(&b"next login"[..])
    );
    assert_eq!(snap.len(), 100);
    r.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

//! master -> slave(s) against real memcached servers: sets, reverse keys
//! (raw strings, flags 0), flags, TTLs and deletes reach every slave; a
//! slave restarted empty and a master restarted mid-stream converge; a
//! flood that overflows the feed is caught up by a resync; a 10k-key
//! resync completes. Every test ends by comparing whole server contents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{conn, converged, converged_on, eventually, fast, keys, memcacheds, snapshot};
use replicator::{Replicator, Topology};
use session_core::Ttl;

const LIMIT: Duration = Duration::from_secs(20);

fn ms(master: &common::Server, slaves: &[&common::Server]) -> Topology {
    Topology::MasterSlave {
        master: master.addr(),
        slaves: slaves.iter().map(|s| s.addr()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_sets_reverse_keys_flags_ttls_and_deletes_to_every_slave() {
    let s = memcacheds(3).await;
    let (m, a, b) = (&s[0], &s[1], &s[2]);
    // Something on a slave that the master never had: removed by the start resync.
    conn(a)
        .await
        .set("stray", b"x", 0, Ttl::NEVER)
        .await
        .unwrap();
    let r = Replicator::start(fast(ms(m, &[a, b]))).unwrap();
    let mut mc = conn(m).await;
    mc.set(
        "0123456789abcdef0123456789abcdef",
        b"{\"uid\":\"jdoe\"}",
        0x102,
        Ttl::NEVER,
    )
    .await
    .unwrap();
    // The reverse key: a raw string with flags 0 (the original died on it).
    mc.set(
        "d41d8cd98f00b204e9800998ecf8427e",
        b"0123456789abcdef0123456789abcdef",
        0,
        Ttl::NEVER,
    )
    .await
    .unwrap();
    mc.set("ttl", b"expires", 7, Ttl::seconds(300))
        .await
        .unwrap();
    for i in 0..50 {
        mc.set(&format!("k{i}"), format!("v{i}").as_bytes(), i, Ttl::NEVER)
            .await
            .unwrap();
    }
    mc.set("k1", b"updated", 1, Ttl::NEVER).await.unwrap();
    let mut known = keys("k", 50);
    known.extend(
        [
            "0123456789abcdef0123456789abcdef",
            "d41d8cd98f00b204e9800998ecf8427e",
            "ttl",
            "stray",
        ]
        .map(String::from),
    );
    let snap = converged_on(&[m, a, b], false, LIMIT, &known).await;
    assert_eq!(snap.len(), 53);
    assert_eq!(snap["k1"].0, b"updated");
    assert_eq!(snap["k9"].1, 9, "flags copied exactly");
    assert!(!snap.contains_key("stray"));
    // Remaining TTL copied (within the slack), not "never".
    let ttl = conn(b).await.get("ttl").await.unwrap().unwrap().ttl;
    assert!(
        !ttl.is_never() && ttl.as_secs() > 290 && ttl.as_secs() <= 300,
        "{ttl:?}"
    );
    // Deletes reach the slaves (found by the periodic resync).
    assert!(mc.delete("k2").await.unwrap());
    assert!(mc.delete("d41d8cd98f00b204e9800998ecf8427e").await.unwrap());
    let snap = converged_on(&[m, a, b], false, LIMIT, &known).await;
    assert_eq!(snap.len(), 51);
    assert!(!snap.contains_key("k2"));
    let links = r.links();
    assert_eq!(links.len(), 2);
    for (name, metrics) in &links {
        assert!(metrics.copied.load(Ordering::Relaxed) >= 53, "{name}");
        // k2 and the reverse key (and "stray" on the first slave).
        assert!(metrics.deleted.load(Ordering::Relaxed) >= 2, "{name}");
        assert!(metrics.lag_count() > 0, "{name}: lag observed");
    }
    let text = r.metrics_text();
    assert!(text.contains("replicator_copied_total{link="), "{text}");
    assert!(text.contains("replicator_lag_seconds_bucket"), "{text}");
    let report = r.stop().await;
    assert!(report.drained && report.not_copied == 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_restarted_empty_catches_up() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let r = Replicator::start(fast(ms(m, &[sl]))).unwrap();
    let mut mc = conn(m).await;
    for i in 0..200 {
        mc.set(&format!("a{i}"), b"v", 0, Ttl::NEVER).await.unwrap();
    }
    converged(&[m, sl], false, LIMIT).await;
    sl.stop().await.unwrap();
    for i in 0..200 {
        mc.set(&format!("b{i}"), b"while down", 3, Ttl::NEVER)
            .await
            .unwrap();
    }
    sl.start().await.unwrap();
    let mut known = keys("a", 200);
    known.extend(keys("b", 200));
    let snap = converged_on(&[m, sl], false, LIMIT, &known).await;
    assert_eq!(snap.len(), 400);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_mid_stream_converges() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let r = Replicator::start(fast(ms(m, &[sl]))).unwrap();
    let writer = {
        let addr = m.addr();
        tokio::spawn(async move {
            let mut written = 0;
            for i in 0..3000 {
                let mut c = loop {
                    if let Ok(c) = backend_memcached::raw::RawConnection::connect(
                        &addr,
                        Duration::from_secs(1),
                    )
                    .await
                    {
                        break c;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                if c.set(&format!("w{i}"), b"v", 0, Ttl::NEVER).await.is_ok() {
                    written += 1;
                }
            }
            written
        })
    };
    eventually(LIMIT, "some writes copied", || async {
        snapshot(sl, false).await.len() > 200
    })
    .await;
    m.start().await.unwrap(); // restart: empty memory, writes go on
    let written = writer.await.unwrap();
    assert!(written > 0);
    let snap = converged_on(&[m, sl], false, LIMIT, &keys("w", 3000)).await;
    assert!(
        !snap.is_empty() && snap.len() < 3000,
        "only what the restarted master holds: {}",
        snap.len()
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_overflows_the_feed_is_resynced_with_nothing_lost() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let mut config = fast(ms(m, &[sl]));
    // Only the overflow may trigger the catch-up resync.
    config.resync_interval = None;
    config.shards = 1;
    config.queue_capacity = 8;
    let r = Replicator::start(config).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    eventually(LIMIT, "start resync", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= 1
    })
    .await;
    let before = metrics.resyncs.load(Ordering::Relaxed);
    let mut mc = conn(m).await;
    let keys: Vec<String> = (0..20_000).map(|i| format!("flood{i}")).collect();
    for chunk in keys.chunks(500) {
        let writes = chunk.iter().map(|k| (k.as_str(), k.as_bytes()));
        for (k, v) in writes {
            mc.set(k, v, 5, Ttl::NEVER).await.unwrap();
        }
    }
    let snap = converged_on(&[m, sl], false, Duration::from_secs(60), &keys).await;
    assert_eq!(snap.len(), 20_000);
    let skipped =
        metrics.skipped.load(Ordering::Relaxed) + metrics.feed_gaps.load(Ordering::Relaxed);
    assert!(skipped > 0, "the flood should overflow the 8-key queue");
    assert!(
        metrics.resyncs.load(Ordering::Relaxed) > before,
        "a resync caught up"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_key_resync_completes_with_progress() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let mut mc = conn(m).await;
    for i in 0..10_000 {
        mc.set(
            &format!("s:{i:05}"),
            format!("{i}").as_bytes(),
            0x101,
            Ttl::seconds(3600),
        )
        .await
        .unwrap();
    }
    let mut config = fast(ms(m, &[sl]));
    config.resync_interval = None;
    let r = Replicator::start(config).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    let known: Vec<String> = (0..10_000).map(|i| format!("s:{i:05}")).collect();
    let snap = converged_on(&[m, sl], false, Duration::from_secs(60), &known).await;
    assert_eq!(snap.len(), 10_000);
    eventually(LIMIT, "resync completes", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert!(metrics.resync_keys.load(Ordering::Relaxed) >= 10_000);
    assert!(metrics.copied.load(Ordering::Relaxed) >= 10_000);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_from_the_master_is_noticed_and_healed() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let mut config = fast(ms(m, &[sl]));
    config.io_timeout = Duration::from_millis(500);
    let r = Replicator::start(config).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    eventually(LIMIT, "feed connected", || async {
        metrics.feeds_connected.load(Ordering::Relaxed) == 1
    })
    .await;
    // The replicator's packets to the master vanish; clients that reach
    // the master directly go on writing.
    m.blackhole().await.unwrap();
    let direct = m.direct_addr().expect("a direct address").to_string();
    let mut mc = backend_memcached::raw::RawConnection::connect(&direct, Duration::from_secs(2))
        .await
        .unwrap();
    for i in 0..100 {
        mc.set(&format!("p{i}"), b"during", 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    eventually(LIMIT, "the stalled feed is given up", || async {
        metrics.feeds_connected.load(Ordering::Relaxed) == 0
    })
    .await;
    m.heal().await.unwrap();
    let snap = converged_on(&[m, sl], false, LIMIT, &keys("p", 100)).await;
    assert_eq!(snap.len(), 100);
    r.stop().await;
}

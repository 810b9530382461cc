//! How fast a delete reaches the other side, on both memcached versions
//! (real servers; each delete a plain-text `delete` as Perl's
//! Cache::Memcached sends it, measured from its answer until the key is
//! gone from the other server):
//!
//! - memcached 1.6.38 (Debian 13's, `watch deletions`): from the feed,
//!   under 50 ms p99, master->slave and between two masters, with every
//!   comparison turned off so nothing else could carry it;
//! - memcached 1.6.18 (Debian 12's, no deletions feed): with 10 000 keys,
//!   the key-list comparison carries it within 3 s p99, with the periodic
//!   full comparison turned off.
//!
//! - memcached 1.6.18, a delete through session-core's memcached store
//!   with `delete_markers=1`: its marker's store line carries it, under
//!   50 ms p99, both topologies, with every comparison turned off.
//!
//! Plus bad input: a server answering `watch` with `CLIENT_ERROR`, and an
//! item too large for the other side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    conn, converged_on, delete_delays, eventually, fast, fill, keys, memcached_with, memcacheds,
    memcacheds_feed, quantile,
};
use replicator::{Replicator, Topology};
use session_core::Ttl;
use test_support::MemcachedOptions;

const LIMIT: Duration = Duration::from_secs(30);

/// How often the other side is read while a delete travels: 1.6.38's
/// feed delivers in milliseconds; 1.6.18's key lists in about a second,
/// and memcached's crawler leaves an item being read out of its dump,
/// so reading every millisecond would slow down what it measures.
const FAST_POLL: Duration = Duration::from_millis(1);
const SLOW_POLL: Duration = Duration::from_millis(10);

/// Deletes measured per test.
const DELETES: usize = 100;

/// Waits for the start comparison and every feed.
async fn started(r: &Replicator, feeds: u64) {
    for (_, m) in r.links() {
        eventually(LIMIT, "first comparison and feeds", || async {
            m.resyncs.load(Ordering::Relaxed) >= 1
                && m.feeds_connected.load(Ordering::Relaxed) == feeds
        })
        .await;
    }
}

/// Only the feed may carry a delete: no periodic comparison, no key lists.
fn feed_only(topology: Topology) -> replicator::Config {
    let mut config = fast(topology);
    config.resync_interval = None;
    config.key_list_interval = None;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_38_a_delete_reaches_the_slave_within_50_ms_p99() {
    let s = memcacheds_feed(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let r = Replicator::start(feed_only(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    }))
    .unwrap();
    started(&r, 1).await;
    let names = keys("d", DELETES + 10);
    fill(m, "d", names.len()).await;
    converged_on(&[m, sl], false, LIMIT, &names).await;
    let (_, metrics) = r.links().pop().unwrap();
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);

    let delays = delete_delays(m, sl, &names[..DELETES], Duration::ZERO, FAST_POLL, LIMIT).await;
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.38 master->slave delete: p50 {:?} p99 {p99:?}",
        quantile(&delays, 0.5)
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}: {delays:?}");
    // The feed did it: no comparison ran meanwhile.
    assert_eq!(metrics.resyncs.load(Ordering::Relaxed), resyncs);
    assert_eq!(metrics.key_lists.load(Ordering::Relaxed), 0);
    assert!(r.metrics_text().contains(&format!(
        "replicator_deletions_feed{{link=\"{}>{}\",server=\"{}\"}} 1",
        m.addr(),
        sl.addr(),
        m.addr()
    )));
    assert!(metrics.delete_delay_count() >= DELETES as u64);
    // What is left is the same on both: the 10 keys not deleted.
    let snap = converged_on(&[m, sl], false, LIMIT, &names).await;
    let left: Vec<&String> = snap.keys().collect();
    assert_eq!(left.len(), 10, "{left:?}");
    for name in &names[DELETES..] {
        assert_eq!(snap[name].0, format!("v{}", &name[1..]).into_bytes());
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_38_a_delete_on_either_peer_reaches_the_other_within_50_ms_p99() {
    let s = memcacheds_feed(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(feed_only(Topology::Mesh {
        peers: vec![a.addr(), b.addr()],
    }))
    .unwrap();
    started(&r, 2).await;
    // Written on both sides, so each delete below removes a key the
    // replicator has seen in sync.
    let on_a = keys("a", DELETES / 2 + 5);
    let on_b = keys("b", DELETES / 2 + 5);
    fill(a, "a", on_a.len()).await;
    fill(b, "b", on_b.len()).await;
    let all: Vec<String> = on_a.iter().chain(&on_b).cloned().collect();
    converged_on(&[a, b], true, LIMIT, &all).await;
    let (_, metrics) = r.links().pop().unwrap();
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);

    // Half deleted on a (the copy's origin), half on b (where it is a copy).
    let mut delays =
        delete_delays(a, b, &on_a[..DELETES / 2], Duration::ZERO, FAST_POLL, LIMIT).await;
    delays
        .extend(delete_delays(b, a, &on_b[..DELETES / 2], Duration::ZERO, FAST_POLL, LIMIT).await);
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.38 master<->master delete: p50 {:?} p99 {p99:?}",
        quantile(&delays, 0.5)
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}: {delays:?}");
    assert_eq!(metrics.resyncs.load(Ordering::Relaxed), resyncs);
    let snap = converged_on(&[a, b], true, LIMIT, &all).await;
    assert_eq!(snap.len(), 10, "{:?}", snap.keys().collect::<Vec<_>>());
    for name in on_a[DELETES / 2..].iter().chain(&on_b[DELETES / 2..]) {
        assert_eq!(snap[name].0, format!("v{}", &name[1..]).into_bytes());
    }
    r.stop().await;
}

/// 1.6.18 has no deletions feed: only key lists may carry a delete.
fn key_lists_only(topology: Topology) -> replicator::Config {
    let mut config = fast(topology);
    config.resync_interval = None;
    config.key_list_interval = Some(Duration::from_secs(1));
    // The default 5% paces a comparison by its cost, and a debug build's
    // lists cost several times a release build's (74 ms against 15 ms for
    // 10k keys), more with the whole suite running beside it: 2 s apart
    // here, 1 s in the release bench. The budget is about production CPU;
    // this test is about the mechanism, so it gives the debug build the
    // room a release build has.
    config.key_list_budget = 0.25;
    config
}

/// Deletes measured per test on 1.6.18 (each takes about a second).
const SLOW_DELETES: usize = 12;
/// Keys on the servers while deletes are measured on 1.6.18.
const KEYS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_18_with_10k_keys_a_delete_reaches_the_slave_within_3_s_p99() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let r = Replicator::start(key_lists_only(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    }))
    .unwrap();
    started(&r, 1).await;
    fill(m, "k", KEYS).await;
    let names = keys("k", KEYS);
    converged_on(&[m, sl], false, LIMIT, &names[..100]).await;
    eventually(LIMIT, "10k keys on the slave", || async {
        common::dumped_keys(sl).await.len() == KEYS
    })
    .await;
    let (_, metrics) = r.links().pop().unwrap();
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);

    let gap = Duration::from_millis(137);
    let delays = delete_delays(m, sl, &names[..SLOW_DELETES], gap, SLOW_POLL, LIMIT).await;
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.18 master->slave delete, 10k keys: p50 {:?} p99 {p99:?}; last key list {} us",
        quantile(&delays, 0.5),
        metrics.key_list_last_duration_us.load(Ordering::Relaxed)
    );
    assert!(p99 < Duration::from_secs(3), "p99 {p99:?}: {delays:?}");
    assert_eq!(metrics.resyncs.load(Ordering::Relaxed), resyncs);
    assert!(metrics.key_lists.load(Ordering::Relaxed) >= 1);
    eventually(LIMIT, "the rest equal", || async {
        common::dumped_keys(sl).await.len() == KEYS - SLOW_DELETES
    })
    .await;
    let rest = converged_on(
        &[m, sl],
        false,
        LIMIT,
        &names[SLOW_DELETES..SLOW_DELETES + 100],
    )
    .await;
    assert_eq!(rest.len(), KEYS - SLOW_DELETES);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_18_with_10k_keys_a_delete_on_either_peer_reaches_the_other_within_3_s_p99() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(key_lists_only(Topology::Mesh {
        peers: vec![a.addr(), b.addr()],
    }))
    .unwrap();
    started(&r, 2).await;
    fill(a, "a", KEYS / 2).await;
    fill(b, "b", KEYS / 2).await;
    let (on_a, on_b) = (keys("a", KEYS / 2), keys("b", KEYS / 2));
    for s in [a, b] {
        eventually(LIMIT, "10k keys on each peer", || async {
            common::dumped_keys(s).await.len() == KEYS
        })
        .await;
    }
    let (_, metrics) = r.links().pop().unwrap();
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);

    let gap = Duration::from_millis(137);
    let mut delays = delete_delays(a, b, &on_a[..SLOW_DELETES / 2], gap, SLOW_POLL, LIMIT).await;
    delays.extend(delete_delays(b, a, &on_b[..SLOW_DELETES / 2], gap, SLOW_POLL, LIMIT).await);
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.18 master<->master delete, 10k keys: p50 {:?} p99 {p99:?}",
        quantile(&delays, 0.5)
    );
    assert!(p99 < Duration::from_secs(3), "p99 {p99:?}: {delays:?}");
    assert_eq!(metrics.resyncs.load(Ordering::Relaxed), resyncs);
    for s in [a, b] {
        eventually(LIMIT, "the rest on each peer", || async {
            common::dumped_keys(s).await.len() == KEYS - SLOW_DELETES
        })
        .await;
    }
    let sample: Vec<String> = on_a[SLOW_DELETES..100]
        .iter()
        .chain(&on_b[SLOW_DELETES..100])
        .cloned()
        .collect();
    let snap = converged_on(&[a, b], true, LIMIT, &sample).await;
    assert_eq!(snap.len(), KEYS - SLOW_DELETES);
    r.stop().await;
}

/// Deletes each of `keys` through session-core's memcached store on `from`
/// (with delete markers) and measures how long each takes to be gone from
/// `to` (read every millisecond).
async fn store_delete_delays(
    from: &common::Server,
    to: &common::Server,
    keys: &[String],
) -> Vec<std::time::Duration> {
    use session_core::Store as _;
    let store = backend_memcached::MemcachedStore::from_url(&format!(
        "memcached://{}?delete_markers=1",
        from.addr()
    ))
    .unwrap();
    let mut reader = conn(to).await;
    let mut delays = Vec::new();
    for key in keys {
        assert!(reader.get_many(&[key.as_str()]).await.unwrap()[0].is_some());
        let start = std::time::Instant::now();
        assert!(store.delete(key).await.unwrap(), "{key}");
        while reader.get_many(&[key.as_str()]).await.unwrap()[0].is_some() {
            assert!(start.elapsed() < LIMIT, "{key} still on {}", to.addr());
            tokio::time::sleep(FAST_POLL).await;
        }
        delays.push(start.elapsed());
    }
    delays
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_18_a_delete_through_session_core_reaches_the_slave_within_50_ms_p99() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    // The feed alone: no key lists, no periodic comparison.
    let r = Replicator::start(feed_only(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    }))
    .unwrap();
    started(&r, 1).await;
    let names = keys("s", DELETES + 10);
    fill(m, "s", names.len()).await;
    converged_on(&[m, sl], false, LIMIT, &names).await;
    let (_, metrics) = r.links().pop().unwrap();
    assert_eq!(metrics.deletions_feed().get(&m.addr()), Some(&false));
    let delays = store_delete_delays(m, sl, &names[..DELETES]).await;
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.18 master->slave delete through session-core: p50 {:?} p99 {p99:?}",
        quantile(&delays, 0.5)
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}: {delays:?}");
    // The markers are not copied; the rest is equal.
    let snap = converged_on(&[m, sl], false, LIMIT, &names).await;
    assert_eq!(snap.len(), 10, "{:?}", snap.keys().collect::<Vec<_>>());
    assert!(
        common::dumped_keys(sl)
            .await
            .iter()
            .all(|k| !k.starts_with(backend_memcached::delete_marker::DELETE_MARKER_PREFIX))
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_1_6_18_a_delete_through_session_core_on_either_peer_reaches_the_other_within_50_ms_p99()
{
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let r = Replicator::start(feed_only(Topology::Mesh {
        peers: vec![a.addr(), b.addr()],
    }))
    .unwrap();
    started(&r, 2).await;
    let on_a = keys("a", DELETES / 2 + 5);
    let on_b = keys("b", DELETES / 2 + 5);
    fill(a, "a", on_a.len()).await;
    fill(b, "b", on_b.len()).await;
    let all: Vec<String> = on_a.iter().chain(&on_b).cloned().collect();
    converged_on(&[a, b], true, LIMIT, &all).await;
    let mut delays = store_delete_delays(a, b, &on_a[..DELETES / 2]).await;
    delays.extend(store_delete_delays(b, a, &on_b[..DELETES / 2]).await);
    let p99 = quantile(&delays, 0.99);
    eprintln!(
        "1.6.18 master<->master delete through session-core: p50 {:?} p99 {p99:?}",
        quantile(&delays, 0.5)
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}: {delays:?}");
    let snap = converged_on(&[a, b], true, LIMIT, &all).await;
    assert_eq!(snap.len(), 10, "{:?}", snap.keys().collect::<Vec<_>>());
    r.stop().await;
}

/// A proxy to `upstream` that answers `watch mutations deletions` with
/// `CLIENT_ERROR` (as a server or proxy that knows no `deletions` might)
/// and passes everything else through.
async fn refusing_proxy(upstream: String) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut first = String::new();
                if client.read_line(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                if first.starts_with("watch mutations deletions") {
                    let _ = client
                        .get_mut()
                        .write_all(b"CLIENT_ERROR bad command line format\r\n")
                        .await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                if server.write_all(first.as_bytes()).await.is_err() {
                    return;
                }
                // Whatever the reader buffered past the first line.
                let buffered = client.buffer().to_vec();
                if server.write_all(&buffered).await.is_err() {
                    return;
                }
                let mut client = client.into_inner();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_refused_with_client_error_falls_back_to_mutations_and_key_lists() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let master = refusing_proxy(m.addr()).await;
    let r = Replicator::start(key_lists_only(Topology::MasterSlave {
        master: master.clone(),
        slaves: vec![sl.addr()],
    }))
    .unwrap();
    started(&r, 1).await;
    let (_, metrics) = r.links().pop().unwrap();
    let mut c = conn(m).await;
    c.set("w1", b"one", 3, Ttl::NEVER).await.unwrap();
    c.set("w2", b"two", 3, Ttl::NEVER).await.unwrap();
    let names = vec!["w1".to_owned(), "w2".to_owned()];
    let snap = converged_on(&[m, sl], false, LIMIT, &names).await;
    assert_eq!(snap["w1"], (b"one".to_vec(), 3, false));
    assert!(c.delete("w1").await.unwrap());
    let snap = converged_on(&[m, sl], false, LIMIT, &names).await;
    assert_eq!(snap.keys().collect::<Vec<_>>(), ["w2"]);
    // One fallback, no loop: the feed stayed up, nothing failed.
    assert_eq!(metrics.feeds_connected.load(Ordering::Relaxed), 1);
    assert_eq!(
        metrics.errors.load(Ordering::Relaxed),
        0,
        "{}",
        r.metrics_text()
    );
    assert_eq!(metrics.deletions_feed().get(&master), Some(&false));
    assert!(metrics.key_lists.load(Ordering::Relaxed) >= 1);
    r.stop().await;
}

/// `key` on `server`, read with `mg`.
async fn item(server: &common::Server, key: &str) -> Option<backend_memcached::raw::RawItem> {
    conn(server)
        .await
        .get_many(&[key])
        .await
        .unwrap()
        .pop()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_too_large_for_the_slave_is_counted_and_skipped_not_retried() {
    let m = memcached_with(MemcachedOptions {
        item_size_max: Some(2 << 20),
        ..Default::default()
    })
    .await;
    let sl = memcached_with(MemcachedOptions::default()).await;
    let mut config = fast(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    });
    config.resync_interval = Some(Duration::from_millis(300));
    let r = Replicator::start(config).unwrap();
    started(&r, 1).await;
    let (_, metrics) = r.links().pop().unwrap();
    let mut c = conn(&m).await;
    let big = vec![b'x'; 3 << 19]; // 1.5 MiB: fits the master's 2 MiB, not the slave's 1 MiB
    c.set("big", &big, 0, Ttl::NEVER).await.unwrap();
    c.set("small", b"s", 0, Ttl::NEVER).await.unwrap();
    eventually(LIMIT, "the refusal counted", || async {
        metrics.too_large.load(Ordering::Relaxed) >= 1
    })
    .await;
    // Several comparisons (full and key lists) later: not tried again.
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);
    eventually(LIMIT, "three more comparisons", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= resyncs + 3
    })
    .await;
    assert_eq!(
        metrics.too_large.load(Ordering::Relaxed),
        1,
        "{}",
        r.metrics_text()
    );
    let small = ["small".to_owned()];
    eventually(LIMIT, "the small item copied", || async {
        item(&sl, "small").await.is_some()
    })
    .await;
    let snap = common::read(&sl, &small.iter().cloned().collect(), false).await;
    assert_eq!(snap["small"].0, b"s".to_vec());
    assert!(item(&sl, "big").await.is_none());
    // A new version of the item is tried (and refused) once more; one that
    // fits is copied.
    c.set("big", &vec![b'y'; 3 << 19], 0, Ttl::NEVER)
        .await
        .unwrap();
    eventually(LIMIT, "the new version refused", || async {
        metrics.too_large.load(Ordering::Relaxed) == 2
    })
    .await;
    c.set("big", b"fits now", 0, Ttl::NEVER).await.unwrap();
    eventually(LIMIT, "the fitting version copied", || async {
        item(&sl, "big")
            .await
            .is_some_and(|i| i.value == b"fits now")
    })
    .await;
    assert!(r.metrics_text().contains("replicator_too_large_total"));
    r.stop().await;
}

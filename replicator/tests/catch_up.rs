//! Feeds and catch-up against real memcached servers: writers on several
//! connections (whose watch lines memcached prints out of `gid` order)
//! cause no gap and no resync; a slave, or a peer, killed and started
//! empty on the same port has its 10 000 keys back within 5 s, with
//! neither a periodic comparison nor key lists to bring them. The slave
//! cases run on 1.6.18 and on 1.6.38 (a deletions feed, so no key list
//! hides a missed restart: issue #23), with the restart noticed by the
//! monitor (restarted before its second look, 2 s apart) or by a copier
//! (one write to copy; the monitor looks once a minute). Keys written again
//! and again (and deleted, on 1.6.38) on the source while a restarted
//! slave or peer is refilled end with their last value on both sides: the
//! feed's copies go before the refill's, and a refill copy served after
//! them must not put back what it listed.
//!
//! The 5 s are timed until every key is readable again (pipelined `mg`),
//! then every key and value is compared. Measured on
//! a loaded 2-core machine (debug build, the six tests at once): the
//! count is back in 0.5-0.8 s when a copier or the peer's monitor
//! notices, ~2 s when the monitor's 2 s look does; the copies take
//! ~0.15 s of it (64 writes to a round trip). With one round trip per
//! write the copies alone took ~0.7 s, and a CI run under the whole suite
//! missed 5 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{conn, converged_on, eventually, fast, keys, memcacheds, memcacheds_feed};
use replicator::{Replicator, Topology};
use session_core::Ttl;

const LIMIT: Duration = Duration::from_secs(20);
/// How long a refill of 10 000 keys may take (issue #23's bound).
const REFILL_LIMIT: Duration = Duration::from_secs(5);

/// Times the refill of `server` until it holds every one of `known` again
/// (read with pipelined `mg`), asserts it under [`REFILL_LIMIT`] and
/// prints it.
async fn refilled(server: &common::Server, known: &[String], what: &str) {
    let back = Instant::now();
    eventually(REFILL_LIMIT, what, || async {
        let mut c = conn(server).await;
        let mut n = 0;
        for chunk in known.chunks(1000) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            n += c.get_many(&refs).await.unwrap().iter().flatten().count();
        }
        n == known.len()
    })
    .await;
    eprintln!("{what} in {:?}", back.elapsed());
}

/// `n` keys `prefix{i}` with value `v{i}` written on `server` by `writers`
/// connections at once (interleaved: memcached's worker threads log them
/// out of order).
async fn write_interleaved(server: &common::Server, prefix: &str, writers: usize, n: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut c = conn(server).await;
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(writers) {
                c.set(
                    &format!("{prefix}{i}"),
                    format!("v{i}").as_bytes(),
                    7,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_writers_cause_no_gap_and_no_resync() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let mut config = fast(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    });
    // Only a (false) gap could start a comparison after the first.
    config.resync_interval = None;
    let r = Replicator::start(config).unwrap();
    let (_, metrics) = r.links().pop().unwrap();
    eventually(LIMIT, "start resync", || async {
        metrics.resyncs.load(Ordering::Relaxed) >= 1
            && metrics.feeds_connected.load(Ordering::Relaxed) == 1
    })
    .await;
    let resyncs = metrics.resyncs.load(Ordering::Relaxed);
    let events = metrics.events.load(Ordering::Relaxed);
    write_interleaved(m, "il", 4, 800).await;
    let snap = converged_on(&[m, sl], false, LIMIT, &keys("il", 800)).await;
    assert_eq!(snap.len(), 800);
    for i in 0..800 {
        assert_eq!(snap[&format!("il{i}")].0, format!("v{i}").into_bytes());
        assert_eq!(snap[&format!("il{i}")].1, 7);
    }
    eventually(LIMIT, "every event read", || async {
        metrics.events.load(Ordering::Relaxed) >= events + 800
    })
    .await;
    assert_eq!(
        metrics.feed_gaps.load(Ordering::Relaxed),
        0,
        "{}",
        r.metrics_text()
    );
    assert_eq!(
        metrics.resyncs.load(Ordering::Relaxed),
        resyncs,
        "no resync"
    );
    assert_eq!(
        metrics.resync_running.load(Ordering::Relaxed),
        0,
        "no resync"
    );
    r.stop().await;
}

/// Writes `n` keys `prefix{i}` on `server` from eight connections.
async fn fill(server: &common::Server, prefix: &str, n: usize) {
    write_interleaved(server, prefix, 8, n).await;
}

/// Which memcached a catch-up test runs on.
#[derive(Clone, Copy)]
enum Kind {
    /// The system's (1.6.18 on Debian 12): no deletions feed.
    System,
    /// 1.6.38 (`bash .ci/memcached-trixie`): the deletions feed is used.
    Feed,
}

impl Kind {
    async fn pair(self) -> Vec<common::Server> {
        match self {
            Kind::System => memcacheds(2).await,
            Kind::Feed => memcacheds_feed(2).await,
        }
    }
}

/// Who must notice the restart.
#[derive(Clone, Copy)]
enum Notice {
    /// The monitor, with no write to copy. Its looks are 2 s apart, and
    /// the restart comes before its second: its first look must be taken
    /// at start (it once came one `stats_poll` late, and a restart within
    /// that spell went unnoticed).
    Monitor,
    /// A copier, reading the new run when it copies one new write; the
    /// monitor looks only every minute.
    Copier,
}

/// A master holding 10 000 keys (before the replicator starts) and its
/// slave, killed and started empty on the same port once the keys are
/// copied: every key is back within [`REFILL_LIMIT`], with neither a
/// periodic comparison nor key lists to bring them (issue #23: on 1.6.38
/// they waited for the periodic comparison).
async fn slave_restart_refills(kind: Kind, notice: Notice) {
    let s = kind.pair().await;
    let (m, sl) = (&s[0], &s[1]);
    fill(m, "k", 10_000).await;
    let known = keys("k", 10_000);
    let mut config = fast(Topology::MasterSlave {
        master: m.addr(),
        slaves: vec![sl.addr()],
    });
    config.resync_interval = None;
    config.key_list_interval = None;
    config.stats_poll = match notice {
        Notice::Monitor => Duration::from_secs(2),
        Notice::Copier => Duration::from_secs(60),
    };
    let r = Replicator::start(config).unwrap();
    converged_on(&[m, sl], false, Duration::from_secs(60), &known).await;
    sl.stop().await.unwrap();
    sl.start().await.unwrap();
    if let Notice::Copier = notice {
        conn(m)
            .await
            .set("after-restart", b"new", 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    refilled(sl, &known, "slave refilled").await;
    let snap = converged_on(&[m, sl], false, LIMIT, &known).await;
    let written = 10_000 + usize::from(matches!(notice, Notice::Copier));
    assert_eq!(snap.len(), written);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_killed_and_started_empty_has_10k_keys_back_at_once() {
    slave_restart_refills(Kind::System, Notice::Monitor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_6_38_slave_killed_and_started_empty_has_10k_keys_back_at_once() {
    slave_restart_refills(Kind::Feed, Notice::Monitor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_a_copier_meets_first_refills_the_slave_at_once() {
    slave_restart_refills(Kind::System, Notice::Copier).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_6_38_restart_a_copier_meets_first_refills_the_slave_at_once() {
    slave_restart_refills(Kind::Feed, Notice::Copier).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_and_started_empty_has_10k_keys_back_at_once() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let mut config = fast(Topology::Mesh {
        peers: vec![a.addr(), b.addr()],
    });
    config.resync_interval = None;
    config.key_list_interval = None;
    let r = Replicator::start(config).unwrap();
    fill(a, "p", 10_000).await;
    let known = keys("p", 10_000);
    converged_on(&[a, b], true, Duration::from_secs(60), &known).await;
    b.stop().await.unwrap();
    b.start().await.unwrap();
    refilled(b, &known, "peer refilled").await;
    let snap = converged_on(&[a, b], true, LIMIT, &known).await;
    // Refilled, not wiped: the empty peer's absences are no deletes.
    assert_eq!(snap.len(), 10_000);
    r.stop().await;
}

/// Keys of the refill that the client keeps writing while it runs.
const HOT: usize = 50;
/// Keys of the refill the client deletes while it runs (1.6.38: its
/// deletions feed carries them; 1.6.18 without key lists would leave a
/// delete to the periodic comparison, which these tests turn off).
const DELETED: std::ops::Range<usize> = 50..60;

/// Node `target` of `nodes` (`nodes[source]` holding 10 000 keys) is
/// killed and started empty; while its refill runs, a client on the
/// source overwrites `HOT` of the refill's keys and one new key round
/// after round (and, when `deletes`, deletes `DELETED` once), until the
/// target holds every key again, then once more. The feed's copies go
/// before the refill's (a priority lane): a refill copy that comes after
/// must read the newer value, never put back the one it listed. Every
/// key ends with its last value on both sides, the deleted keys nowhere.
async fn writes_during_a_refill_end_with_their_last_value(
    nodes: &[common::Server],
    source: usize,
    target: usize,
    mesh: bool,
    deletes: bool,
) {
    let (src, dst) = (&nodes[source], &nodes[target]);
    fill(src, "k", 10_000).await;
    let known = keys("k", 10_000);
    let all: Vec<&common::Server> = nodes.iter().collect();
    converged_on(&all, mesh, Duration::from_secs(60), &known).await;
    dst.stop().await.unwrap();
    dst.start().await.unwrap();
    let mut w = conn(src).await;
    let mut round = 0usize;
    let mut rounds_during_refill = 0;
    let remaining: Vec<String> = known
        .iter()
        .enumerate()
        .filter(|(i, _)| !deletes || !DELETED.contains(i))
        .map(|(_, k)| k.clone())
        .collect();
    let started = Instant::now();
    loop {
        let value = format!("r{round}");
        for key in known.iter().take(HOT).chain(["hot".to_owned()].iter()) {
            w.set(key, value.as_bytes(), 3, Ttl::NEVER).await.unwrap();
        }
        if deletes && round == 0 {
            for i in DELETED {
                w.delete(&format!("k{i}")).await.unwrap();
            }
        }
        round += 1;
        let mut c = conn(dst).await;
        let mut present = 0;
        for chunk in remaining.chunks(1000) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            present += c.get_many(&refs).await.unwrap().iter().flatten().count();
        }
        if present == remaining.len() {
            break;
        }
        rounds_during_refill += 1;
        assert!(started.elapsed() < LIMIT, "the refill did not end");
    }
    // The last round, after the refill.
    let last = format!("r{round}");
    for key in known.iter().take(HOT).chain(["hot".to_owned()].iter()) {
        w.set(key, last.as_bytes(), 3, Ttl::NEVER).await.unwrap();
    }
    assert!(
        rounds_during_refill >= 1,
        "no write landed while the refill ran"
    );
    eprintln!("{rounds_during_refill} rounds of writes during the refill");
    let mut expected = known.clone();
    expected.push("hot".to_owned());
    let snap = converged_on(&all, mesh, LIMIT, &expected).await;
    for (i, key) in known.iter().enumerate() {
        if i < HOT {
            assert_eq!(snap[key], (last.clone().into_bytes(), 3, false), "{key}");
        } else if deletes && DELETED.contains(&i) {
            assert!(!snap.contains_key(key), "{key} deleted, then put back");
        } else {
            assert_eq!(snap[key], (format!("v{i}").into_bytes(), 7, false), "{key}");
        }
    }
    assert_eq!(snap["hot"], (last.into_bytes(), 3, false));
    let deleted = if deletes { DELETED.len() } else { 0 };
    assert_eq!(snap.len(), 10_000 - deleted + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_6_38_slave_written_during_its_refill_ends_with_the_last_values() {
    let s = Kind::Feed.pair().await;
    let mut config = fast(Topology::MasterSlave {
        master: s[0].addr(),
        slaves: vec![s[1].addr()],
    });
    config.resync_interval = None;
    config.key_list_interval = None;
    let r = Replicator::start(config).unwrap();
    writes_during_a_refill_end_with_their_last_value(&s, 0, 1, false, true).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_written_during_its_refill_ends_with_the_last_values() {
    let s = memcacheds(2).await;
    let mut config = fast(Topology::Mesh {
        peers: vec![s[0].addr(), s[1].addr()],
    });
    config.resync_interval = None;
    config.key_list_interval = None;
    let r = Replicator::start(config).unwrap();
    writes_during_a_refill_end_with_their_last_value(&s, 0, 1, true, false).await;
    r.stop().await;
}

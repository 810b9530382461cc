//! The `replicator` binary: `--help` explains the flags, bad flags exit 2,
//! and a real run copies master -> slave, serves `/metrics` in Prometheus
//! text and stops cleanly on SIGTERM; between peers with a state file, a
//! daemon killed with SIGKILL still keeps a delete made while it was dead,
//! also when killed mid-stream, writes flowing on both peers throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{conn, converged, eventually, free_port, http_get, memcacheds};
use session_core::Ttl;

const BIN: &str = env!("CARGO_BIN_EXE_replicator");

#[test]
fn help_explains_every_flag_and_bad_usage_exits_2() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--master",
        "--slave",
        "--peer",
        "--config",
        "--resync-interval",
        "--metrics",
        "--state-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = Command::new(BIN)
        .args(["--peer", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least two peers"));
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_replicates_serves_metrics_and_stops_on_sigterm() {
    let s = memcacheds(2).await;
    let (m, sl) = (&s[0], &s[1]);
    let metrics = format!("127.0.0.1:{}", free_port());
    let dir = std::env::temp_dir().join(format!("replicator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("replicator.toml");
    std::fs::write(
        &file,
        format!(
            "master = \"{}\"\nslaves = [\"{}\"]\nresync_interval_secs = 1\nmetrics = \"{metrics}\"\n",
            m.addr(),
            sl.addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut mc = conn(m).await;
    for i in 0..20 {
        mc.set(&format!("d{i}"), b"v", 1, Ttl::NEVER).await.unwrap();
    }
    let snap = converged(&[m, sl], false, Duration::from_secs(20)).await;
    assert_eq!(snap.len(), 20);
    let addr = metrics.clone();
    eventually(Duration::from_secs(10), "/metrics answers", || {
        let addr = addr.clone();
        async move {
            http_get(&addr, "/metrics").is_some_and(|t| {
                t.contains("200 OK")
                    && t.contains("replicator_copied_total{link=")
                    && t.contains("replicator_resync_running")
            })
        }
    })
    .await;
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let start = std::time::Instant::now();
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
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon between two peers with a state file, comparing every second.
fn spawn_mesh_daemon(
    a: &common::Server,
    b: &common::Server,
    state: &std::path::Path,
    metrics: &str,
) -> std::process::Child {
    Command::new(BIN)
        .args(["--peer", &a.addr(), "--peer", &b.addr()])
        .args(["--resync-interval", "1", "--metrics", metrics])
        .arg("--state-file")
        .arg(state)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The value of `series` (first line that starts with it) in /metrics.
fn metric(addr: &str, series: &str) -> Option<f64> {
    let text = http_get(addr, "/metrics")?;
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The state file is saved after each comparison, not only at a clean
/// stop: a replicator killed with SIGKILL still knows at its next start
/// which keys were in sync, so a delete made while it was dead sticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_a_delete_made_while_dead_still_sticks() {
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let dir = std::env::temp_dir().join(format!("replicator-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_mesh_daemon(a, b, &state, &metrics);
    let mut ca = conn(a).await;
    for i in 0..100 {
        ca.set(&format!("k{i}"), b"v", 0, Ttl::NEVER).await.unwrap();
    }
    common::converged_on(
        &[a, b],
        true,
        Duration::from_secs(20),
        &common::keys("k", 100),
    )
    .await;
    // A comparison after the copies, then its save: every key is in it.
    eventually(
        Duration::from_secs(20),
        "the state file names every key",
        || {
            let state = state.clone();
            async move {
                std::fs::read_to_string(&state)
                    .is_ok_and(|t| (0..100).all(|i| t.contains(&format!("\"k{i}\""))))
            }
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL: no clean stop, no save at exit
    child.wait().unwrap();
    for i in 0..10 {
        assert!(ca.delete(&format!("k{i}")).await.unwrap());
    }
    let mut child = spawn_mesh_daemon(a, b, &state, &metrics);
    let addr = metrics.clone();
    eventually(
        Duration::from_secs(20),
        "a comparison after the restart",
        || {
            let addr = addr.clone();
            async move { metric(&addr, "replicator_resyncs_total{").is_some_and(|n| n >= 1.0) }
        },
    )
    .await;
    let snap = common::converged_on(
        &[a, b],
        true,
        Duration::from_secs(20),
        &common::keys("k", 100),
    )
    .await;
    assert_eq!(snap.len(), 90, "the 10 deletes stuck on both peers");
    assert!((0..10).all(|i| !snap.contains_key(&format!("k{i}"))));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A writer of `prefix{i}` = `v{i}` on one server, one key after the
/// other with a short pause, until told to stop: writes flow before,
/// during and after the replicator's kill and restart.
struct Stream {
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<usize>,
}

impl Stream {
    async fn start(
        server: &common::Server,
        prefix: &'static str,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Stream {
        use std::sync::atomic::Ordering;
        let mut c = conn(server).await;
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&written);
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                c.set(
                    &format!("{prefix}{n}"),
                    format!("v{n}").as_bytes(),
                    0,
                    Ttl::NEVER,
                )
                .await
                .unwrap();
                n += 1;
                count.store(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        });
        Stream { written, task }
    }

    /// Waits until `more` keys were written after this call.
    async fn wait_for(&self, more: usize, what: &str) {
        use std::sync::atomic::Ordering;
        let target = self.written.load(Ordering::Relaxed) + more;
        eventually(Duration::from_secs(30), what, || async {
            self.written.load(Ordering::Relaxed) >= target
        })
        .await;
    }
}

/// The replicator itself killed with SIGKILL mid-stream (writes flowing on
/// both peers) and restarted with its state file: every key written
/// before, during and after the outage ends equal on both peers with its
/// last value, and deletes made on either peer while it was dead stick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_and_restarted_both_peers_end_equal_and_deletes_stick() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = memcacheds(2).await;
    let (a, b) = (&s[0], &s[1]);
    let dir = std::env::temp_dir().join(format!("replicator-midstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_mesh_daemon(a, b, &state, &metrics);
    let mut ca = conn(a).await;
    let mut cb = conn(b).await;
    for i in 0..100 {
        ca.set(&format!("k{i}"), b"v", 0, Ttl::NEVER).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sa = Stream::start(a, "sa", Arc::clone(&stop)).await;
    let sb = Stream::start(b, "sb", Arc::clone(&stop)).await;
    // The k keys are in a saved state (so their deletes can stick) while
    // the streams go on.
    eventually(
        Duration::from_secs(20),
        "the state file names every k key",
        || {
            let state = state.clone();
            async move {
                std::fs::read_to_string(&state)
                    .is_ok_and(|t| (0..100).all(|i| t.contains(&format!("\"k{i}\""))))
            }
        },
    )
    .await;
    sa.wait_for(200, "200 stream keys on a").await;
    let addr = metrics.clone();
    eventually(Duration::from_secs(20), "the streams being copied", || {
        let addr = addr.clone();
        async move { metric(&addr, "replicator_copied_total{").is_some_and(|n| n >= 100.0) }
    })
    .await;
    child.kill().unwrap(); // SIGKILL mid-stream: no drain, no save at exit
    child.wait().unwrap();
    // While it is dead: deletes on both sides; the streams go on.
    for i in 0..10 {
        assert!(ca.delete(&format!("k{i}")).await.unwrap());
        assert!(cb.delete(&format!("k{}", 10 + i)).await.unwrap());
    }
    sb.wait_for(100, "100 stream keys on b while the replicator is dead")
        .await;
    let mut child = spawn_mesh_daemon(a, b, &state, &metrics);
    let addr = metrics.clone();
    eventually(Duration::from_secs(20), "copies after the restart", || {
        let addr = addr.clone();
        async move {
            metric(&addr, "replicator_resyncs_total{").is_some_and(|n| n >= 1.0)
                && metric(&addr, "replicator_copied_total{").is_some_and(|n| n > 0.0)
        }
    })
    .await;
    sa.wait_for(100, "100 stream keys on a after the restart")
        .await;
    stop.store(true, Ordering::Relaxed);
    let (na, nb) = (sa.task.await.unwrap(), sb.task.await.unwrap());
    let mut known = common::keys("k", 100);
    known.extend(common::keys("sa", na));
    known.extend(common::keys("sb", nb));
    let snap = common::converged_on(&[a, b], true, Duration::from_secs(30), &known).await;
    for i in 0..20 {
        assert!(
            !snap.contains_key(&format!("k{i}")),
            "k{i}, deleted while the replicator was dead, came back"
        );
    }
    for i in 20..100 {
        assert_eq!(snap[&format!("k{i}")].0, b"v");
    }
    for (prefix, n) in [("sa", na), ("sb", nb)] {
        for i in 0..n {
            let key = format!("{prefix}{i}");
            assert_eq!(
                snap.get(&key).map(|v| &v.0[..]),
                Some(format!("v{i}").as_bytes()),
                "{key}"
            );
        }
    }
    assert_eq!(snap.len(), 80 + na + nb, "nothing else on either peer");
    eprintln!("streams: {na} keys written on a, {nb} on b");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

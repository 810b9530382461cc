//! The `replicator` binary: `--help` explains the flags, bad flags exit 2,
//! and a real run copies master -> slave, serves `/metrics` in Prometheus
//! text and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{conn, converged, eventually, memcacheds};
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
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

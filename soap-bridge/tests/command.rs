//! The `soap-bridge` command itself: it starts with no setup and says where
//! it listens, serves, and exits cleanly on SIGTERM and SIGINT; bad settings
//! are refused before it listens; `--help` explains every flag.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::soap;

fn bridge(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_soap-bridge"));
    c.args(args).env("RUST_LOG", "warn");
    c
}

/// Starts the command on a free port; returns it and the address it printed.
fn start() -> (Child, std::net::SocketAddr) {
    let mut child = bridge(&["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("soap-bridge listening on http://127.0.0.1:"),
        "{line}"
    );
    let addr = line
        .trim_start_matches("soap-bridge listening on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (child, addr)
}

/// Sends `signal` and waits (polling) for a clean exit.
fn stops_on(mut child: Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status} after {signal}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running 5 s after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_stops_on_signals() {
    for signal in ["-TERM", "-INT"] {
        let (child, addr) = start();
        let r = soap(addr, "status", "").await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("OK"));
        tokio::task::spawn_blocking(move || stops_on(child, signal))
            .await
            .unwrap();
    }
}

#[test]
fn bad_settings_are_refused_before_listening() {
    for (args, says) in [
        (vec!["--codec", "yaml"], "unknown codec"),
        (
            vec!["--store", "redis://127.0.0.1?nope=1"],
            "unknown query key",
        ),
        (vec!["--store", "ftp://x"], "unknown store URL"),
        (vec!["--principal", "_session_id"], "principal"),
        (vec!["--admin"], "the admin pages need [auth]"),
        (vec!["--principal-index"], "principal_index needs principal"),
        (
            vec!["--llng-clock-tolerance", "0"],
            "llng.clock_tolerance_secs 0 is outside",
        ),
        (
            vec!["--llng-key-file", "/nonexistent/llng.key"],
            "cannot read the LL::NG key file",
        ),
        (
            vec!["--config", "/nonexistent/soap-bridge.toml"],
            "cannot read config file",
        ),
    ] {
        let out = bridge(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_every_flag() {
    let out = bridge(&["--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--store",
        "--local",
        "--timeout",
        "--principal",
        "--codec",
        "--config",
        "--principal-index",
        "--admin",
        "--llng-key-file",
        "--llng-clock-tolerance",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn config_file_is_read() {
    let dir = std::env::temp_dir().join(format!("soap-bridge-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bridge.toml");
    std::fs::write(&file, "codec = \"yaml\"\n").unwrap();
    let out = bridge(&["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("yaml"));
    std::fs::write(&file, "unknown_key = 1\n").unwrap();
    let out = bridge(&["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
    std::fs::remove_dir_all(&dir).unwrap();
}

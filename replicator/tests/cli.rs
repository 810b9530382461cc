//! The shipped `replicator` binary around its work: `--version` names the
//! commit, the hidden `--print-man-page` and `--health-probe` (the OCI
//! images' HEALTHCHECK) work, logs carry no colour codes off a terminal and
//! go to stdout when asked, every fatal error (an unknown key even with
//! `RUST_BACKTRACE=1`, a missing file, a busy metrics port) is one line
//! and a non-zero exit, and the packaged `deploy/config/replicator.toml`
//! passes the real loader and names every key it accepts. No memcached is
//! needed: the nodes named are closed ports, which the daemon retries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};

use replicator::FileConfig;
use test_support::child;
use test_support::child::{
    assert_one_line_failure, assert_version_names_commit, run, scratch_dir, sigterm,
    uncommented_settings, wait_for_text,
};

const BIN: &str = env!("CARGO_BIN_EXE_replicator");

/// `host:port` where nothing listens (bound, then let go).
fn closed() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// Starts a master -> slave daemon on closed ports with the metrics server
/// on a free port, `stream` (stdout or stderr) to `log`.
fn start(log: &Path, stream: &str) -> Child {
    let file = || Stdio::from(std::fs::File::create(log).unwrap());
    let (master, slave) = (closed(), closed());
    let mut command = child::command(
        BIN,
        &[
            "--master",
            &master,
            "--slave",
            &slave,
            "--metrics",
            "127.0.0.1:0",
            "--log-output",
            stream,
        ],
    );
    if stream == "stdout" {
        command.stdout(file()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped()).stderr(file());
    }
    command.spawn().unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = run(child::command(BIN, &["--version"]), "--version");
    assert_version_names_commit(&out, "replicator", env!("CARGO_PKG_VERSION"));
}

#[test]
fn man_page_comes_from_the_clap_definition() {
    let out = run(
        child::command(BIN, &["--print-man-page"]),
        "--print-man-page",
    );
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH replicator 1"), "{page}");
    for flag in [r"\-\-peer", r"\-\-state\-file", r"\-\-log\-output"] {
        assert!(page.contains(flag), "{flag}: {page}");
    }
    assert!(!page.contains(r"\-\-health\-probe") && !page.contains(r"\-\-print\-man\-page"));
}

#[test]
fn logs_are_plain_off_a_terminal_and_the_health_probe_sees_the_daemon() {
    let dir = scratch_dir("replicator-cli", "logs");
    let log = dir.join("stderr.log");
    let mut child = start(&log, "stderr");
    let text = wait_for_text(&log, "replicator started");
    let metrics = text
        .split("metrics=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_owned();
    // The probe reads no config: a missing one does not matter.
    let out = run(
        child::command(
            BIN,
            &["--health-probe", &metrics, "--config", "/nonexistent.toml"],
        ),
        "probe",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sigterm(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO") && text.contains("SIGTERM"), "{text}");
    assert!(!text.contains("\x1b["), "ANSI codes in a file: {text:?}");

    let out = run(
        child::command(BIN, &["--health-probe", &metrics]),
        "probe, stopped",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_failure(&out, &[&metrics]);

    let mut child = start(&log, "stdout");
    wait_for_text(&log, "replicator started");
    sigterm(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(stderr, "", "logs went to stderr");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("\x1b["));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_are_one_line_even_with_backtraces_on() {
    let dir = scratch_dir("replicator-cli", "config");
    let file = dir.join("replicator.toml");
    std::fs::write(&file, "peers = [\"a:1\", \"b:2\"]\npeer = \"c:3\"\n").unwrap();
    let path = file.to_str().unwrap();
    let mut command = child::command(BIN, &["--config", path]);
    command.env("RUST_BACKTRACE", "1");
    let out = run(command, "unknown key");
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_failure(&out, &[path, "line 2", "unknown field `peer`"]);

    let missing = dir.join("missing.toml");
    assert_one_line_failure(
        &run(
            child::command(BIN, &["--config", missing.to_str().unwrap()]),
            "missing file",
        ),
        &["missing.toml", "No such file"],
    );
    let mut command = child::command(BIN, &["--master", "127.0.0.1:1"]);
    command.env("RUST_BACKTRACE", "1");
    assert_one_line_failure(&run(command, "no slave"), &["at least one slave"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_busy_metrics_port_is_one_line_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (master, slave) = (closed(), closed());
    let out = run(
        child::command(
            BIN,
            &["--master", &master, "--slave", &slave, "--metrics", &addr],
        ),
        "busy port",
    );
    assert_one_line_failure(&out, &[&addr]);
    drop(taken);
}

#[test]
fn the_packaged_config_loads_validates_and_names_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/replicator.toml");
    let file = FileConfig::load(&path).unwrap();
    assert_eq!(
        file.state_file.as_deref(),
        Some(Path::new("/var/lib/memorycached-replicator/state.json"))
    );
    let config = file.into_config().unwrap();
    assert_eq!(
        config.topology,
        replicator::Topology::Mesh {
            peers: vec!["127.0.0.1:11211".into(), "127.0.0.1:11212".into()]
        }
    );

    // Every commented-out setting is a real one (unknown keys are errors).
    let text = std::fs::read_to_string(&path).unwrap();
    let all = FileConfig::parse(&uncommented_settings(&text)).unwrap();
    assert!(all.master.is_some() && all.metrics.is_some() && all.marker_flag.is_some());
    // ... and every key the loader accepts is in the file.
    let err = FileConfig::parse("no_such_key = 1").unwrap_err();
    let keys: Vec<&str> = err.split('`').skip(3).step_by(2).collect();
    assert!(keys.len() >= 10, "{err}");
    for key in keys {
        let written = format!("{key} = ");
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches('#').trim_start().starts_with(&written)),
            "{key} is not in {}",
            path.display()
        );
    }
}

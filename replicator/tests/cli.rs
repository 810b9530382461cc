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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use replicator::FileConfig;
use test_support::child::{assert_one_line_failure, run, sigterm, wait_for_text};

const BIN: &str = env!("CARGO_BIN_EXE_replicator");

/// The command without the caller's logging settings.
fn replicator(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE");
    c
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("replicator-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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
    let mut command = replicator(&[
        "--master",
        &master,
        "--slave",
        &slave,
        "--metrics",
        "127.0.0.1:0",
        "--log-output",
        stream,
    ]);
    if stream == "stdout" {
        command.stdout(file()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped()).stderr(file());
    }
    command.spawn().unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = run(replicator(&["--version"]), "--version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("replicator {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = text
        .trim_end()
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text:?} is not `{prefix}<commit>)`"));
    // Built from a git checkout, so the build script found the commit.
    assert_eq!(commit.len(), 12, "{text}");
    assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
}

#[test]
fn man_page_comes_from_the_clap_definition() {
    let out = run(replicator(&["--print-man-page"]), "--print-man-page");
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
    let dir = scratch("logs");
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
        replicator(&["--health-probe", &metrics, "--config", "/nonexistent.toml"]),
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

    let out = run(replicator(&["--health-probe", &metrics]), "probe, stopped");
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
    let dir = scratch("config");
    let file = dir.join("replicator.toml");
    std::fs::write(&file, "peers = [\"a:1\", \"b:2\"]\npeer = \"c:3\"\n").unwrap();
    let path = file.to_str().unwrap();
    let mut command = replicator(&["--config", path]);
    command.env("RUST_BACKTRACE", "1");
    let out = run(command, "unknown key");
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_failure(&out, &[path, "line 2", "unknown field `peer`"]);

    let missing = dir.join("missing.toml");
    assert_one_line_failure(
        &run(
            replicator(&["--config", missing.to_str().unwrap()]),
            "missing file",
        ),
        &["missing.toml", "No such file"],
    );
    let mut command = replicator(&["--master", "127.0.0.1:1"]);
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
        replicator(&["--master", &master, "--slave", &slave, "--metrics", &addr]),
        "busy port",
    );
    assert_one_line_failure(&out, &[&addr]);
    drop(taken);
}

/// `#key = value` lines of the shipped file, uncommented.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let all = FileConfig::parse(&uncommented(&text)).unwrap();
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

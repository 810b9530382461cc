//! The shipped `soap-bridge` binary around its service: `--version` names
//! the commit, the hidden `--print-man-page` and `--health-probe` (the OCI
//! images' HEALTHCHECK) work, logs carry no colour codes off a terminal and
//! go to stdout when asked, every fatal error (a bad setting even with
//! `RUST_BACKTRACE=1`, an unknown key, a missing file, a busy port) is one
//! line and a non-zero exit, and the packaged `deploy/config/bridge.toml`
//! passes the real loader and names every key it accepts.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Stdio};

use soap_bridge::Config;
use test_support::child;
use test_support::child::{
    assert_one_line_failure, assert_version_names_commit, run, scratch_dir, sigterm,
    uncommented_settings,
};

const BIN: &str = env!("CARGO_BIN_EXE_soap-bridge");

/// Starts the bridge on a free port; returns it and the address it printed.
fn start(
    args: &[&str],
    stderr: Stdio,
) -> (Child, SocketAddr, BufReader<std::process::ChildStdout>) {
    let mut child = child::command(BIN, &[&["--listen", "127.0.0.1:0"], args].concat())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Logs may come first with --log-output stdout.
    while !line.starts_with("soap-bridge listening on ") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
    }
    let addr = line
        .trim_start_matches("soap-bridge listening on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (child, addr, out)
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = run(child::command(BIN, &["--version"]), "--version");
    assert_version_names_commit(&out, "soap-bridge", env!("CARGO_PKG_VERSION"));
}

#[test]
fn man_page_comes_from_the_clap_definition() {
    let out = run(
        child::command(BIN, &["--print-man-page"]),
        "--print-man-page",
    );
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH soap-bridge 1"), "{page}");
    assert!(page.contains(r"\-\-listen") && page.contains(r"\-\-seal\-keys\-file"));
    assert!(page.contains(r"\-\-log\-output"));
    // Hidden flags stay out of the page.
    assert!(!page.contains("health") || !page.contains(r"\-\-health\-probe"));
    assert!(!page.contains(r"\-\-print\-man\-page"));
}

#[test]
fn health_probe_answers_for_a_running_bridge_only() {
    let (mut child, addr, _out) = start(&[], Stdio::null());
    // A config that does not exist: the probe reads none.
    let out = run(
        child::command(
            BIN,
            &[
                "--health-probe",
                &addr.to_string(),
                "--config",
                "/nonexistent.toml",
            ],
        ),
        "probe",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    sigterm(&mut child);

    let closed = closed_port().to_string();
    let out = run(
        child::command(BIN, &["--health-probe", &closed]),
        "probe of a closed port",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_failure(&out, &[&closed]);

    // Something answering, but not 200: unhealthy.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "the probe closed before its request ended");
            request.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let out = run(
        child::command(BIN, &["--health-probe", &addr]),
        "probe of a 503",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_failure(&out, &["503"]);
    assert!(
        server
            .join()
            .unwrap()
            .starts_with("GET /healthz HTTP/1.1\r\n")
    );
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal_and_go_to_stdout_when_asked() {
    let dir = scratch_dir("bridge-cli", "logs");
    let log = dir.join("stderr.log");
    let (mut child, _, _out) = start(&[], Stdio::from(std::fs::File::create(&log).unwrap()));
    sigterm(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO") && text.contains("serving"), "{text}");
    assert!(!text.contains("\x1b["), "ANSI codes in a file: {text:?}");

    let (mut child, _, mut out) = start(
        &["--log-output", "stdout"],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    sigterm(&mut child);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("SIGTERM received"), "{rest}");
    assert!(!rest.contains("\x1b["), "{rest:?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "logs went to stderr"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_configuration_error_is_one_line_even_with_backtraces_on() {
    let mut command = child::command(BIN, &["--admin", "--listen", "127.0.0.1:0"]);
    command.env("RUST_BACKTRACE", "1");
    assert_one_line_failure(&run(command, "--admin without [auth]"), &["[auth]"]);

    let dir = scratch_dir("bridge-cli", "config");
    let file = dir.join("bridge.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_on = \"x\"\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let mut command = child::command(BIN, &["--config", file_arg]);
    command.env("RUST_BACKTRACE", "1");
    assert_one_line_failure(
        &run(command, "unknown key"),
        &[file_arg, "line 2", "unknown field `listen_on`"],
    );
    let missing = dir.join("missing.toml");
    assert_one_line_failure(
        &run(
            child::command(BIN, &["--config", missing.to_str().unwrap()]),
            "missing file",
        ),
        &["missing.toml", "No such file"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_busy_port_is_one_line_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(child::command(BIN, &["--listen", &addr]), "busy port");
    assert_one_line_failure(&out, &[&addr]);
    drop(taken);
}

/// The keys the loader accepts in `section` (top level if empty), from its
/// own unknown-field message.
fn accepted_keys(section: &str) -> Vec<String> {
    let header = if section.is_empty() {
        String::new()
    } else {
        format!("[{section}]\n")
    };
    let err = Config::from_toml(&format!("{header}no_such_key = 1\n"))
        .unwrap_err()
        .to_string();
    // "expected one of `a`, `b`, ..." or "expected `a` or `b`".
    let list = err
        .split_once("expected ")
        .unwrap_or_else(|| panic!("[{section}]: {err}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_packaged_config_loads_validates_and_names_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/bridge.toml");
    let config = Config::load(&path).unwrap();
    config.validate().unwrap();
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.store, "memcached://127.0.0.1:11211");

    // Every commented-out setting is a real one (unknown keys are errors).
    let text = std::fs::read_to_string(&path).unwrap();
    let all = Config::from_toml(&uncommented_settings(&text)).unwrap();
    assert!(all.auth.is_some() && all.tls.enabled() && all.seal.keys_file.is_some());
    // ... and every key the loader accepts is in the file.
    for section in ["", "admin", "tls", "llng", "seal"] {
        let keys = accepted_keys(section);
        assert!(keys.len() >= 2, "{section}: {keys:?}");
        for key in keys {
            let written = format!("{key} = ");
            assert!(
                text.lines().any(
                    |l| l.trim_start_matches('#').trim_start().starts_with(&written)
                        || (key.len() > 2 && l.contains(&format!("[{key}]")))
                ),
                "[{section}] {key} is not in {}",
                path.display()
            );
        }
    }
}

#[test]
fn the_default_build_has_redis_tls_and_cluster() {
    // Without the features these stores are refused at start; with them
    // the bridge listens (Redis is reached lazily, at the first request).
    for store in ["rediss://127.0.0.1:1", "redis://127.0.0.1:1?cluster=true"] {
        let (mut child, _, _out) = start(&["--store", store], Stdio::null());
        sigterm(&mut child);
    }
}

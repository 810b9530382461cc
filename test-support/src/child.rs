//! Running one of the project's own binaries in a test: wait for it with a
//! deadline, collect its output, stop it with SIGTERM, and the shapes
//! packaging relies on (the one-line fatal error, `--version` with the
//! commit, shipped configs whose commented settings the loader accepts). Shared by the binaries' `cli.rs`
//! tests, which check what packaging relies on.
//!
//! These are test helpers: they panic with a message saying what did not
//! happen, as an assertion would.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to exit, or a file to show a text.
const DEADLINE: Duration = Duration::from_secs(30);

/// `bin` with `args`, without the caller's `RUST_LOG` and `RUST_BACKTRACE`
/// (a test sets them itself where it checks what they change).
pub fn command(bin: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE");
    c
}

/// A scratch directory `<prefix>-<pid>-<name>` under the system's temp
/// directory, made if missing.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot make {}: {e}", dir.display());
    }
    dir
}

/// Asserts `out` is a successful `--version` of `name` at `version` that
/// names a 12-hex commit: `NAME VERSION (commit 1a2b3c4d5e6f)`. Tests are
/// built from a git checkout, so the build script found the commit.
pub fn assert_version_names_commit(out: &Output, name: &str, version: &str) {
    assert!(out.status.success(), "--version failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{name} {version} (commit ");
    let commit = text
        .trim_end()
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text:?} is not `{prefix}<commit>)`"));
    assert_eq!(commit.len(), 12, "{text}");
    assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
}

/// A shipped config with every commented-out setting (`#key = value`, a
/// lowercase key) and section header (`#[section]`) uncommented, so the
/// real loader can check the keys the file documents.
pub fn uncommented_settings(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
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

/// Waits (polling, 30 s deadline) for `child` to exit; kills it and panics
/// naming `what` when it does not.
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            Err(e) => panic!("{what}: cannot wait for the child: {e}"),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `command` to its end (30 s deadline), stdin closed, and returns
/// its output.
pub fn run(mut command: Command, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let status = wait_exit(&mut child, what);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Sends SIGTERM to `child` and asserts it exits 0 within the deadline.
pub fn sigterm(child: &mut Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        sent.as_ref().is_ok_and(ExitStatus::success),
        "kill -TERM {}: {sent:?}",
        child.id()
    );
    let status = wait_exit(child, "after SIGTERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// Asserts a fatal error as the binaries print it: a non-zero exit and
/// exactly one stderr line, starting `error: ` and holding every one of
/// `needles`.
pub fn assert_one_line_failure(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} missing: {stderr}");
    }
}

/// Polls `file` (30 s deadline) until it holds `needle`; returns its text.
pub fn wait_for_text(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {} after {DEADLINE:?}:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

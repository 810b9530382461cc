//! Storable codec evidence from real Perl: golden vectors Perl wrote
//! (`gen_vectors.pl`, read by `golden.rs`) and round trips through Perl's
//! own `thaw` run from the tests (`perl_roundtrip.rs`).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod golden;
mod perl_roundtrip;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// This directory: the scripts and `vectors/`.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/storable")
}

/// Fails with the Debian package to install unless perl has `modules`.
fn require_perl(modules: &[(&str, &str)]) {
    for (module, package) in modules {
        let ok = Command::new("perl")
            .args([&format!("-M{module}"), "-e1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "perl with {module} is required: apt-get install -y {package}"
        );
    }
}

/// Runs `script` (a file in this directory) with `stdin`; its stdout.
fn run_perl_script(script: &str, stdin: &str) -> String {
    require_perl(&[("Storable", "perl"), ("JSON::PP", "perl")]);
    let mut child = Command::new("perl")
        .arg(dir().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perl (apt-get install -y perl)");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    // Written from a thread: perl answers while we still write.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "perl {script} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

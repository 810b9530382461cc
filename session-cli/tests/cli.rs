//! `sessionctl` as packaged: `--version` names the commit, the hidden
//! `--print-man-page` works without a command, `completions bash` prints a
//! script bash accepts, no command at all is a usage error (exit 2), and the
//! default build knows Redis over TLS and Redis Cluster.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use test_support::child::assert_version_names_commit;

fn sessionctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = sessionctl(&["--version"]);
    assert_version_names_commit(&out, "sessionctl", env!("CARGO_PKG_VERSION"));
}

#[test]
fn man_page_without_a_command() {
    let out = sessionctl(&["--print-man-page"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH sessionctl 1"), "{page}");
    for command in [
        "get",
        "set",
        "delete",
        "find\\-principal",
        "reseal",
        "completions",
    ] {
        assert!(
            page.contains(&format!("sessionctl\\-{command}")),
            "{command}: {page}"
        );
    }
    assert!(!page.contains("print\\-man\\-page"));
}

#[test]
fn bash_completions_are_a_script_bash_accepts() {
    let out = sessionctl(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("complete -F _sessionctl"), "{script}");
    assert!(script.contains("find-principal") && script.contains("--seal-keys-file"));
    // bash itself parses it and registers the completion.
    let dir = std::env::temp_dir().join(format!("sessionctl-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessionctl.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p sessionctl",
            file.display()
        ))
        .output()
        .expect("bash is needed by this test (it checks the completion script)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("_sessionctl"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!sessionctl(&["completions", "tcsh"]).status.success());
}

#[test]
fn no_command_is_a_usage_error() {
    let out = sessionctl(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a command is required"));
}

#[test]
fn the_default_build_has_redis_tls_and_cluster() {
    // Built without them, these URLs are usage errors (2); built with
    // them, they are stores that cannot be reached here (3).
    let id = "0123456789abcdef0123456789abcdef";
    for store in ["rediss://127.0.0.1:1", "redis://127.0.0.1:1?cluster=true"] {
        let out = sessionctl(&["get", "--store", store, id]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{store}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! `sessionctl` with sealed sessions against the shared memcached servers:
//! keys from a file and from the environment, sealed values unreadable
//! without them (exit 1, like an unknown id), Storable refused with a seal,
//! and `reseal` rotating a prefix's sessions to a new key.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const HEX1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const HEX2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn servers() -> String {
    test_support::shared_servers("MEMORYCACHED_MEMCACHED")
        .unwrap_or_else(|e| panic!("{e}"))
        .join(",")
}

fn sessionctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run sessionctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns its last stdout line.
fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = sessionctl(args, env);
    assert!(
        out.status.success(),
        "sessionctl {args:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A key file only its owner reads, in a directory of this test's own.
fn key_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionctl-seal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// A prefix no other test (or run) uses, so a scan sees only our keys.
fn prefix(tag: &str) -> String {
    let out = ok(&["set", "--store", "memory://", "x=1"], &[]);
    format!("seal{tag}{}:", &out[..8])
}

#[test]
fn sealed_sessions_need_the_keys_and_reseal_rotates_them() {
    let s = servers();
    let p = prefix("rot");
    let old = key_file("old", &format!("# current\n1:{HEX1}\n"));
    let old = old.to_str().unwrap();
    let base = ["--servers", &s, "--key-prefix", &p, "--timeout", "600"];
    let with = |cmd: &str, more: &[&str]| -> Vec<String> {
        let mut v = vec![cmd.to_owned()];
        v.extend(base.iter().map(|a| (*a).to_owned()));
        v.extend(more.iter().map(|a| (*a).to_owned()));
        v
    };
    let run = |args: &[String], env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sessionctl(&args, env)
    };
    let must = |args: &[String], env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args, env)
    };
    let mut sealed_ids = Vec::new();
    for n in 0..3 {
        let uid = format!("uid=user{n}");
        sealed_ids.push(must(&with("set", &["--seal-keys-file", old, &uid]), &[]));
    }
    // The keys may come from the environment instead (by variable name).
    let from_env = must(
        &with("set", &["--seal-keys-env", "SEAL_KEYS_T", "uid=env"]),
        &[("SEAL_KEYS_T", &format!("1:{HEX1}"))],
    );
    sealed_ids.push(from_env.clone());
    let plain_id = must(&with("set", &["uid=plain"]), &[]);

    // Read with the keys: the session; without them: like an unknown id.
    let read = must(&with("get", &["--seal-keys-file", old, &from_env]), &[]);
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["uid"], "env");
    let blind = run(&with("get", &[&from_env]), &[]);
    assert_eq!(blind.status.code(), Some(1), "{}", text(&blind.stderr));
    // A plain value is refused while sealing is required, read in transition.
    let strict = run(&with("get", &["--seal-keys-file", old, &plain_id]), &[]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stderr));
    must(
        &with(
            "get",
            &["--seal-keys-file", old, "--accept-unsealed", &plain_id],
        ),
        &[],
    );

    // Storable with a seal: refused, with the reason, unless asked for.
    let storable = run(
        &with(
            "set",
            &["--seal-keys-file", old, "--codec", "storable", "a=1"],
        ),
        &[],
    );
    assert_eq!(storable.status.code(), Some(2));
    assert!(
        text(&storable.stderr).contains("Perl"),
        "{}",
        text(&storable.stderr)
    );
    sealed_ids.push(must(
        &with(
            "set",
            &[
                "--seal-keys-file",
                old,
                "--codec",
                "storable",
                "--seal-allow-storable",
                "a=1",
            ],
        ),
        &[],
    ));

    // Rotation: key 2 current, key 1 still read. The plain value is refused
    // (exit 3) until --accept-unsealed.
    let rotated = key_file("rotated", &format!("2:{HEX2}\n1:{HEX1}\n"));
    let rotated = rotated.to_str().unwrap();
    let first = run(
        &with("reseal", &["--seal-keys-file", rotated, "--page-size", "2"]),
        &[],
    );
    assert_eq!(first.status.code(), Some(3), "{}", text(&first.stderr));
    let summary: Value = serde_json::from_str(text(&first.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["resealed"], 5, "{summary}");
    assert_eq!(summary["refused"], 1, "{summary}");
    assert!(
        text(&first.stderr).contains("keys scanned"),
        "no progress output: {}",
        text(&first.stderr)
    );
    let second = must(
        &with(
            "reseal",
            &["--seal-keys-file", rotated, "--accept-unsealed"],
        ),
        &[],
    );
    let summary: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(summary["resealed"], 1, "{summary}");
    assert_eq!(summary["current"], 5, "{summary}");

    // Key 1 retired: everything still reads under key 2 alone.
    let new_only = key_file("new", &format!("2:{HEX2}\n"));
    let new_only = new_only.to_str().unwrap();
    for id in sealed_ids.iter().chain([&plain_id]) {
        must(&with("get", &["--seal-keys-file", new_only, id]), &[]);
    }
    // And no longer under key 1 alone.
    let stale = run(
        &with("get", &["--seal-keys-file", old, &sealed_ids[0]]),
        &[],
    );
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale.stderr));
}

#[test]
fn keys_are_never_command_line_arguments() {
    // No flag takes key material, and reseal without keys is a usage error.
    let out = sessionctl(&["reseal", "--store", "memory://"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let help = text(&sessionctl(&["set", "--help"], &[]).stdout);
    assert!(help.contains("--seal-keys-file") && help.contains("--seal-keys-env"));
    assert!(!help.contains("--seal-key "), "{help}");
    // A malformed key file is named, its content never printed.
    let bad = key_file("bad", "1:not-hex-secret-material\n");
    let out = sessionctl(
        &[
            "get",
            "--store",
            "memory://",
            "--seal-keys-file",
            bad.to_str().unwrap(),
            "0123456789abcdef0123456789abcdef",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad") && !err.contains("secret-material"),
        "{err}"
    );
}

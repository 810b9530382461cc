//! `sessionctl` as a user runs it: the real binary against the memcached
//! servers `cargo xtask test` starts (`MEMORYCACHED_MEMCACHED`), checking
//! its output and exit codes, and against real Perl for `--codec storable`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::{Value, json};

fn servers() -> String {
    test_support::shared_servers("MEMORYCACHED_MEMCACHED")
        .unwrap_or_else(|e| panic!("{e}"))
        .join(",")
}

fn sessionctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .output()
        .expect("run sessionctl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed; returns its last stdout line.
fn ok(args: &[&str]) -> String {
    let out = sessionctl(args);
    assert!(
        out.status.success(),
        "sessionctl {args:?}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out).lines().last().unwrap_or_default().to_owned()
}

fn get(servers: &str, id: &str) -> Value {
    serde_json::from_str(&ok(&["get", "--servers", servers, id])).unwrap()
}

#[test]
fn set_get_patch_delete_round_trip() {
    let s = servers();
    let id = ok(&[
        "set",
        "--servers",
        &s,
        "--timeout",
        "600",
        "uid=jdoe",
        "zip=00042",
        "n:=42",
        "groups:=[\"admins\",\"ops\"]",
        "expr=a=b",
    ]);
    assert_eq!(id.len(), 32, "last line is the new id: {id:?}");
    assert_eq!(
        get(&s, &id),
        json!({"_session_id": id, "uid": "jdoe", "zip": "00042", "n": 42,
               "groups": ["admins", "ops"], "expr": "a=b"})
    );
    // --id changes only the named keys.
    ok(&["set", "--servers", &s, "--id", &id, "theme=dark", "n:=43"]);
    let after = get(&s, &id);
    assert_eq!(after["theme"], "dark");
    assert_eq!(after["n"], 43);
    assert_eq!(after["uid"], "jdoe", "a key set did not name was lost");
    // Deleting keys, then the session.
    ok(&["delete", "--servers", &s, &id, "theme", "zip"]);
    let after = get(&s, &id);
    assert!(after.get("theme").is_none() && after.get("zip").is_none());
    assert_eq!(after["uid"], "jdoe");
    ok(&["delete", "--servers", &s, &id]);
    let gone = sessionctl(&["get", "--servers", &s, &id]);
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
}

/// A 64-hex id (the length LemonLDAP::NG makes), written by session-core
/// under that id as the bridge's LL::NG surfaces do: `get`, `set --id` and
/// `delete` take it like a 32-hex one.
#[test]
fn a_64_hex_session_is_read_changed_and_deleted() {
    let s = servers();
    let id = session_core::SessionId::generate(64).unwrap();
    assert_eq!(id.as_str().len(), 64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (store, _) = store_url::open(&format!("memcached://{s}"), None).unwrap();
        let sessions =
            session_core::Sessions::new(store, session_core::SessionsConfig::default()).unwrap();
        let mut fields = serde_json::Map::new();
        fields.insert("uid".into(), json!("llng-user"));
        let created = sessions.create_at(&id, fields, None).await.unwrap();
        assert!(created.is_some(), "the id was free");
    });
    let id = id.as_str();
    assert_eq!(get(&s, id), json!({"_session_id": id, "uid": "llng-user"}));
    ok(&["set", "--servers", &s, "--id", id, "theme=dark"]);
    assert_eq!(
        get(&s, id),
        json!({"_session_id": id, "uid": "llng-user", "theme": "dark"})
    );
    ok(&["delete", "--servers", &s, id]);
    let gone = sessionctl(&["get", "--servers", &s, id]);
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
    assert!(stderr(&gone).contains(id), "{}", stderr(&gone));
}

#[test]
fn exit_codes_say_what_happened() {
    let s = servers();
    let unknown = "0123456789abcdef0123456789abcdef";
    for args in [
        vec!["get", "--servers", &s, unknown],
        vec!["delete", "--servers", &s, unknown],
        vec!["set", "--servers", &s, "--id", unknown, "a=b"],
    ] {
        let out = sessionctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(unknown));
    }
    for args in [
        vec!["get", "--servers", &s, "not-hex!"],
        vec!["set", "--servers", &s, "novalue"],
        vec!["set", "--servers", &s, "n:=nope"],
        vec!["get", "--servers", &s, "--codec", "yaml", unknown],
        vec!["get", "--store", "ftp://x", unknown],
        vec!["get", unknown],
        vec!["find-principal", "--servers", &s, "jdoe"],
        vec!["bogus-command"],
    ] {
        let out = sessionctl(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let dead = test_support::dead_port().unwrap();
    let out = sessionctl(&[
        "get",
        "--servers",
        &format!("127.0.0.1:{}", dead.port()),
        unknown,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn find_principal_and_stats() {
    let s = servers();
    let user = format!("user-{}", std::process::id());
    let id = ok(&[
        "set",
        "--servers",
        &s,
        "--principal",
        "uid",
        &format!("uid={user}"),
    ]);
    let found = ok(&[
        "find-principal",
        "--servers",
        &s,
        "--principal",
        "uid",
        &user,
    ]);
    assert_eq!(found, id);
    let none = sessionctl(&[
        "find-principal",
        "--servers",
        &s,
        "--principal",
        "uid",
        "nobody-by-this-name",
    ]);
    assert_eq!(none.status.code(), Some(1));

    let out = sessionctl(&["stats", "--servers", &s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), s.split(',').count(), "one line per server");
    for line in lines {
        assert!(line["stats"]["curr_items"].is_string(), "{line}");
    }
}

#[test]
fn help_explains_every_flag() {
    let out = sessionctl(&["set", "--help"]);
    let help = stdout(&out);
    for flag in [
        "--store",
        "--servers",
        "--local",
        "--codec",
        "--principal",
        "--timeout",
        "--id",
    ] {
        assert!(help.contains(flag), "set --help lacks {flag}:\n{help}");
    }
}

/// What `sessionctl --codec storable` writes, Perl's Cache::Memcached reads
/// as the same hash (the way the Perl original reads its sessions).
#[test]
fn storable_sessions_are_read_by_perl() {
    let s = servers();
    let id = ok(&[
        "set",
        "--servers",
        &s,
        "--codec",
        "storable",
        "uid=jdoe",
        "cn=Masqu\u{e9}",
        "n:=7",
    ]);
    let list: Vec<String> = s.split(',').map(|a| format!("'{a}'")).collect();
    let script = format!(
        "use Cache::Memcached; use JSON::PP; \
         my $m = Cache::Memcached->new({{servers => [{}]}}); \
         my $h = $m->get('{id}') or die 'no session'; \
         print JSON::PP->new->utf8->canonical->encode($h);",
        list.join(",")
    );
    let out = Command::new("perl")
        .args(["-e", &script])
        .output()
        .expect("perl (apt-get install perl libcache-memcached-perl)");
    assert!(
        out.status.success(),
        "Perl could not read the session (apt-get install libcache-memcached-perl): {}",
        stderr(&out)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!({"_session_id": id, "uid": "jdoe", "cn": "Masqu\u{e9}", "n": 7})
    );
}

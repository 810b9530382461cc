//! `RedisStore` on a real Valkey 8.1, whose `SET ... IFEQ` lets a `cas`
//! that follows a read run without the Lua script (see the crate's
//! `ifeq.rs`): the whole conformance kit, every `cas` outcome through
//! `IFEQ`, and proof from the server's own `INFO commandstats` that a
//! session's load + save ran no script.
//!
//! Needs `valkey-server` 8.1 or newer: `bash .ci/valkey` (as root) puts
//! Debian 13's beside a Debian 12 system, or set `MEMORYCACHED_VALKEY_BIN`.
//! test-support always runs it as a local process, so this file runs in
//! the process pass (feature `process-provider-tests`, turned on by `cargo
//! xtask test --provider process`); a missing binary fails the test with
//! how to get it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use backend_redis::RedisStore;
use common::raw;
use serde_json::json;
use session_core::{CasOutcome, SessionId, Sessions, SessionsConfig, Store, Ttl, Version};
use test_support::{Provider, Server};

/// A Valkey without persistence (a local process whichever the provider),
/// checked to be 8.1 or newer; its address.
async fn valkey() -> (Server, String) {
    let provider = Provider::from_env().await.unwrap();
    let server = provider
        .valkey()
        .await
        .unwrap_or_else(|e| panic!("starting valkey: {e}"));
    let addr = server.addr();
    let info = text(raw(&addr, &["INFO", "server"]).await.unwrap());
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("valkey_version:"))
        .unwrap_or_else(|| panic!("the valkey-server found is not Valkey: {info}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        (major, minor) >= (8, 1),
        "Valkey {version} has no SET IFEQ; 8.1 or newer is needed (`bash .ci/valkey`)"
    );
    (server, addr)
}

/// A store under a prefix of its own.
fn store(addr: &str) -> RedisStore {
    store_at(addr, &fresh_prefix())
}

/// A URL-encoded prefix no other store uses.
fn fresh_prefix() -> String {
    format!("vk{}%3A", SessionId::generate(16).unwrap())
}

/// A store under `prefix`: two of them see the same items, as two
/// processes would, each with its own memory of what it read.
fn store_at(addr: &str, prefix: &str) -> RedisStore {
    RedisStore::from_url(&format!("redis://{addr}?timeout_ms=2000&prefix={prefix}")).unwrap()
}

fn text(value: redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("expected text, got {other:?}"),
    }
}

/// How many times the server ran `command` to the end since the last
/// `CONFIG RESETSTAT` (0 if never): its calls less those it refused or
/// that failed (an `EVALSHA` of a script not loaded yet).
async fn calls(addr: &str, command: &str) -> u64 {
    let stats = text(raw(addr, &["INFO", "commandstats"]).await.unwrap());
    let wanted = format!("cmdstat_{command}:");
    let Some(line) = stats.lines().find_map(|l| l.strip_prefix(&wanted)) else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |v| v.parse().unwrap())
    };
    field("calls") - field("rejected_calls") - field("failed_calls")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_passes_the_conformance_kit() {
    let (_server, addr) = valkey().await;
    let make = session_core::conformance::make_store(move || {
        let addr = addr.clone();
        async move { Arc::new(store(&addr)) as Arc<dyn Store> }
    });
    if let Err(failures) = session_core::conformance::run_all(make).await {
        panic!("conformance on Valkey failed: {failures:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_load_and_save_runs_no_script() {
    let (_server, addr) = valkey().await;
    let store = Arc::new(store(&addr));
    let sessions = Sessions::new(store.clone(), SessionsConfig::default()).unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("uid".into(), json!("dwho"));
    let id = sessions
        .create_with(fields, None)
        .await
        .unwrap()
        .id()
        .clone();
    raw(&addr, &["CONFIG", "RESETSTAT"]).await.unwrap();

    for n in 0..20 {
        let mut session = sessions.load(id.as_str()).await.unwrap().unwrap();
        session.insert("hits", n).unwrap();
        sessions.save(&mut session).await.unwrap();
    }

    let session = sessions.load(id.as_str()).await.unwrap().unwrap();
    assert_eq!(session.get::<u32>("hits").unwrap(), Some(19));
    assert_eq!(store.server_has_ifeq(), Some(true));
    assert_eq!(
        calls(&addr, "evalsha").await,
        0,
        "a save ran the cas script"
    );
    assert_eq!(calls(&addr, "eval").await, 0, "a save ran a script");
    assert_eq!(calls(&addr, "set").await, 20, "one SET IFEQ per save");
}

/// `store.cas("k", value, 0, never, expected)`'s outcome.
async fn put(store: &RedisStore, value: &[u8], expected: Version) -> CasOutcome {
    store
        .cas("k", value, 0, Ttl::NEVER, expected)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ifeq_cas_tells_stored_conflict_and_not_found_apart() {
    let (_server, addr) = valkey().await;
    let prefix = fresh_prefix();
    let (ours, other) = (store_at(&addr, &prefix), store_at(&addr, &prefix));
    let key = "k";
    ours.set(key, b"v1", 0, Ttl::NEVER).await.unwrap();
    raw(&addr, &["CONFIG", "RESETSTAT"]).await.unwrap();

    // Stored: read, then compare-and-set on what was read.
    let read = ours.get(key).await.unwrap().unwrap();
    let CasOutcome::Stored(Some(v2)) = ours
        .cas(key, b"v2", 7, Ttl::seconds(60), read.version)
        .await
        .unwrap()
    else {
        panic!("cas on a fresh read was refused");
    };
    let now = ours.get(key).await.unwrap().unwrap();
    assert_eq!(
        (now.value.as_slice(), now.flags, now.version),
        (&b"v2"[..], 7, v2)
    );
    assert!(
        now.ttl.is_some_and(|t| !t.is_never()),
        "the TTL was not set: {:?}",
        now.ttl
    );

    // Conflict: another writer got in between the read and the cas, and
    // its value stays.
    other.set(key, b"theirs", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(put(&ours, b"mine", now.version).await, CasOutcome::Conflict);
    assert_eq!(ours.get(key).await.unwrap().unwrap().value, b"theirs");

    // NotFound: deleted between the read and the cas, and not re-created.
    let read = ours.get(key).await.unwrap().unwrap();
    assert!(other.delete(key).await.unwrap());
    assert_eq!(
        put(&ours, b"mine", read.version).await,
        CasOutcome::NotFound
    );
    assert!(ours.get(key).await.unwrap().is_none());

    // None of that needed the script. A cas with a version not read here
    // (a stale one) still gets its answer, from the script.
    assert_eq!(calls(&addr, "evalsha").await, 0);
    ours.set(key, b"v3", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(
        put(&ours, b"stale", read.version).await,
        CasOutcome::Conflict
    );
    assert_eq!(calls(&addr, "evalsha").await, 1);
    assert_eq!(ours.server_has_ifeq(), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_from_one_read_one_wins() {
    let (_server, addr) = valkey().await;
    let prefix = fresh_prefix();
    let (one, two) = (store_at(&addr, &prefix), store_at(&addr, &prefix));
    one.set("k", b"v1", 0, Ttl::NEVER).await.unwrap();
    raw(&addr, &["CONFIG", "RESETSTAT"]).await.unwrap();
    // Both read the same item, then both compare-and-set on it at once,
    // each with `IFEQ` on what it read.
    let a = one.get("k").await.unwrap().unwrap();
    let b = two.get("k").await.unwrap().unwrap();
    assert_eq!(a.version, b.version);
    let (ra, rb) = tokio::join!(
        one.cas("k", b"a", 0, Ttl::NEVER, a.version),
        two.cas("k", b"b", 0, Ttl::NEVER, b.version),
    );
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, CasOutcome::Stored(_)))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes.contains(&CasOutcome::Conflict), "{outcomes:?}");
    assert_eq!(calls(&addr, "evalsha").await, 0);
}

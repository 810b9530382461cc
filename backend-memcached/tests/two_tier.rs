//! The original's deployment end to end on real memcached servers: one
//! `local` read-first server per host in front of two principal servers.
//!
//! Uses the shared servers of `cargo xtask test` (`MEMORYCACHED_MEMCACHED`):
//! the first two are the principals, the third is host A's local cache. Host
//! B has no local cache, so it plays "another web server" writing behind A's
//! back.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use backend_memcached::MemcachedStore;
use serde_json::json;
use session_core::{Namespaced, SessionId, Sessions, SessionsConfig, Store, Ttl};

struct Deployment {
    principal: Arc<dyn Store>,
    local: Arc<dyn Store>,
    host_a: Sessions,
    host_b: Sessions,
}

fn deployment(config: SessionsConfig) -> Deployment {
    let servers = test_support::shared_servers("MEMORYCACHED_MEMCACHED").unwrap();
    assert!(
        servers.len() >= 3,
        "need three memcached servers, got {servers:?}"
    );
    // One namespace per test, so parallel tests never share keys.
    let ns = format!("tt{}:", SessionId::generate(16).unwrap());
    let principals =
        MemcachedStore::from_url(&format!("memcached://{},{}", servers[0], servers[1])).unwrap();
    let local = MemcachedStore::from_url(&format!("memcached://{}", servers[2])).unwrap();
    let principal: Arc<dyn Store> = Arc::new(Namespaced::new(ns.clone(), principals).unwrap());
    let local: Arc<dyn Store> = Arc::new(Namespaced::new(ns, local).unwrap());
    Deployment {
        host_a: Sessions::new(principal.clone(), config.clone())
            .unwrap()
            .with_local(local.clone()),
        host_b: Sessions::new(principal.clone(), config).unwrap(),
        principal,
        local,
    }
}

#[tokio::test]
async fn writes_reach_both_tiers_and_reads_fill_local() {
    let d = deployment(SessionsConfig {
        timeout: Ttl::seconds(600),
        principal: Some("uid".into()),
        ..Default::default()
    });
    let mut session = d.host_b.create().await.unwrap();
    session.insert("uid", "jdoe").unwrap();
    d.host_b.save(&mut session).await.unwrap();
    let key = session.id().to_string();
    assert!(
        d.local.get(&key).await.unwrap().is_none(),
        "host B has no local tier"
    );

    // Host A reads: a miss in its local cache, filled from the principals.
    let mut on_a = d.host_a.load(&key).await.unwrap().unwrap();
    assert_eq!(on_a.get_value("uid"), Some(&json!("jdoe")));
    let copy = d
        .local
        .get(&key)
        .await
        .unwrap()
        .expect("local cache filled");
    let original = d.principal.get(&key).await.unwrap().unwrap();
    assert_eq!(copy.value, original.value);
    assert!(
        copy.ttl.unwrap().as_secs() > 500,
        "local copy keeps the session timeout"
    );

    // Host A writes: both tiers get the new value and the reverse key exists.
    on_a.insert("seen", 1).unwrap();
    d.host_a.save(&mut on_a).await.unwrap();
    let copy = d.local.get(&key).await.unwrap().unwrap();
    let original = d.principal.get(&key).await.unwrap().unwrap();
    assert_eq!(copy.value, original.value);
    let owner = d.host_a.find_by_principal("jdoe").await.unwrap().unwrap();
    assert_eq!(owner.id().as_str(), key);
}

#[tokio::test]
async fn a_stale_local_copy_never_wins() {
    let d = deployment(SessionsConfig::default());
    let mut session = d.host_a.create().await.unwrap();
    session.insert("step", 1).unwrap();
    d.host_a.save(&mut session).await.unwrap();
    let key = session.id().to_string();

    // Host B changes the session behind host A's local cache.
    let mut on_b = d.host_b.load(&key).await.unwrap().unwrap();
    on_b.insert("step", 2).unwrap();
    d.host_b.save(&mut on_b).await.unwrap();
    let stale = d.local.get(&key).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&stale.value).contains("\"step\":1"),
        "the local copy is stale at this point"
    );
    let on_a = d.host_a.load(&key).await.unwrap().unwrap();
    assert_eq!(
        on_a.get_value("step"),
        Some(&json!(2)),
        "the original would return step=1 here"
    );

    // Host B logs the user out: host A must not keep serving the session.
    d.host_b.delete(&mut on_b).await.unwrap();
    assert!(d.host_a.load(&key).await.unwrap().is_none());
    assert!(d.local.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_dead_local_cache_degrades_to_the_principals() {
    let servers = test_support::shared_servers("MEMORYCACHED_MEMCACHED").unwrap();
    let principal: Arc<dyn Store> = Arc::new(
        Namespaced::new(
            format!("tt{}:", SessionId::generate(16).unwrap()),
            MemcachedStore::from_url(&format!("memcached://{}", servers[0])).unwrap(),
        )
        .unwrap(),
    );
    // A port bound but never listening: every local call is refused at
    // once, and no other test or server can take the port meanwhile (port
    // 1 was only assumed free).
    let dead = common::dead_port();
    let dead_local: Arc<dyn Store> = Arc::new(
        MemcachedStore::from_url(&format!(
            "memcached://127.0.0.1:{}?connect_timeout_ms=200",
            dead.port
        ))
        .unwrap(),
    );
    let sessions = Sessions::new(principal, SessionsConfig::default())
        .unwrap()
        .with_local(dead_local);
    let mut session = sessions.create().await.unwrap();
    session.insert("k", "v").unwrap();
    sessions.save(&mut session).await.unwrap();
    let loaded = sessions.load(session.id().as_str()).await.unwrap().unwrap();
    assert_eq!(loaded.get_value("k"), Some(&json!("v")));
}

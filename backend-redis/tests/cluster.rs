//! The conformance kit and cluster-specific checks against a real
//! three-master Redis Cluster: the shared one `cargo xtask test` starts
//! (`MEMORYCACHED_REDIS_CLUSTER`, each node behind test-support's proxy,
//! which the cluster announces to clients). A missing variable fails the
//! tests with how to set it. Built only with the crate's `cluster` feature,
//! which `cargo xtask test` turns on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use backend_redis::{RedisConfig, RedisStore};
use session_core::{Namespaced, SessionId, Store, Ttl};

fn cluster_url(query: &str) -> String {
    let nodes = test_support::shared_servers(test_support::REDIS_CLUSTER_ENV)
        .unwrap_or_else(|e| panic!("{e}"));
    format!("redis://{}?cluster=true{query}", nodes.join(","))
}

fn fresh_store() -> Arc<dyn Store> {
    let url = cluster_url("");
    let store = RedisStore::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let prefix = format!("cf{}:", SessionId::generate(16).unwrap());
    Arc::new(Namespaced::new(prefix, store).unwrap())
}

mod conformance {
    use super::*;
    session_core::conformance_tests!(async { fresh_store() });
}

/// Which master serves `key`, by asking the cluster (`CLUSTER KEYSLOT`,
/// then `CLUSTER SLOTS`): the port it announces.
async fn owner(addr: &str, key: &str) -> i64 {
    let slot = match common::raw(addr, &["CLUSTER", "KEYSLOT", key])
        .await
        .unwrap()
    {
        redis::Value::Int(s) => s,
        other => panic!("KEYSLOT answered {other:?}"),
    };
    let slots = common::raw(addr, &["CLUSTER", "SLOTS"]).await.unwrap();
    let redis::Value::Array(ranges) = slots else {
        panic!("CLUSTER SLOTS answered {slots:?}")
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        if let (redis::Value::Int(a), redis::Value::Int(b), redis::Value::Array(master)) =
            (&parts[0], &parts[1], &parts[2])
            && (*a..=*b).contains(&slot)
            && let redis::Value::Int(port) = master[1]
        {
            return port;
        }
    }
    panic!("no master for slot {slot}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_every_master_and_scan_finds_them_all() {
    let url = cluster_url("&prefix=spread%3A");
    let config = RedisConfig::from_url(&url).unwrap();
    let store = RedisStore::connect(config.clone()).unwrap();
    let run = SessionId::generate(16).unwrap();
    let mut written = BTreeSet::new();
    for i in 0..60 {
        let key = format!("{run}:{i}");
        store.set(&key, b"v", 1, Ttl::seconds(60)).await.unwrap();
        written.insert(key);
    }
    // The keys really live on all three masters (so MOVED was followed and
    // scan had to visit every node).
    let seed = config.nodes[0].addr();
    let mut owners = BTreeSet::new();
    for key in written.iter().take(30) {
        owners.insert(owner(&seed, &format!("spread:{key}")).await);
    }
    assert_eq!(owners.len(), 3, "keys landed on {owners:?}");

    let mut seen = BTreeSet::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .scan(&run.to_string(), cursor.as_ref(), 7)
            .await
            .unwrap();
        assert!(page.keys.len() <= 7, "{:?}", page.keys);
        seen.extend(page.keys);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, written);

    // get_many across masters, in order, with a missing key in between.
    let keys: Vec<String> = written.iter().take(10).cloned().collect();
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    asked.insert(3, "missing-key");
    let got = store.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), 11);
    assert!(got[3].is_none());
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, e)| i == 3 || e.as_ref().is_some_and(|e| e.flags == 1))
    );
}

//! A cluster master restarted under a running store, on a cluster of its
//! own: its keys fail with typed, retryable errors while it is down, the
//! other masters keep serving, and once it is back (same bus port, same
//! cluster config file, so it rejoins with its slots and empty memory) the
//! same store serves its slots again without being recreated.
//!
//! Process provider only (feature `process-provider-tests`): a restarted
//! container comes back with another IP, and the cluster would have to be
//! re-formed (see test-support's `cluster.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backend_redis::RedisStore;
use session_core::{Store, Ttl};

/// How long the restarted master may take to serve its slots again.
const RECOVERY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_gives_typed_errors_then_serves_its_slots_again() {
    let provider = test_support::Provider::from_env()
        .await
        .unwrap_or_else(|e| panic!("no provider for test servers: {e}"));
    let cluster = provider
        .redis_cluster()
        .await
        .unwrap_or_else(|e| panic!("starting a redis cluster ({}): {e}", provider.description()));
    let addrs = cluster.addrs();
    let url = format!(
        "redis://{}?cluster=true&timeout_ms=500&connect_timeout_ms=500&backoff_initial_ms=20&backoff_max_ms=200",
        addrs.join(",")
    );
    let store = RedisStore::from_url(&url).unwrap();
    let keys = common::one_key_per_master(&addrs).await;
    common::seed(&store, &keys, b"v", RECOVERY).await;

    cluster.nodes()[1].stop().await.unwrap();
    let (r, took) = common::timed(store.get(&keys[1])).await;
    let e = r.unwrap_err();
    assert!(e.is_retryable() && (e.is_timeout() || e.is_io()), "{e:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The other masters keep serving (a call may time out once while the
    // client refreshes its slot map, as with a paused master).
    common::others_keep_serving(&store, &keys, 1, 3, |e| e.is_retryable()).await;

    cluster.nodes()[1].start().await.unwrap();
    let found = common::until_served(&store, &keys[1], RECOVERY).await;
    // Really restarted: it came back with empty memory.
    assert!(found.is_none(), "the key survived the restart");
    store.set(&keys[1], b"back", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get(&keys[1]).await.unwrap().unwrap().value, b"back");
    for i in [0, 2] {
        assert_eq!(store.get(&keys[i]).await.unwrap().unwrap().value, b"v");
    }
}

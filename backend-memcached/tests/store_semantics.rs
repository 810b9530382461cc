//! The `Store` contract against a real memcached, in both protocol modes.
//! Every check is a function of the protocol; the macro at the bottom
//! instantiates one `#[tokio::test]` per check and mode. Each check gets its
//! own server(s) from test-support's provider (containers or processes), so
//! checks that pause a server or need a special item size disturb no other.

// Test code: a panic is the failure report. clippy's allow-unwrap-in-tests
// covers `#[test]` functions only, not the shared check functions here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memcached::{MemcachedConfig, MemcachedStore, Protocol, ServerSpec};
use common::{DeadPort, Server, dead_port, memcached, memcached_with, memcacheds, spec};
use session_core::{AddOutcome, CasOutcome, Error, Store, Ttl, Version};
use test_support::MemcachedOptions;

fn store_on(
    servers: &[&Server],
    protocol: Protocol,
    tweak: impl FnOnce(&mut MemcachedConfig),
) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(servers.iter().map(|s| spec(s)).collect());
    config.protocol = protocol;
    tweak(&mut config);
    MemcachedStore::connect(config).unwrap()
}

/// A store on a port that refuses connections (for as long as the returned
/// [`DeadPort`] lives): any I/O would fail, so a typed input error from it
/// proves the check ran before any I/O.
fn dead_store(protocol: Protocol, max_value_size: usize) -> (MemcachedStore, DeadPort) {
    let dead = dead_port();
    let mut config = MemcachedConfig::with_servers(vec![ServerSpec::new("127.0.0.1", dead.port)]);
    config.protocol = protocol;
    config.max_value_size = max_value_size;
    (MemcachedStore::connect(config).unwrap(), dead)
}

async fn add_reports_existing_key(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    let first = store.add("k", b"one", 7, Ttl::NEVER).await.unwrap();
    assert!(first.is_stored());
    assert_eq!(
        store.add("k", b"two", 7, Ttl::NEVER).await.unwrap(),
        AddOutcome::Exists
    );
    let e = store.get("k").await.unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.flags), (&b"one"[..], 7));
    if p == Protocol::Meta {
        assert_eq!(
            first,
            AddOutcome::Stored(Some(e.version)),
            "meta add reports the new CAS"
        );
    } else {
        assert_eq!(first, AddOutcome::Stored(None));
    }
}

async fn set_get_versions_and_flags(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    assert!(store.get("absent").await.unwrap().is_none());
    assert!(store.version("absent").await.unwrap().is_none());
    let v1 = store.set("k", b"a", u32::MAX, Ttl::NEVER).await.unwrap();
    let e1 = store.get("k").await.unwrap().unwrap();
    assert_eq!(e1.flags, u32::MAX);
    assert_eq!(store.version("k").await.unwrap(), Some(e1.version));
    let v2 = store.set("k", b"a", 0, Ttl::NEVER).await.unwrap();
    let e2 = store.get("k").await.unwrap().unwrap();
    assert_ne!(e1.version, e2.version, "every write gives a new version");
    match p {
        Protocol::Meta => {
            assert_eq!(v1, Some(e1.version));
            assert_eq!(v2, Some(e2.version));
        }
        Protocol::Classic => assert_eq!((v1, v2), (None, None)),
        other => panic!("no expectations for {other:?}"),
    }
}

async fn cas_conflict_and_not_found(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    assert_eq!(
        store
            .cas("k", b"x", 0, Ttl::NEVER, Version::new(1))
            .await
            .unwrap(),
        CasOutcome::NotFound
    );
    store.set("k", b"v1", 0, Ttl::NEVER).await.unwrap();
    let v1 = store.version("k").await.unwrap().unwrap();
    let stored = store.cas("k", b"v2", 3, Ttl::NEVER, v1).await.unwrap();
    assert!(stored.is_stored());
    let e = store.get("k").await.unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.flags), (&b"v2"[..], 3));
    assert_ne!(e.version, v1);
    if p == Protocol::Meta {
        assert_eq!(stored, CasOutcome::Stored(Some(e.version)));
    }
    // The old version no longer matches.
    assert_eq!(
        store.cas("k", b"v3", 0, Ttl::NEVER, v1).await.unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v2");
    store.delete("k").await.unwrap();
    assert_eq!(
        store
            .cas("k", b"v4", 0, Ttl::NEVER, e.version)
            .await
            .unwrap(),
        CasOutcome::NotFound
    );
}

async fn delete_reports_existence(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    assert!(!store.delete("k").await.unwrap());
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert!(store.delete("k").await.unwrap());
    assert!(store.get("k").await.unwrap().is_none());
    assert!(!store.delete("k").await.unwrap());
}

async fn touch_and_ttl(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    assert!(!store.touch("absent", Ttl::seconds(10)).await.unwrap());
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    let before = store.get("k").await.unwrap().unwrap();
    assert!(store.touch("k", Ttl::seconds(100)).await.unwrap());
    let after = store.get("k").await.unwrap().unwrap();
    assert_eq!(after.value, b"v");
    match p {
        Protocol::Meta => {
            assert_eq!(before.ttl, Some(Ttl::NEVER));
            let t = after.ttl.unwrap().as_secs();
            assert!((98..=100).contains(&t), "ttl after touch: {t}");
            // Beyond 30 days: sent as an absolute time, read back as relative.
            let long = 40 * 24 * 3600;
            store
                .set("long", b"v", 0, Ttl::seconds(long))
                .await
                .unwrap();
            let t = store
                .get("long")
                .await
                .unwrap()
                .unwrap()
                .ttl
                .unwrap()
                .as_secs();
            // memcached's clock ticks once a second and may lag the wall
            // clock the absolute time was computed from: one second over.
            assert!(
                (long - 3..=long + 1).contains(&t),
                "40-day ttl read back as {t}"
            );
            assert!(store.touch("long", Ttl::NEVER).await.unwrap());
            assert_eq!(
                store.get("long").await.unwrap().unwrap().ttl,
                Some(Ttl::NEVER)
            );
        }
        Protocol::Classic => {
            assert_eq!(after.ttl, None);
            let long = 40 * 24 * 3600;
            store
                .set("long", b"v", 0, Ttl::seconds(long))
                .await
                .unwrap();
            assert!(
                store.get("long").await.unwrap().is_some(),
                "40-day item is not expired at once"
            );
        }
        other => panic!("no expectations for {other:?}"),
    }
    let caps = store.capabilities();
    assert_eq!(caps.ttl_read, p == Protocol::Meta);
    assert_eq!(caps.conditional_delete, p == Protocol::Meta);
    assert!(caps.get_many && caps.scan && caps.get_and_touch);
}

async fn expired_is_absent(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    store.set("short", b"v", 0, Ttl::seconds(1)).await.unwrap();
    store.set("touched", b"v", 0, Ttl::NEVER).await.unwrap();
    assert!(store.touch("touched", Ttl::seconds(1)).await.unwrap());
    // memcached's clock ticks in whole seconds: 1 s can last up to 2 s.
    // Polled rather than slept: the check ends as soon as both are gone,
    // and fails if they outlive 2 s plus scheduling slack.
    let written = Instant::now();
    loop {
        let short = store.get("short").await.unwrap();
        let touched = store.get("touched").await.unwrap();
        if short.is_none() && touched.is_none() {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_millis(3000),
            "1 s items still there after {:?}: {short:?} {touched:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(store.version("short").await.unwrap().is_none());
    assert!(
        store
            .add("short", b"again", 0, Ttl::NEVER)
            .await
            .unwrap()
            .is_stored()
    );
}

async fn binary_values(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p, |_| {});
    let nasty: Vec<u8> = b"\r\nEND\r\nVALUE x 0 1\r\n\0\xff\r\n"
        .iter()
        .copied()
        .chain(0..=255)
        .collect();
    store.set("bin", &nasty, 0, Ttl::NEVER).await.unwrap();
    store.set("empty", b"", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("bin").await.unwrap().unwrap().value, nasty);
    assert_eq!(store.get("empty").await.unwrap().unwrap().value, b"");
    let many = store
        .get_many(&["bin", "nope", "empty", "bin"])
        .await
        .unwrap();
    assert_eq!(many[0].as_ref().unwrap().value, nasty);
    assert!(many[1].is_none());
    assert_eq!(many[2].as_ref().unwrap().value, b"");
    assert_eq!(many[3].as_ref().unwrap().value, nasty);
    // The stream is still in sync afterwards.
    store.set("after", b"ok", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("after").await.unwrap().unwrap().value, b"ok");
}

/// memcached's default item size limit, made explicit: the checks below
/// depend on it.
const ONE_MIB: u64 = 1024 * 1024;

async fn value_size_limits(p: Protocol) {
    let s = memcached_with(MemcachedOptions {
        item_size_max: Some(ONE_MIB),
        ..MemcachedOptions::default()
    })
    .await;
    let limit = 1_000_000;
    let store = store_on(&[&s], p, |c| c.max_value_size = limit);
    assert_eq!(store.max_value_size(), limit);
    let at_limit = vec![b'x'; limit];
    store.set("big", &at_limit, 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("big").await.unwrap().unwrap().value.len(), limit);
    let requests = store.stats()[0].requests;
    let over = vec![b'x'; limit + 1];
    for result in [
        store.set("big", &over, 0, Ttl::NEVER).await.map(|_| ()),
        store.add("big2", &over, 0, Ttl::NEVER).await.map(|_| ()),
        store
            .cas("big", &over, 0, Ttl::NEVER, Version::new(1))
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::ValueTooLarge { size, limit: l }) if size == limit + 1 && l == limit),
            "{result:?}"
        );
    }
    assert_eq!(
        store.stats()[0].requests,
        requests,
        "rejected before any I/O"
    );
    assert_eq!(store.get("big").await.unwrap().unwrap().value.len(), limit);

    // Before I/O, provably: a store on a dead port still says ValueTooLarge.
    let (dead, _port) = dead_store(p, 10);
    assert!(matches!(
        dead.set("k", &[0; 11], 0, Ttl::NEVER).await,
        Err(Error::ValueTooLarge {
            size: 11,
            limit: 10
        })
    ));

    // The server's own limit (`-I 1m`, item overhead included) is below ours.
    let lax = store_on(&[&s], p, |c| c.max_value_size = 2 * 1024 * 1024);
    let too_big = vec![b'y'; 1024 * 1024];
    let err = lax.set("huge", &too_big, 0, Ttl::NEVER).await.unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size, .. } if size == too_big.len()),
        "{err:?}"
    );
    let err = lax.add("huge2", &too_big, 0, Ttl::NEVER).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    // memcached unlinks the old item when it refuses an oversized write;
    // the store knows the server's limit (`stats settings`) and refuses such
    // a write before I/O, so a failed overwrite keeps the old value.
    lax.set("huge", b"old", 0, Ttl::NEVER).await.unwrap();
    let err = lax.set("huge", &too_big, 0, Ttl::NEVER).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    assert_eq!(lax.get("huge").await.unwrap().unwrap().value, b"old");
    // The server is not marked down for it, and the store keeps working.
    assert_eq!(lax.stats()[0].marked_down, 0);
    lax.set("small", b"fine", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(lax.get("small").await.unwrap().unwrap().value, b"fine");
}

async fn raised_server_item_size(p: Protocol) {
    // A server started with `-I 2m` stores what a default one refuses,
    // once the store's own limit is raised with it.
    let s = memcached_with(MemcachedOptions {
        item_size_max: Some(2 * ONE_MIB),
        ..MemcachedOptions::default()
    })
    .await;
    let store = store_on(&[&s], p, |c| c.max_value_size = 2 * 1024 * 1024);
    let big = vec![b'z'; 1536 * 1024];
    store.set("big", &big, 5, Ttl::NEVER).await.unwrap();
    let e = store.get("big").await.unwrap().unwrap();
    assert_eq!((e.value.len(), e.flags), (big.len(), 5));
    assert!(e.value == big);
    // Still bounded: the full 2 MiB plus item overhead does not fit; it is
    // refused typed, the old value stays and the server stays up.
    let too_big = vec![b'z'; 2 * 1024 * 1024];
    let err = store
        .set("huge", &too_big, 0, Ttl::NEVER)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size, .. } if size == too_big.len()),
        "{err:?}"
    );
    assert_eq!(store.stats()[0].marked_down, 0);
    assert_eq!(
        store.get("big").await.unwrap().unwrap().value.len(),
        big.len()
    );
}

async fn key_validation_before_io(p: Protocol) {
    let (store, _port) = dead_store(p, 1024);
    let long = "k".repeat(251);
    for key in ["", "a b", "a\nb", "a\u{0}b", long.as_str()] {
        let invalid = |r: &session_core::Result<()>| matches!(r, Err(Error::InvalidKey { .. }));
        assert!(invalid(&store.get(key).await.map(|_| ())), "get {key:?}");
        assert!(invalid(
            &store.set(key, b"v", 0, Ttl::NEVER).await.map(|_| ())
        ));
        assert!(invalid(
            &store.add(key, b"v", 0, Ttl::NEVER).await.map(|_| ())
        ));
        assert!(invalid(
            &store
                .cas(key, b"v", 0, Ttl::NEVER, Version::new(1))
                .await
                .map(|_| ())
        ));
        assert!(invalid(&store.delete(key).await.map(|_| ())));
        assert!(invalid(&store.touch(key, Ttl::NEVER).await.map(|_| ())));
        assert!(invalid(&store.version(key).await.map(|_| ())));
        assert!(invalid(&store.get_many(&["ok", key]).await.map(|_| ())));
    }
    assert_eq!(store.stats()[0].requests, 0, "nothing reached the server");
    // A 250-byte key is fine, and so is UTF-8 without spaces.
    let s = memcached().await;
    let live = store_on(&[&s], p, |_| {});
    let k250 = "k".repeat(250);
    for key in [k250.as_str(), "sessión:ü"] {
        live.set(key, b"v", 0, Ttl::NEVER).await.unwrap();
        assert_eq!(live.get(key).await.unwrap().unwrap().value, b"v");
    }
}

async fn concurrent_cas_increments(p: Protocol) {
    let s = memcached().await;
    let store = Arc::new(store_on(&[&s], p, |c| c.pool_size = 8));
    store.set("counter", b"0", 0, Ttl::NEVER).await.unwrap();
    let per_task = 5;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..per_task {
                loop {
                    let e = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&e.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string();
                    match store
                        .cas("counter", next.as_bytes(), 0, Ttl::NEVER, e.version)
                        .await
                        .unwrap()
                    {
                        CasOutcome::Stored(_) => break,
                        CasOutcome::Conflict => conflicts += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            conflicts
        });
    }
    let mut conflicts = 0;
    while let Some(r) = tasks.join_next().await {
        conflicts += r.unwrap();
    }
    let e = store.get("counter").await.unwrap().unwrap();
    assert_eq!(
        e.value,
        (64 * per_task).to_string().into_bytes(),
        "no lost increment"
    );
    assert!(conflicts > 0, "the tasks really raced");
    let stats = &store.stats()[0];
    assert_eq!(stats.errors, 0);
    assert!(
        stats.busy_connections == 0 && stats.idle_connections <= 8,
        "{stats:?}"
    );
}

async fn get_many_across_servers(p: Protocol) {
    let servers = memcacheds(3).await;
    let store = store_on(&servers.iter().collect::<Vec<_>>(), p, |_| {});
    let keys: Vec<String> = (0..300).map(|i| format!("many:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            store
                .set(k, k.as_bytes(), i as u32, Ttl::NEVER)
                .await
                .unwrap();
        }
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = store.get_many(&refs).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, (k, e)) in keys.iter().zip(&got).enumerate() {
        if i % 3 == 0 {
            assert!(e.is_none(), "{k}");
        } else {
            let e = e.as_ref().unwrap();
            assert_eq!((e.value.as_slice(), e.flags), (k.as_bytes(), i as u32));
            assert_eq!(store.version(k).await.unwrap(), Some(e.version));
        }
    }
    let used = store.stats().iter().filter(|s| s.requests > 0).count();
    assert_eq!(used, 3, "keys spread over all servers");
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

async fn cancelled_request_does_not_poison_pool(p: Protocol) {
    let s = memcached().await;
    // One connection, long I/O timeout: the caller's own timeout drops the
    // future while the request is in flight.
    let store = store_on(&[&s], p, |c| {
        c.pool_size = 1;
        c.io_timeout = Duration::from_secs(10);
    });
    store.set("k", b"old", 0, Ttl::NEVER).await.unwrap();
    s.pause().await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(200), store.get("k")).await;
    assert!(
        r.is_err(),
        "the request hung on the paused server and was cancelled"
    );
    let r = tokio::time::timeout(Duration::from_millis(200), store.get_many(&["k", "x"])).await;
    assert!(r.is_err());
    s.unpause().await.unwrap();
    // The server now answers the cancelled gets; had their connection gone
    // back to the pool, these reads would see the stale "old" answers.
    store.set("k", b"new", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"new");
    assert!(store.delete("k").await.unwrap());
    assert!(store.get("k").await.unwrap().is_none());
    let stats = &store.stats()[0];
    assert_eq!(
        (stats.busy_connections, stats.marked_down),
        (0, 0),
        "{stats:?}"
    );
}

macro_rules! both_protocols {
    ($($check:ident),* $(,)?) => {
        mod meta {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(backend_memcached::Protocol::Meta).await;
                }
            )*
        }
        mod classic {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(backend_memcached::Protocol::Classic).await;
                }
            )*
        }
    };
}

both_protocols!(
    add_reports_existing_key,
    set_get_versions_and_flags,
    cas_conflict_and_not_found,
    delete_reports_existence,
    touch_and_ttl,
    expired_is_absent,
    binary_values,
    value_size_limits,
    raised_server_item_size,
    key_validation_before_io,
    concurrent_cas_increments,
    get_many_across_servers,
    cancelled_request_does_not_poison_pool,
);

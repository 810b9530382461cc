//! The optional `Store` methods on real memcached servers, in both protocol
//! modes: `delete_if` (meta `md C`), `get_and_touch` (meta `mg T`, classic
//! `gats`) and `scan` (`lru_crawler metadump`) over several servers, with
//! pages, cursors and expiry. The conformance kit checks the contract; these
//! check what is memcached-specific (the wire forms, the per-server cursor,
//! what classic mode cannot do).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use backend_memcached::{MemcachedConfig, MemcachedStore, Protocol};
use common::{Server, memcached, memcacheds, spec};
use session_core::{DeleteOutcome, Error, ScanCursor, Store, Ttl, Version};

fn store_on(servers: &[&Server], p: Protocol) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(servers.iter().map(|s| spec(s)).collect());
    config.protocol = p;
    MemcachedStore::connect(config).unwrap()
}

/// Every key of a scan, page by page; also returns the number of pages.
async fn scan_all(store: &MemcachedStore, prefix: &str, limit: usize) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut page = store.scan(prefix, None, limit).await.unwrap();
    let mut pages = 1;
    loop {
        assert!(page.keys.len() <= limit, "page over the limit: {page:?}");
        keys.extend(page.keys);
        let Some(next) = page.next else {
            return (keys, pages);
        };
        assert!(pages < 1000, "scan does not end");
        page = store.scan(prefix, Some(&next), limit).await.unwrap();
        pages += 1;
    }
}

async fn delete_if_by_version(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p);
    store.set("k", b"v1", 0, Ttl::NEVER).await.unwrap();
    let v1 = store.version("k").await.unwrap().unwrap();
    if p == Protocol::Classic {
        // No conditional delete in classic: refused before any I/O.
        let err = store.delete_if("k", v1).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    capability: "delete_if"
                }
            ),
            "{err:?}"
        );
        assert!(store.get("k").await.unwrap().is_some());
        assert!(!store.capabilities().conditional_delete);
        return;
    }
    store.set("k", b"v2", 0, Ttl::NEVER).await.unwrap();
    // Verified by hand on 1.6.18: `md k C<wrong>` answers `EX`.
    assert_eq!(
        store.delete_if("k", v1).await.unwrap(),
        DeleteOutcome::Conflict
    );
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v2");
    let v2 = store.version("k").await.unwrap().unwrap();
    assert_eq!(
        store.delete_if("k", v2).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(store.get("k").await.unwrap().is_none());
    assert_eq!(
        store.delete_if("k", v2).await.unwrap(),
        DeleteOutcome::NotFound
    );
    let err = store.delete_if("a b", Version::new(1)).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
}

async fn get_and_touch_returns_the_cas_and_sets_the_ttl(p: Protocol) {
    let s = memcached().await;
    let store = store_on(&[&s], p);
    assert!(
        store
            .get_and_touch("absent", Ttl::seconds(5))
            .await
            .unwrap()
            .is_none()
    );
    store.set("k", b"vv", 7, Ttl::seconds(2)).await.unwrap();
    let version = store.version("k").await.unwrap().unwrap();
    let got = store
        .get_and_touch("k", Ttl::seconds(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.value.as_slice(), got.flags), (&b"vv"[..], 7));
    // `gats` and `mg .. c` both report the (unchanged) CAS unique.
    assert_eq!(got.version, version);
    if p == Protocol::Meta {
        let t = got.ttl.unwrap().as_secs();
        assert!((299..=300).contains(&t), "new ttl {t}");
    } else {
        assert_eq!(got.ttl, None);
    }
    // The 2 s expiry was replaced: the item outlives it.
    let written = Instant::now();
    while written.elapsed() < Duration::from_millis(2500) {
        assert!(store.get("k").await.unwrap().is_some(), "expired early");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn scan_pages_through_three_servers(p: Protocol) {
    let servers = memcacheds(3).await;
    let refs: Vec<&Server> = servers.iter().collect();
    let store = store_on(&refs, p);
    let written: BTreeSet<String> = (0..40).map(|i| format!("sc:{i:02}:x%y")).collect();
    for key in &written {
        store.set(key, b"v", 0, Ttl::NEVER).await.unwrap();
    }
    store.set("other:1", b"v", 0, Ttl::NEVER).await.unwrap();
    store
        .set("sc:gone", b"v", 0, Ttl::seconds(1))
        .await
        .unwrap();
    // Keys are spread over the servers (Perl routing), so pages of 5 need
    // several dumps of each server.
    let spread: BTreeSet<&str> = written.iter().map(|k| store.server_for(k)).collect();
    assert_eq!(spread.len(), 3, "keys on {spread:?}");

    let (keys, pages) = scan_all(&store, "sc:", 5).await;
    let mut listed: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(listed.len(), keys.len(), "a key listed twice: {keys:?}");
    // The 1 s item may have expired already on a slow run.
    listed.remove("sc:gone");
    assert_eq!(listed, written);
    assert!(pages >= 40 / 5, "{pages} pages");

    // One big page per server: the cheap way (three dumps in all).
    let (keys, pages) = scan_all(&store, "sc:", 10_000).await;
    assert!((40..=41).contains(&keys.len()), "{keys:?}");
    assert_eq!(pages, 3);

    // Expired items are not listed.
    let start = Instant::now();
    loop {
        let (keys, _) = scan_all(&store, "sc:gone", 100).await;
        if keys.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "expired key listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A cursor of another store (or made up) is bad input, not a panic.
    for bad in ["7:x", "x", "one:"] {
        let err = store
            .scan("sc:", Some(&ScanCursor::new(bad)), 5)
            .await
            .unwrap_err();
        assert!(err.is_invalid_input(), "{bad}: {err:?}");
    }
    assert!(store.capabilities().scan);
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
    delete_if_by_version,
    get_and_touch_returns_the_cas_and_sets_the_ttl,
    scan_pages_through_three_servers,
);

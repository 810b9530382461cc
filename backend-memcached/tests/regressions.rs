//! Regression tests for reviewed defects of `MemcachedStore`, each on its
//! own real memcached from `test-support` (`MEMORYCACHED_PROVIDER`), or on
//! the shared scripted fake (`common/fake.rs`) for protocol misbehaviour a
//! real one never shows. Self-contained on purpose: they need no shared
//! servers.

// The helpers panic when they cannot do their job: that is the failure
// report (`allow-unwrap-in-tests` covers `#[test]` bodies only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use backend_memcached::{MemcachedConfig, MemcachedStore, Protocol, ServerSpec, ServerState};
use session_core::{CasOutcome, Error, Store, Ttl, Version};
use test_support::{MemcachedOptions, Provider, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod common;

use common::fake::{fake, reply};

type TestResult = Result<(), Box<dyn StdError>>;

const MIB: usize = 1024 * 1024;

async fn memcached(opts: MemcachedOptions) -> Result<Server, Box<dyn StdError>> {
    Ok(Provider::from_env().await?.memcached_with(opts).await?)
}

fn store(
    addr: &str,
    protocol: Protocol,
    tune: impl FnOnce(&mut MemcachedConfig),
) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(vec![addr.parse::<ServerSpec>().unwrap()]);
    config.protocol = protocol;
    tune(&mut config);
    MemcachedStore::connect(config).unwrap()
}

/// One request line on a raw connection; the answer up to `END` or the
/// first line.
async fn raw(addr: &str, request: &str) -> String {
    let mut conn = BufReader::new(TcpStream::connect(addr).await.unwrap());
    conn.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_line(&mut answer).await.unwrap();
    answer
}

/// Defect 1: N calls in flight when a server stalls all time out together;
/// each used to double the backoff (16 gets + a 300 ms SIGSTOP gave 30 s
/// down). Only the probe's failure may lengthen it now.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_stall_does_not_keep_the_server_down_for_long() -> TestResult {
    let server = memcached(MemcachedOptions::default()).await?;
    let store = store(&server.addr(), Protocol::Meta, |c| {
        c.io_timeout = Duration::from_millis(200);
        c.backoff_initial = Duration::from_millis(100);
        c.backoff_max = Duration::from_secs(30);
        c.pool_size = 16;
    });
    store.set("k", b"v", 1, Ttl::NEVER).await?;

    server.pause().await?;
    let stalled_at = Instant::now();
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        gets.spawn(async move { store.get("k").await });
    }
    while let Some(r) = gets.join_next().await {
        assert!(matches!(r?, Err(Error::Timeout { .. })));
    }
    match store.stats()[0].state {
        ServerState::Down { backoff, .. } => {
            assert!(backoff <= Duration::from_millis(200), "backoff {backoff:?}");
        }
        state => panic!("not marked down: {state:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(stalled_at.elapsed())).await;
    server.unpause().await?;

    let recovered = Instant::now();
    loop {
        match store.get("k").await {
            Ok(Some(e)) if e.value == b"v" => break,
            r => assert!(
                recovered.elapsed() < Duration::from_secs(2),
                "still failing 2 s after the server recovered: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.stats()[0].marked_down, 1);
    Ok(())
}

/// Defect 2: memcached 1.6 unlinks the existing item when it refuses a
/// value as too large (meta `ms` in every mode, classic `set`), so a
/// failed save deleted the session. The server's `item_size_max` is now
/// learned and such writes are refused before I/O, with the real limit.
async fn oversized_writes_keep_the_old_value(protocol: Protocol) -> TestResult {
    let server = memcached(MemcachedOptions {
        item_size_max: Some(MIB as u64),
        ..MemcachedOptions::default()
    })
    .await?;
    let store = store(&server.addr(), protocol, |c| c.max_value_size = 4 * MIB);
    let key = "session";
    // Overhead measured on 1.6.18: 59 bytes, 4 more for non-zero flags.
    let limit = MIB - 59 - 4 - key.len();
    store.set(key, b"old", 1, Ttl::NEVER).await?;
    let version = store.version(key).await?.unwrap();

    let big = vec![b'x'; 1_500_000];
    let results = [
        store
            .cas(key, &big, 1, Ttl::NEVER, version)
            .await
            .map(|_| ()),
        store.add(key, &big, 1, Ttl::NEVER).await.map(|_| ()),
        store.set(key, &big, 1, Ttl::NEVER).await.map(|_| ()),
    ];
    for r in results {
        assert!(
            matches!(r, Err(Error::ValueTooLarge { size: 1_500_000, limit: l }) if l == limit),
            "{protocol:?}: {r:?}"
        );
    }
    let kept = store
        .get(key)
        .await?
        .expect("old value deleted by a refused write");
    assert_eq!(
        (kept.value.as_slice(), kept.version),
        (&b"old"[..], version)
    );

    // The limit is exact on the real server: one byte more is refused
    // without I/O, the limit itself is stored.
    let over = vec![b'y'; limit + 1];
    let requests = store.stats()[0].requests;
    assert!(matches!(
        store.cas(key, &over, 1, Ttl::NEVER, version).await,
        Err(Error::ValueTooLarge { .. })
    ));
    assert_eq!(store.stats()[0].requests, requests, "refused before I/O");
    let at_limit = vec![b'y'; limit];
    assert!(matches!(
        store.cas(key, &at_limit, 1, Ttl::NEVER, version).await?,
        CasOutcome::Stored(_)
    ));
    assert_eq!(store.get(key).await?.unwrap().value.len(), limit);
    assert_eq!(store.stats()[0].marked_down, 0);
    Ok(())
}

#[tokio::test]
async fn oversized_writes_keep_the_old_value_meta() -> TestResult {
    oversized_writes_keep_the_old_value(Protocol::Meta).await
}

#[tokio::test]
async fn oversized_writes_keep_the_old_value_classic() -> TestResult {
    oversized_writes_keep_the_old_value(Protocol::Classic).await
}

/// Defect 3: a server started with `-C` reports CAS 0 for every item; that
/// is now a clear configuration error, before anything is written.
async fn cas_disabled_server_is_refused(protocol: Protocol) -> TestResult {
    let server = memcached(MemcachedOptions {
        extra_args: vec!["-C".into()],
        ..MemcachedOptions::default()
    })
    .await?;
    let addr = server.addr();
    let store = store(&addr, protocol, |_| {});
    let expected =
        format!("memcached at {addr} runs with -C (CAS disabled); memorycached needs CAS");
    let results = [
        store.add("k", b"v", 1, Ttl::NEVER).await.map(|_| ()),
        store.get("k").await.map(|_| ()),
        store.version("k").await.map(|_| ()),
        store
            .cas("k", b"v", 1, Ttl::NEVER, Version::new(1))
            .await
            .map(|_| ()),
    ];
    for r in results {
        assert!(
            matches!(&r, Err(e @ Error::InvalidConfig(m)) if m == &expected && !e.is_retryable()),
            "{protocol:?}: {r:?}"
        );
    }
    assert_eq!(raw(&addr, "get k\r\n").await, "END\r\n", "nothing written");
    assert_eq!(store.stats()[0].marked_down, 0);
    Ok(())
}

#[tokio::test]
async fn cas_disabled_server_is_refused_meta() -> TestResult {
    cas_disabled_server_is_refused(Protocol::Meta).await
}

#[tokio::test]
async fn cas_disabled_server_is_refused_classic() -> TestResult {
    cas_disabled_server_is_refused(Protocol::Classic).await
}

/// Defect 4: bytes a server sends after a complete answer must never be
/// read as the next request's answer. The fake answers `mg a` with an
/// extra `HD c999`.
#[tokio::test]
async fn stray_bytes_never_answer_the_next_request() -> TestResult {
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply("STAT item_size_max 1048576\r\nEND\r\n"),
        "mg a v f c t" => reply("VA 1 f1 c5 t-1\r\nx\r\nHD c999\r\n"),
        _ => reply("EN\r\n"),
    })
    .await;
    let store = store(&addr, Protocol::Meta, |c| c.pool_size = 1);
    assert_eq!(store.get("a").await?.unwrap().version, Version::new(5));
    let version = store.version("b").await?;
    assert_ne!(version, Some(Version::new(999)));
    assert_eq!(version, None);
    assert_eq!(store.stats()[0].unsolicited_data, 1);
    Ok(())
}

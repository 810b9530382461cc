//! Health bookkeeping, and the request path against the shared scripted
//! fake (`tests/common/fake.rs`): protocol misbehaviour a real memcached
//! never shows (stray bytes, lying lengths, a connection closed after a
//! write) has to be scripted. Real-server behaviour is tested in `tests/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use session_core::Version;

use super::health::Admission;
use super::*;
use crate::connection::IdleState;
use crate::fake::{Act, Log, SETTINGS, fake, reply, requests};
use crate::protocol::{Reply, StoreMode, StoreReply};

/// The pooled request path's settings (`mux_tests.rs` has the
/// multiplexed one's).
fn config(pool_size: usize) -> MemcachedConfig {
    MemcachedConfig {
        pool_size,
        mode: ConnectionMode::Pooled,
        io_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(30),
        ..MemcachedConfig::default()
    }
}

/// Polls `done` every 5 ms, failing after 5 s.
pub(super) async fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited 5 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the one pooled connection shows `state` (the server's late
/// bytes or its close have arrived). Looking may consume one byte of
/// unsolicited data; the connection then still shows `Unsolicited`.
async fn wait_for_idle(server: &Server, state: IdleState) {
    poll("the pooled connection's state", || {
        let mut conn = server.pool.take_idle().expect("a pooled connection");
        let now = conn.idle_state();
        server.pool.put_idle(conn);
        now == state
    })
    .await;
}

fn backoff(server: &Server) -> Option<Duration> {
    match server.stats().state {
        ServerState::Down { backoff, .. } => Some(backoff),
        ServerState::Up => None,
    }
}

fn make_due(server: &Server) {
    let mut h = server.health.lock().unwrap();
    if let Some(d) = h.down.as_mut() {
        d.retry_at = Instant::now();
    }
}

fn timeout_error() -> Error {
    Error::Timeout {
        operation: "get",
        server: "s".into(),
        after: Duration::from_millis(1),
        sent: true,
    }
}

pub(super) fn store(
    mode: StoreMode,
    key: &'static str,
    value: &'static [u8],
    flags: u32,
) -> Op<'static> {
    Op::Store {
        mode,
        key,
        value,
        flags,
        exptime: 0,
    }
}

#[test]
fn only_the_probe_doubles_the_backoff() {
    // Regression: 16 calls in flight when the server stalled, failing
    // together, doubled the backoff 15 times (100 ms -> 30 s).
    let server = Server::new("s:1".into(), &config(16));
    let admitted: Vec<Admission> = (0..16).map(|_| server.admit().unwrap()).collect();
    for a in admitted {
        assert_eq!(a, Admission::Up);
        server.on_failure(a, &timeout_error());
    }
    assert_eq!(backoff(&server), Some(Duration::from_millis(100)));
    assert_eq!(server.stats().marked_down, 1);

    // A failed probe doubles it, once.
    make_due(&server);
    let probe = server.admit().unwrap();
    assert_eq!(probe, Admission::Probe(1));
    assert!(matches!(server.admit(), Err(Error::MarkedDown { .. })));
    server.on_failure(probe, &timeout_error());
    assert_eq!(backoff(&server), Some(Duration::from_millis(200)));

    // A slow probe overtaken by the next one: only the latest counts.
    make_due(&server);
    let old = server.admit().unwrap();
    make_due(&server);
    let new = server.admit().unwrap();
    server.on_failure(old, &timeout_error());
    assert_eq!(backoff(&server), Some(Duration::from_millis(200)));
    server.on_failure(new, &timeout_error());
    assert_eq!(backoff(&server), Some(Duration::from_millis(400)));

    server.on_success();
    assert_eq!(server.stats().state, ServerState::Up);
}

#[test]
fn backoff_arithmetic_saturates() {
    // Regression: `backoff * 2` and `Instant + backoff` panicked for
    // durations near `Duration::MAX` (validate() now caps them too).
    let mut c = config(1);
    c.backoff_initial = Duration::MAX / 2 + Duration::from_secs(1);
    c.backoff_max = Duration::MAX;
    let server = Server::new("s:1".into(), &c);
    server.on_failure(Admission::Up, &timeout_error());
    make_due(&server);
    let probe = server.admit().unwrap();
    server.on_failure(probe, &timeout_error());
    assert_eq!(backoff(&server), Some(Duration::MAX));
}

#[tokio::test]
async fn concurrent_timeouts_mark_down_once_and_recovery_is_quick() {
    let stalled = Arc::new(AtomicBool::new(true));
    let s2 = Arc::clone(&stalled);
    let (addr, _log) = fake(move |_, line| match line {
        _ if s2.load(Ordering::SeqCst) => Act::Ignore,
        "stats settings" => reply(SETTINGS),
        _ => reply("EN\r\n"),
    })
    .await;
    let server = Arc::new(Server::new(addr, &config(16)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let server = Arc::clone(&server);
        tasks.spawn(async move { server.call(&Op::Version("k")).await });
    }
    while let Some(r) = tasks.join_next().await {
        // A fresh connection's silence is named (`NoAnswer`): a timeout too.
        assert!(matches!(
            r.unwrap(),
            Err(Error::Timeout { .. } | Error::NoAnswer { .. })
        ));
    }
    assert_eq!(backoff(&server), Some(Duration::from_millis(100)));
    assert_eq!(server.stats().timeouts, 16);

    stalled.store(false, Ordering::SeqCst);
    poll("the probe to be due", || server.is_available()).await;
    assert!(matches!(
        server.call(&Op::Version("k")).await,
        Ok(Reply::Version(None))
    ));
    assert_eq!(server.stats().state, ServerState::Up);
}

#[tokio::test]
async fn unsolicited_bytes_are_never_read_as_the_next_answer() {
    // Regression: `HD c999` sent after the answer to `mg a` stayed in
    // the pooled connection's buffer and became the answer to `mg b`.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        "mg a v f c t" => reply("VA 1 f0 c5 t-1\r\nx\r\nHD c999\r\n"),
        _ => reply("EN\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    assert!(matches!(
        server.call(&Op::Get("a")).await,
        Ok(Reply::Entry(Some(e))) if e.version == Version::new(5)
    ));
    assert!(matches!(
        server.call(&Op::Version("b")).await,
        Ok(Reply::Version(None))
    ));
    assert_eq!(server.stats().unsolicited_data, 1);
    assert_eq!(server.stats().state, ServerState::Up);
}

#[tokio::test]
async fn late_unsolicited_bytes_are_found_before_reuse() {
    // The same, with the stray bytes arriving after the answer was
    // parsed and the connection pooled.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        "mg a v f c t" => Act::ReplyLater(
            b"VA 1 f0 c5 t-1\r\nx\r\n".to_vec(),
            Duration::from_millis(20),
            b"HD c999\r\n".to_vec(),
        ),
        _ => reply("EN\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    assert!(matches!(
        server.call(&Op::Get("a")).await,
        Ok(Reply::Entry(Some(_)))
    ));
    wait_for_idle(&server, IdleState::Unsolicited).await;
    assert!(matches!(
        server.call(&Op::Version("b")).await,
        Ok(Reply::Version(None))
    ));
    assert_eq!(server.stats().unsolicited_data, 1);
}

#[tokio::test]
async fn a_lying_block_length_is_refused_without_waiting_for_it() {
    // Regression: any length up to 1 GiB was accepted and allocated up
    // front, then awaited until the I/O timeout.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        _ => reply("VA 1073741824 f0 c1 t-1\r\nxx"),
    })
    .await;
    let mut c = config(1);
    c.io_timeout = Duration::from_secs(5);
    let server = Server::new(addr, &c);
    let started = Instant::now();
    let err = server.call(&Op::Get("k")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { message, .. } if message.contains("1073741824")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.stats().idle_connections, 0, "connection dropped");
    assert!(server.max_block() < 2 * 1024 * 1024);
}

#[tokio::test]
async fn values_over_the_servers_item_size_are_refused_before_io() {
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply("STAT item_size_max 1024\r\nSTAT cas_enabled yes\r\nEND\r\n"),
        _ => reply("HD c7\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    static BIG: [u8; 1024] = [b'x'; 1024];
    // The first call learns the limit on its fresh connection and is
    // refused before its own bytes are sent.
    let err = server
        .call(&store(StoreMode::Cas(3), "key", &BIG, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Input(session_core::Error::ValueTooLarge { size: 1024, limit })
                if limit == 1024 - ITEM_OVERHEAD - 3
        ),
        "{err:?}"
    );
    // Later ones without any I/O; non-zero flags cost 4 bytes more.
    let limit = 1024 - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 3;
    let err = server
        .call(&store(StoreMode::Add, "key", &BIG[..limit + 1], 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Input(session_core::Error::ValueTooLarge { limit: l, .. }) if l == limit),
        "{err:?}"
    );
    assert!(requests(&log, "ms").is_empty());
    assert_eq!(requests(&log, "stats").len(), 1, "learned once");
    assert_eq!(server.stats().requests, 1);
    assert!(matches!(
        server
            .call(&store(StoreMode::Set, "key", &BIG[..limit], 1))
            .await,
        Ok(Reply::Stored(StoreReply::Stored(Some(_))))
    ));
    assert_eq!(requests(&log, "ms").len(), 1);
}

#[tokio::test]
async fn a_servers_too_large_answer_reports_its_real_limit() {
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        _ => reply("SERVER_ERROR object too large for cache\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    let err = server
        .call(&store(StoreMode::Set, "key", b"v", 9))
        .await
        .unwrap_err();
    let core = session_core::Error::from(err);
    assert!(
        matches!(core, session_core::Error::ValueTooLarge { size: 1, limit }
            if limit == 1024 * 1024 - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 3),
        "{core:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_closes_on_stats_settings_still_works() {
    // twemproxy closes the connection on a command it does not route.
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => Act::Close,
        // It answers classic `version` (that is how it is told from a TLS
        // port, which closes on that too).
        "version" => reply("VERSION 1.6.18\r\n"),
        _ => reply("EN\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(2));
    assert!(matches!(
        server.call(&Op::Version("k")).await,
        Ok(Reply::Version(None))
    ));
    assert_eq!(server.settings(), Some(Settings::default()));
    assert_eq!(requests(&log, "stats").len(), 1, "asked once");
    assert_eq!(server.stats().state, ServerState::Up);
}

#[tokio::test]
async fn a_server_without_cas_is_a_typed_error() {
    // Learned from `stats settings`: refused before the write is sent.
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply("STAT item_size_max 1048576\r\nSTAT cas_enabled no\r\nEND\r\n"),
        _ => reply("HD c0\r\n"),
    })
    .await;
    let server = Server::new(addr.clone(), &config(1));
    for _ in 0..2 {
        let err = server
            .call(&store(StoreMode::Add, "k", b"v", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CasDisabled { .. }), "{err:?}");
    }
    assert!(requests(&log, "ms").is_empty());
    assert_eq!(server.stats().state, ServerState::Up);
    let message = session_core::Error::from(Error::CasDisabled { server: addr }).to_string();
    assert!(message.contains("runs with -C (CAS disabled); memorycached needs CAS"));

    // Seen in a reply (an endpoint that did not say): the same error,
    // and later calls fail before any I/O.
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply("ERROR\r\n"),
        _ => reply("VA 1 f0 c0 t-1\r\nx\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    for _ in 0..2 {
        let err = server.call(&Op::Get("k")).await.unwrap_err();
        assert!(matches!(err, Error::CasDisabled { .. }), "{err:?}");
    }
    assert_eq!(requests(&log, "mg").len(), 1);
}

/// A fake whose first connection answers one `mg` and then closes on
/// the next request after reading it whole (a server that applied it
/// and died before answering); later connections answer everything.
async fn breaks_after_second_request() -> (String, Log) {
    fake(|n, line| match line {
        "stats settings" => reply(SETTINGS),
        _ if n == 0 && !line.starts_with("mg") => Act::Close,
        l if l.starts_with("ms") => reply("HD c42\r\n"),
        _ => reply("EN\r\n"),
    })
    .await
}

#[tokio::test]
async fn a_write_that_may_have_been_applied_is_not_resent() {
    // Regression: an `add`/`cas` that broke a reused connection after
    // being written was resent, and answered `Exists`/`Conflict`
    // against its own first copy.
    for mode in [StoreMode::Add, StoreMode::Cas(5)] {
        let (addr, log) = breaks_after_second_request().await;
        let server = Server::new(addr, &config(1));
        server.call(&Op::Version("k")).await.unwrap();
        let err = server.call(&store(mode, "k", b"v", 1)).await.unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(requests(&log, "ms").len(), 1, "{mode:?} sent once");
    }
    // Idempotent ops are still retried once on a fresh connection.
    let (addr, log) = breaks_after_second_request().await;
    let server = Server::new(addr, &config(1));
    server.call(&Op::Version("k")).await.unwrap();
    assert!(matches!(
        server.call(&store(StoreMode::Set, "k", b"v", 1)).await,
        Ok(Reply::Stored(StoreReply::Stored(Some(_))))
    ));
    assert_eq!(
        requests(&log, "ms")
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        [0, 1]
    );
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_used() {
    // Found closed before the write, so even an `add` goes through.
    let (addr, log) = fake(|n, line| match line {
        "stats settings" => reply(SETTINGS),
        _ if n == 0 => Act::ReplyClose(b"EN\r\n".to_vec()),
        _ => reply("HD c42\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    server.call(&Op::Version("k")).await.unwrap();
    assert_eq!(server.stats().idle_connections, 1);
    wait_for_idle(&server, IdleState::Closed).await;
    assert!(matches!(
        server.call(&store(StoreMode::Add, "k", b"v", 1)).await,
        Ok(Reply::Stored(StoreReply::Stored(Some(_))))
    ));
    assert_eq!(
        requests(&log, "ms")
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        [1]
    );
}

#[tokio::test]
async fn a_meta_value_without_the_requested_flags_is_a_protocol_error() {
    // Regression: `VA` without `f` was read as flags 0, which makes a
    // session's codec unreadable instead of reporting the broken peer.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        _ => reply("VA 1 c5 t-1\r\nx\r\n"),
    })
    .await;
    for op in [Op::Get("k"), Op::GetAndTouch("k", 5)] {
        // A fresh server each: the first protocol error marks it down.
        let server = Server::new(addr.clone(), &config(1));
        let err = server.call(&op).await.unwrap_err();
        assert!(
            matches!(&err, Error::Protocol { message, .. } if message.contains("client flags")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_item_size_max_is_capped_and_a_huge_length_refused() {
    // Regression: `item_size_max` was trusted uncapped, so a length near
    // `usize::MAX` passed the block limit and `len + 2` overflowed.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply("STAT item_size_max 18446744073709551615\r\nEND\r\n"),
        _ => reply("VA 18446744073709551614 f0 c1 t-1\r\nxx"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    let err = server.call(&Op::Get("k")).await.unwrap_err();
    // Refused by the (capped) block limit, before any arithmetic on it.
    assert!(
        matches!(&err, Error::Protocol { message, .. }
            if message.contains(&format!("longer than the {} bytes",
                crate::protocol::ITEM_SIZE_MAX_CAP + BLOCK_SLACK))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_timeout_before_the_request_was_written_is_not_sent() {
    // Regression: a deadline that ran out while the fresh connection read
    // `stats settings` was reported as "sent, outcome unknown", though the
    // `add` itself never left.
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => Act::Ignore,
        _ => reply("HD c1\r\n"),
    })
    .await;
    let server = Server::new(addr, &config(1));
    let err = server
        .call(&store(StoreMode::Add, "k", b"v", 1))
        .await
        .unwrap_err();
    // Silence on a fresh connection's first request is named (it is what
    // a plaintext client gets from a TLS port).
    assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
    assert!(err.is_connect_failure(), "{err:?}");
    assert_eq!(
        session_core::Error::from(err).delivery(),
        Some(session_core::Delivery::NotSent)
    );
    assert!(requests(&log, "ms").is_empty());

    // After the request went out, the same timeout is "outcome unknown".
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        _ => Act::Ignore,
    })
    .await;
    let server = Server::new(addr, &config(1));
    let err = server
        .call(&store(StoreMode::Add, "k", b"v", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { sent: true, .. }), "{err:?}");
}

#[tokio::test]
async fn one_deadline_covers_pool_wait_connect_and_request() {
    // Regression: the pool wait (io_timeout), the connect and the request
    // (io_timeout again) each had their own deadline, so a call could take
    // twice the I/O timeout and more. Now it has connect + io in all.
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        _ => Act::Ignore,
    })
    .await;
    let mut c = config(1);
    c.io_timeout = Duration::from_millis(400);
    c.connect_timeout = Duration::from_millis(50);
    let server = Arc::new(Server::new(addr, &c));
    let first = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.call(&Op::Version("a")).await })
    };
    poll("the first call to hold the connection", || {
        server.stats().busy_connections == 1
    })
    .await;
    let started = Instant::now();
    let err = server.call(&Op::Version("b")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { .. } | Error::PoolTimeout { .. }),
        "{err:?}"
    );
    // Before: ~350 ms of pool wait, then 400 ms more for the request.
    assert!(took < Duration::from_millis(600), "took {took:?}");
    assert!(first.await.unwrap().is_err());
}

#[tokio::test]
async fn an_endpoint_that_refuses_meta_commands_is_named_with_the_hint() {
    // twemproxy closes the connection on `mg` (and `stats settings`) but
    // answers `version`: that is a protocol mismatch, not a dead server.
    let (addr, _log) = fake(|_, line| match line {
        "version" => reply("VERSION 1.6.18\r\n"),
        _ => Act::Close,
    })
    .await;
    let server = Server::new(addr, &config(2));
    let err = server.call(&Op::Get("k")).await.unwrap_err();
    assert!(
        matches!(err, Error::MetaUnsupported { command: "mg", .. }),
        "{err:?}"
    );
    assert!(
        session_core::Error::from(err)
            .to_string()
            .contains("protocol=classic")
    );
    assert_eq!(server.stats().state, ServerState::Up, "not marked down");

    // A server that closes on everything is just broken (or a TLS port):
    // no such claim, and nothing of the request was sent.
    let (addr, _log) = fake(|_, _| Act::Close).await;
    let server = Server::new(addr, &config(2));
    let err = server.call(&Op::Get("k")).await.unwrap_err();
    assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
}

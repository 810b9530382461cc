//! The multiplexed request path against the scripted fake: what a real
//! server never does on purpose (a stalled or lost answer on one
//! connection, an answer split across reads, an answer out of protocol,
//! bytes nobody asked for). The conformance kit and the fault tests run the
//! same path against real servers (`tests/`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use session_core::Version;

use super::tests::poll;
use super::*;
use crate::fake::{Act, Log, SETTINGS, fake, reply, requests};
use crate::protocol::Reply;

/// Two multiplexed connections, short deadlines.
fn config() -> MemcachedConfig {
    MemcachedConfig {
        mode: ConnectionMode::Multiplexed,
        connections: 2,
        io_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(1),
        ..MemcachedConfig::default()
    }
}

/// A server whose settings are known (its first call, on the pool, learned
/// them), so later calls are multiplexed.
async fn warmed(addr: String) -> Arc<Server> {
    let server = Arc::new(Server::new(addr, &config()));
    server.call(&Op::Version("warm-up")).await.unwrap();
    assert_eq!(
        server.stats().multiplexed_connections,
        0,
        "first call pooled"
    );
    server
}

/// The fake connection each logged `mg <key>` arrived on.
fn connection_of(log: &Log, key: &str) -> usize {
    let line = format!("mg {key} ");
    requests(log, &line)
        .first()
        .map(|(n, _)| *n)
        .unwrap_or_else(|| panic!("no request for {key}"))
}

/// `mg` calls for `keys`, spawned in order (on this current-thread
/// runtime they pick the two connections alternately: 0, 1, 0, 1, ...).
fn spawn_gets(
    server: &Arc<Server>,
    keys: &[&'static str],
) -> Vec<tokio::task::JoinHandle<crate::error::Result<Reply>>> {
    keys.iter()
        .map(|&key| {
            let server = server.clone();
            tokio::spawn(async move { server.call(&Op::Get(key)).await })
        })
        .collect()
}

/// The key of a `get` request line (`mg <key> v f c t`).
fn get_key(line: &str) -> Option<&str> {
    line.strip_prefix("mg ")?.strip_suffix(" v f c t")
}

fn hit(value: &str) -> Act {
    reply(&format!("VA {} f0 c7 t-1\r\n{value}\r\n", value.len()))
}

#[tokio::test]
async fn a_slow_answer_times_out_only_the_requests_behind_it_and_is_replaced() {
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        // Answered after every deadline; the fake answers a connection's
        // requests in order, so the ones behind it wait too.
        "mg slow v f c t" => {
            Act::ReplyLater(Vec::new(), Duration::from_secs(2), b"EN\r\n".to_vec())
        }
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = warmed(addr).await;
    let calls = spawn_gets(&server, &["slow", "other1", "behind1", "other2", "behind2"]);
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    // (The fake reads `behind*` only after its pause, so the log cannot
    // show their connection; their results do.)
    let slow = connection_of(&log, "slow");
    assert_ne!(connection_of(&log, "other1"), slow);
    for (i, key) in ["slow", "other1", "behind1", "other2", "behind2"]
        .iter()
        .enumerate()
    {
        match (key.starts_with("other"), &results[i]) {
            (true, Ok(Reply::Entry(Some(e)))) => assert_eq!(e.value, key.as_bytes()),
            (false, Err(Error::Timeout { sent: true, .. })) => {}
            (_, other) => panic!("{key}: {other:?}"),
        }
    }
    // The stalled connection was closed; the next call on its slot opens
    // a new one and is answered.
    poll("the slow connection to close", || {
        server.stats().multiplexed_connections == 1
    })
    .await;
    server.on_success();
    let newest = log.lock().unwrap().iter().map(|(n, _)| *n).max();
    for key in ["after1", "after2"] {
        assert!(
            matches!(server.call(&Op::Get(key)).await, Ok(Reply::Entry(Some(e))) if e.value == key.as_bytes())
        );
    }
    let replaced = connection_of(&log, "after1").max(connection_of(&log, "after2"));
    assert!(Some(replaced) > newest, "a new connection took the slot");
}

#[tokio::test]
async fn an_answer_lost_is_found_by_its_token_never_given_to_the_next_caller() {
    // The fake drops the answer to `lost` and answers `next` normally, so
    // `next`'s answer is the first to arrive after `lost` was sent: read
    // in order, it would hand `next`'s value to `lost`'s caller.
    let dropped = Arc::new(AtomicBool::new(false));
    let (addr, log) = fake(move |_, line| match line {
        "stats settings" => reply(SETTINGS),
        "mg lost v f c t" if !dropped.swap(true, Ordering::SeqCst) => Act::Ignore,
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = warmed(addr).await;
    let calls = spawn_gets(&server, &["lost", "other", "next"]);
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    assert_eq!(connection_of(&log, "lost"), connection_of(&log, "next"));
    assert!(
        matches!(&results[0], Err(Error::Protocol { message, .. }) if message.contains("out of step")),
        "{:?}",
        results[0]
    );
    assert!(matches!(&results[1], Ok(Reply::Entry(Some(e))) if e.value == b"other"));
    // Behind the lost answer: failed, outcome unknown, never `lost`'s value.
    assert!(
        matches!(&results[2], Err(Error::Io { sent: true, .. })),
        "{:?}",
        results[2]
    );
    server.on_success();
    assert!(
        matches!(server.call(&Op::Get("lost")).await, Ok(Reply::Entry(Some(e))) if e.value == b"lost")
    );
}

#[tokio::test]
async fn a_dropped_caller_leaves_the_stream_in_step() {
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        "mg dropped v f c t" => Act::ReplyLater(
            Vec::new(),
            Duration::from_millis(50),
            b"VA 7 f0 c7 t-1\r\ndropped\r\n".to_vec(),
        ),
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = warmed(addr).await;
    let dropped = spawn_gets(&server, &["dropped"]).remove(0);
    poll("the request to be written", || {
        !requests(&log, "mg dropped").is_empty()
    })
    .await;
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    // Same connection (slot 1, then 0 again... both), answers in step.
    for key in ["a", "b", "c", "d"] {
        assert!(
            matches!(server.call(&Op::Get(key)).await, Ok(Reply::Entry(Some(e))) if e.value == key.as_bytes()),
            "{key}"
        );
    }
    assert_eq!(server.stats().multiplexed_connections, 2, "none replaced");
}

#[tokio::test]
async fn an_answer_split_across_reads_is_put_together() {
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        // The data block, with a CRLF inside, arrives in two reads.
        l if get_key(l).is_some() => Act::ReplyLater(
            b"VA 7 f3 c9 t-1\r\nabc\r".to_vec(),
            Duration::from_millis(20),
            b"\nde\r\n".to_vec(),
        ),
        _ => reply("EN\r\n"),
    })
    .await;
    let server = warmed(addr).await;
    match server.call(&Op::Get("k")).await {
        Ok(Reply::Entry(Some(e))) => {
            assert_eq!((e.value.as_slice(), e.flags), (&b"abc\r\nde"[..], 3));
            assert_eq!(e.version, Version::new(9));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_answer_out_of_protocol_fails_its_call_and_the_connection_is_replaced() {
    let bogus = Arc::new(AtomicBool::new(false));
    let (addr, _log) = fake(move |_, line| match line {
        "stats settings" => reply(SETTINGS),
        l if get_key(l).is_some() && !bogus.swap(true, Ordering::SeqCst) => {
            reply("HELLO THERE\r\n")
        }
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = warmed(addr).await;
    let err = server.call(&Op::Get("k")).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    poll("the confused connection to close", || {
        server.stats().multiplexed_connections == 0
    })
    .await;
    server.on_success();
    assert!(
        matches!(server.call(&Op::Get("k")).await, Ok(Reply::Entry(Some(e))) if e.value == b"k")
    );
}

#[tokio::test]
async fn bytes_nobody_asked_for_close_the_connection() {
    let (addr, _log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        "mg first v f c t" => Act::ReplyLater(
            b"VA 5 f0 c1 t-1\r\nfirst\r\n".to_vec(),
            Duration::from_millis(20),
            b"HD c999\r\n".to_vec(),
        ),
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = Arc::new(Server::new(
        addr,
        &MemcachedConfig {
            connections: 1,
            ..config()
        },
    ));
    server.call(&Op::Version("warm-up")).await.unwrap();
    assert!(
        matches!(server.call(&Op::Get("first")).await, Ok(Reply::Entry(Some(e))) if e.value == b"first")
    );
    poll("the connection to close", || {
        server.stats().multiplexed_connections == 0
    })
    .await;
    assert!(
        matches!(server.call(&Op::Get("k")).await, Ok(Reply::Entry(Some(e))) if e.value == b"k")
    );
}

#[tokio::test]
async fn a_multi_get_is_one_request_in_batches_with_one_token() {
    let (addr, log) = fake(|_, line| match line {
        "stats settings" => reply(SETTINGS),
        l => get_key(l).map_or_else(|| reply("EN\r\n"), hit),
    })
    .await;
    let server = warmed(addr).await;
    let keys: Vec<String> = (0..150).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    match server.call(&Op::GetMany(&keys)).await {
        Ok(Reply::Entries(entries)) => {
            assert_eq!(entries.len(), 150);
            for (key, entry) in keys.iter().zip(entries) {
                assert_eq!(entry.map(|e| e.value), Some(key.as_bytes().to_vec()));
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(server.call(&Op::GetMany(&[])).await, Ok(Reply::Entries(e)) if e.is_empty()));
    assert_eq!(requests(&log, "mg k").len(), 150);
}

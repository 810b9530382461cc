//! `POST /sessions/{id}/increment`: concurrent increments through the
//! update path are each counted once (in-memory store and a real
//! memcached), an unknown id is 404, a bad body or a field that is not an
//! integer is 400, and a store failure says whether the increment may have
//! been applied (`"delivery"`).

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bridge, json, memcached, request, test_config};
use serde_json::{Value, json as j};

async fn new_session(bridge: &Bridge, fields: Value) -> String {
    let r = json(bridge.addr, "POST", "/sessions", &fields).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

/// 4 fields × 16 concurrent increments of 1..=16 each: every answer is a
/// distinct new value, and the final values are the exact sums.
async fn concurrent_increments(bridge: &Bridge) {
    let a = bridge.addr;
    let id = new_session(bridge, j!({"uid": "jdoe", "c0": 100})).await;
    let path = format!("/sessions/{id}/increment");
    let mut tasks = tokio::task::JoinSet::new();
    for field in 0..4 {
        for by in 1..=16i64 {
            let path = path.clone();
            tasks.spawn(async move {
                let r = json(
                    a,
                    "POST",
                    &path,
                    &j!({"field": format!("c{field}"), "by": by}),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.body);
                (field, r.json()["value"].as_i64().unwrap())
            });
        }
    }
    let mut answers: Vec<Vec<i64>> = vec![Vec::new(); 4];
    while let Some(done) = tasks.join_next().await {
        let (field, value) = done.unwrap();
        answers[field].push(value);
    }
    let got = json(a, "GET", &format!("/sessions/{id}"), &Value::Null)
        .await
        .json();
    let sum: i64 = (1..=16).sum();
    for (field, values) in answers.iter_mut().enumerate() {
        let start = if field == 0 { 100 } else { 0 };
        assert_eq!(got[format!("c{field}")], j!(start + sum), "c{field}: {got}");
        // Each increment saw the one before it: the answers are distinct
        // and the largest is the final value.
        values.sort_unstable();
        values.dedup();
        assert_eq!(
            values.len(),
            16,
            "c{field}: two increments answered the same value"
        );
        assert_eq!(values.last().copied(), Some(start + sum));
    }
    assert_eq!(got["uid"], "jdoe", "other fields kept: {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_counted_once_on_memory() {
    let bridge = Bridge::memory().await;
    concurrent_increments(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_counted_once_on_memcached() {
    let server = memcached().await;
    let bridge = Bridge::start(test_config(&format!("memcached://{}", server.addr()))).await;
    concurrent_increments(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_id_bad_bodies_and_non_integers() {
    let bridge = Bridge::memory().await;
    let a = bridge.addr;
    // Unknown (well-formed) id: 404, nothing created.
    let unknown = "0123456789abcdef0123456789abcdef";
    let r = json(
        a,
        "POST",
        &format!("/sessions/{unknown}/increment"),
        &j!({"field": "n"}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "not_found");
    let r = json(a, "GET", &format!("/sessions/{unknown}"), &Value::Null).await;
    assert_eq!(r.status, 404, "an increment created a session: {}", r.body);
    // An invalid id: 400 before the body is read.
    let r = json(
        a,
        "POST",
        "/sessions/not-an-id/increment",
        &j!({"field": "n"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "invalid_id");

    let id = new_session(&bridge, j!({"uid": "jdoe", "name": "x", "big": i64::MAX})).await;
    let path = format!("/sessions/{id}/increment");
    // `by` defaults to 1.
    let r = json(a, "POST", &path, &j!({"field": "n"})).await;
    assert_eq!(
        (r.status, r.json()["value"].clone()),
        (200, j!(1)),
        "{}",
        r.body
    );
    for (body, why) in [
        (j!({}), "no field"),
        (j!({"field": 3}), "field not a string"),
        (j!({"field": "n", "by": "2"}), "by not a number"),
        (j!({"field": "n", "by": 1.5}), "by not an integer"),
        (j!({"field": "n", "extra": 1}), "unknown key"),
        (j!(["n"]), "not an object"),
        (
            j!({"field": "name"}),
            "field holds a string that is no integer",
        ),
        (j!({"field": "big"}), "overflow"),
        (j!({"field": "_session_id"}), "the id field"),
    ] {
        let r = json(a, "POST", &path, &body).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert!(r.json()["error"].as_str().is_some(), "{why}: {}", r.body);
    }
    let r = request(
        a,
        "POST",
        &path,
        &[("content-type", "application/json")],
        b"{\"field\":",
    )
    .await;
    assert_eq!(r.status, 400, "malformed JSON: {}", r.body);
    // None of the refused requests changed anything.
    let got = json(a, "GET", &format!("/sessions/{id}"), &Value::Null)
        .await
        .json();
    assert_eq!(
        (got["n"].clone(), got["name"].clone()),
        (j!(1), j!("x")),
        "{got}"
    );
    bridge.stop().await;
}

/// A stopped memcached refuses the connection: 503 and `"not_sent"`. A
/// paused one takes the request and never answers: 503 and `"unknown"`,
/// since the load (or the save) went out and its outcome is not known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_say_whether_the_increment_was_delivered() {
    let server = memcached().await;
    let store = format!(
        "memcached://{}?timeout_ms=300&connect_timeout_ms=300",
        server.addr()
    );
    let bridge = Bridge::start(test_config(&store)).await;
    let a = bridge.addr;
    let id = new_session(&bridge, j!({"uid": "jdoe"})).await;
    let path = format!("/sessions/{id}/increment");

    server.pause().await.unwrap();
    let r = json(a, "POST", &path, &j!({"field": "n"})).await;
    server.unpause().await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["delivery"], "unknown", "{}", r.body);

    server.stop().await.unwrap();
    // The first request after the stop may meet the dead connection (sent,
    // unknown) or the store's down-marking; poll until one is refused
    // before it is sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = json(a, "POST", &path, &j!({"field": "n"})).await;
        assert_eq!(r.status, 503, "{}", r.body);
        let delivery = r.json()["delivery"].clone();
        assert!(
            delivery == "unknown" || delivery == "not_sent",
            "{}",
            r.body
        );
        if delivery == "not_sent" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never not_sent: {}",
            r.body
        );
    }
    bridge.stop().await;
}

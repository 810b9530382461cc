//! The JSON mirror of the session operations, and the conflict-safe save
//! under concurrency: 32 PATCHes of distinct keys on one session all survive,
//! on the in-memory store and on a real memcached.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// A session as JSON without the `uid_MD5` field session-core stamps when
/// `principal = uid` (checked to be there whenever `uid` is).
fn without_digest(mut v: Value) -> Value {
    let map = v.as_object_mut().unwrap();
    let digest = map.remove("uid_MD5");
    assert_eq!(digest.is_some(), map.contains_key("uid"), "{map:?}");
    v
}

use common::{Bridge, json, memcached, request, soap, test_config};
use serde_json::{Value, json as j};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_errors() {
    let bridge = Bridge::memory().await;
    let a = bridge.addr;
    let r = json(
        a,
        "POST",
        "/sessions",
        &j!({"uid": "jdoe", "n": 5, "list": [1, "two"], "_session_id": "ignored"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/sessions/{id}").as_str())
    );
    let path = format!("/sessions/{id}");

    let got = json(a, "GET", &path, &Value::Null).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        without_digest(got.json()),
        j!({"uid": "jdoe", "n": 5, "list": [1, "two"], "_session_id": id})
    );

    // PATCH changes only the given keys; null removes one.
    let r = json(a, "PATCH", &path, &j!({"mail": "j@x", "n": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        without_digest(json(a, "GET", &path, &Value::Null).await.json()),
        j!({"uid": "jdoe", "mail": "j@x", "list": [1, "two"], "_session_id": id})
    );

    // PUT replaces everything but the id.
    assert_eq!(json(a, "PUT", &path, &j!({"only": true})).await.status, 204);
    assert_eq!(
        without_digest(json(a, "GET", &path, &Value::Null).await.json()),
        j!({"only": true, "_session_id": id})
    );

    // The same session over SOAP.
    let r = soap(
        a,
        "getSession",
        &format!("<c-gensym3 xsi:type=\"xsd:string\">{id}</c-gensym3>"),
    )
    .await;
    assert!(
        r.body
            .contains("<only xsi:type=\"xsd:boolean\">true</only>"),
        "{}",
        r.body
    );

    assert_eq!(
        json(a, "POST", &format!("{path}/touch"), &Value::Null)
            .await
            .status,
        204
    );
    assert_eq!(json(a, "DELETE", &path, &Value::Null).await.status, 204);

    // Errors are JSON objects with a code.
    let unknown = "/sessions/0123456789abcdef0123456789abcdef";
    for (method, path, body, status, code) in [
        ("GET", path.as_str(), Value::Null, 404, "not_found"),
        ("GET", unknown, Value::Null, 404, "not_found"),
        ("PATCH", unknown, j!({"a": 1}), 404, "not_found"),
        ("PUT", unknown, j!({"a": 1}), 404, "not_found"),
        ("DELETE", unknown, Value::Null, 404, "not_found"),
        (
            "POST",
            "/sessions/0123456789abcdef0123456789abcdef/touch",
            Value::Null,
            404,
            "not_found",
        ),
        ("GET", "/sessions/not-hex!", Value::Null, 400, "invalid_id"),
        ("PATCH", "/sessions/zz", j!({"a": 1}), 400, "invalid_id"),
        ("DELETE", "/sessions/zz", Value::Null, 400, "invalid_id"),
        ("POST", "/sessions", j!([1, 2]), 400, "bad_request"),
    ] {
        let r = json(a, method, path, &body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["code"], code, "{method} {path}");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
    let r = request(
        a,
        "POST",
        "/sessions",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "bad_request");
    let r = request(a, "PATCH", &format!("/sessions/{id}"), &[], b"{\"a\":").await;
    assert_eq!(r.status, 400, "{}", r.body);

    // findByPrincipal over JSON (the test config sets principal = uid).
    let id2 = json(a, "POST", "/sessions", &j!({"uid": "alice"}))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = json(a, "GET", "/principals/alice", &Value::Null).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["_session_id"], id2);
    assert_eq!(
        json(a, "GET", "/principals/nobody", &Value::Null)
            .await
            .status,
        404
    );
    bridge.stop().await;
}

async fn concurrent_patches(bridge: &Bridge) {
    let a = bridge.addr;
    let id = json(a, "POST", "/sessions", &j!({"uid": "jdoe"}))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/sessions/{id}");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let path = path.clone();
        tasks.spawn(async move {
            json(a, "PATCH", &path, &j!({ format!("k{i}"): i }))
                .await
                .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 204);
    }
    let got = json(a, "GET", &path, &Value::Null).await.json();
    for i in 0..32 {
        assert_eq!(got[format!("k{i}")], j!(i), "k{i} was lost: {got}");
    }
    assert_eq!(got["uid"], "jdoe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_lose_nothing_on_memory() {
    let bridge = Bridge::memory().await;
    concurrent_patches(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_lose_nothing_on_memcached() {
    let server = memcached().await;
    let bridge = Bridge::start(test_config(&format!("memcached://{}", server.addr()))).await;
    concurrent_patches(&bridge).await;
    bridge.stop().await;
}

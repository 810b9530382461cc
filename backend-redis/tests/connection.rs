//! Connection settings against a real Redis: ACL user and password, a
//! wrong password (a typed configuration error, not a retryable one), the
//! database number, and the key prefix as other clients see it; and what
//! the store learns of the server (Redis 7 has no `SET ... IFEQ`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use backend_redis::RedisStore;
use common::{raw, redis};
use session_core::{CasOutcome, Error, Store, Ttl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_password_are_used_and_a_wrong_one_is_typed() {
    let s = redis().await;
    let addr = s.addr();
    raw(
        &addr,
        &["ACL", "SETUSER", "app", "on", ">p@ss/w", "~*", "+@all"],
    )
    .await
    .unwrap();

    let store = RedisStore::from_url(&format!("redis://app:p%40ss%2Fw@{addr}")).unwrap();
    store.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
    let whoami = redis::Client::open(format!("redis://app:p%40ss%2Fw@{addr}")).unwrap();
    let mut conn = whoami.get_multiplexed_async_connection().await.unwrap();
    let me: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(me, "app");

    let wrong = RedisStore::from_url(&format!("redis://app:nope@{addr}")).unwrap();
    let e = wrong.get("k").await.unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(!e.is_retryable(), "{e:?}");
    assert!(!e.to_string().contains("nope"), "the password leaked: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_number_and_prefix_place_the_keys() {
    let s = redis().await;
    let addr = s.addr();
    let db3 = RedisStore::from_url(&format!("redis://{addr}/3?prefix=app%3A")).unwrap();
    let db0 = RedisStore::from_url(&format!("redis://{addr}")).unwrap();
    db3.set("k", b"v", 0, Ttl::NEVER).await.unwrap();
    assert!(db0.get("k").await.unwrap().is_none());
    assert!(db0.get("app:k").await.unwrap().is_none());

    let client = redis::Client::open(format!("redis://{addr}/3")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("app:k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 1, "the prefixed key is in database 3");

    // A value another client wrote under our prefix is reported, typed.
    let _: () = redis::cmd("SET")
        .arg("app:foreign")
        .arg("plain")
        .query_async(&mut conn)
        .await
        .unwrap();
    let e = db3.get("foreign").await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert!(e.to_string().contains("not written by RedisStore"), "{e}");

    // A database the server does not have is a configuration error.
    let db99 = RedisStore::from_url(&format!("redis://{addr}/99")).unwrap();
    let e = db99.get("k").await.unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_set_ifeq_is_noticed_and_cas_keeps_working() {
    let s = redis().await;
    let store = RedisStore::from_url(&format!("redis://{}", s.addr())).unwrap();
    assert_eq!(store.server_has_ifeq(), None);
    store.set("k", b"v0", 0, Ttl::NEVER).await.unwrap();
    let first = store.get("k").await.unwrap().unwrap().version;

    // The first cas after a read tries `IFEQ`, is refused, and runs the
    // script; the later ones go straight to the script.
    for n in 1..=3 {
        let read = store.get("k").await.unwrap().unwrap();
        let value = format!("v{n}");
        let outcome = store
            .cas("k", value.as_bytes(), 0, Ttl::NEVER, read.version)
            .await
            .unwrap();
        assert!(matches!(outcome, CasOutcome::Stored(_)), "{outcome:?}");
        assert_eq!(
            store.server_has_ifeq(),
            Some(false),
            "this Redis took SET IFEQ; the test needs one without it (Redis 7)"
        );
    }
    assert_eq!(
        store
            .cas("k", b"stale", 0, Ttl::NEVER, first)
            .await
            .unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v3");
}

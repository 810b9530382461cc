//! The example app driven by a cookie-keeping HTTP client over real TCP, on
//! session-core's `MemoryStore` and on the memcached servers of `cargo
//! xtask test` (`MEMORYCACHED_MEMCACHED`; missing, the memcached tests fail
//! saying how to set it), with and without a local tier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Browser, eventually, routes, serve, serve_ours, sessions};
use serde_json::{Value, json};
use session_core::SessionsConfig;
use tower_sessions_memorycached::SessionsStore;
use tower_sessions_memorycached::id::session_id_of;

const HOUR: time::Duration = time::Duration::hours(1);

/// Runs one scenario on each backend, as one test each.
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario(super::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memcached() {
                super::$scenario(super::Backend::Memcached).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memcached_with_local_tier() {
                super::$scenario(super::Backend::MemcachedLocal).await;
            }
        }
    };
}

on_both!(counter_login_and_logout_everywhere);
on_both!(concurrent_requests_changing_different_keys_both_survive);
on_both!(an_expired_session_gives_a_new_empty_one);
on_both!(a_tampered_or_foreign_cookie_gives_a_new_session);

/// The session id (store form) behind a cookie value.
fn store_id(cookie: &str) -> String {
    session_id_of(cookie.parse().unwrap()).unwrap().to_string()
}

async fn counter_login_and_logout_everywhere(backend: Backend) {
    let sessions = sessions(backend, SessionsConfig::default());
    let (app, _store) = serve_ours(&sessions, HOUR).await;
    let alice = Browser::new();
    assert_eq!(alice.get(&app, "/counter").await, (200, "count=1".into()));
    assert_eq!(alice.get(&app, "/counter").await, (200, "count=2".into()));
    let before_login = alice.cookie(&app).expect("a session cookie");
    // The cookie names a session of the store under the same 128 bits.
    let stored = sessions.load(&store_id(&before_login)).await.unwrap();
    assert_eq!(stored.unwrap().get::<i64>("count").unwrap(), Some(2));

    // A unique user per run: the memcached servers are shared.
    let uid = format!("user-{}", session_core::SessionId::generate(16).unwrap());
    assert_eq!(alice.post(&app, "/login", &[("uid", &uid)]).await.0, 303);
    let after_login = alice.cookie(&app).unwrap();
    assert_ne!(after_login, before_login, "login cycles the id");
    assert!(
        sessions
            .load(&store_id(&before_login))
            .await
            .unwrap()
            .is_none(),
        "the pre-login id is gone from the store"
    );
    assert_eq!(alice.field(&app, "uid").await, json!(uid));
    assert_eq!(alice.field(&app, "count").await, json!(2), "data kept");
    let (status, page) = alice.get(&app, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("Logged in as <b>{uid}</b>")),
        "{page}"
    );

    // The same user on a second device; both sessions are indexed.
    let phone = Browser::new();
    assert_eq!(phone.post(&app, "/login", &[("uid", &uid)]).await.0, 303);
    assert_eq!(sessions.list_by_principal(&uid).await.unwrap().len(), 2);

    // Plain logout ends one session only.
    let tablet = Browser::new();
    assert_eq!(tablet.post(&app, "/login", &[("uid", &uid)]).await.0, 303);
    let tablet_id = store_id(&tablet.cookie(&app).unwrap());
    assert_eq!(tablet.post(&app, "/logout", &[]).await.0, 303);
    assert!(sessions.load(&tablet_id).await.unwrap().is_none());
    assert_eq!(tablet.field(&app, "uid").await, Value::Null);
    assert_eq!(phone.field(&app, "uid").await, json!(uid));

    // Log out everywhere from the laptop: the phone is logged out too.
    assert_eq!(alice.post(&app, "/logout-everywhere", &[]).await.0, 303);
    assert_eq!(phone.field(&app, "uid").await, Value::Null);
    assert_eq!(alice.field(&app, "uid").await, Value::Null);
    assert!(sessions.list_by_principal(&uid).await.unwrap().is_empty());
    assert_eq!(phone.get(&app, "/counter").await, (200, "count=1".into()));
}

/// Two requests of one session, both loaded before either saves (they meet
/// at a barrier in the handler), each setting its own key.
async fn overlapping_sets(app: &common::App, browser: &Browser) {
    assert_eq!(browser.get(app, "/counter").await.0, 200);
    let (a, b) = tokio::join!(
        browser.post(app, "/set", &[("key", "a"), ("value", "1")]),
        browser.post(app, "/set", &[("key", "b"), ("value", "2")]),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
}

async fn concurrent_requests_changing_different_keys_both_survive(backend: Backend) {
    let sessions = sessions(backend, SessionsConfig::default());
    let store = SessionsStore::new(sessions.clone()).unwrap();
    let state = routes::AppState {
        sessions: Some(sessions.clone()),
        rendezvous: Some(Arc::new(tokio::sync::Barrier::new(2))),
    };
    let app = serve(store.clone(), state, HOUR).await;
    let browser = Browser::new();
    overlapping_sets(&app, &browser).await;
    assert_eq!(browser.field(&app, "a").await, json!("1"));
    assert_eq!(browser.field(&app, "b").await, json!("2"));
    assert_eq!(browser.field(&app, "count").await, json!(1));
    let stats = store.stats();
    assert_eq!(
        stats.patched, 2,
        "both saves wrote only their own key: {stats:?}"
    );
    assert_eq!(stats.replaced, 0, "{stats:?}");
    // The second save's CAS on the version both loaded was refused, and
    // merged with the first one's write.
    assert!(sessions.stats().merges >= 1, "{:?}", sessions.stats());
}

/// The same two requests on tower-sessions' own memory store lose one key:
/// what the test above would see without the per-request base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_sessions_own_store_loses_one_of_the_two_keys() {
    let state = routes::AppState {
        sessions: None,
        rendezvous: Some(Arc::new(tokio::sync::Barrier::new(2))),
    };
    let app = serve(tower_sessions::MemoryStore::default(), state, HOUR).await;
    let browser = Browser::new();
    overlapping_sets(&app, &browser).await;
    let a = browser.field(&app, "a").await;
    let b = browser.field(&app, "b").await;
    assert!(
        (a == Value::Null) != (b == Value::Null),
        "last writer wins: exactly one survives, got a={a} b={b}"
    );
}

async fn an_expired_session_gives_a_new_empty_one(backend: Backend) {
    let sessions = sessions(backend, SessionsConfig::default());
    let (app, _store) = serve_ours(&sessions, time::Duration::seconds(2)).await;
    let browser = Browser::new();
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=1".into()));
    let old = browser.cookie(&app).unwrap();
    // The store TTL follows the record's expiry: 2 s (memcached counts
    // whole seconds, so 1 to 2 s there). Reads do not extend it.
    let expired = eventually(Duration::from_secs(10), || async {
        sessions.load(&store_id(&old)).await.unwrap().is_none()
    })
    .await;
    assert!(expired, "the session outlived its 2 s expiry");
    browser.set_cookie(&app, &old);
    assert_eq!(browser.field(&app, "count").await, Value::Null, "empty");
    browser.set_cookie(&app, &old);
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=1".into()));
    assert_ne!(browser.cookie(&app).unwrap(), old, "a new id");
}

async fn a_tampered_or_foreign_cookie_gives_a_new_session(backend: Backend) {
    let sessions = sessions(backend, SessionsConfig::default());
    let (app, _store) = serve_ours(&sessions, HOUR).await;
    let browser = Browser::new();
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=1".into()));
    let mine = browser.cookie(&app).unwrap();
    // Tampered: not an id at all, a truncated one, one character changed.
    let mut flipped = mine.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // Foreign: a well-formed id no session has.
    let foreign = tower_sessions::session::Id::default().to_string();
    for bad in ["not-a-session-id!", &mine[..10], &flipped, &foreign] {
        browser.set_cookie(&app, bad);
        assert_eq!(
            browser.get(&app, "/counter").await,
            (200, "count=1".into()),
            "cookie {bad:?}"
        );
        let new = browser.cookie(&app).unwrap();
        assert_ne!(new, bad);
        assert_ne!(new, mine);
    }
    // The real session was not touched by any of it.
    let kept = sessions.load(&store_id(&mine)).await.unwrap().unwrap();
    assert_eq!(kept.get::<i64>("count").unwrap(), Some(1));
}

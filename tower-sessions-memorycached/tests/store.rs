//! The behaviours tower-sessions documents for a store, each checked once
//! through the `SessionStore` trait (create, load, save, delete, expiry,
//! id cycling), plus what this store adds: `create` never overwrites, and
//! every codec (Storable included) round-trips a record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{Backend, sessions};
use serde_json::{Value, json};
use session_core::{Codec, SessionsConfig};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Session, SessionStore};
use tower_sessions_memorycached::SessionsStore;
use tower_sessions_memorycached::id::session_id_of;

fn record(data: Value, expires_in: time::Duration) -> Record {
    let data: HashMap<String, Value> = serde_json::from_value(data).unwrap();
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

/// Runs `f` in a task of its own, as a request is (`#[tokio::test]`'s body
/// is not a task, and the store keeps per-request state per task).
async fn in_task<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    tokio::spawn(f).await.unwrap();
}

async fn create_load_save_delete(backend: Backend) {
    let store = SessionsStore::new(sessions(backend, SessionsConfig::default())).unwrap();
    let mut rec = record(
        json!({"uid": "jdoe", "n": 1, "tags": ["a", "b"]}),
        time::Duration::hours(1),
    );
    let drawn = rec.id;
    store.create(&mut rec).await.unwrap();
    assert_ne!(rec.id, drawn, "the store assigns its own OS-random id");
    let loaded = store.load(&rec.id).await.unwrap().expect("created");
    assert_eq!(loaded.id, rec.id);
    // `uid` is the principal: Sessions stamps `uid_MD5` for Perl readers.
    assert_eq!(loaded.data["uid"], "jdoe");
    assert_eq!(loaded.data["tags"], json!(["a", "b"]));
    assert!(loaded.data.contains_key("uid_MD5"));
    assert!(!loaded.data.contains_key("_session_id"));
    let skew = (loaded.expiry_date - rec.expiry_date).abs();
    assert!(skew <= time::Duration::seconds(2), "expiry kept: {skew}");

    let mut changed = loaded.clone();
    changed.data.insert("n".into(), json!(2));
    changed.data.remove("tags");
    store.save(&changed).await.unwrap();
    let again = store.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(again.data["n"], 2);
    assert!(!again.data.contains_key("tags"));

    store.delete(&rec.id).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    // Deleting what is gone is not an error.
    store.delete(&rec.id).await.unwrap();
    // Nor is loading an id nobody has.
    assert!(store.load(&Id::default()).await.unwrap().is_none());
}

#[tokio::test]
async fn create_load_save_delete_on_memory() {
    in_task(create_load_save_delete(Backend::Memory)).await;
}

#[tokio::test]
async fn create_load_save_delete_on_memcached() {
    in_task(create_load_save_delete(Backend::Memcached)).await;
}

#[tokio::test]
async fn create_never_overwrites_an_existing_session() {
    in_task(async {
        let sessions = sessions(Backend::Memory, SessionsConfig::default());
        let store = SessionsStore::new(sessions.clone()).unwrap();
        let mut first = record(json!({"owner": "first"}), time::Duration::hours(1));
        store.create(&mut first).await.unwrap();
        // A second record drawn with the very same id (what a collision is).
        let mut second = record(json!({"owner": "second"}), time::Duration::hours(1));
        second.id = first.id;
        store.create(&mut second).await.unwrap();
        assert_ne!(second.id, first.id);
        let kept = store.load(&first.id).await.unwrap().unwrap();
        assert_eq!(kept.data["owner"], "first");
        let other = store.load(&second.id).await.unwrap().unwrap();
        assert_eq!(other.data["owner"], "second");
    })
    .await;
}

#[tokio::test]
async fn expiry_is_the_store_ttl_and_a_past_date_ends_the_session() {
    in_task(async {
        let sessions = sessions(Backend::Memory, SessionsConfig::default());
        let store = SessionsStore::new(sessions.clone()).unwrap();
        let mut rec = record(json!({"k": "v"}), time::Duration::seconds(90));
        store.create(&mut rec).await.unwrap();
        let sid = session_id_of(rec.id).unwrap();
        let remaining = sessions.load_id(&sid).await.unwrap().unwrap().remaining();
        assert_eq!(remaining.map(|t| t.as_secs()), Some(90));
        // A save extends it (tower-sessions' OnInactivity).
        let mut longer = store.load(&rec.id).await.unwrap().unwrap();
        longer.expiry_date = OffsetDateTime::now_utc() + time::Duration::seconds(600);
        store.save(&longer).await.unwrap();
        let remaining = sessions.load_id(&sid).await.unwrap().unwrap().remaining();
        assert_eq!(remaining.map(|t| t.as_secs()), Some(600));
        assert_eq!(store.stats().touched, 1, "no field changed: only a touch");
        // Saved with a date in the past: the session is over.
        longer.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store.save(&longer).await.unwrap();
        assert!(store.load(&rec.id).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn cycle_id_moves_the_data_to_a_new_id_and_drops_the_old() {
    in_task(async {
        let store =
            SessionsStore::new(sessions(Backend::Memory, SessionsConfig::default())).unwrap();
        let store = Arc::new(store);
        let session = Session::new(None, Arc::clone(&store), None);
        session.insert("cart", 3).await.unwrap();
        session.save().await.unwrap();
        let old = session.id().unwrap();
        session.cycle_id().await.unwrap();
        session.save().await.unwrap();
        let new = session.id().unwrap();
        assert_ne!(new, old);
        assert!(store.load(&old).await.unwrap().is_none());
        assert_eq!(store.load(&new).await.unwrap().unwrap().data["cart"], 3);
    })
    .await;
}

#[tokio::test]
async fn every_codec_round_trips_a_record() {
    for codec in [Codec::Json, Codec::MessagePack, Codec::Storable] {
        in_task(async move {
            let config = SessionsConfig {
                codec,
                ..Default::default()
            };
            let store = SessionsStore::new(sessions(Backend::Memory, config)).unwrap();
            let data = json!({"uid": "jdoe", "n": 42, "cn": "Jöhn Doe", "groups": ["a", "b"], "prefs": {"theme": "dark"}});
            let mut rec = record(data.clone(), time::Duration::hours(1));
            store.create(&mut rec).await.unwrap();
            let loaded = store.load(&rec.id).await.unwrap().unwrap();
            for (k, v) in data.as_object().unwrap() {
                assert_eq!(&loaded.data[k], v, "{codec:?} field {k}");
            }
        })
        .await;
    }
}

#[tokio::test]
async fn ids_that_are_not_128_bits_are_refused_at_construction() {
    let config = SessionsConfig {
        id_length: 16,
        ..Default::default()
    };
    let err = SessionsStore::new(sessions(Backend::Memory, config)).unwrap_err();
    assert!(err.to_string().contains("needs 32"), "{err}");
}

#[tokio::test]
async fn a_session_deleted_during_a_request_is_not_written_back() {
    in_task(async {
        let sessions = sessions(Backend::Memory, SessionsConfig::default());
        let store = SessionsStore::new(sessions.clone()).unwrap();
        let mut rec = record(json!({"uid": "jdoe"}), time::Duration::hours(1));
        store.create(&mut rec).await.unwrap();
        let mut loaded = store.load(&rec.id).await.unwrap().unwrap();
        // Logged out everywhere while this request runs.
        assert_eq!(sessions.revoke_principal("jdoe").await.unwrap(), 1);
        loaded.data.insert("theme".into(), json!("dark"));
        store.save(&loaded).await.unwrap();
        assert!(
            store.load(&rec.id).await.unwrap().is_none(),
            "not resurrected"
        );
        assert_eq!(store.stats().gone, 1);
    })
    .await;
}

#[tokio::test]
async fn a_save_without_a_known_base_replaces_the_fields() {
    let store = SessionsStore::new(sessions(Backend::Memory, SessionsConfig::default())).unwrap();
    let mut rec = record(json!({"a": 1, "b": 1}), time::Duration::hours(1));
    // Outside any task (the test body): no base is kept.
    store.create(&mut rec).await.unwrap();
    let mut loaded = store.load(&rec.id).await.unwrap().unwrap();
    loaded.data.remove("a");
    loaded.data.insert("c".into(), json!(3));
    store.save(&loaded).await.unwrap();
    let after = store.load(&rec.id).await.unwrap().unwrap();
    assert!(!after.data.contains_key("a"));
    assert_eq!(
        (after.data["b"].clone(), after.data["c"].clone()),
        (json!(1), json!(3))
    );
    let stats = store.stats();
    assert_eq!(
        (stats.replaced, stats.patched, stats.bases),
        (1, 0, 0),
        "{stats:?}"
    );
}

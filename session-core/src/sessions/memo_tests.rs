//! Loads from an in-process store reuse the scan a first load left beside
//! the item (`ItemMemo`), and only for exactly that item: a new write or a
//! wrapper that changes keys gets no stale spans.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Sessions;
use crate::codec::Codec;
use crate::config::SessionsConfig;
use crate::memory::MemoryStore;
use crate::namespaced::Namespaced;
use crate::session::SessionData;
use crate::store::{Store, Ttl};

/// A session of five fields; `profile` is repeated to 200 bytes, so that
/// the scan fits the memo's budget (the value's size), as it does for any
/// session of a few hundred bytes.
fn fields(profile: &str) -> SessionData {
    let profile = profile.repeat(200);
    let Value::Object(map) = json!({"uid": "jdoe", "cn": "Jean", "n": 7, "profile": profile})
    else {
        unreachable!("a json! object is an object")
    };
    map
}

fn sessions(store: Arc<dyn Store>, codec: Codec) -> Sessions {
    let config = SessionsConfig {
        codec,
        ..SessionsConfig::default()
    };
    Sessions::new(store, config).unwrap()
}

/// Whether the memo of `key` on `store` holds a scan (`None`: the item
/// has no memo yet, since it was read at most once). Itself a read.
async fn memo_set(store: &MemoryStore, key: &str) -> Option<bool> {
    let (_, memo) = store.get_with_memo(key).await.unwrap().unwrap();
    memo.map(|m| m.get().is_some())
}

#[tokio::test]
async fn a_second_load_reuses_the_scan_and_a_write_starts_afresh() {
    for codec in [Codec::Json, Codec::MessagePack] {
        let store = Arc::new(MemoryStore::new());
        let s = sessions(store.clone(), codec);
        let id = s.create_with(fields("a"), None).await.unwrap().id().clone();
        let key = s.key_of(&id);
        // The first read of a value gets no memo; the second gets an empty
        // one, which its load fills; the third and later use it.
        assert_eq!(memo_set(&store, &key).await, None);
        let first = s.load_id(&id).await.unwrap().unwrap();
        assert_eq!(memo_set(&store, &key).await, Some(true), "{codec:?}");
        let second = s.load_id(&id).await.unwrap().unwrap();
        assert_eq!(second.data(), first.data());
        assert_eq!(second.get_value("profile"), Some(&json!("a".repeat(200))));

        // A save writes a new value and leaves where its fields landed (its
        // splice knows): the next load reads that, not a scan. (Not
        // `second`: reading its whole map decoded it, so it has no splice.)
        let mut changed = s.load_id(&id).await.unwrap().unwrap();
        changed.insert("profile", "b".repeat(200)).unwrap();
        s.save(&mut changed).await.unwrap();
        assert_eq!(
            memo_set(&store, &key).await,
            Some(true),
            "the save's spans kept with the new value"
        );
        let third = s.load_id(&id).await.unwrap().unwrap();
        assert_eq!(memo_set(&store, &key).await, Some(true));
        assert_eq!(third.get_value("profile"), Some(&json!("b".repeat(200))));
        assert_eq!(third.data(), changed.data());

        // Another writer's bytes of the same length under the key, read
        // three times (scan, scan and keep, memo).
        let (entry, _) = store.get_with_memo(&key).await.unwrap().unwrap();
        let mut other = fields("c");
        other.insert("_session_id".into(), json!(id.as_str()));
        let bytes = codec.encode(&other).unwrap();
        assert_eq!(bytes.len(), entry.value.len());
        store
            .set(&key, &bytes, entry.flags, Ttl::seconds(60))
            .await
            .unwrap();
        for _ in 0..3 {
            let again = s.load_id(&id).await.unwrap().unwrap();
            assert_eq!(again.get_value("profile"), Some(&json!("c".repeat(200))));
            assert_eq!(again.data(), &{
                let mut want = other.clone();
                want.insert("_session_id".into(), json!(id.as_str()));
                want
            });
        }
    }
}

#[tokio::test]
async fn a_wrapper_that_changes_keys_hands_out_no_memo() {
    let inner = Arc::new(MemoryStore::new());
    let wrapped = Namespaced::new("tenant1:", inner.clone()).unwrap();
    inner
        .set("tenant1:k", b"v", 0, Ttl::seconds(60))
        .await
        .unwrap();
    inner.set("k", b"other", 0, Ttl::seconds(60)).await.unwrap();
    for _ in 0..2 {
        let (entry, memo) = wrapped.get_with_memo("k").await.unwrap().unwrap();
        assert_eq!(entry.value, b"v");
        assert!(memo.is_none());
    }
    // An `Arc` of the store is the same store: its memo comes through
    // (from the value's second read).
    let shared: Arc<dyn Store> = inner.clone();
    let (_, first) = shared.get_with_memo("k").await.unwrap().unwrap();
    let (_, second) = shared.get_with_memo("k").await.unwrap().unwrap();
    assert!(first.is_none() && second.is_some());
    assert!(!Store::keeps_memos(&wrapped) && shared.keeps_memos());
}

/// What does not fit the memo's budget (many tiny fields) or cannot be
/// packed (a name with an escape) is not kept: every load scans, and reads
/// the same.
#[tokio::test]
async fn a_scan_that_does_not_fit_or_pack_is_not_kept() {
    let store = Arc::new(MemoryStore::new());
    let s = sessions(store.clone(), Codec::Json);
    let tiny: String = (0..40).map(|i| format!(r#","f{i}":{i}"#)).collect();
    let escaped = r#","caf\u00e9":"x""#;
    for extra in [tiny.as_str(), escaped] {
        let id = s.create().await.unwrap().id().clone();
        let key = s.key_of(&id);
        let flags = store.get(&key).await.unwrap().unwrap().flags;
        let bytes = format!(r#"{{"_session_id":"{}"{extra}}}"#, id.as_str());
        store
            .set(&key, bytes.as_bytes(), flags, Ttl::seconds(60))
            .await
            .unwrap();
        let want = Codec::Json.decode(bytes.as_bytes(), "k").unwrap();
        for _ in 0..3 {
            let loaded = s.load_id(&id).await.unwrap().unwrap();
            assert_eq!(loaded.data(), &want);
        }
        assert_eq!(memo_set(&store, &key).await, Some(false), "{extra}");
    }
}

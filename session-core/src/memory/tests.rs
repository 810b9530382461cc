//! `MemoryStore`'s own rules: memos and their charge, the memory limit,
//! buffers kept on a rewrite. (What every store must do is the
//! conformance kit's.)

use super::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A memo is made at a value's second read, charged the value's size
/// again, only while that fits, and freed with the item.
#[test]
fn memos_are_charged_and_freed_with_their_item() {
    let store = MemoryStore::with_config(MemoryStoreConfig {
        max_bytes: 1400,
        max_value_size: 500,
    })
    .unwrap();
    block_on(async {
        store.set("a", &[1; 400], 0, Ttl::NEVER).await.unwrap();
        let plain = store.used_bytes();
        let (_, first) = store.get_with_memo("a").await.unwrap().unwrap();
        assert!(first.is_none());
        assert_eq!(store.used_bytes(), plain);
        let (_, second) = store.get_with_memo("a").await.unwrap().unwrap();
        assert!(second.is_some());
        assert_eq!(store.used_bytes(), plain + 400);
        // A second item whose memo would pass the limit gets none.
        store.set("b", &[2; 400], 0, Ttl::NEVER).await.unwrap();
        for _ in 0..3 {
            let (entry, memo) = store.get_with_memo("b").await.unwrap().unwrap();
            assert_eq!(entry.value, vec![2; 400]);
            assert!(memo.is_none());
        }
        // A new value drops the old memo and its charge.
        store.set("a", &[3; 400], 0, Ttl::NEVER).await.unwrap();
        assert_eq!(store.used_bytes(), 2 * plain);
        assert!(store.delete("a").await.unwrap());
        assert!(store.delete("b").await.unwrap());
        assert_eq!(store.used_bytes(), 0);
        // Memos never make a write fail: a write that needs their room
        // takes it.
        store.set("a", &[4; 400], 0, Ttl::NEVER).await.unwrap();
        store.get_with_memo("a").await.unwrap();
        let (_, memo) = store.get_with_memo("a").await.unwrap().unwrap();
        assert!(memo.is_some());
        assert_eq!(store.used_bytes(), plain + 400);
        store.set("b", &[5; 400], 0, Ttl::NEVER).await.unwrap();
        store.set("c", &[6; 400], 0, Ttl::NEVER).await.unwrap();
        assert_eq!(store.used_bytes(), 3 * plain);
        let (entry, memo) = store.get_with_memo("a").await.unwrap().unwrap();
        assert_eq!(entry.value, vec![4; 400]);
        assert!(memo.is_none(), "no room for a memo now");
        assert!(store.delete("a").await.unwrap());
        assert!(store.delete("b").await.unwrap());
        assert!(store.delete("c").await.unwrap());
        assert_eq!(store.used_bytes(), 0);
        // So does a rewrite of the very item whose memo is in the way.
        store.set("a", &[7; 400], 0, Ttl::NEVER).await.unwrap();
        store.get_with_memo("a").await.unwrap();
        let (_, memo) = store.get_with_memo("a").await.unwrap().unwrap();
        assert!(memo.is_some());
        store.set("b", &[8; 400], 0, Ttl::NEVER).await.unwrap();
        let version = store.version("a").await.unwrap().unwrap();
        let bigger = store
            .cas("a", &[9; 490], 0, Ttl::NEVER, version)
            .await
            .unwrap();
        assert!(matches!(bigger, CasOutcome::Stored(Some(_))), "{bigger:?}");
        assert_eq!(store.used_bytes(), plain + (490 + 1 + ITEM_OVERHEAD));
        assert_eq!(store.get("a").await.unwrap().unwrap().value, vec![9; 490]);
    });
}

/// A rewrite reuses the value's buffer only when that hides little
/// room: a growing value gets a buffer of its size, not a doubled one,
/// and a shrunk one does not keep the old buffer.
#[test]
fn a_rewrite_keeps_no_hidden_room() {
    let store = MemoryStore::new();
    block_on(async {
        store.set("k", &[1; 400], 0, Ttl::NEVER).await.unwrap();
        for len in [409, 409, 300, 420, 100] {
            store.set("k", &vec![2; len], 0, Ttl::NEVER).await.unwrap();
            let room = store.lock().items["k"].value.capacity();
            assert!(
                room <= len + len / 4 + 16,
                "{len} bytes in a buffer of {room}"
            );
        }
    });
}

#[test]
fn memory_limit_rejects_without_losing_anything() {
    let store = MemoryStore::with_config(MemoryStoreConfig {
        max_bytes: 1000,
        max_value_size: 500,
    })
    .unwrap();
    block_on(async {
        store.set("a", &[1; 400], 0, Ttl::NEVER).await.unwrap();
        let err = store.set("b", &[2; 500], 0, Ttl::NEVER).await.unwrap_err();
        assert!(matches!(err, Error::StoreFull { .. }), "{err}");
        assert_eq!(store.get("a").await.unwrap().unwrap().value, vec![1; 400]);
        assert!(store.get("b").await.unwrap().is_none());
        // Replacing an item counts its old size as freed.
        store.set("a", &[3; 450], 0, Ttl::NEVER).await.unwrap();
        assert!(store.delete("a").await.unwrap());
        assert_eq!(store.used_bytes(), 0);
    });
}

#[test]
fn inconsistent_limits_are_config_errors() {
    assert!(
        MemoryStore::with_config(MemoryStoreConfig {
            max_bytes: 10,
            max_value_size: 100
        })
        .is_err()
    );
}

//! Checks of the optional [`Store`] methods: each one either works as
//! documented or answers [`Error::Unsupported`], exactly as
//! [`Store::capabilities`] announces.

use std::collections::BTreeSet;

use super::{CaseResult, Context, MakeStore, check, unique_key};
use crate::error::Error;
use crate::store::{DeleteOutcome, Ttl, Version};

/// Fails unless `result` is `Unsupported`, for a capability not claimed.
fn unsupported<T: std::fmt::Debug>(what: &str, result: crate::Result<T>) -> CaseResult {
    check!(
        matches!(result, Err(Error::Unsupported { .. })),
        "{what} is not claimed in capabilities() but gave {result:?}"
    );
    Ok(())
}

pub(super) async fn get_many_reads_in_order(make: MakeStore) -> CaseResult {
    let store = make().await;
    let a = unique_key("many-a");
    let b = unique_key("many-b");
    let missing = unique_key("many-missing");
    let _ = store.set(&a, b"A", 1, Ttl::NEVER).await.ctx("set")?;
    let _ = store.set(&b, b"B", 2, Ttl::NEVER).await.ctx("set")?;
    let many = store.get_many(&[&b, &missing, &a]).await;
    if !store.capabilities().get_many {
        return unsupported("get_many", many);
    }
    let shape: Vec<Option<(Vec<u8>, u32)>> = many
        .ctx("get_many")?
        .into_iter()
        .map(|e| e.map(|e| (e.value, e.flags)))
        .collect();
    check!(
        shape == vec![Some((b"B".to_vec(), 2)), None, Some((b"A".to_vec(), 1))],
        "get_many gave {shape:?}"
    );
    Ok(())
}

/// Pages through a prefix with a small limit: every key exactly as written,
/// no key of another prefix, and the last page says it is the last.
pub(super) async fn scan_pages_through_every_key(make: MakeStore) -> CaseResult {
    let store = make().await;
    let prefix = unique_key("scan");
    let mut written = BTreeSet::new();
    for i in 0..7 {
        let key = format!("{prefix}:{i}");
        let _ = store.set(&key, b"v", 0, Ttl::NEVER).await.ctx("set")?;
        written.insert(key);
    }
    let _ = store
        .set(&unique_key("scan-other"), b"v", 0, Ttl::NEVER)
        .await
        .ctx("set")?;
    let first = store.scan(&prefix, None, 3).await;
    if !store.capabilities().scan {
        return unsupported("scan", first);
    }
    let mut page = first.ctx("scan")?;
    let mut seen = BTreeSet::new();
    // A page may come back short (even empty) before the end, so the bound is
    // generous; what matters is that the cursor ends.
    for _ in 0..100 {
        check!(
            page.keys.len() <= 3,
            "a page of limit 3 held {:?}",
            page.keys
        );
        seen.extend(page.keys.iter().cloned());
        let Some(cursor) = page.next.take() else {
            check!(
                seen == written,
                "scan listed {seen:?}, expected exactly {written:?}"
            );
            return Ok(());
        };
        page = store
            .scan(&prefix, Some(&cursor), 3)
            .await
            .ctx("scan page")?;
    }
    Err("scan did not end after 100 pages of 7 keys".into())
}

/// `delete_if` removes only the version it names; a newer write survives.
pub(super) async fn delete_if_removes_only_the_version_read(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("delete-if");
    let _ = store.set(&key, b"one", 0, Ttl::NEVER).await.ctx("set")?;
    let v1 = store
        .version(&key)
        .await
        .ctx("version")?
        .ok_or("written item has no version")?;
    let _ = store.set(&key, b"two", 0, Ttl::NEVER).await.ctx("set")?;
    let stale = store.delete_if(&key, v1).await;
    if !store.capabilities().conditional_delete {
        return unsupported("delete_if", stale);
    }
    let stale = stale.ctx("delete_if with a stale version")?;
    check!(
        stale == DeleteOutcome::Conflict,
        "delete_if with a stale version gave {stale:?}"
    );
    let entry = store.get(&key).await.ctx("get")?;
    check!(
        entry.as_ref().is_some_and(|e| e.value == b"two"),
        "a refused delete_if changed the item: {entry:?}"
    );
    let current = entry.map(|e| e.version).ok_or("item vanished")?;
    let done = store.delete_if(&key, current).await.ctx("delete_if")?;
    check!(
        done == DeleteOutcome::Deleted,
        "delete_if with the current version gave {done:?}"
    );
    check!(
        store.get(&key).await.ctx("get")?.is_none(),
        "item still there after delete_if"
    );
    let missing = store.delete_if(&key, current).await.ctx("delete_if")?;
    check!(
        missing == DeleteOutcome::NotFound,
        "delete_if of a missing item gave {missing:?}"
    );
    Ok(())
}

/// `get_and_touch` returns the item and gives it the new expiry; a missing
/// item stays missing.
pub(super) async fn get_and_touch_reads_and_extends(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("gat");
    let _ = store.set(&key, b"v", 3, Ttl::seconds(2)).await.ctx("set")?;
    let got = store.get_and_touch(&key, Ttl::seconds(600)).await;
    let caps = store.capabilities();
    if !caps.get_and_touch {
        return unsupported("get_and_touch", got);
    }
    let got = got.ctx("get_and_touch")?.ok_or("get_and_touch missed")?;
    check!(
        got.value == b"v" && got.flags == 3,
        "get_and_touch read {:?}/{}",
        got.value,
        got.flags
    );
    if caps.ttl_read {
        let ttl = store
            .get(&key)
            .await
            .ctx("get")?
            .and_then(|e| e.ttl)
            .ok_or("no ttl read back")?;
        check!(
            ttl.as_secs() > 500,
            "after get_and_touch(600s) the item has {ttl:?} left"
        );
    }
    let missing = store
        .get_and_touch(&unique_key("gat-missing"), Ttl::seconds(5))
        .await
        .ctx("get_and_touch of a missing key")?;
    check!(
        missing.is_none(),
        "get_and_touch of a missing key gave {missing:?}"
    );
    Ok(())
}

/// Keys are checked before I/O by the optional methods too.
pub(super) async fn optional_methods_reject_bad_keys(make: MakeStore) -> CaseResult {
    let store = make().await;
    let caps = store.capabilities();
    if caps.conditional_delete {
        let r = store.delete_if("a b", Version::new(1)).await;
        check!(
            matches!(r, Err(Error::InvalidKey { .. })),
            "delete_if(\"a b\") gave {r:?}"
        );
    }
    if caps.get_and_touch {
        let r = store.get_and_touch("", Ttl::NEVER).await;
        check!(
            matches!(r, Err(Error::InvalidKey { .. })),
            "get_and_touch(\"\") gave {r:?}"
        );
    }
    Ok(())
}

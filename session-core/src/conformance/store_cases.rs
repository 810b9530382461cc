//! Checks of the byte-level [`Store`] contract.

use std::sync::Arc;
use std::time::Duration;

use super::{CaseResult, Context, MakeStore, check, gone_within, unique_key};
use crate::error::Error;
use crate::store::{AddOutcome, CasOutcome, Store, Ttl, Version};

async fn version_of(store: &dyn Store, key: &str) -> Result<Version, String> {
    store
        .get(key)
        .await
        .ctx("get")?
        .map(|e| e.version)
        .ok_or_else(|| format!("{key} should exist"))
}

pub(super) async fn absent_key_reads_none(make: MakeStore) -> CaseResult {
    let store = make().await;
    let got = store.get(&unique_key("absent")).await.ctx("get")?;
    check!(got.is_none(), "get of a never-written key returned {got:?}");
    Ok(())
}

pub(super) async fn set_then_get_round_trips_bytes_and_flags(make: MakeStore) -> CaseResult {
    let store = make().await;
    let values: [(&[u8], u32); 5] = [
        (b"", 0),
        (b"plain", 1),
        (b"line\r\nEND\r\nVALUE x 0 1\r\n", 0x100),
        (&[0, 255, 13, 10, 0, 32], 0x200),
        ("unicode é ✓".as_bytes(), u32::MAX),
    ];
    for (value, flags) in values {
        let key = unique_key("rt");
        let v = store.set(&key, value, flags, Ttl::NEVER).await.ctx("set")?;
        let entry = store
            .get(&key)
            .await
            .ctx("get")?
            .ok_or("set value is not readable")?;
        check!(
            entry.value == value,
            "value {value:?} came back as {:?}",
            entry.value
        );
        check!(
            entry.flags == flags,
            "flags {flags:#x} came back as {:#x}",
            entry.flags
        );
        if let Some(v) = v {
            check!(
                v == entry.version,
                "set reported {v:?}, get reads {:?}",
                entry.version
            );
        }
    }
    Ok(())
}

pub(super) async fn add_writes_only_if_absent(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("add");
    let first = store
        .add(&key, b"one", 7, Ttl::NEVER)
        .await
        .ctx("first add")?;
    check!(first.is_stored(), "add of an absent key gave {first:?}");
    let second = store
        .add(&key, b"two", 8, Ttl::NEVER)
        .await
        .ctx("second add")?;
    check!(
        second == AddOutcome::Exists,
        "add of an existing key gave {second:?}, expected Exists"
    );
    let entry = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("added key vanished")?;
    check!(
        entry.value == b"one" && entry.flags == 7,
        "a refused add changed the value to {:?}/{}",
        entry.value,
        entry.flags
    );
    Ok(())
}

pub(super) async fn cas_writes_only_if_unchanged(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("cas");
    let missing = store
        .cas(&key, b"x", 0, Ttl::NEVER, Version::new(1))
        .await
        .ctx("cas on a missing key")?;
    check!(
        missing == CasOutcome::NotFound,
        "cas on a missing key gave {missing:?}"
    );
    let _ = store.set(&key, b"v1", 0, Ttl::NEVER).await.ctx("set")?;
    let v1 = version_of(store.as_ref(), &key).await?;
    let stored = store.cas(&key, b"v2", 0, Ttl::NEVER, v1).await.ctx("cas")?;
    check!(
        stored.is_stored(),
        "cas with the current version gave {stored:?}"
    );
    let stale = store
        .cas(&key, b"v3", 0, Ttl::NEVER, v1)
        .await
        .ctx("stale cas")?;
    check!(
        stale == CasOutcome::Conflict,
        "cas with a stale version gave {stale:?}"
    );
    let entry = store.get(&key).await.ctx("get")?.ok_or("key vanished")?;
    check!(
        entry.value == b"v2",
        "a refused cas changed the value to {:?}",
        entry.value
    );
    if let CasOutcome::Stored(Some(v2)) = stored {
        check!(
            v2 == entry.version,
            "cas reported {v2:?}, get reads {:?}",
            entry.version
        );
    }
    Ok(())
}

pub(super) async fn every_write_gives_a_new_version(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("ver");
    let mut seen = Vec::new();
    let _ = store.set(&key, b"a", 0, Ttl::NEVER).await.ctx("set")?;
    seen.push(version_of(store.as_ref(), &key).await?);
    let _ = store
        .set(&key, b"a", 0, Ttl::NEVER)
        .await
        .ctx("same-value set")?;
    seen.push(version_of(store.as_ref(), &key).await?);
    let last = *seen.last().ok_or("no version")?;
    let _ = store
        .cas(&key, b"b", 0, Ttl::NEVER, last)
        .await
        .ctx("cas")?;
    seen.push(version_of(store.as_ref(), &key).await?);
    store.delete(&key).await.ctx("delete")?;
    let _ = store.add(&key, b"c", 0, Ttl::NEVER).await.ctx("add")?;
    seen.push(version_of(store.as_ref(), &key).await?);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    check!(
        unique.len() == seen.len(),
        "versions repeat across writes: {seen:?}"
    );
    let probe = store.version(&key).await.ctx("version")?;
    check!(
        probe == seen.last().copied(),
        "version() gave {probe:?}, get gave {seen:?}"
    );
    let none = store
        .version(&unique_key("nover"))
        .await
        .ctx("version of absent")?;
    check!(none.is_none(), "version() of an absent key gave {none:?}");
    Ok(())
}

pub(super) async fn delete_removes(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("del");
    check!(
        !store.delete(&key).await.ctx("delete absent")?,
        "delete of an absent key said it existed"
    );
    let _ = store.set(&key, b"x", 0, Ttl::NEVER).await.ctx("set")?;
    check!(
        store.delete(&key).await.ctx("delete")?,
        "delete of a present key said it was absent"
    );
    check!(
        store.get(&key).await.ctx("get")?.is_none(),
        "deleted key still readable"
    );
    let again = store
        .add(&key, b"y", 0, Ttl::NEVER)
        .await
        .ctx("add after delete")?;
    check!(again.is_stored(), "add after delete gave {again:?}");
    Ok(())
}

pub(super) async fn touch_changes_only_expiry(make: MakeStore) -> CaseResult {
    let store = make().await;
    let absent = unique_key("touch-absent");
    check!(
        !store
            .touch(&absent, Ttl::seconds(10))
            .await
            .ctx("touch absent")?,
        "touch of an absent key said it existed"
    );
    let key = unique_key("touch");
    let _ = store
        .set(&key, b"keep", 9, Ttl::seconds(100))
        .await
        .ctx("set")?;
    // 2 s, not 1: memcached counts expiry in whole seconds of its own
    // clock, so an item given 1 s can expire a moment later if that clock
    // ticks in between; 2 s always leaves it at least one full second.
    check!(
        store.touch(&key, Ttl::seconds(2)).await.ctx("touch")?,
        "touch of a present key said it was absent"
    );
    let entry = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("touched key vanished")?;
    check!(
        entry.value == b"keep" && entry.flags == 9,
        "touch changed the value or flags"
    );
    check!(
        gone_within(store.as_ref(), &key, Duration::from_secs(5)).await?,
        "a key touched to 2 s was still there after 5 s"
    );
    Ok(())
}

pub(super) async fn ttl_expires_and_zero_never_does(make: MakeStore) -> CaseResult {
    let store = make().await;
    let short = unique_key("ttl1");
    let forever = unique_key("ttl0");
    // 2 s for the reason given in touch_changes_only_expiry.
    let _ = store
        .set(&short, b"x", 0, Ttl::seconds(2))
        .await
        .ctx("set ttl 2")?;
    let _ = store
        .set(&forever, b"x", 0, Ttl::NEVER)
        .await
        .ctx("set ttl 0")?;
    check!(
        store.get(&short).await.ctx("get")?.is_some(),
        "a 2 s item was gone at once"
    );
    check!(
        gone_within(store.as_ref(), &short, Duration::from_secs(5)).await?,
        "a 2 s item was still there after 5 s"
    );
    check!(
        store.get(&forever).await.ctx("get")?.is_some(),
        "a ttl-0 item expired"
    );
    Ok(())
}

pub(super) async fn ttl_is_readable_where_supported(make: MakeStore) -> CaseResult {
    let store = make().await;
    let key = unique_key("ttlread");
    let never = unique_key("ttlnever");
    let _ = store
        .set(&key, b"x", 0, Ttl::seconds(100))
        .await
        .ctx("set")?;
    let _ = store.set(&never, b"x", 0, Ttl::NEVER).await.ctx("set")?;
    let ttl = store.get(&key).await.ctx("get")?.ok_or("key vanished")?.ttl;
    let never_ttl = store
        .get(&never)
        .await
        .ctx("get")?
        .ok_or("key vanished")?
        .ttl;
    if store.capabilities().ttl_read {
        let secs = ttl
            .ok_or("ttl_read is claimed but get gave no ttl")?
            .as_secs();
        check!(
            (90..=101).contains(&secs),
            "a 100 s item reports {secs} s left"
        );
        check!(
            never_ttl == Some(Ttl::NEVER),
            "a ttl-0 item reports {never_ttl:?}"
        );
    } else {
        check!(
            ttl.is_none() && never_ttl.is_none(),
            "ttl_read is not claimed but get gave a ttl"
        );
    }
    Ok(())
}

pub(super) async fn bad_keys_are_rejected_before_io(make: MakeStore) -> CaseResult {
    let store = make().await;
    let long = "k".repeat(251);
    for key in [
        "",
        "with space",
        "tab\there",
        "new\nline",
        "nul\0",
        long.as_str(),
    ] {
        let results = [
            ("get", store.get(key).await.map(|_| ())),
            ("add", store.add(key, b"v", 0, Ttl::NEVER).await.map(|_| ())),
            ("set", store.set(key, b"v", 0, Ttl::NEVER).await.map(|_| ())),
            (
                "cas",
                store
                    .cas(key, b"v", 0, Ttl::NEVER, Version::new(1))
                    .await
                    .map(|_| ()),
            ),
            ("delete", store.delete(key).await.map(|_| ())),
            ("touch", store.touch(key, Ttl::NEVER).await.map(|_| ())),
            ("version", store.version(key).await.map(|_| ())),
        ];
        for (op, r) in results {
            check!(
                matches!(r, Err(Error::InvalidKey { .. })),
                "{op} with key {key:?} gave {r:?}, expected InvalidKey"
            );
        }
    }
    // Room is left for a namespace prefix of up to 40 bytes.
    let near_limit = format!("{}{}", unique_key("long"), "k".repeat(170));
    let _ = store
        .set(&near_limit, b"v", 0, Ttl::NEVER)
        .await
        .ctx("set of a 200-byte key")?;
    check!(
        store.get(&near_limit).await.ctx("get")?.is_some(),
        "a 200-byte key was not readable"
    );
    Ok(())
}

pub(super) async fn value_size_limit_is_enforced_before_io(make: MakeStore) -> CaseResult {
    let store = make().await;
    let limit = store.max_value_size();
    let key = unique_key("big");
    let at_limit = vec![b'x'; limit];
    let _ = store
        .set(&key, &at_limit, 0, Ttl::NEVER)
        .await
        .ctx("set at the limit")?;
    let back = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("value at the limit not readable")?;
    check!(
        back.value.len() == limit,
        "value at the limit came back as {} bytes",
        back.value.len()
    );
    let over = vec![b'y'; limit + 1];
    let over_key = unique_key("toobig");
    for (op, r) in [
        (
            "set",
            store.set(&over_key, &over, 0, Ttl::NEVER).await.map(|_| ()),
        ),
        (
            "add",
            store.add(&over_key, &over, 0, Ttl::NEVER).await.map(|_| ()),
        ),
        (
            "cas",
            store
                .cas(&key, &over, 0, Ttl::NEVER, back.version)
                .await
                .map(|_| ()),
        ),
    ] {
        check!(
            matches!(r, Err(Error::ValueTooLarge { .. })),
            "{op} of {} bytes over a {limit}-byte limit gave {r:?}",
            limit + 1
        );
    }
    check!(
        store.get(&over_key).await.ctx("get")?.is_none(),
        "a rejected value was written"
    );
    let kept = store.get(&key).await.ctx("get")?.ok_or("value vanished")?;
    check!(kept.value == at_limit, "a rejected cas changed the value");
    Ok(())
}

pub(super) async fn large_binary_values_round_trip(make: MakeStore) -> CaseResult {
    let store = make().await;
    let size = (512 * 1024).min(store.max_value_size());
    // A deterministic byte soup with every byte value, CR/LF runs included.
    let value: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect();
    let key = unique_key("large");
    let _ = store
        .set(&key, &value, 0x100, Ttl::NEVER)
        .await
        .ctx("set")?;
    let back = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("large value not readable")?;
    check!(
        back.value == value,
        "a {size}-byte value came back different"
    );
    Ok(())
}

pub(super) async fn concurrent_cas_loses_no_increment(make: MakeStore) -> CaseResult {
    const TASKS: usize = 16;
    const EACH: usize = 20;
    let store = make().await;
    let key = Arc::new(unique_key("counter"));
    let _ = store.set(&key, b"0", 0, Ttl::NEVER).await.ctx("set")?;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let (store, key) = (store.clone(), key.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let entry = store
                        .get(&key)
                        .await
                        .ctx("get")?
                        .ok_or("counter vanished")?;
                    let n: u64 = std::str::from_utf8(&entry.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("counter is not a number")?;
                    let next = (n + 1).to_string();
                    match store
                        .cas(&key, next.as_bytes(), 0, Ttl::NEVER, entry.version)
                        .await
                        .ctx("cas")?
                    {
                        CasOutcome::Stored(_) => break,
                        CasOutcome::Conflict => continue,
                        other => return Err(format!("cas gave {other:?}")),
                    }
                }
            }
            Ok::<(), String>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| format!("task failed: {e}"))??;
    }
    let entry = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("counter vanished")?;
    let total = String::from_utf8_lossy(&entry.value).into_owned();
    check!(
        total == (TASKS * EACH).to_string(),
        "{TASKS}×{EACH} increments gave {total}"
    );
    Ok(())
}

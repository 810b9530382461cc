//! Checks of sessions sealed at rest ([`crate::seal`]) through
//! [`Sessions`] on a real store: nothing readable in the store, broken
//! seals answered as unknown ids and counted, plain values refused unless
//! accepted, and `reseal` rotating keys without overwriting a save.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use super::interleave::BeforeCas;
use super::{CaseResult, Context, MakeStore, check};
use crate::codec::{FLAGS_JSON, FLAGS_SEALED, is_sealed};
use crate::config::SessionsConfig;
use crate::error::Result;
use crate::seal::{Keyring, SealConfig, SealKey, key_id_of};
use crate::sessions::{Patch, ResealOutcome, Sessions};
use crate::store::{Store, Ttl};

const SECRET: &str = "s3cr3t-field-value";

fn keyring(ids: &[u32]) -> Keyring {
    // Key material derived from the id, so two configs agree on a key.
    let key = |id: u32| SealKey::new(id, [u8::try_from(id).unwrap_or(0xff); 32]);
    let mut ring = Keyring::new(key(ids[0]));
    for id in &ids[1..] {
        let more = ring.clone().with_old(key(*id));
        // Distinct ids in every caller: never refused.
        ring = more.unwrap_or(ring);
    }
    ring
}

fn sealed(ids: &[u32]) -> SessionsConfig {
    SessionsConfig {
        principal: Some("uid".into()),
        timeout: Ttl::seconds(600),
        seal: Some(SealConfig::new(keyring(ids))),
        ..Default::default()
    }
}

fn sessions(store: &Arc<dyn Store>, config: SessionsConfig) -> Result<Sessions, String> {
    Sessions::new(store.clone(), config).ctx("Sessions::new")
}

fn fields(value: serde_json::Value) -> Result<crate::SessionData, String> {
    value
        .as_object()
        .cloned()
        .ok_or_else(|| "test data is not an object".to_owned())
}

/// The store holds only the sealed form: no field is readable there, and
/// every operation reads it back.
pub(super) async fn sealed_values_hide_fields_and_round_trip(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, sealed(&[1]))?;
    let session = s
        .create_with(fields(json!({"uid": "ann", "pin": SECRET}))?, None)
        .await
        .ctx("create_with")?;
    let key = s.key_of(session.id());
    let raw = store.get(&key).await.ctx("get")?.ok_or("no stored value")?;
    check!(
        raw.flags == FLAGS_JSON | FLAGS_SEALED && key_id_of(&raw.value) == Some(1),
        "stored flags {:#x}, key id {:?}",
        raw.flags,
        key_id_of(&raw.value)
    );
    check!(
        !raw.value
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
            && !raw.value.windows(3).any(|w| w == b"ann"),
        "a field is readable in the store"
    );
    let mut loaded = s
        .load_id(session.id())
        .await
        .ctx("load")?
        .ok_or("sealed session does not load")?;
    check!(
        loaded.get_value("pin") == Some(&json!(SECRET)),
        "{:?}",
        loaded.data()
    );
    loaded.insert("n", 1).ctx("insert")?;
    s.save(&mut loaded).await.ctx("save")?;
    let patched = s
        .patch(
            session.id().as_str(),
            &Patch {
                set: fields(json!({"m": 2}))?,
                remove: Vec::new(),
            },
            None,
        )
        .await
        .ctx("patch")?
        .ok_or("patch found no session")?;
    check!(
        patched.get_value("n") == Some(&json!(1)) && patched.get_value("m") == Some(&json!(2)),
        "{:?}",
        patched.data()
    );
    let found = s.find_by_principal("ann").await.ctx("find_by_principal")?;
    check!(
        found.map(|f| f.id().clone()).as_ref() == Some(session.id()),
        "the reverse key does not lead to the sealed session"
    );
    let raw = store.get(&key).await.ctx("get")?.ok_or("value gone")?;
    check!(is_sealed(raw.flags), "a save wrote a plain value");
    Ok(())
}

/// Tampered, truncated, moved and unknown-key values load as no session
/// (no partial data), through every reading operation, and are counted.
pub(super) async fn broken_seals_load_as_unknown_ids(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, sealed(&[1]))?;
    let mut ids = Vec::new();
    for n in 0..5 {
        let session = s
            .create_with(fields(json!({"uid": format!("u{n}"), "n": n}))?, None)
            .await
            .ctx("create_with")?;
        ids.push(session.id().clone());
    }
    let key = |i: usize| s.key_of(&ids[i]);
    let good = store.get(&key(4)).await.ctx("get")?.ok_or("no value")?;
    let put = |i: usize, value: Vec<u8>, flags: u32| {
        let store = store.clone();
        let key = key(i);
        async move { store.set(&key, &value, flags, Ttl::seconds(600)).await }
    };
    let flags = good.flags;
    let mut tampered = good.value.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    put(0, tampered, flags).await.ctx("set tampered")?;
    put(1, good.value[..good.value.len() / 2].to_vec(), flags)
        .await
        .ctx("set truncated")?;
    // Session 4's value copied under session 2's id.
    put(2, good.value.clone(), flags).await.ctx("set copy")?;
    let other = sessions(&store, sealed(&[9]))?;
    let foreign = other
        .create_with(fields(json!({"uid": "x"}))?, None)
        .await
        .ctx("create under key 9")?;
    let foreign_value = store
        .get(&other.key_of(foreign.id()))
        .await
        .ctx("get")?
        .ok_or("no value")?;
    put(3, foreign_value.value, foreign_value.flags)
        .await
        .ctx("set foreign")?;
    let before = s.stats();
    for (i, id) in ids.iter().take(4).enumerate() {
        let loaded = s.load_id(id).await.ctx("load")?;
        check!(loaded.is_none(), "broken value {i} loaded: {loaded:?}");
        let updated = s.update(id.as_str(), |_| Ok(())).await.ctx("update")?;
        check!(
            updated.is_none(),
            "update of broken value {i} found a session"
        );
        let patched = s
            .patch(id.as_str(), &Patch::default(), None)
            .await
            .ctx("patch")?;
        check!(
            patched.is_none(),
            "patch of broken value {i} found a session"
        );
        check!(
            !s.touch_id(id.as_str(), None).await.ctx("touch_id")?,
            "touch_id of broken value {i} answered exists"
        );
    }
    let after = s.stats();
    check!(
        after.seal_tampered - before.seal_tampered == 8
            && after.seal_truncated - before.seal_truncated == 4
            && after.seal_unknown_key - before.seal_unknown_key == 4,
        "counters: {before:?} -> {after:?}"
    );
    // A reader with no keys at all: no session either, counted.
    let plain = sessions(&store, SessionsConfig::default())?;
    check!(
        plain.load_id(&ids[4]).await.ctx("load")?.is_none(),
        "a reader without keys decoded a sealed value"
    );
    check!(plain.stats().seal_unknown_key == 1, "{:?}", plain.stats());
    check!(
        s.load_id(&ids[4]).await.ctx("load")?.is_some(),
        "the intact session does not load"
    );
    Ok(())
}

/// A plain value is refused while sealing is required, read under
/// `accept_unsealed`, and sealed by the next save.
pub(super) async fn unsealed_values_need_accept_unsealed(make: MakeStore) -> CaseResult {
    let store = make().await;
    let plain = sessions(&store, SessionsConfig::default())?;
    let session = plain
        .create_with(fields(json!({"uid": "old"}))?, None)
        .await
        .ctx("create plain")?;
    let strict = sessions(&store, sealed(&[1]))?;
    check!(
        strict.load_id(session.id()).await.ctx("load")?.is_none(),
        "a plain value loaded while sealing is required"
    );
    check!(strict.stats().seal_unsealed == 1, "{:?}", strict.stats());
    let mut config = sealed(&[1]);
    if let Some(seal) = config.seal.as_mut() {
        seal.accept_unsealed = true;
    }
    let lenient = sessions(&store, config)?;
    let mut loaded = lenient
        .load_id(session.id())
        .await
        .ctx("load")?
        .ok_or("accept_unsealed did not read the plain value")?;
    loaded.insert("n", 1).ctx("insert")?;
    lenient.save(&mut loaded).await.ctx("save")?;
    let raw = store
        .get(&lenient.key_of(session.id()))
        .await
        .ctx("get")?
        .ok_or("gone")?;
    check!(is_sealed(raw.flags), "the save did not seal the value");
    check!(
        strict.load_id(session.id()).await.ctx("load")?.is_some(),
        "the sealed value does not load strictly"
    );
    Ok(())
}

/// `reseal` moves every session to the current key, skips what is current
/// or not a session, and never overwrites a save that lands meanwhile (an
/// old node's, still sealing under the old key).
pub(super) async fn reseal_rotates_keys_without_overwriting_saves(make: MakeStore) -> CaseResult {
    let store = make().await;
    let old = sessions(&store, sealed(&[1]))?;
    let mut session_keys = Vec::new();
    for n in 0..3 {
        let session = old
            .create_with(fields(json!({"uid": format!("u{n}"), "n": n}))?, None)
            .await
            .ctx("create_with")?;
        session_keys.push(old.key_of(session.id()));
    }
    let reverse = crate::principal::md5_hex(b"u0");
    let keys: BTreeSet<String> = if store.capabilities().scan {
        // What `sessionctl reseal` does: every key a scan lists.
        let mut listed = BTreeSet::new();
        let mut cursor = None;
        loop {
            let page = store.scan("", cursor.as_ref(), 100).await.ctx("scan")?;
            listed.extend(page.keys);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        listed
    } else {
        session_keys
            .iter()
            .cloned()
            .chain([reverse.clone()])
            .collect()
    };
    check!(
        session_keys.iter().all(|k| keys.contains(k)) && keys.contains(&reverse),
        "the scan missed keys: {keys:?}"
    );
    let racing = Arc::new(BeforeCas::new(
        store.clone(),
        session_keys[0].clone(),
        old.clone(),
    ));
    let resealer = sessions(&(racing as Arc<dyn Store>), sealed(&[2, 1]))?;
    for key in &keys {
        let outcome = resealer.reseal(key).await.ctx("reseal")?;
        let expected = if session_keys.contains(key) {
            ResealOutcome::Resealed
        } else {
            ResealOutcome::NotASession
        };
        check!(outcome == expected, "reseal {key}: {outcome:?}");
    }
    check!(resealer.stats().resealed == 3, "{:?}", resealer.stats());
    let new_only = sessions(&store, sealed(&[2]))?;
    for (n, key) in session_keys.iter().enumerate() {
        let raw = store.get(key).await.ctx("get")?.ok_or("gone")?;
        check!(
            key_id_of(&raw.value) == Some(2),
            "{key} is still under key {:?}",
            key_id_of(&raw.value)
        );
        let id = crate::SessionId::parse(key).ctx("id")?;
        let loaded = new_only
            .load_id(&id)
            .await
            .ctx("load")?
            .ok_or("a resealed session does not load under the new key")?;
        check!(
            loaded.get_value("n") == Some(&json!(n)),
            "{:?}",
            loaded.data()
        );
        if n == 0 {
            check!(
                loaded.get_value("late") == Some(&json!(true)),
                "reseal overwrote a concurrent save: {:?}",
                loaded.data()
            );
        }
        let again = new_only.reseal(key).await.ctx("reseal again")?;
        check!(again == ResealOutcome::Current, "second reseal: {again:?}");
    }
    Ok(())
}

//! Checks of the session rules ([`Sessions`]) on top of a store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{CaseResult, Context, MakeStore, check, gone_within};
use crate::codec::{Codec, FLAGS_JSON, FLAGS_RAW};
use crate::config::{ConflictPolicy, SessionsConfig};
use crate::error::Error;
use crate::principal::md5_hex;
use crate::sessions::{SaveOutcome, Sessions};
use crate::store::{Store, Ttl};
use crate::{Session, SessionId};

fn sessions(store: &Arc<dyn Store>, config: SessionsConfig) -> Result<Sessions, String> {
    Sessions::new(store.clone(), config).ctx("Sessions::new")
}

/// The id of the session `find_by_principal` returns for `user`.
async fn owner_of(s: &Sessions, user: &str) -> Result<Option<SessionId>, String> {
    let found = s.find_by_principal(user).await.ctx("find_by_principal")?;
    Ok(found.map(|session| session.id().clone()))
}

async fn must_load(s: &Sessions, id: &SessionId) -> Result<Session, String> {
    s.load_id(id)
        .await
        .ctx("load")?
        .ok_or_else(|| format!("session {id} should exist"))
}

pub(super) async fn create_load_save_delete(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let mut session = s.create().await.ctx("create")?;
    let id = session.id().clone();
    check!(
        store.get(id.as_str()).await.ctx("get")?.is_some(),
        "create wrote nothing"
    );
    let loaded = must_load(&s, &id).await?;
    check!(
        loaded
            .get::<String>("_session_id")
            .ctx("_session_id")?
            .as_deref()
            == Some(id.as_str()),
        "loaded session lacks _session_id"
    );
    session.insert("uid", "jdoe").ctx("insert")?;
    session.insert("n", 42).ctx("insert")?;
    let outcome = s.save(&mut session).await.ctx("save")?;
    check!(
        matches!(outcome, SaveOutcome::Written { attempts: 1 }),
        "save gave {outcome:?}"
    );
    let again = s.save(&mut session).await.ctx("second save")?;
    check!(
        again == SaveOutcome::Unchanged,
        "an unchanged save gave {again:?}"
    );
    let loaded = must_load(&s, &id).await?;
    check!(
        loaded.get::<String>("uid").ctx("uid")?.as_deref() == Some("jdoe")
            && loaded.get::<i64>("n").ctx("n")? == Some(42),
        "saved fields did not come back: {:?}",
        loaded.data()
    );
    check!(
        s.delete(&mut session).await.ctx("delete")?,
        "delete said the session was absent"
    );
    check!(
        s.load_id(&id).await.ctx("load")?.is_none(),
        "deleted session still loads"
    );
    session.insert("x", 1).ctx("insert")?;
    let after = s.save(&mut session).await;
    check!(
        matches!(after, Err(Error::Deleted { .. })),
        "save after delete gave {after:?}"
    );
    Ok(())
}

pub(super) async fn load_missing_is_none_and_bad_ids_are_typed(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let id = SessionId::generate(32).ctx("generate")?;
    check!(
        s.load_id(&id).await.ctx("load")?.is_none(),
        "a never-created session loaded"
    );
    for bad in [
        "",
        "not-hex!",
        "0123",
        "zz23456789abcdef0123456789abcdef",
        "a b",
    ] {
        let r = s.load(bad).await;
        check!(
            matches!(r, Err(Error::InvalidSessionId { .. })),
            "load({bad:?}) gave {r:?}"
        );
    }
    Ok(())
}

pub(super) async fn deep_changes_are_saved(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let mut session = s.create().await.ctx("create")?;
    session
        .insert("cart", json!({"items": [1], "meta": {"n": 1}}))
        .ctx("insert")?;
    let _ = s.save(&mut session).await.ctx("save")?;
    let items = session
        .get_mut("cart")
        .and_then(|c| c.get_mut("items"))
        .and_then(Value::as_array_mut)
        .ok_or("cart.items is not a list")?;
    items.push(json!(2));
    check!(
        session.is_modified(),
        "a push into a nested list was not seen as a change"
    );
    let outcome = s.save(&mut session).await.ctx("save")?;
    check!(
        matches!(outcome, SaveOutcome::Written { .. }),
        "save of a deep change gave {outcome:?}"
    );
    let loaded = must_load(&s, session.id()).await?;
    check!(
        loaded.get_value("cart") == Some(&json!({"items": [1, 2], "meta": {"n": 1}})),
        "deep change not stored: {:?}",
        loaded.get_value("cart")
    );
    Ok(())
}

pub(super) async fn update_only_writes_nothing_until_a_change(make: MakeStore) -> CaseResult {
    let store = make().await;
    let config = SessionsConfig {
        update_only: true,
        ..Default::default()
    };
    let s = sessions(&store, config)?;
    let mut session = s.create().await.ctx("create")?;
    let key = session.id().to_string();
    check!(
        store.get(&key).await.ctx("get")?.is_none(),
        "update_only create wrote the session"
    );
    let outcome = s.save(&mut session).await.ctx("save")?;
    check!(
        outcome == SaveOutcome::Unchanged,
        "an unchanged update_only save gave {outcome:?}"
    );
    check!(
        store.get(&key).await.ctx("get")?.is_none(),
        "an unchanged update_only save wrote"
    );
    session.insert("k", "v").ctx("insert")?;
    let _ = s.save(&mut session).await.ctx("save")?;
    let loaded = must_load(&s, session.id()).await?;
    check!(
        loaded.get_value("k") == Some(&json!("v")),
        "first update_only write lost data"
    );
    Ok(())
}

pub(super) async fn timeout_is_reset_by_every_write(make: MakeStore) -> CaseResult {
    // memcached's clock ticks once a second, so an item written at time w
    // with ttl T expires between w+T-1 and w+T+1. With T = 8 and the write at
    // 4 s, "still there at 10 s" proves the write reset the expiry (the
    // creation's expiry ends by 9 s, the write's cannot start before 11 s),
    // with a second of slack on each side for a loaded machine.
    const TTL: u64 = 8;
    let store = make().await;
    let config = SessionsConfig {
        timeout: Ttl::seconds(TTL as u32),
        ..Default::default()
    };
    let s = sessions(&store, config)?;
    let mut session = s.create().await.ctx("create")?;
    let created = Instant::now();
    let id = session.id().clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    session.insert("k", 1).ctx("insert")?;
    let write_started = Instant::now();
    let _ = s.save(&mut session).await.ctx("save")?;
    let check_at = write_started + Duration::from_secs(TTL - 2);
    tokio::time::sleep(check_at.saturating_duration_since(Instant::now())).await;
    check!(
        s.load_id(&id).await.ctx("load")?.is_some(),
        "a session written {:.1?} after creation expired {:.1?} after creation",
        write_started - created,
        created.elapsed()
    );
    let limit =
        (write_started + Duration::from_secs(TTL + 3)).saturating_duration_since(Instant::now());
    check!(
        gone_within(store.as_ref(), id.as_str(), limit).await?,
        "an {TTL} s session did not expire"
    );
    Ok(())
}

pub(super) async fn principal_reverse_key_is_written_and_cleaned(make: MakeStore) -> CaseResult {
    let store = make().await;
    let config = SessionsConfig {
        principal: Some("uid".into()),
        ..Default::default()
    };
    let s = sessions(&store, config)?;
    let user = format!("user-{}", SessionId::generate(16).ctx("id")?);
    let reverse = md5_hex(user.as_bytes());

    // A session without the field writes no reverse key (the original wrote md5("")).
    let mut anonymous = s.create().await.ctx("create")?;
    anonymous.insert("x", 1).ctx("insert")?;
    let _ = s.save(&mut anonymous).await.ctx("save")?;
    check!(!anonymous.contains("uid_MD5"), "uid_MD5 set without a uid");

    let mut first = s.create().await.ctx("create")?;
    first.insert("uid", user.as_str()).ctx("insert")?;
    let _ = s.save(&mut first).await.ctx("save")?;
    let entry = store
        .get(&reverse)
        .await
        .ctx("get reverse")?
        .ok_or("no reverse key written")?;
    check!(
        entry.flags == FLAGS_RAW,
        "reverse key has flags {:#x}, expected 0",
        entry.flags
    );
    check!(
        entry.value == first.id().as_str().as_bytes(),
        "reverse key does not hold the id"
    );
    let stored = must_load(&s, first.id()).await?;
    check!(
        stored.get_value("uid_MD5") == Some(&json!(reverse)),
        "uid_MD5 not stored"
    );
    let owner = owner_of(&s, &user).await?;
    check!(
        owner.as_ref() == Some(first.id()),
        "find_by_principal gave {owner:?}"
    );

    // A save the store refuses leaves the index alone.
    let mut refused = s.create().await.ctx("create")?;
    refused.insert("uid", user.as_str()).ctx("insert")?;
    refused
        .insert("blob", "x".repeat(store.max_value_size()))
        .ctx("insert")?;
    let r = s.save(&mut refused).await;
    check!(
        matches!(r, Err(Error::ValueTooLarge { .. })),
        "oversized save gave {r:?}"
    );
    let owner = owner_of(&s, &user).await?;
    check!(
        owner.as_ref() == Some(first.id()),
        "a refused save moved the reverse key: find gave {owner:?}"
    );

    // The index keeps the last login; deleting the older session keeps it.
    let mut second = s.create().await.ctx("create")?;
    second.insert("uid", user.as_str()).ctx("insert")?;
    let _ = s.save(&mut second).await.ctx("save")?;
    let _ = s.delete(&mut first).await.ctx("delete first")?;
    let owner = owner_of(&s, &user).await?;
    check!(
        owner.as_ref() == Some(second.id()),
        "after deleting the older session, find gave {owner:?}"
    );
    let _ = s.delete(&mut second).await.ctx("delete second")?;
    check!(
        store.get(&reverse).await.ctx("get")?.is_none(),
        "reverse key survived its session"
    );
    check!(
        owner_of(&s, &user).await?.is_none(),
        "find found a deleted session"
    );
    Ok(())
}

pub(super) async fn concurrent_saves_merge_or_conflict(make: MakeStore) -> CaseResult {
    let store = make().await;
    let merge = sessions(&store, SessionsConfig::default())?;
    let mut created = merge.create().await.ctx("create")?;
    created.insert("shared", "old").ctx("insert")?;
    let _ = merge.save(&mut created).await.ctx("save")?;
    let id = created.id().clone();

    let mut a = must_load(&merge, &id).await?;
    let mut b = must_load(&merge, &id).await?;
    a.insert("a", 1).ctx("insert")?;
    a.insert("shared", "from-a").ctx("insert")?;
    let _ = merge.save(&mut a).await.ctx("save a")?;
    b.insert("b", 2).ctx("insert")?;
    b.remove("shared");
    let outcome = merge.save(&mut b).await.ctx("save b")?;
    check!(
        matches!(outcome, SaveOutcome::Written { attempts: 2 }),
        "conflicting save gave {outcome:?}"
    );
    let merged = must_load(&merge, &id).await?;
    check!(
        merged.get_value("a") == Some(&json!(1))
            && merged.get_value("b") == Some(&json!(2))
            && !merged.contains("shared"),
        "merge lost or resurrected a field: {:?}",
        merged.data()
    );
    check!(
        b.data() == merged.data(),
        "the saving handle does not hold what was stored"
    );
    check!(
        merge.stats().merges == 1,
        "merges counted: {}",
        merge.stats().merges
    );

    let fail = sessions(
        &store,
        SessionsConfig {
            conflict: ConflictPolicy::Fail,
            ..Default::default()
        },
    )?;
    let mut c = must_load(&fail, &id).await?;
    let mut d = must_load(&fail, &id).await?;
    c.insert("c", 3).ctx("insert")?;
    let _ = fail.save(&mut c).await.ctx("save c")?;
    d.insert("d", 4).ctx("insert")?;
    let r = fail.save(&mut d).await;
    check!(
        matches!(r, Err(Error::Conflict { .. })),
        "Fail policy save gave {r:?}"
    );
    check!(
        fail.stats().conflicts == 1,
        "conflicts counted: {}",
        fail.stats().conflicts
    );
    let now = must_load(&fail, &id).await?;
    check!(
        now.contains("c") && !now.contains("d"),
        "a refused save wrote: {:?}",
        now.data()
    );
    Ok(())
}

pub(super) async fn many_writers_lose_no_field(make: MakeStore) -> CaseResult {
    const WRITERS: usize = 8;
    let store = make().await;
    let s = sessions(
        &store,
        SessionsConfig {
            max_save_attempts: 50,
            ..Default::default()
        },
    )?;
    let id = s.create().await.ctx("create")?.id().clone();
    let mut handles = Vec::new();
    for i in 0..WRITERS {
        let (s, id) = (s.clone(), id.clone());
        handles.push(tokio::spawn(async move {
            let mut session = must_load(&s, &id).await?;
            session.insert(format!("w{i}"), i).ctx("insert")?;
            s.save(&mut session).await.ctx("save").map(|_| ())
        }));
    }
    for h in handles {
        h.await.map_err(|e| format!("writer failed: {e}"))??;
    }
    let done = must_load(&s, &id).await?;
    let missing: Vec<usize> = (0..WRITERS)
        .filter(|i| !done.contains(&format!("w{i}")))
        .collect();
    check!(
        missing.is_empty(),
        "concurrent writers lost fields {missing:?}"
    );
    Ok(())
}

pub(super) async fn deleted_session_is_not_resurrected(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let mut mine = s.create().await.ctx("create")?;
    let id = mine.id().clone();
    check!(
        s.delete_id(id.as_str()).await.ctx("delete_id")?,
        "delete_id said absent"
    );
    mine.insert("late", true).ctx("insert")?;
    let r = s.save(&mut mine).await;
    check!(
        matches!(r, Err(Error::SessionGone { .. })),
        "save of a deleted session gave {r:?}"
    );
    check!(
        store.get(id.as_str()).await.ctx("get")?.is_none(),
        "a deleted session was resurrected"
    );
    Ok(())
}

pub(super) async fn codecs_are_picked_by_flags(make: MakeStore) -> CaseResult {
    let store = make().await;
    let packed = sessions(
        &store,
        SessionsConfig {
            codec: Codec::MessagePack,
            ..Default::default()
        },
    )?;
    let json = sessions(&store, SessionsConfig::default())?;
    let mut session = packed.create().await.ctx("create")?;
    session
        .insert("list", json!([1, "two", {"three": 3.5}]))
        .ctx("insert")?;
    let _ = packed.save(&mut session).await.ctx("save")?;
    let raw = store
        .get(session.id().as_str())
        .await
        .ctx("get")?
        .ok_or("not stored")?;
    check!(
        raw.flags == Codec::MessagePack.flags(),
        "msgpack session has flags {:#x}",
        raw.flags
    );
    let via_json = must_load(&json, session.id()).await?;
    check!(
        via_json.data() == session.data(),
        "a JSON-configured reader decoded msgpack differently"
    );

    let probe = |flags: u32, bytes: &'static [u8]| {
        let (store, json) = (store.clone(), json.clone());
        async move {
            let id = SessionId::generate(32).ctx("id")?;
            let _ = store
                .set(id.as_str(), bytes, flags, Ttl::NEVER)
                .await
                .ctx("set")?;
            Ok::<_, String>(json.load_id(&id).await)
        }
    };
    let unknown = probe(0x7777, b"{}").await?;
    check!(
        matches!(unknown, Err(Error::UnknownCodec { flags: 0x7777, .. })),
        "unknown flags gave {unknown:?}"
    );
    // A raw string under a session key (a reverse key) is no session, and
    // says so exactly as a missing one does.
    let raw_string = probe(FLAGS_RAW, b"0123456789abcdef0123456789abcdef").await?;
    check!(
        matches!(raw_string, Ok(None)),
        "a raw string value gave {raw_string:?}"
    );
    let garbage = probe(FLAGS_JSON, b"{not json").await?;
    check!(
        matches!(garbage, Err(Error::Decode { .. })),
        "broken JSON gave {garbage:?}"
    );
    Ok(())
}

//! Checks of the by-id operations for stateless callers
//! (`create_with`, `patch`, `replace`, `touch_id`), per-session expiry, and
//! the answers that must not tell one caller about another's data.

use std::sync::Arc;

use serde_json::json;

use super::interleave::BeforeDelete;
use super::{CaseResult, Context, MakeStore, check};
use crate::codec::{FLAGS_JSON, FLAGS_REPLICATED};
use crate::config::SessionsConfig;
use crate::error::{Error, Result};
use crate::principal::md5_hex;
use crate::sessions::{Patch, Sessions};
use crate::store::{Store, Ttl};
use crate::{SessionData, SessionId};

fn sessions(store: &Arc<dyn Store>, config: SessionsConfig) -> Result<Sessions, String> {
    Sessions::new(store.clone(), config).ctx("Sessions::new")
}

fn with_principal() -> SessionsConfig {
    SessionsConfig {
        principal: Some("uid".into()),
        timeout: Ttl::seconds(600),
        ..Default::default()
    }
}

fn fields(value: serde_json::Value) -> Result<SessionData, String> {
    value
        .as_object()
        .cloned()
        .ok_or_else(|| "test data is not an object".to_owned())
}

/// One write creates a session with its data, its reverse key and the
/// expiry asked for.
pub(super) async fn create_with_writes_data_in_one_call(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, with_principal())?;
    let session = s
        .create_with(
            fields(json!({"uid": "ann", "role": "admin", "_session_id": "forged"}))?,
            Some(Ttl::seconds(120)),
        )
        .await
        .ctx("create_with")?;
    check!(
        session.get_value("_session_id") == Some(&json!(session.id().as_str())),
        "a caller's _session_id was kept: {:?}",
        session.data()
    );
    let loaded = s
        .load_id(session.id())
        .await
        .ctx("load")?
        .ok_or("created session missing")?;
    check!(
        loaded.get_value("role") == Some(&json!("admin")),
        "create_with lost a field: {:?}",
        loaded.data()
    );
    let owner = s.find_by_principal("ann").await.ctx("find_by_principal")?;
    check!(
        owner.map(|o| o.id().clone()).as_ref() == Some(session.id()),
        "create_with did not write the reverse key"
    );
    if store.capabilities().ttl_read {
        let left = loaded.remaining().ok_or("no remaining lifetime on load")?;
        check!(
            (100..=120).contains(&left.as_secs()),
            "a session created with a 120 s expiry has {left:?} left"
        );
    }
    let fresh = s
        .create_with(SessionData::new(), None)
        .await
        .ctx("create_with")?;
    check!(fresh.id() != session.id(), "two creates gave one id");
    Ok(())
}

/// `patch` changes only what it names; concurrent patches of different
/// fields both survive; a stale expected version writes nothing.
pub(super) async fn patch_changes_only_named_fields(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let created = s
        .create_with(fields(json!({"a": 1, "b": 2, "c": 3}))?, None)
        .await
        .ctx("create_with")?;
    let id = created.id().as_str().to_owned();
    let read_version = created.version();

    let (patch_a, patch_b) = (
        Patch::new().set("a", 10),
        Patch::new().set("b", 20).remove("c"),
    );
    let (left, right) = tokio::join!(s.patch(&id, &patch_a, None), s.patch(&id, &patch_b, None),);
    left.ctx("patch a")?.ok_or("patch a: session missing")?;
    right.ctx("patch b")?.ok_or("patch b: session missing")?;
    let now = s.load(&id).await.ctx("load")?.ok_or("session missing")?;
    check!(
        now.get_value("a") == Some(&json!(10))
            && now.get_value("b") == Some(&json!(20))
            && !now.contains("c"),
        "concurrent patches lost a change: {:?}",
        now.data()
    );

    if let Some(stale) = read_version {
        let r = s.patch(&id, &Patch::new().set("a", 99), Some(stale)).await;
        check!(
            matches!(r, Err(Error::Conflict { .. })),
            "a patch expecting a stale version gave {r:?}"
        );
        let after = s.load(&id).await.ctx("load")?.ok_or("session missing")?;
        check!(
            after.get_value("a") == Some(&json!(10)),
            "a refused patch wrote: {:?}",
            after.data()
        );
        let current = after.version();
        let ok = s
            .patch(&id, &Patch::new().set("a", 11), current)
            .await
            .ctx("patch at the current version")?;
        check!(ok.is_some(), "patch at the current version missed");
    }

    let bad = s
        .patch(&id, &Patch::new().set("_session_id", "x"), None)
        .await;
    check!(
        matches!(bad, Err(Error::Field { .. })),
        "patching _session_id gave {bad:?}"
    );
    let unknown = SessionId::generate(32).ctx("id")?;
    let missing = s
        .patch(unknown.as_str(), &Patch::new().set("a", 1), None)
        .await
        .ctx("patch of an unknown id")?;
    check!(
        missing.is_none(),
        "patch of an unknown id created {missing:?}"
    );
    check!(
        s.load_id(&unknown).await.ctx("load")?.is_none(),
        "patch of an unknown id wrote a session"
    );
    Ok(())
}

/// `replace` swaps the field set but keeps the id; unknown ids stay unknown.
pub(super) async fn replace_swaps_fields_and_keeps_the_id(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let created = s
        .create_with(fields(json!({"old": true}))?, None)
        .await
        .ctx("create_with")?;
    let id = created.id().as_str().to_owned();
    let replaced = s
        .replace(
            &id,
            fields(json!({"new": 1, "_session_id": "ffff"}))?,
            created.version(),
        )
        .await
        .ctx("replace")?
        .ok_or("replace missed")?;
    check!(
        replaced.get_value("_session_id") == Some(&json!(id)),
        "replace changed _session_id"
    );
    let loaded = s.load(&id).await.ctx("load")?.ok_or("session missing")?;
    check!(
        !loaded.contains("old") && loaded.get_value("new") == Some(&json!(1)),
        "replace left {:?}",
        loaded.data()
    );
    let unknown = SessionId::generate(32).ctx("id")?;
    let missing = s
        .replace(unknown.as_str(), SessionData::new(), None)
        .await
        .ctx("replace of an unknown id")?;
    check!(missing.is_none(), "replace of an unknown id gave a session");
    Ok(())
}

/// `touch_id` extends the session (and its reverse key) without a handle;
/// a per-session expiry is used by saves and touches.
pub(super) async fn touch_id_and_per_session_expiry(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, with_principal())?;
    let mut session = s
        .create_with(fields(json!({"uid": "bob"}))?, Some(Ttl::seconds(30)))
        .await
        .ctx("create_with")?;
    session.insert("x", 1).ctx("insert")?;
    let _ = s.save(&mut session).await.ctx("save")?;
    let id = session.id().as_str().to_owned();
    let reverse = md5_hex(b"bob");
    if store.capabilities().ttl_read {
        let left = store
            .get(&id)
            .await
            .ctx("get")?
            .and_then(|e| e.ttl)
            .ok_or("no ttl")?;
        check!(
            left.as_secs() <= 30,
            "a save of a 30 s session wrote {left:?} (the configured 600 s?)"
        );
    }
    check!(
        s.touch_id(&id, Some(Ttl::seconds(900)))
            .await
            .ctx("touch_id")?,
        "touch_id of a live session answered false"
    );
    if store.capabilities().ttl_read {
        for key in [id.as_str(), reverse.as_str()] {
            let left = store
                .get(key)
                .await
                .ctx("get")?
                .and_then(|e| e.ttl)
                .ok_or("no ttl")?;
            check!(
                left.as_secs() > 600,
                "after touch_id(900 s), {key} has {left:?} left"
            );
        }
    }
    let unknown = SessionId::generate(32).ctx("id")?;
    check!(
        !s.touch_id(unknown.as_str(), None).await.ctx("touch_id")?,
        "touch_id of an unknown id answered true"
    );
    let bad = s.touch_id("../etc", None).await;
    check!(
        matches!(bad, Err(Error::InvalidSessionId { .. })),
        "touch_id of a bad id gave {bad:?}"
    );
    Ok(())
}

/// A reverse key is a raw id under `md5_hex(user)`, itself a valid session
/// id: loading, touching or patching it must answer exactly like an unknown
/// id, whether or not the user is logged in.
pub(super) async fn answers_do_not_reveal_other_users(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, with_principal())?;
    let _ = s
        .create_with(fields(json!({"uid": "admin"}))?, None)
        .await
        .ctx("create_with")?;
    let logged_in = md5_hex(b"admin");
    let logged_out = md5_hex(b"nobody-with-this-name");
    for id in [&logged_in, &logged_out] {
        let loaded = s.load(id).await;
        check!(
            matches!(loaded, Ok(None)),
            "load(md5_hex(user)) gave {loaded:?}"
        );
        let touched = s.touch_id(id, None).await;
        check!(
            matches!(touched, Ok(false)),
            "touch_id(md5_hex(user)) gave {touched:?}"
        );
        let patched = s.patch(id, &Patch::new().set("x", 1), None).await;
        check!(
            matches!(patched, Ok(None)),
            "patch(md5_hex(user)) gave {patched:?}"
        );
        let deleted = s.delete_id(id).await;
        check!(
            matches!(deleted, Ok(false)),
            "delete_id(md5_hex(user)) gave {deleted:?}"
        );
    }
    let still = store.get(&logged_in).await.ctx("get")?;
    check!(
        still.is_some_and(|e| e.flags == 0),
        "probing the reverse key changed it"
    );
    Ok(())
}

/// Values carrying modifier flags (a replication marker) still load.
pub(super) async fn modifier_flags_do_not_hide_a_session(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, SessionsConfig::default())?;
    let id = SessionId::generate(32).ctx("id")?;
    let _ = store
        .set(
            id.as_str(),
            br#"{"uid":"carol"}"#,
            FLAGS_JSON | FLAGS_REPLICATED,
            Ttl::NEVER,
        )
        .await
        .ctx("set")?;
    let loaded = s
        .load_id(&id)
        .await
        .ctx("load")?
        .ok_or("marked session missing")?;
    check!(
        loaded.get_value("uid") == Some(&json!("carol")),
        "a session with a marker bit decoded as {:?}",
        loaded.data()
    );
    Ok(())
}

/// An `update_only` session whose id another writer took meanwhile fails
/// with `IdTaken`, which says not to retry, and never touches that data.
pub(super) async fn update_only_id_taken_is_not_retryable(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(
        &store,
        SessionsConfig {
            update_only: true,
            ..Default::default()
        },
    )?;
    let mut session = s.create().await.ctx("create")?;
    let key = session.id().as_str().to_owned();
    let _ = store
        .set(&key, br#"{"owner":"someone else"}"#, FLAGS_JSON, Ttl::NEVER)
        .await
        .ctx("set")?;
    session.insert("k", "v").ctx("insert")?;
    let r = s.save(&mut session).await;
    match r {
        Err(ref e @ Error::IdTaken { .. }) => {
            check!(!e.is_retryable(), "IdTaken says it is retryable");
        }
        other => return Err(format!("saving onto a taken id gave {other:?}")),
    }
    let kept = store
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("their data vanished")?;
    check!(
        kept.value == br#"{"owner":"someone else"}"#,
        "the other writer's data was changed"
    );
    Ok(())
}

/// A login of the same user between the read and the delete of the reverse
/// key (during a logout) keeps its key, on stores with `delete_if`.
pub(super) async fn logout_keeps_a_concurrent_logins_reverse_key(make: MakeStore) -> CaseResult {
    let inner = make().await;
    if !inner.capabilities().conditional_delete {
        return Ok(());
    }
    let reverse = md5_hex(b"dave");
    let interleaved: Arc<dyn Store> = Arc::new(BeforeDelete::new(inner.clone(), &reverse, login));
    let s = sessions(&interleaved, with_principal())?;
    let mut old = s
        .create_with(fields(json!({"uid": "dave"}))?, None)
        .await
        .ctx("create_with")?;
    let _ = s.delete(&mut old).await.ctx("delete")?;
    let left =
        inner.get(&reverse).await.ctx("get")?.ok_or(
            "the reverse key written by a login during the logout was deleted by that logout",
        )?;
    check!(
        left.value == NEW_LOGIN.as_bytes(),
        "reverse key holds {:?}",
        String::from_utf8_lossy(&left.value)
    );
    Ok(())
}

/// The id the interleaved login writes.
const NEW_LOGIN: &str = "0123456789abcdef0123456789abcdef";

/// Another login of the same user, rewriting the reverse key `key`.
async fn login(inner: Arc<dyn Store>, key: String) -> Result<()> {
    let _ = inner.set(&key, NEW_LOGIN.as_bytes(), 0, Ttl::NEVER).await?;
    Ok(())
}

//! Checks of the per-user index of every live session
//! ([`Sessions::list_by_principal`], [`Sessions::revoke_principal`],
//! [`Sessions::find_id_by_principal`]) and of id rotation
//! ([`Sessions::regenerate`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CaseResult, Context, MakeStore, check};
use crate::config::{PrincipalIndex, PrincipalKeying, SessionsConfig};
use crate::error::Error;
use crate::principal::md5_hex;
use crate::sessions::Sessions;
use crate::store::{Store, Ttl};
use crate::{SessionData, SessionId};

fn indexed(keying: PrincipalKeying) -> SessionsConfig {
    SessionsConfig {
        principal: Some("uid".into()),
        timeout: Ttl::seconds(600),
        principal_index: Some(PrincipalIndex {
            keying,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sessions(store: &Arc<dyn Store>, config: SessionsConfig) -> Result<Sessions, String> {
    Sessions::new(store.clone(), config).ctx("Sessions::new")
}

fn user(uid: &str) -> SessionData {
    let mut data = SessionData::new();
    data.insert("uid".into(), json!(uid));
    data
}

async fn listed(s: &Sessions, uid: &str) -> Result<BTreeSet<SessionId>, String> {
    Ok(s.list_by_principal(uid)
        .await
        .ctx("list_by_principal")?
        .into_iter()
        .collect())
}

/// The index lists exactly the live sessions of a user across create, a
/// save that moves a session to another user, delete, touch and expiry.
pub(super) async fn index_lists_exactly_the_live_sessions(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, indexed(PrincipalKeying::Md5))?;
    let a1 = s.create_with(user("ann"), None).await.ctx("create")?;
    let mut a2 = s.create_with(user("ann"), None).await.ctx("create")?;
    let mut a3 = s.create_with(user("ann"), None).await.ctx("create")?;
    let b1 = s.create_with(user("bob"), None).await.ctx("create")?;
    let want: BTreeSet<_> = [a1.id(), a2.id(), a3.id()].into_iter().cloned().collect();
    check!(
        listed(&s, "ann").await? == want,
        "ann's sessions not all listed"
    );

    a2.insert("uid", "bob").ctx("insert")?;
    let _ = s.save(&mut a2).await.ctx("save")?;
    check!(
        s.delete(&mut a3).await.ctx("delete")?,
        "delete found no session"
    );
    let ann = listed(&s, "ann").await?;
    let bob = listed(&s, "bob").await?;
    check!(
        ann == [a1.id().clone()].into() && bob == [a2.id().clone(), b1.id().clone()].into(),
        "after a move and a delete: ann {ann:?}, bob {bob:?}"
    );

    // Expiry: a short-lived session is listed, then not; a touched one stays.
    let short = s
        .create_with(user("cat"), Some(Ttl::seconds(2)))
        .await
        .ctx("create")?;
    let mut kept = s
        .create_with(user("cat"), Some(Ttl::seconds(2)))
        .await
        .ctx("create")?;
    kept.set_expiry(Ttl::seconds(60));
    check!(s.touch(&kept).await.ctx("touch")?, "touch found no session");
    check!(
        listed(&s, "cat").await?.len() == 2,
        "fresh short sessions not listed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let cat = listed(&s, "cat").await?;
        if !cat.contains(short.id()) {
            check!(
                cat == [kept.id().clone()].into(),
                "the touched session left the index: {cat:?}"
            );
            break;
        }
        check!(
            Instant::now() < deadline,
            "an expired session is still listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check!(
        s.load_id(short.id()).await.ctx("load")?.is_none(),
        "the index dropped a session that still loads"
    );
    let none = listed(&s, "nobody").await?;
    check!(none.is_empty(), "a user without sessions has {none:?}");
    let plain = sessions(&store, SessionsConfig::default())?;
    check!(
        matches!(
            plain.list_by_principal("ann").await,
            Err(Error::InvalidConfig(_))
        ),
        "listing without an index is not a configuration error"
    );
    Ok(())
}

/// `revoke_principal` deletes every session of one user and none of
/// another's; the index and reverse key of that user are empty afterwards.
pub(super) async fn revoke_principal_logs_out_only_that_user(make: MakeStore) -> CaseResult {
    let store = make().await;
    const LOGINS: usize = 12;
    let s = sessions(&store, indexed(PrincipalKeying::Md5))?;
    // Concurrent logins of one user: the record's CAS keeps every member.
    let mut tasks = Vec::new();
    for _ in 0..LOGINS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_with(user("ann"), None).await
        }));
    }
    let mut ann = Vec::new();
    for t in tasks {
        ann.push(
            t.await
                .map_err(|e| format!("login task failed: {e}"))?
                .ctx("create")?,
        );
    }
    let bob = s.create_with(user("bob"), None).await.ctx("create")?;
    let all: BTreeSet<SessionId> = ann.iter().map(|a| a.id().clone()).collect();
    check!(
        listed(&s, "ann").await? == all,
        "concurrent logins lost index members"
    );
    let revoked = s.revoke_principal("ann").await.ctx("revoke_principal")?;
    check!(
        revoked == LOGINS,
        "revoked {revoked} sessions, not {LOGINS}"
    );
    for a in &ann {
        check!(
            s.load_id(a.id()).await.ctx("load")?.is_none(),
            "a revoked session still loads"
        );
    }
    check!(
        s.load_id(bob.id()).await.ctx("load")?.is_some(),
        "another user's session was revoked"
    );
    check!(listed(&s, "ann").await?.is_empty(), "ann still listed");
    check!(
        listed(&s, "bob").await? == [bob.id().clone()].into(),
        "bob's index changed"
    );
    check!(
        store.get(&md5_hex(b"ann")).await.ctx("get")?.is_none(),
        "ann's reverse key survived"
    );
    check!(
        s.find_id_by_principal("bob").await.ctx("find_id")?.as_ref() == Some(bob.id()),
        "bob's reverse key was touched"
    );
    Ok(())
}

/// The reverse key's id is found without decoding the session, even one a
/// Perl node wrote in a format this build cannot read; HMAC keying keeps the
/// index (and, when asked, the reverse key) off the MD5 of the user name.
pub(super) async fn lookups_by_user_without_decoding_and_keyed(make: MakeStore) -> CaseResult {
    let store = make().await;
    let s = sessions(&store, indexed(PrincipalKeying::Md5))?;
    let ann = s.create_with(user("ann"), None).await.ctx("create")?;
    let _ = store
        .set(
            ann.id().as_str(),
            b"\x04\x0b perl",
            0x7777,
            Ttl::seconds(600),
        )
        .await
        .ctx("set")?;
    check!(
        matches!(
            s.find_by_principal("ann").await,
            Err(Error::UnknownCodec { .. })
        ),
        "test setup: the session should not decode"
    );
    let found = s
        .find_id_by_principal("ann")
        .await
        .ctx("find_id_by_principal")?;
    check!(found.as_ref() == Some(ann.id()), "find_id gave {found:?}");
    check!(
        listed(&s, "ann").await? == [ann.id().clone()].into(),
        "an undecodable session of the user is not listed"
    );
    check!(
        s.find_id_by_principal("nobody")
            .await
            .ctx("find_id")?
            .is_none(),
        "a user without sessions was found"
    );

    let secret = b"0123456789abcdef-secret".to_vec();
    let keyed = sessions(
        &store,
        indexed(PrincipalKeying::HmacSha256 {
            secret,
            reverse_key_too: true,
        }),
    )?;
    let dan = keyed.create_with(user("dan"), None).await.ctx("create")?;
    check!(
        store.get(&md5_hex(b"dan")).await.ctx("get")?.is_none()
            && store
                .get(&format!("{}:sessions", md5_hex(b"dan")))
                .await
                .ctx("get")?
                .is_none(),
        "HMAC keying still wrote MD5 keys"
    );
    check!(
        keyed
            .find_id_by_principal("dan")
            .await
            .ctx("find_id")?
            .as_ref()
            == Some(dan.id()),
        "the HMAC reverse key does not name the session"
    );
    let found = keyed
        .find_by_principal("dan")
        .await
        .ctx("find_by_principal")?;
    check!(
        found.as_ref().map(|f| f.id()) == Some(dan.id()),
        "find_by_principal misses the HMAC reverse key"
    );
    check!(
        listed(&keyed, "dan").await? == [dan.id().clone()].into(),
        "the HMAC index does not list the session"
    );
    Ok(())
}

/// `regenerate` moves the data to a new id written before the old is
/// deleted, and moves the reverse key and the index member with it.
pub(super) async fn regenerate_moves_everything_to_a_new_id(make: MakeStore) -> CaseResult {
    let store = make().await;
    let local = make().await;
    let s = sessions(&store, indexed(PrincipalKeying::Md5))?.with_local(local.clone());
    let mut session = s.create_with(user("ann"), None).await.ctx("create")?;
    session.insert("cart", json!([1, 2])).ctx("insert")?;
    let old = session.id().clone();
    s.regenerate(&mut session).await.ctx("regenerate")?;
    let new = session.id().clone();
    check!(new != old, "regenerate kept the id");
    check!(
        session.get_value("_session_id") == Some(&json!(new.as_str())),
        "the handle's _session_id is stale"
    );
    check!(
        s.load_id(&old).await.ctx("load old")?.is_none()
            && local.get(old.as_str()).await.ctx("local get")?.is_none(),
        "the old id still loads or has a local copy"
    );
    let loaded = s
        .load_id(&new)
        .await
        .ctx("load new")?
        .ok_or("the new id does not load")?;
    check!(
        loaded.get_value("cart") == Some(&json!([1, 2]))
            && loaded.get_value("uid") == Some(&json!("ann")),
        "regenerate lost data (unsaved changes included): {:?}",
        loaded.data()
    );
    check!(
        s.find_id_by_principal("ann").await.ctx("find_id")?.as_ref() == Some(&new),
        "the reverse key does not name the new id"
    );
    check!(
        listed(&s, "ann").await? == [new.clone()].into(),
        "the index does not hold exactly the new id"
    );
    session.insert("after", 1).ctx("insert")?;
    let _ = s.save(&mut session).await.ctx("save after regenerate")?;
    check!(
        s.load_id(&old).await.ctx("load old")?.is_none(),
        "a save after regenerate resurrected the old id"
    );
    Ok(())
}

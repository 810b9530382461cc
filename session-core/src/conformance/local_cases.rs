//! Checks of the read-first `local` tier: filled on a miss, never trusted
//! stale under `Validate`, and bounded in age under `MaxAge`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CaseResult, Context, MakeStore, check};
use crate::codec::FLAGS_JSON;
use crate::config::{LocalPolicy, SessionsConfig};
use crate::sessions::Sessions;
use crate::store::Store;
use crate::{Session, SessionId};

fn sessions(store: &Arc<dyn Store>, config: SessionsConfig) -> Result<Sessions, String> {
    Sessions::new(store.clone(), config).ctx("Sessions::new")
}

async fn must_load(s: &Sessions, id: &SessionId) -> Result<Session, String> {
    s.load_id(id)
        .await
        .ctx("load")?
        .ok_or_else(|| format!("session {id} should exist"))
}

pub(super) async fn local_tier_is_filled_on_a_miss(make: MakeStore) -> CaseResult {
    let principal = make().await;
    let local = make().await;
    let writer = sessions(&principal, SessionsConfig::default())?;
    let mut session = writer.create().await.ctx("create")?;
    session.insert("k", "v").ctx("insert")?;
    let _ = writer.save(&mut session).await.ctx("save")?;
    let key = session.id().to_string();
    check!(
        local.get(&key).await.ctx("get")?.is_none(),
        "local store written by a tier-less Sessions"
    );

    let reader = sessions(&principal, SessionsConfig::default())?.with_local(local.clone());
    let loaded = must_load(&reader, session.id()).await?;
    check!(
        loaded.get_value("k") == Some(&json!("v")),
        "two-tier load gave {:?}",
        loaded.data()
    );
    let copy = local
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("local copy not filled on a miss")?;
    check!(
        copy.flags == FLAGS_JSON,
        "local copy has flags {:#x}",
        copy.flags
    );
    check!(
        loaded.version().is_some(),
        "a validated load has no principal version"
    );
    check!(
        reader.stats().local_hits == 0,
        "a miss was counted as a local hit"
    );
    let again = must_load(&reader, session.id()).await?;
    check!(
        reader.stats().local_hits == 1,
        "a current local copy was not used (local hits: {})",
        reader.stats().local_hits
    );
    check!(
        again.data() == loaded.data(),
        "the local hit differs from the principal"
    );
    check!(
        again.version() == loaded.version(),
        "a local hit lost the principal version"
    );

    // Writes through the tiered Sessions go to both.
    let mut loaded = loaded;
    loaded.insert("k2", 2).ctx("insert")?;
    let _ = reader.save(&mut loaded).await.ctx("save")?;
    let copy = local
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("local copy vanished")?;
    let principal_copy = principal
        .get(&key)
        .await
        .ctx("get")?
        .ok_or("principal copy vanished")?;
    check!(
        copy.value == principal_copy.value,
        "local and principal differ after a save"
    );
    Ok(())
}

pub(super) async fn stale_local_copy_is_not_trusted(make: MakeStore) -> CaseResult {
    let principal = make().await;
    let local_a = make().await;
    let local_b = make().await;
    let host_a = sessions(&principal, SessionsConfig::default())?.with_local(local_a.clone());
    let host_b = sessions(&principal, SessionsConfig::default())?.with_local(local_b);
    let mut session = host_a.create().await.ctx("create")?;
    session.insert("v", 1).ctx("insert")?;
    let _ = host_a.save(&mut session).await.ctx("save")?;
    let id = session.id().clone();

    let mut on_b = must_load(&host_b, &id).await?;
    on_b.insert("v", 2).ctx("insert")?;
    let _ = host_b.save(&mut on_b).await.ctx("save on b")?;
    // Host A's local copy still says v = 1.
    let seen = must_load(&host_a, &id).await?;
    check!(
        seen.get_value("v") == Some(&json!(2)),
        "host A trusted its stale local copy: {:?}",
        seen.data()
    );

    let _ = host_b.delete(&mut on_b).await.ctx("delete on b")?;
    check!(
        host_a.load_id(&id).await.ctx("load")?.is_none(),
        "host A loaded a session deleted through host B"
    );
    check!(
        local_a.get(id.as_str()).await.ctx("get")?.is_none(),
        "host A kept a copy of a deleted session"
    );
    Ok(())
}

pub(super) async fn max_age_local_copy_expires_and_merges(make: MakeStore) -> CaseResult {
    let principal = make().await;
    let local_a = make().await;
    // Two seconds, not one: memcached counts expiry in whole seconds on a
    // clock that ticks once a second, so an item given one second may be
    // gone at the next tick, a few milliseconds later, and the stale-copy
    // read below would find nothing to be served from on a busy machine.
    let config = SessionsConfig {
        local_policy: LocalPolicy::MaxAge(Duration::from_secs(2)),
        ..Default::default()
    };
    let host_a = sessions(&principal, config.clone())?.with_local(local_a);
    let host_b = sessions(&principal, config)?;
    let mut session = host_a.create().await.ctx("create")?;
    session.insert("v", 1).ctx("insert")?;
    let _ = host_a.save(&mut session).await.ctx("save")?;
    let id = session.id().clone();

    let mut on_b = must_load(&host_b, &id).await?;
    on_b.insert("v", 2).ctx("insert")?;
    let _ = host_b.save(&mut on_b).await.ctx("save on b")?;

    // Host A's load is served by its local copy, which is stale (v = 1):
    // the path this check is about.
    let hits_before = host_a.stats().local_hits;
    let mut on_a = must_load(&host_a, &id).await?;
    check!(
        host_a.stats().local_hits == hits_before + 1 && on_a.get_value("v") == Some(&json!(1)),
        "host A's load did not come from its stale local copy (v = {:?})",
        on_a.get_value("v")
    );
    check!(
        on_a.version().is_none(),
        "a MaxAge local copy claims a principal version"
    );
    // A save from that stale copy must keep host B's change.
    on_a.insert("w", 3).ctx("insert")?;
    let _ = host_a.save(&mut on_a).await.ctx("save on a")?;
    let now = must_load(&host_b, &id).await?;
    check!(
        now.get_value("v") == Some(&json!(2)) && now.get_value("w") == Some(&json!(3)),
        "a save from a MaxAge local copy lost a change: {:?}",
        now.data()
    );

    // And a stale copy stops being served within the max age (+ memcached's second).
    let mut on_b = must_load(&host_b, &id).await?;
    on_b.insert("v", 4).ctx("insert")?;
    let _ = host_b.save(&mut on_b).await.ctx("save on b")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = must_load(&host_a, &id).await?;
        if seen.get_value("v") == Some(&json!(4)) {
            break;
        }
        // Touching on every request must not keep a stale copy young.
        host_a.touch(&seen).await.ctx("touch")?;
        check!(
            Instant::now() < deadline,
            "a 2 s MaxAge copy was still served after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

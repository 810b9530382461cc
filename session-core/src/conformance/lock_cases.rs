//! Checks of the opt-in lease lock ([`Sessions::lock`]).

use std::time::{Duration, Instant};

use super::{CaseResult, Context, MakeStore, check};
use crate::config::SessionsConfig;
use crate::error::Error;
use crate::sessions::Sessions;

/// A lock is exclusive; a holder that died is taken over after its lease;
/// the dead holder can then neither renew nor release the new owner's lock.
pub(super) async fn lock_is_exclusive_and_taken_over_after_its_lease(
    make: MakeStore,
) -> CaseResult {
    let store = make().await;
    let s = Sessions::new(store.clone(), SessionsConfig::default()).ctx("Sessions::new")?;
    let id = s.create().await.ctx("create")?.id().clone();
    let lease = Duration::from_secs(1);

    let mut dead = s.lock(&id, lease).await.ctx("first lock")?;
    let busy = s.lock_with(&id, lease, Duration::from_millis(200)).await;
    check!(
        matches!(&busy, Err(e @ Error::Timeout { operation: "lock", .. }) if e.is_timeout()),
        "a held lock was taken, or the wait ended without a typed timeout: {busy:?}"
    );

    // The first holder "dies": it never renews or releases.
    let started = Instant::now();
    let mut owner = s
        .lock_with(&id, lease, Duration::from_secs(6))
        .await
        .ctx("takeover")?;
    check!(
        started.elapsed() < Duration::from_secs(5),
        "takeover took {:?}",
        started.elapsed()
    );
    check!(owner.token() != dead.token(), "two holders share a token");
    check!(
        !dead.renew().await.ctx("stale renew")?,
        "a holder whose lease ended renewed the new owner's lock"
    );
    check!(
        !dead.release().await.ctx("stale release")?,
        "a holder whose lease ended released the new owner's lock"
    );
    let held = store.get(owner.key()).await.ctx("get lock")?;
    check!(
        held.map(|e| e.value) == Some(owner.token().as_bytes().to_vec()),
        "the new owner's lock is gone after a non-owner's release"
    );
    check!(
        owner.renew().await.ctx("renew")?,
        "the owner could not renew"
    );
    check!(
        owner.release().await.ctx("release")?,
        "the owner could not release"
    );
    let next = s
        .lock_with(&id, lease, Duration::from_millis(500))
        .await
        .ctx("lock after release")?;
    check!(next.release().await.ctx("release")?, "release failed");
    check!(
        matches!(
            s.lock(&id, Duration::ZERO).await,
            Err(Error::InvalidConfig(_))
        ),
        "a zero lease was accepted"
    );
    Ok(())
}

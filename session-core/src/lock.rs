//! Lease locks on a session, for callers that want strict serialisation
//! instead of optimistic merges ([`crate::Sessions::lock`]).
//!
//! A lock is one raw item `<key_prefix><id>:lk` holding a random owner
//! token, written with `add` (so exactly one caller holds it) and an expiry
//! (the lease), so the lock of a holder that died frees itself. Everything
//! that could release or extend someone else's lock compares the token
//! first, atomically where the store allows:
//!
//! - **acquire**: `add`; while the key exists, wait with exponential backoff
//!   and full jitter, until the lock is free or the wait runs out
//!   ([`crate::Error::Timeout`] with operation `"lock"`).
//! - **renew**: read the item, and if it holds our token, `cas` it with a
//!   fresh expiry on the version read; a lock that expired and was taken
//!   over is never extended.
//! - **release**: read the item, and if it holds our token, `delete_if` on
//!   the version read. PHP's memcached session handler releases with a plain
//!   `delete`, which removes whatever lock is there — possibly a newer
//!   owner's after its own lease ran out. On a store without `delete_if`
//!   the delete is plain after the token check, and a window remains: if the
//!   lease ends between the read and the delete and someone else takes the
//!   lock in that instant, their lock is removed. Keep leases well above the
//!   time a critical section takes and renew at half the lease.
//!
//! **Lease resolution.** Store expiries are whole seconds, and memcached
//! ends an item up to a second early; the item is therefore written with
//! `ceil(lease) + 1` seconds, so a lock is held for at least `lease` and at
//! most about a second and a half longer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::FLAGS_RAW;
use crate::config::Backoff;
use crate::error::{Delivery, Error, Result};
use crate::id::SessionId;
use crate::sessions::retry_pause;
use crate::store::{AddOutcome, CasOutcome, DeleteOutcome, Store, Ttl};

/// The suffix of a lock key (same length as the local tier's companion
/// suffix, so the key length budget of `key_prefix` covers it).
pub(crate) const LOCK_SUFFIX: &str = ":lk";

/// The longest lease accepted.
const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Waits between acquire attempts: 2 ms doubling to 100 ms, full jitter.
const LOCK_BACKOFF: Backoff = Backoff {
    base_delay: Duration::from_millis(2),
    max_delay: Duration::from_millis(100),
};

/// A held lease lock on one session, from [`crate::Sessions::lock`].
///
/// Release it with [`LockGuard::release`]. Dropping the guard without
/// releasing leaves the lock to expire at the end of its lease (a destructor
/// cannot wait for the store).
#[derive(Debug)]
pub struct LockGuard {
    store: Arc<dyn Store>,
    key: String,
    token: String,
    lease: Duration,
    released: bool,
}

impl LockGuard {
    /// The lock item's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This holder's owner token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lease, as asked for.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Extends the lease by a full `lease` from now, if the lock is still
    /// ours. `Ok(false)`: it expired and is gone or someone else holds it;
    /// the caller no longer has exclusive access.
    pub async fn renew(&mut self) -> Result<bool> {
        let Some(entry) = self.store.get(&self.key).await? else {
            return Ok(false);
        };
        if entry.value != self.token.as_bytes() {
            return Ok(false);
        }
        let outcome = self
            .store
            .cas(
                &self.key,
                self.token.as_bytes(),
                FLAGS_RAW,
                lease_ttl(self.lease),
                entry.version,
            )
            .await?;
        Ok(matches!(outcome, CasOutcome::Stored(_)))
    }

    /// Releases the lock if it is still ours. `Ok(true)`: it was ours and is
    /// gone; `Ok(false)`: it had expired (and may be someone else's now,
    /// which is left alone).
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        let Some(entry) = self.store.get(&self.key).await? else {
            return Ok(false);
        };
        if entry.value != self.token.as_bytes() {
            return Ok(false);
        }
        if self.store.capabilities().conditional_delete {
            Ok(self.store.delete_if(&self.key, entry.version).await? == DeleteOutcome::Deleted)
        } else {
            // Window documented in the module docs.
            self.store.delete(&self.key).await
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            tracing::debug!(key = %self.key, "lock guard dropped unreleased; it ends with its lease");
        }
    }
}

/// The expiry a lock item is written with.
fn lease_ttl(lease: Duration) -> Ttl {
    Ttl::seconds(Ttl::from_duration(lease).as_secs().saturating_add(1))
}

/// Takes the lock `key`, waiting up to `wait`.
pub(crate) async fn acquire(
    store: Arc<dyn Store>,
    key: String,
    lease: Duration,
    wait: Duration,
) -> Result<LockGuard> {
    if lease.is_zero() || lease > MAX_LEASE {
        return Err(Error::InvalidConfig(format!(
            "lock lease {lease:?} is outside (0, {MAX_LEASE:?}]"
        )));
    }
    let token = SessionId::generate(32)?.to_string();
    let ttl = lease_ttl(lease);
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        if let AddOutcome::Stored(_) = store.add(&key, token.as_bytes(), FLAGS_RAW, ttl).await? {
            return Ok(LockGuard {
                store,
                key,
                token,
                lease,
                released: false,
            });
        }
        let waited = started.elapsed();
        if waited >= wait {
            return Err(Error::Timeout {
                operation: "lock",
                server: key,
                after: wait,
                delivery: Delivery::NotSent,
            });
        }
        retry_pause(&LOCK_BACKOFF, attempt, wait - waited).await;
    }
}

//! [`Sessions::lock`]: the entry points of the opt-in lease lock; the lock
//! itself, its guard and its rules are in [`crate::lock`].

use std::time::Duration;

use super::Sessions;
use crate::error::Result;
use crate::id::SessionId;
use crate::lock::{LOCK_SUFFIX, LockGuard, acquire};

impl Sessions {
    /// Takes the lease lock of session `id` (opt-in strict serialisation;
    /// see [`crate::lock`]), waiting at most `lease` plus one second — long
    /// enough to take over the lock of a holder that died. [`crate::Error::Timeout`]
    /// (operation `"lock"`) when it stays taken; [`crate::Error::InvalidConfig`]
    /// for a zero or longer-than-a-day lease.
    pub async fn lock(&self, id: &SessionId, lease: Duration) -> Result<LockGuard> {
        self.lock_with(id, lease, lease + Duration::from_secs(1))
            .await
    }

    /// [`Sessions::lock`] with an explicit longest wait.
    pub async fn lock_with(
        &self,
        id: &SessionId,
        lease: Duration,
        wait: Duration,
    ) -> Result<LockGuard> {
        let key = format!("{}{}{}", self.config.key_prefix, id, LOCK_SUFFIX);
        acquire(self.servers.clone(), key, lease, wait).await
    }
}

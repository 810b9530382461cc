//! The `local` read-first tier and its staleness rule.
//!
//! The original reads the local memcached first and, on a miss, reads the
//! principal servers and fills the local copy; writes go to both. We keep
//! that shape and add one rule (see [`LocalPolicy`]): a local copy is only
//! used when it is provably current (`Validate`) or young (`MaxAge`).
//!
//! For `Validate`, each local copy has a companion item `<key>:lv` holding
//! `"<principal version>:<md5 of the copy's bytes>"`. The version and the
//! digest sit in one item, so they always describe the same principal read;
//! the digest ties them to the copy, so a copy and a companion written by two
//! racing fillers can never be mistaken for a match. A hit needs the digest
//! to match the copy and the principal's current version to equal the
//! companion's; anything else is a miss.
//!
//! The local tier is a cache: its failures are logged and treated as misses,
//! never surfaced as errors of the session operation.

use std::sync::Arc;

use crate::codec::FLAGS_RAW;
use crate::config::LocalPolicy;
use crate::principal::md5_hex;
use crate::store::{Entry, Store, Ttl, Version};

use crate::key::COMPANION_SUFFIX;

/// The local tier: a store, how far to trust it, and the expiry it writes with.
#[derive(Debug, Clone)]
pub(crate) struct LocalTier {
    store: Arc<dyn Store>,
    policy: LocalPolicy,
    ttl: Ttl,
}

/// A local copy that passed the policy's check.
pub(crate) struct LocalHit {
    pub entry: Entry,
    /// The principal version the copy is known to equal (`Validate` only).
    pub principal_version: Option<Version>,
}

impl LocalTier {
    pub fn new(store: Arc<dyn Store>, policy: LocalPolicy, session_ttl: Ttl) -> Self {
        let ttl = match policy {
            LocalPolicy::Validate => session_ttl,
            LocalPolicy::MaxAge(max) => {
                let max = Ttl::from_duration(max);
                if session_ttl.is_never() {
                    max
                } else {
                    session_ttl.min(max)
                }
            }
        };
        LocalTier { store, policy, ttl }
    }

    /// The expiry local copies are written (and touched) with.
    #[cfg(test)]
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// Reads a local copy and checks it against the policy; `principal`
    /// answers the version question under `Validate`. Errors of the
    /// principal propagate (the caller would hit them next anyway); errors
    /// of the local store are misses.
    pub async fn read(&self, key: &str, principal: &dyn Store) -> crate::Result<Option<LocalHit>> {
        match self.policy {
            LocalPolicy::MaxAge(_) => Ok(self
                .quietly(key, self.store.get(key).await)
                .flatten()
                .map(|entry| LocalHit {
                    entry,
                    principal_version: None,
                })),
            LocalPolicy::Validate => {
                let companion_key = companion(key);
                let (copy, companion) = self.read_pair(key, &companion_key).await;
                let (Some(copy), Some(companion)) = (copy, companion) else {
                    return Ok(None);
                };
                let Some((version, digest)) = parse_companion(&companion.value) else {
                    return Ok(None);
                };
                if digest != md5_hex(&copy.value) {
                    return Ok(None);
                }
                if principal.version(key).await? != Some(version) {
                    return Ok(None);
                }
                Ok(Some(LocalHit {
                    entry: copy,
                    principal_version: Some(version),
                }))
            }
        }
    }

    /// Reads the copy and its companion, in one round trip where the store can.
    async fn read_pair(&self, key: &str, companion_key: &str) -> (Option<Entry>, Option<Entry>) {
        if self.store.capabilities().get_many {
            let both = self.store.get_many(&[key, companion_key]).await;
            if let Some(mut both) = self.quietly(key, both) {
                let second = both.pop().flatten();
                let first = both.pop().flatten();
                return (first, second);
            }
            return (None, None);
        }
        let copy = self.quietly(key, self.store.get(key).await).flatten();
        if copy.is_none() {
            return (None, None);
        }
        let companion = self
            .quietly(key, self.store.get(companion_key).await)
            .flatten();
        (copy, companion)
    }

    /// Writes a local copy of `value`, known to be the principal's `version`
    /// when given. Best effort.
    pub async fn write(&self, key: &str, value: &[u8], flags: u32, version: Option<Version>) {
        let stored = self.store.set(key, value, flags, self.ttl).await;
        if self.quietly(key, stored).is_none() {
            // The old copy may still be there; make sure it is not trusted.
            self.forget(key).await;
            return;
        }
        if self.policy != LocalPolicy::Validate {
            return;
        }
        let companion_key = companion(key);
        match version {
            Some(v) => {
                let text = format!("{}:{}", v.get(), md5_hex(value));
                let r = self
                    .store
                    .set(&companion_key, text.as_bytes(), FLAGS_RAW, self.ttl)
                    .await;
                self.quietly(key, r);
            }
            None => {
                let r = self.store.delete(&companion_key).await;
                self.quietly(key, r);
            }
        }
    }

    /// Drops a local copy and its companion. Best effort.
    pub async fn forget(&self, key: &str) {
        let r = self.store.delete(key).await;
        self.quietly(key, r);
        if self.policy == LocalPolicy::Validate {
            let r = self.store.delete(&companion(key)).await;
            self.quietly(key, r);
        }
    }

    /// Re-sets the expiry of a local copy under `Validate`. Best effort.
    ///
    /// Under `MaxAge` the copy is left to expire: touching it would restart
    /// its age, and a host that touches on every request would keep a stale
    /// copy alive forever, breaking the bound the policy promises.
    pub async fn touch(&self, key: &str) {
        if self.policy != LocalPolicy::Validate {
            return;
        }
        let r = self.store.touch(key, self.ttl).await;
        self.quietly(key, r);
        let r = self.store.touch(&companion(key), self.ttl).await;
        self.quietly(key, r);
    }

    /// Turns a local-store error into a logged miss.
    fn quietly<T>(&self, key: &str, r: crate::Result<T>) -> Option<T> {
        r.inspect_err(|e| tracing::warn!(key, error = %e, "local tier error, treated as a miss"))
            .ok()
    }
}

fn companion(key: &str) -> String {
    format!("{key}{COMPANION_SUFFIX}")
}

fn parse_companion(bytes: &[u8]) -> Option<(Version, String)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (version, digest) = text.split_once(':')?;
    Some((Version::new(version.parse().ok()?), digest.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_parsing_is_strict() {
        assert_eq!(
            parse_companion(b"42:abc").map(|(v, d)| (v.get(), d)),
            Some((42, "abc".to_owned()))
        );
        assert!(parse_companion(b"x:abc").is_none());
        assert!(parse_companion(b"42").is_none());
        assert!(parse_companion(&[0xff, b':']).is_none());
    }

    #[test]
    fn max_age_caps_the_local_expiry() {
        let store: Arc<dyn Store> = Arc::new(crate::MemoryStore::new());
        let cap = LocalPolicy::MaxAge(std::time::Duration::from_secs(5));
        assert_eq!(
            LocalTier::new(store.clone(), cap, Ttl::NEVER).ttl(),
            Ttl::seconds(5)
        );
        assert_eq!(
            LocalTier::new(store.clone(), cap, Ttl::seconds(3)).ttl(),
            Ttl::seconds(3)
        );
        assert_eq!(
            LocalTier::new(store, LocalPolicy::Validate, Ttl::seconds(300)).ttl(),
            Ttl::seconds(300)
        );
    }
}

//! The record of the per-user index of every live session (see
//! [`crate::config::PrincipalIndex`]): what one index item holds and the
//! pure rules for changing it. The store calls live in `sessions/index.rs`.
//!
//! One item per user, under `<key_prefix><digest>:sessions`, flags 0 (raw,
//! so Perl's Cache::Memcached never tries to thaw it), holding JSON:
//!
//! ```json
//! {"v":1,"members":{"<session id>":<deadline>,...}}
//! ```
//!
//! A deadline is the unix time (seconds) after which that member's session
//! has expired, or 0 for "never". Every write of the record drops the
//! members past their deadline, so the record cannot grow with dead
//! sessions; `max_members` bounds it outright. The item's own expiry is
//! that of its longest-lived member, so a user who stops logging in leaves
//! nothing behind. The record is changed only with `cas` (or `add` when
//! absent): two logins of one user never lose each other's member.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Ttl;

/// The suffix of an index key (after the user's digest).
pub(crate) const INDEX_SUFFIX: &str = ":sessions";

/// The format version written in every record.
const RECORD_VERSION: u32 = 1;

/// One user's index: session id -> deadline (unix seconds, 0 = never).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexRecord {
    v: u32,
    pub members: BTreeMap<String, u64>,
}

impl IndexRecord {
    /// Parses a stored record; [`Error::Decode`] names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let record: IndexRecord = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode_failed("principal index", "", e))?;
        if record.v != RECORD_VERSION {
            return Err(Error::undecodable(
                "principal index",
                format!("record version {} is not {RECORD_VERSION}", record.v),
            ));
        }
        Ok(record)
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let record = IndexRecord {
            v: RECORD_VERSION,
            members: self.members.clone(),
        };
        serde_json::to_vec(&record).map_err(|e| Error::encode_failed("principal index", e))
    }

    /// Drops the members whose deadline passed; returns how many.
    pub fn prune(&mut self, now: u64) -> usize {
        let before = self.members.len();
        self.members.retain(|_, d| *d == 0 || *d > now);
        before - self.members.len()
    }

    /// Adds or updates a member; when that makes the record hold more than
    /// `max` members, drops the ones that expire first and returns them.
    pub fn upsert(&mut self, id: &str, deadline: u64, max: usize) -> Vec<String> {
        self.members.insert(id.to_owned(), deadline);
        let mut evicted = Vec::new();
        while self.members.len() > max {
            // "never" (0) sorts last: it expires last.
            let first = self
                .members
                .iter()
                .filter(|(m, _)| m.as_str() != id)
                .min_by_key(|(_, d)| if **d == 0 { u64::MAX } else { **d })
                .map(|(m, _)| m.clone());
            match first {
                Some(m) => {
                    self.members.remove(&m);
                    evicted.push(m);
                }
                None => break,
            }
        }
        evicted
    }

    /// The expiry the item is written with: that of its longest-lived
    /// member plus a second of slack (memcached's clock ticks in seconds).
    pub fn ttl(&self, now: u64) -> Ttl {
        if self.members.values().any(|d| *d == 0) {
            return Ttl::NEVER;
        }
        let last = self.members.values().copied().max().unwrap_or(now);
        let secs = last.saturating_sub(now).saturating_add(1).max(2);
        Ttl::seconds(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// The current unix time in seconds (0 if the clock is before 1970).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The deadline of a member written now with `ttl` (0 for never). One
/// second of slack: a member must never be pruned before its session.
pub(crate) fn deadline(ttl: Ttl, now: u64) -> u64 {
    if ttl.is_never() {
        0
    } else {
        now.saturating_add(u64::from(ttl.as_secs()))
            .saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut r = IndexRecord::default();
        assert!(r.upsert("a", 10, 8).is_empty());
        assert!(r.upsert("b", 0, 8).is_empty());
        let back = IndexRecord::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back.members, r.members);
        assert!(IndexRecord::decode(b"not json").is_err());
        assert!(IndexRecord::decode(br#"{"v":9,"members":{}}"#).is_err());
    }

    #[test]
    fn prune_and_bound() {
        let mut r = IndexRecord::default();
        let _ = r.upsert("old", 5, 3);
        let _ = r.upsert("never", 0, 3);
        let _ = r.upsert("later", 50, 3);
        assert_eq!(r.upsert("new", 40, 3), vec!["old".to_owned()]);
        assert_eq!(r.prune(45), 1, "{r:?}");
        assert_eq!(r.members.keys().collect::<Vec<_>>(), vec!["later", "never"]);
        assert_eq!(r.ttl(45), Ttl::NEVER);
        r.members.remove("never");
        assert_eq!(r.ttl(45), Ttl::seconds(6));
        assert_eq!(deadline(Ttl::NEVER, 7), 0);
        assert_eq!(deadline(Ttl::seconds(3), 7), 11);
    }
}

//! [`SessionsConfig`]: the original's knobs, plus ours, with `validate()`.

use std::time::Duration;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::{DEFAULT_ID_LENGTH, MAX_ID_LENGTH, check_length_config};
use crate::key::{COMPANION_SUFFIX, MAX_KEY_LEN};
use crate::store::Ttl;

/// How far a copy in the `local` tier is trusted.
///
/// The original used a local copy whenever it had two or more fields, so a
/// stale copy (the session changed or was deleted through another host) won
/// until it expired. We never trust a local copy blindly; pick the check:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalPolicy {
    /// On a local hit, ask the principal servers for the item's *version*
    /// only (memcached `mg <key> c`: no value crosses the network) and use
    /// the local copy only if it is a copy of that exact version. Never
    /// stale; saves the value's bandwidth, not the round trip. The default.
    Validate,
    /// Trust a local copy without asking, but write local copies with an
    /// expiry of at most this long, so a stale copy lives at most that long.
    /// Saves the round trip. Saves from such a copy still cannot lose another
    /// writer's changes: the version is unknown, so the save re-reads the
    /// principal and re-applies this handle's own changes.
    ///
    /// The expiry is in whole seconds (rounded up). memcached's clock ticks
    /// once a second, so there a copy lives between `max - 1` s and `max` s:
    /// choose at least 2 s if copies must survive a second at all.
    MaxAge(Duration),
}

/// What a save does when another writer changed the session since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Re-read the session, merge three-way field by field (a field only
    /// one side changed takes that side's value; a field both changed is
    /// decided by [`FieldConflict`]), and try again, up to
    /// `max_save_attempts`. The default.
    #[default]
    Merge,
    /// Give up at once with [`Error::Conflict`]; nothing is written and the
    /// caller decides (reload, retry, report).
    Fail,
}

/// What a merging save does with a field that both this handle and the
/// other writer changed, to different values, since this handle read the
/// session (a *field conflict* of the three-way merge: base = what this
/// handle read, theirs = what the store holds now, mine = this handle's).
///
/// A field changed by one side only is never a conflict: it merges silently.
/// Every field conflict is counted in [`crate::SessionStats::field_conflicts`]
/// and logged at `debug`, whatever the policy.
///
/// **The default is [`FieldConflict::Mine`]**: it is what the original and
/// earlier versions of this crate did, and the fields two requests of one
/// user set at the same time are in practice "last seen", "last page",
/// "flash message", for which the later write is the right answer. Failing
/// such saves would turn ordinary parallel requests into errors. A value
/// derived from what was read (a counter, a list that grows) must not be
/// written through a plain save at all: use [`crate::Sessions::update`],
/// which re-runs the change on a fresh read and so never loses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FieldConflict {
    /// This handle's value wins (last writer wins, as before). The default.
    #[default]
    Mine,
    /// The other writer's value is kept; this handle's change of that field
    /// is dropped (its other changes are still written).
    Theirs,
    /// Nothing is written: [`crate::Error::FieldConflict`] names the fields.
    /// The handle is left as it was; reload it, or use
    /// [`crate::Sessions::update`].
    Fail,
}

/// How long a save waits before it tries again after losing a race to
/// another process (exponential backoff with full jitter: before retry `n`
/// it sleeps a uniformly random time in `0..=min(max_delay, base_delay *
/// 2^(n-1))`).
///
/// Two mechanisms keep contention from turning into refused saves:
///
/// - **In-process queueing.** Tasks sharing one [`crate::Sessions`] (or its
///   clones) take turns writing a session (a FIFO per session key), so they
///   never race each other: a save conflicts at most once (with a write that
///   landed between its load and its turn) and merges at once, without a
///   wait; an [`crate::Sessions::update`] reads inside its turn and does not
///   conflict at all.
/// - **Jittered backoff** for writers in other processes: retrying at once,
///   as earlier versions did, lets the same writers collide again on the
///   next round trip; random waits under a doubling ceiling spread them out.
///
/// Measured on a shared 2-core machine against one local memcached (release
/// build, 64 tokio tasks on 2 worker threads, each loading the session,
/// setting its own field and saving, 20 times; ranges over several runs,
/// widened by other builds on the machine):
///
/// | configuration | refused of 1280 | attempts per save | latency p50 / p99 | wall |
/// |---|---|---|---|---|
/// | before: 5 attempts, retried at once | 1040 | — | 41 ms / 135 ms | 1.0 s |
/// | 30 attempts at once, no queue | 358 | 11.2 | 132 ms / 627 ms | 3.6 s |
/// | backoff only (1 → 200 ms), no queue | 0 | 1.6–2.0 | 0.1–0.2 ms / 315–450 ms | 0.64–0.79 s |
/// | **defaults**, one `Sessions` | 0 (7 runs) | 2.0 | 17–110 ms / 26–240 ms | 0.37–2.4 s |
/// | **defaults**, one `Sessions` per task (as 64 processes) | 0 (6 runs) | 1.8–3.1 | 0.13–1.2 ms / 0.23–0.73 s | 0.35–1.3 s |
/// | uncontended: one task, 1280 saves | 0 | 1.0 | 65–140 µs / 0.14–12 ms | — |
///
/// So the cost of contention is latency, not failures: with 64 writers on
/// one session a save waits for the others' turns (tens of ms at p50 in
/// one process), and across processes the unlucky p99 waits a few hundred
/// ms. 64 tasks x 100 saves each: 0 refused, p99 80–240 ms. 64 tasks x 20
/// increments through `update`: exactly 1280, no retries, p50 10–38 ms,
/// p99 17–90 ms.
///
/// The waits use tokio's timer when called inside a tokio runtime (with its
/// time driver enabled); outside one, a retry only yields and does not sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait (doubled on every further attempt).
    pub base_delay: Duration,
    /// The largest ceiling a wait can reach.
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
        }
    }
}

/// How the index of every session of a user is keyed (see
/// [`PrincipalIndex`]).
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PrincipalKeying {
    /// `md5_hex(user)`, the digest Perl nodes use for the reverse key.
    /// Anyone who knows a user name can compute it. The default.
    #[default]
    Md5,
    /// Lowercase hex HMAC-SHA256 of the user under `secret`, so the key of a
    /// user's index cannot be computed from the user name alone.
    HmacSha256 {
        /// The secret (at least 16 bytes).
        secret: Vec<u8>,
        /// Key the legacy reverse key this way too. Only for new
        /// deployments: Perl nodes look the reverse key up by MD5 and will no
        /// longer find it. (The `<principal>_MD5` field inside the session
        /// is still stamped, for Perl readers; it sits next to the user
        /// name itself, so it reveals nothing more.)
        reverse_key_too: bool,
    },
}

impl std::fmt::Debug for PrincipalKeying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrincipalKeying::Md5 => f.write_str("Md5"),
            PrincipalKeying::HmacSha256 {
                reverse_key_too, ..
            } => f
                .debug_struct("HmacSha256")
                .field("secret", &"<redacted>")
                .field("reverse_key_too", reverse_key_too)
                .finish(),
        }
    }
}

/// The per-user index of every live session (needs `principal`): one record
/// per user under `<key_prefix><digest>:sessions`, listing each session id
/// with its expiry. See [`crate::Sessions::list_by_principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalIndex {
    /// How the record's key is derived from the user.
    pub keying: PrincipalKeying,
    /// The most sessions one record lists (1 to 10 000). When a new session
    /// would exceed it, the member that expires first is dropped from the
    /// record (its session lives on, but `list_by_principal` and
    /// `revoke_principal` no longer see it), with a warning.
    pub max_members: usize,
}

impl Default for PrincipalIndex {
    fn default() -> Self {
        PrincipalIndex {
            keying: PrincipalKeying::Md5,
            max_members: 256,
        }
    }
}

/// Configuration of [`crate::Sessions`].
///
/// | field | the original's name | default |
/// |---|---|---|
/// | `timeout` | `timeout` | never expires |
/// | `update_only` | `updateOnly` | false |
/// | `principal` | `principal` | none |
/// | `id_length` | `IDLength` | 32 |
/// | `codec` | — | JSON |
/// | `key_prefix` | — | empty (bare id, as Perl) |
/// | `local_policy` | — | [`LocalPolicy::Validate`] |
/// | `conflict` | — | [`ConflictPolicy::Merge`] |
/// | `field_conflict` | — | [`FieldConflict::Mine`] |
/// | `max_save_attempts` | — | 40 |
/// | `backoff` | — | 1 ms doubling up to 100 ms, full jitter |
/// | `principal_index` | — | none |
/// | `seal` | — | none (values stored as the codec writes them) |
/// | `reverse_key_refresh` | — | 60 s (the original: 0, every save) |
///
/// The principal (`servers`) and read-first (`local`) stores are given to
/// [`crate::Sessions::new`] and [`crate::Sessions::with_local`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// Expiry of a session, re-set on every write (and by `touch`);
    /// [`Ttl::NEVER`] keeps sessions until deleted. Reads never extend it.
    pub timeout: Ttl,
    /// When true, `create` writes nothing; the first `save` with a change does.
    pub update_only: bool,
    /// The field naming the session's user (e.g. `"uid"`). When set, each
    /// save writes the reverse key `md5_hex(value) -> id` and the field
    /// `<principal>_MD5`, exactly as the original does.
    pub principal: Option<String>,
    /// Hex digits in generated ids (16 to 128).
    pub id_length: usize,
    /// Encoding of new writes. Reads pick the codec from each value's flags.
    pub codec: Codec,
    /// Prepended to every key (sessions and reverse keys). Empty by default,
    /// which is what Perl nodes use.
    pub key_prefix: String,
    /// How far local copies are trusted.
    pub local_policy: LocalPolicy,
    /// What a save does on a concurrent change.
    pub conflict: ConflictPolicy,
    /// What a merge does with a field both writers changed.
    pub field_conflict: FieldConflict,
    /// Upper bound on write attempts of one save, and of one
    /// [`crate::Sessions::update`] (1 to 100).
    pub max_save_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// The per-user index of all live sessions (needs `principal`); `None`
    /// keeps only the legacy reverse key.
    pub principal_index: Option<PrincipalIndex>,
    /// Seal every session value written, and require the seal on reads
    /// (see [`crate::seal`]); `None` stores the codec's bytes as they are.
    pub seal: Option<crate::seal::SealConfig>,
    /// How long after this process wrote a session's reverse key a save
    /// that keeps the session's user leaves the key alone (at most a day).
    /// The key is written with an expiry this much longer than the
    /// session's, so it still outlives the session. The original rewrites
    /// it on every save, a third request per save; [`Duration::ZERO`] does
    /// that. What the window trades is in `sessions/renewal.rs`: a lost
    /// reverse key comes back within the window rather than at the next
    /// save.
    pub reverse_key_refresh: Duration,
}

/// The default [`SessionsConfig::reverse_key_refresh`].
pub const DEFAULT_REVERSE_KEY_REFRESH: Duration = Duration::from_secs(60);

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            timeout: Ttl::NEVER,
            update_only: false,
            principal: None,
            id_length: DEFAULT_ID_LENGTH,
            codec: Codec::Json,
            key_prefix: String::new(),
            local_policy: LocalPolicy::Validate,
            conflict: ConflictPolicy::Merge,
            field_conflict: FieldConflict::Mine,
            max_save_attempts: 40,
            backoff: Backoff::default(),
            principal_index: None,
            seal: None,
            reverse_key_refresh: DEFAULT_REVERSE_KEY_REFRESH,
        }
    }
}

impl SessionsConfig {
    /// Checks every field; the first problem is an [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        check_length_config(self.id_length)?;
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self
            .key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "key_prefix {:?} contains whitespace or control characters",
                self.key_prefix
            ));
        }
        let longest = self.key_prefix.len() + MAX_ID_LENGTH + COMPANION_SUFFIX.len();
        if longest > MAX_KEY_LEN {
            return bad(format!(
                "key_prefix is {} bytes; keys would exceed {MAX_KEY_LEN} bytes",
                self.key_prefix.len()
            ));
        }
        if let Some(p) = &self.principal
            && (p.is_empty() || p == crate::session::ID_FIELD)
        {
            return bad(format!("principal field {p:?} is not usable"));
        }
        if !(1..=100).contains(&self.max_save_attempts) {
            return bad(format!(
                "max_save_attempts {} is outside 1..=100",
                self.max_save_attempts
            ));
        }
        if self.backoff.base_delay > self.backoff.max_delay
            || self.backoff.max_delay > Duration::from_secs(10)
        {
            return bad(format!(
                "backoff {:?} needs base_delay <= max_delay <= 10 s",
                self.backoff
            ));
        }
        if let Some(index) = &self.principal_index {
            if self.principal.is_none() {
                return bad("principal_index needs the `principal` field configured".into());
            }
            if !(1..=10_000).contains(&index.max_members) {
                return bad(format!(
                    "principal_index.max_members {} is outside 1..=10000",
                    index.max_members
                ));
            }
            if let PrincipalKeying::HmacSha256 { secret, .. } = &index.keying
                && secret.len() < 16
            {
                return bad("the principal index HMAC secret is shorter than 16 bytes".into());
            }
        }
        if let Some(seal) = &self.seal
            && self.codec == Codec::Storable
            && !seal.allow_storable
        {
            return bad(
                "the Storable codec with a seal: Perl nodes cannot open sealed values, and \
                 Storable is only for sharing sessions with them. Use the JSON codec, or say \
                 that no Perl node reads these values (allow_storable, \
                 --seal-allow-storable)"
                    .into(),
            );
        }
        if self.reverse_key_refresh > Duration::from_secs(86_400) {
            return bad(format!(
                "reverse_key_refresh {:?} is longer than a day",
                self.reverse_key_refresh
            ));
        }
        if let LocalPolicy::MaxAge(d) = self.local_policy
            && d.is_zero()
        {
            return bad("LocalPolicy::MaxAge must be longer than zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        SessionsConfig::default().validate().unwrap();
        let cases = [
            SessionsConfig {
                id_length: 8,
                ..Default::default()
            },
            SessionsConfig {
                key_prefix: "a b".into(),
                ..Default::default()
            },
            SessionsConfig {
                key_prefix: "p".repeat(200),
                ..Default::default()
            },
            SessionsConfig {
                principal: Some(String::new()),
                ..Default::default()
            },
            SessionsConfig {
                max_save_attempts: 0,
                ..Default::default()
            },
            SessionsConfig {
                local_policy: LocalPolicy::MaxAge(Duration::ZERO),
                ..Default::default()
            },
            SessionsConfig {
                backoff: Backoff {
                    base_delay: Duration::from_millis(9),
                    max_delay: Duration::from_millis(1),
                },
                ..Default::default()
            },
            SessionsConfig {
                principal_index: Some(PrincipalIndex::default()),
                ..Default::default()
            },
            SessionsConfig {
                reverse_key_refresh: Duration::from_secs(86_401),
                ..Default::default()
            },
            SessionsConfig {
                principal: Some("uid".into()),
                principal_index: Some(PrincipalIndex {
                    keying: PrincipalKeying::HmacSha256 {
                        secret: b"short".to_vec(),
                        reverse_key_too: false,
                    },
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        for c in cases {
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(_))),
                "{c:?}"
            );
        }
    }
}

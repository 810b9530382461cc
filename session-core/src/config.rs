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
    MaxAge(Duration),
}

/// What a save does when another writer changed the session since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Re-read the session, re-apply this handle's own changes field by field
    /// (the fields it set or removed win, all others keep the other writer's
    /// values), and try again, up to `max_save_attempts`. The default.
    #[default]
    Merge,
    /// Give up at once with [`Error::Conflict`]; nothing is written and the
    /// caller decides (reload, retry, report).
    Fail,
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
/// | `max_save_attempts` | — | 5 |
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
    /// Upper bound on write attempts of one save (1 to 100).
    pub max_save_attempts: u32,
}

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
            max_save_attempts: 5,
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
        ];
        for c in cases {
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(_))),
                "{c:?}"
            );
        }
    }
}

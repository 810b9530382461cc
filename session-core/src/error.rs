//! The one error type of session-core, shared by every [`Store`](crate::Store).
//!
//! Backends keep richer private errors and convert them into this enum with
//! one `From`, so that callers match on one set of variants whatever the
//! backend. Callers that only want a policy ("retry?", "tell the user?") use
//! the classifiers ([`Error::kind`], [`Error::is_retryable`], ...) instead of
//! matching on messages.

use std::time::Duration;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a session store.
///
/// Input errors (`InvalidKey`, `InvalidSessionId`, `ValueTooLarge`,
/// `InvalidConfig`) are always raised before any I/O, so they never leave a
/// half-written value behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key broke the key rules (empty, longer than 250 bytes, whitespace or
    /// control characters). Raised before any I/O.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key, lossily printed.
        key: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A session id is not hex of an accepted length. Raised before any I/O.
    #[error("invalid session id {id:?}: {reason}")]
    InvalidSessionId {
        /// The offending id (truncated to 80 characters).
        id: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A value is larger than the store accepts; nothing was written.
    #[error("value of {size} bytes exceeds the store's limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the rejected value.
        size: usize,
        /// The store's item size limit.
        limit: usize,
    },

    /// A stored value carries memcached flags that name no codec this build knows.
    #[error("unknown codec for flags {flags:#x}{hint}")]
    UnknownCodec {
        /// The flags read from the store.
        flags: u32,
        /// Extra words for flags we know about but cannot decode yet.
        hint: &'static str,
    },

    /// The value under a session key is not a session (for example the raw
    /// string of a reverse-principal key, flags 0).
    #[error("value under key {key:?} is not a session: {reason}")]
    NotASession {
        /// The key that was read.
        key: String,
        /// Why it is not a session.
        reason: String,
    },

    /// A session could not be encoded.
    #[error("cannot encode session with {codec}: {message}")]
    Encode {
        /// Codec name.
        codec: &'static str,
        /// What the encoder said.
        message: String,
    },

    /// Stored bytes could not be decoded by the codec their flags name.
    #[error("cannot decode value with {codec}: {message}")]
    Decode {
        /// Codec name.
        codec: &'static str,
        /// What the decoder said.
        message: String,
    },

    /// A typed session field could not be converted to or from the caller's type.
    #[error("session field {field:?}: {message}")]
    Field {
        /// The field name.
        field: String,
        /// What serde said.
        message: String,
    },

    /// The store does not offer an optional capability (see [`crate::Capabilities`]).
    #[error("this store does not support {capability}")]
    Unsupported {
        /// The capability, e.g. `"scan"`.
        capability: &'static str,
    },

    /// A never-written (`update_only`) session's id was taken by another
    /// writer before its first save. The id belongs to someone else now, so
    /// retrying the save can only fail the same way: start a new session.
    #[error("session id {id:?} was taken by another writer before this session's first save")]
    IdTaken {
        /// The session id.
        id: String,
    },

    /// An optimistic save kept losing races and gave up (bounded retries),
    /// or the conflict policy is `Fail`. Nothing was written by the last attempt.
    #[error("session {key:?} was changed concurrently; gave up after {attempts} attempt(s)")]
    Conflict {
        /// The session key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },

    /// The session was deleted or expired while this handle held it; the save
    /// was refused so a logged-out session cannot be resurrected.
    #[error("session {id:?} no longer exists in the store")]
    SessionGone {
        /// The session id.
        id: String,
    },

    /// The handle was deleted already.
    #[error("session {id:?} was deleted through this handle")]
    Deleted {
        /// The session id.
        id: String,
    },

    /// The in-memory store is at its memory limit even after dropping expired items.
    #[error("store is full: {needed} bytes needed, {used} of {limit} bytes in use")]
    StoreFull {
        /// Bytes this write needs.
        needed: usize,
        /// Bytes in use.
        used: usize,
        /// Configured limit.
        limit: usize,
    },

    /// An operation did not finish within its deadline.
    #[error("{operation} on {server} timed out after {after:?} ({delivery})")]
    Timeout {
        /// What was attempted (`"connect"`, `"get"`, ...).
        operation: &'static str,
        /// The server address.
        server: String,
        /// The deadline that ran out.
        after: Duration,
        /// Whether the request may have reached the server.
        delivery: Delivery,
    },

    /// A server cannot be reached (refused, reset, marked down).
    #[error("server {server} unavailable: {message} ({delivery})")]
    Unavailable {
        /// The server address.
        server: String,
        /// What happened.
        message: String,
        /// Whether the request may have reached the server.
        delivery: Delivery,
    },

    /// A server answered something the protocol does not allow.
    #[error("protocol error from {server}: {message}")]
    Protocol {
        /// The server address.
        server: String,
        /// What was wrong.
        message: String,
    },

    /// A configuration value is invalid (raised by `validate()`).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// Another writer changed the same fields to other values since this
    /// handle read the session, and the field-conflict policy is `Fail`.
    /// Nothing was written.
    #[error("session {key:?}: fields {fields:?} were changed concurrently to other values")]
    FieldConflict {
        /// The session key.
        key: String,
        /// The fields both writers changed.
        fields: Vec<String>,
    },
}

/// Whether a failed request may have been applied by the server.
///
/// A request that was never sent (refused connect, server marked down, no
/// free connection) can be retried anywhere. One that went out and then
/// timed out or lost its connection may have been applied: a retried `add`
/// would find its own write and report `Exists`, so conditional writes must
/// check what is stored before retrying (as [`crate::Sessions::create`] does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The request certainly did not reach the server.
    NotSent,
    /// The request was sent; its outcome is unknown.
    Unknown,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::NotSent => "request not sent",
            Delivery::Unknown => "request sent, outcome unknown",
        })
    }
}

/// How a caller may retry after an [`Error`], in the manner of redis-rs's
/// `RetryMethod`. From [`Error::retry_method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMethod {
    /// Retrying the same call cannot succeed (bad input, bad data,
    /// misconfiguration, an id owned by someone else).
    NoRetry,
    /// Nothing reached the server: the same call may be retried as it is,
    /// after a backoff.
    Retry,
    /// The request may have been applied. Idempotent calls (`get`, `set`,
    /// `delete`, `touch`) may be retried; a conditional write (`add`, `cas`,
    /// `delete_if`) must first read what the store holds.
    RetryIfIdempotent,
    /// Another writer won: read the current state again, re-apply the
    /// change, and write again.
    Reload,
}

/// The coarse class of an [`Error`], for policy decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input was rejected before any I/O; retrying cannot help.
    InvalidInput,
    /// Stored data could not be understood (codec, not-a-session).
    Data,
    /// The store lacks a capability.
    Unsupported,
    /// A concurrent writer won (conflict, session gone).
    Conflict,
    /// The store is full.
    Capacity,
    /// A deadline ran out; the operation may or may not have been applied.
    Timeout,
    /// The server could not be reached or misbehaved.
    Io,
    /// Misconfiguration.
    Config,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidKey { .. }
            | Error::InvalidSessionId { .. }
            | Error::ValueTooLarge { .. }
            | Error::Encode { .. }
            | Error::Field { .. }
            | Error::Deleted { .. } => ErrorKind::InvalidInput,
            Error::UnknownCodec { .. } | Error::NotASession { .. } | Error::Decode { .. } => {
                ErrorKind::Data
            }
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Conflict { .. }
            | Error::SessionGone { .. }
            | Error::IdTaken { .. }
            | Error::FieldConflict { .. } => ErrorKind::Conflict,
            Error::StoreFull { .. } => ErrorKind::Capacity,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Unavailable { .. } | Error::Protocol { .. } => ErrorKind::Io,
            Error::InvalidConfig(_) => ErrorKind::Config,
        }
    }

    /// True when the same call may succeed later (timeouts, unreachable
    /// servers, lost races). Input and data errors are never retryable, and
    /// neither is [`Error::IdTaken`]. [`Error::retry_method`] says how.
    pub fn is_retryable(&self) -> bool {
        self.retry_method() != RetryMethod::NoRetry
    }

    /// How the failed call may be retried, if at all.
    pub fn retry_method(&self) -> RetryMethod {
        match self {
            Error::Timeout { delivery, .. } | Error::Unavailable { delivery, .. } => match delivery
            {
                Delivery::NotSent => RetryMethod::Retry,
                Delivery::Unknown => RetryMethod::RetryIfIdempotent,
            },
            Error::Conflict { .. } | Error::FieldConflict { .. } => RetryMethod::Reload,
            _ => RetryMethod::NoRetry,
        }
    }

    /// Whether the failed request may have been applied: `Some(Delivery)`
    /// for I/O failures, `None` for errors raised without I/O or answered
    /// by the server.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            Error::Timeout { delivery, .. } | Error::Unavailable { delivery, .. } => {
                Some(*delivery)
            }
            _ => None,
        }
    }

    /// True for a deadline that ran out.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True when a concurrent writer won.
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// True when the caller's input was at fault.
    pub fn is_invalid_input(&self) -> bool {
        self.kind() == ErrorKind::InvalidInput
    }

    /// True for a server that could not be reached or misbehaved.
    pub fn is_io(&self) -> bool {
        self.kind() == ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifiers_follow_kind() {
        let t = Error::Timeout {
            operation: "get",
            server: "127.0.0.1:1".into(),
            after: Duration::from_millis(5),
            delivery: Delivery::Unknown,
        };
        assert!(t.is_timeout() && t.is_retryable() && !t.is_invalid_input());
        assert_eq!(t.retry_method(), RetryMethod::RetryIfIdempotent);
        let u = Error::Unavailable {
            server: "127.0.0.1:1".into(),
            message: "refused".into(),
            delivery: Delivery::NotSent,
        };
        assert_eq!(u.retry_method(), RetryMethod::Retry);
        let taken = Error::IdTaken { id: "ab".into() };
        assert!(taken.is_conflict() && !taken.is_retryable());
        let k = Error::InvalidKey {
            key: "a b".into(),
            reason: "contains whitespace",
        };
        assert!(k.is_invalid_input() && !k.is_retryable());
        assert!(
            Error::Conflict {
                key: "k".into(),
                attempts: 3
            }
            .is_conflict()
        );
    }
}

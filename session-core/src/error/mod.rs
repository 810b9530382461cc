//! The one error type of session-core, shared by every [`Store`](crate::Store).
//!
//! Backends keep richer errors of their own and convert them into this enum
//! with one `From` each (built with the constructors of `build.rs`, shared
//! by every backend), so that callers match on one set of variants whatever
//! the backend. Callers that only want a policy ("retry?", "tell the
//! user?") use the classifiers ([`Error::kind`], [`Error::retry_method`],
//! [`Error::delivery`], ...) instead of matching on messages.
//!
//! # What each error means, and what to do
//!
//! The kind says what happened, the retry method what may be tried again,
//! and the delivery whether a failed request may have been applied (only
//! errors of I/O have one). One test per row checks the first three.
//!
//! | variant | [`kind`](Error::kind) | [`retry_method`](Error::retry_method) | [`delivery`](Error::delivery) | what the caller should do |
//! |---|---|---|---|---|
//! | [`InvalidKey`](Error::InvalidKey) | `InvalidInput` | `NoRetry` | `None` | fix the key; nothing was sent |
//! | [`InvalidSessionId`](Error::InvalidSessionId) | `InvalidInput` | `NoRetry` | `None` | treat as "no session" (an old or forged cookie): start a new one |
//! | [`ValueTooLarge`](Error::ValueTooLarge) | `InvalidInput` | `NoRetry` | `None` | keep less in the session; nothing was written |
//! | [`Encode`](Error::Encode) | `InvalidInput` | `NoRetry` | `None` | change the data (too deep, or not representable in the codec) |
//! | [`Field`](Error::Field) | `InvalidInput` | `NoRetry` | `None` | read or write the field as the type it holds; never `_session_id` |
//! | [`UnknownCodec`](Error::UnknownCodec) | `Data` | `NoRetry` | `None` | a value from a newer or foreign writer: upgrade, or delete the item |
//! | [`NotASession`](Error::NotASession) | `Data` | `NoRetry` | `None` | the key holds something else (a reverse key): treat as no session |
//! | [`Decode`](Error::Decode) | `Data` | `NoRetry` | `None` | corrupt stored bytes: log the cause chain; delete, start a new session |
//! | [`Seal`](Error::Seal) | `Data` | `NoRetry` | `None` | a sealed value that does not open (tampered, truncated, a key not configured), or a plain one while sealing is required: see [`SealProblem`]; `load` answers it as no session |
//! | [`Unsupported`](Error::Unsupported) | `Unsupported` | `NoRetry` | `None` | check [`Capabilities`](crate::Capabilities) first; use the fallback |
//! | [`IdTaken`](Error::IdTaken) | `Conflict` | `NoRetry` | `None` | another writer owns the id: create a new session (a new id) |
//! | [`Conflict`](Error::Conflict) | `Conflict` | `Reload` | `None` | load again, re-apply the change, save (or use `Sessions::update`) |
//! | [`FieldConflict`](Error::FieldConflict) | `Conflict` | `Reload` | `None` | load again, decide the named fields, save |
//! | [`SessionGone`](Error::SessionGone) | `Gone` | `NoRetry` | `None` | the user is logged out (or it expired): start a new session |
//! | [`Deleted`](Error::Deleted) | `Misuse` | `NoRetry` | `None` | a bug of the caller: drop a handle once it is deleted |
//! | [`StoreFull`](Error::StoreFull) | `Capacity` | `NoRetry` | `None` | raise the store's limit or keep less; expired items were dropped already |
//! | [`Timeout`](Error::Timeout) | `Timeout` | `Retry` if `NotSent`, else `RetryIfIdempotent` | `Some` | retry after a backoff; a conditional write that was sent reads first |
//! | [`Unavailable`](Error::Unavailable) | `Io` | `Retry` if `NotSent`, else `RetryIfIdempotent` | `Some` | as for `Timeout`; the cause chain says what the OS or client saw |
//! | [`Protocol`](Error::Protocol) | `Io` | `NoRetry` | `Some` | a client/server mismatch (a proxy, a version) or a bug: log it; a conditional write that was sent reads first |
//! | [`InvalidConfig`](Error::InvalidConfig) | `Config` | `NoRetry` | `None` | fix the configuration or the deployment |
//!
//! Why the rows that look alike differ:
//!
//! - `IdTaken` is a lost race (kind `Conflict`, counted with the conflicts),
//!   but reloading cannot help: the id belongs to someone else's session,
//!   which must never be merged into. It is the one `Conflict` that says
//!   `NoRetry`.
//! - `SessionGone` is not a lost race to reload after: there is nothing
//!   left to merge into, and writing it again would resurrect a logged-out
//!   session. Its own kind, `Gone`, keeps it out of
//!   [`Error::is_conflict`], whose callers reload and retry.
//! - `Deleted` is raised without I/O like bad input, but no input was bad:
//!   the code saved (or rotated) a handle it had deleted. Kind `Misuse`
//!   (an HTTP service answers 500, not 400).
//! - `Protocol` went over the wire, so it has a delivery (a garbled answer
//!   to an `add` may hide an applied `add`), but retrying the same call
//!   would most likely get the same answer: `NoRetry`.
//!
//! # Causes
//!
//! Errors built from another error keep it: [`std::error::Error::source`]
//! returns the serde, MessagePack, Storable ([`StorableError`]), I/O or
//! client error, and `Display` prints only this error's own words, so
//! `anyhow`'s `{:#}` or [`Error::chain`] prints each cause once.
//!
//! [`StorableError`]: crate::storable::StorableError

mod build;
mod chain;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use chain::Chain;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause an [`Error`] keeps (a serde, I/O or client error), returned by
/// its [`source`](std::error::Error::source). Downcast it to the concrete type
/// when a caller needs more than its message.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    #[error("cannot encode session with {codec}{}", words(.message))]
    Encode {
        /// Codec name.
        codec: &'static str,
        /// What went wrong, beyond the cause (may be empty).
        message: String,
        /// The encoder's own error, if one failed.
        #[source]
        source: Option<Cause>,
    },

    /// Stored bytes could not be decoded by the codec their flags name.
    #[error("cannot decode value with {codec}{}", words(.message))]
    Decode {
        /// Codec name.
        codec: &'static str,
        /// What went wrong, beyond the cause (may be empty).
        message: String,
        /// The decoder's own error ([`StorableError`](crate::storable::StorableError),
        /// serde's, an I/O error of inflating), if one failed.
        #[source]
        source: Option<Cause>,
    },

    /// A session value failed the seal (see [`crate::seal`]): it does not
    /// open under the configured keys, or it is not sealed while sealing is
    /// required. Never a partially decoded session. `Sessions::load`
    /// answers it like an unknown id (counted in
    /// [`SessionStats`](crate::SessionStats) and logged with the key id).
    #[error("value under key {key:?} {problem}{}", key_id_words(*.key_id))]
    Seal {
        /// The store key that was read.
        key: String,
        /// The key id the value names, when it names one.
        key_id: Option<u32>,
        /// What is wrong with it.
        problem: SealProblem,
    },

    /// A typed session field could not be converted to or from the caller's
    /// type, or may not be written. [`Error::field`] builds one.
    #[error("session field {field:?}{}", words(.message))]
    Field {
        /// The field name.
        field: String,
        /// What went wrong, beyond the cause (may be empty).
        message: String,
        /// serde's error, if the conversion failed.
        #[source]
        source: Option<Cause>,
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

    /// The handle was deleted already: the caller saved or rotated a
    /// session it had deleted (a bug of the caller, kind `Misuse`).
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

    /// A server cannot be reached (refused, reset, marked down). Backends
    /// build it with [`Error::connect_failed`], [`Error::request_failed`] or
    /// [`Error::marked_down`].
    #[error("server {server} unavailable: {message} ({delivery})")]
    Unavailable {
        /// The server address.
        server: String,
        /// What happened.
        message: String,
        /// Whether the request may have reached the server.
        delivery: Delivery,
        /// The OS's or client's error, if there was one.
        #[source]
        source: Option<Cause>,
    },

    /// A server answered something the protocol does not allow, or an
    /// error where the request cannot fail.
    #[error("protocol error from {server}: {message}")]
    Protocol {
        /// The server address.
        server: String,
        /// What was wrong.
        message: String,
        /// Whether the request may have been applied (a garbled answer to a
        /// request that went out: `Unknown`).
        delivery: Delivery,
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

/// Why a value failed the seal ([`Error::Seal`]). The words never hold key
/// material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealProblem {
    /// Shorter than a seal's header and tag: cut short.
    Truncated,
    /// A seal format version this build does not know.
    UnknownVersion(u8),
    /// Sealed under a key id that is not in the keyring (a key retired too
    /// early, or another deployment's value).
    UnknownKey,
    /// The tag does not verify: the bytes or flags were changed, the value
    /// was copied under another store key, or it was sealed under other key
    /// material with the same id. These cannot be told apart, on purpose.
    Tampered,
    /// A session value without the seal while sealing is required (and
    /// `accept_unsealed` is off).
    Unsealed,
    /// A sealed value read without any keys configured.
    NoKeys,
}

impl std::fmt::Display for SealProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealProblem::Truncated => f.write_str("is a truncated sealed value"),
            SealProblem::UnknownVersion(v) => write!(f, "is sealed in unknown format version {v}"),
            SealProblem::UnknownKey => f.write_str("is sealed under a key not in the keyring"),
            SealProblem::Tampered => f.write_str(
                "does not open: tampered, copied from another key, or sealed under other key material",
            ),
            SealProblem::Unsealed => {
                f.write_str("is not sealed, and sealing is required (accept_unsealed is off)")
            }
            SealProblem::NoKeys => f.write_str("is sealed, and no seal keys are configured"),
        }
    }
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
    /// A concurrent writer won the race; [`Error::retry_method`] says
    /// whether reloading helps.
    Conflict,
    /// The session no longer exists in the store (deleted, logged out or
    /// expired while a handle held it).
    Gone,
    /// The caller broke the API's rules (used a deleted handle): a bug in
    /// the calling code, raised without I/O.
    Misuse,
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
            | Error::Field { .. } => ErrorKind::InvalidInput,
            Error::UnknownCodec { .. }
            | Error::NotASession { .. }
            | Error::Decode { .. }
            | Error::Seal { .. } => ErrorKind::Data,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Conflict { .. } | Error::IdTaken { .. } | Error::FieldConflict { .. } => {
                ErrorKind::Conflict
            }
            Error::SessionGone { .. } => ErrorKind::Gone,
            Error::Deleted { .. } => ErrorKind::Misuse,
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

    /// How the failed call may be retried, if at all (see the table in the
    /// [module docs](self)).
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
    /// for failures of I/O (including a garbled answer), `None` for errors
    /// raised without I/O or from an answer the server gave.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            Error::Timeout { delivery, .. }
            | Error::Unavailable { delivery, .. }
            | Error::Protocol { delivery, .. } => Some(*delivery),
            _ => None,
        }
    }

    /// True for a deadline that ran out.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True when a concurrent writer won (kind `Conflict`; not a session
    /// that is gone).
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

/// `" (key id N)"`, or nothing.
fn key_id_words(key_id: Option<u32>) -> String {
    key_id.map_or_else(String::new, |id| format!(" (key id {id})"))
}

/// `": words"`, or nothing for empty words: the context a variant adds to
/// its cause, which `Display` leaves to the chain.
fn words(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

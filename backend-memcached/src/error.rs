//! The crate's own error enum, richer than [`session_core::Error`].
//!
//! Inside the crate we need to tell apart failures that look the same to a
//! caller but not to the failure policy: a refused connect (the request was
//! never sent, so rehashing to another server is safe) versus a connection
//! that broke after the request went out (it may have been applied). Callers
//! of the [`Store`](session_core::Store) trait see one
//! [`session_core::Error`] through the single `From` impl at the bottom.

use std::io;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to memcached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (struct or URL) is invalid.
    #[error("invalid memcached configuration: {0}")]
    InvalidConfig(String),

    /// A key or value was rejected before any I/O (from
    /// [`session_core::store::check_write`],
    /// [`session_core::key::validate_key`], or a value over the server's
    /// own `item_size_max`).
    #[error(transparent)]
    Input(#[from] session_core::Error),

    /// The TCP connect failed (refused, unreachable, DNS). The request was
    /// never sent.
    #[error("connect to {server} failed: {source}")]
    Connect {
        /// The server address.
        server: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The TCP connect did not finish within the connect timeout. The
    /// request was never sent.
    #[error("connect to {server} timed out after {after:?}")]
    ConnectTimeout {
        /// The server address.
        server: String,
        /// The connect timeout.
        after: Duration,
    },

    /// Reading or writing an open connection failed, or the server closed it.
    #[error("{operation} on {server} failed: {source}")]
    Io {
        /// The request (`"get"`, `"set"`, ...).
        operation: &'static str,
        /// The server address.
        server: String,
        /// The OS error (`UnexpectedEof` when the server closed the connection).
        #[source]
        source: io::Error,
        /// False when no byte of the request can have reached the server
        /// (the connection broke before or while the first bytes were
        /// written, or while the server's settings were being read).
        sent: bool,
    },

    /// A request did not get its full answer within its deadline.
    #[error("{operation} on {server} timed out after {after:?}")]
    Timeout {
        /// The request (`"get"`, `"set"`, ...).
        operation: &'static str,
        /// The server address.
        server: String,
        /// The deadline that ran out.
        after: Duration,
        /// False when the deadline ran out before any byte of the request
        /// was written (while reading the server's settings, say).
        sent: bool,
    },

    /// The endpoint closed the connection on a meta command (`mg`, `ms`,
    /// `md`) but answers classic ones: a proxy such as twemproxy, or a
    /// memcached older than 1.6. Use `protocol=classic` for it.
    #[error(
        "{server} does not speak the memcached meta protocol (it closed the connection on \
         `{command}` but answers classic commands; a proxy such as twemproxy?): \
         use protocol=classic for it"
    )]
    MetaUnsupported {
        /// The endpoint address.
        server: String,
        /// The meta command it refused.
        command: &'static str,
    },

    /// No pooled connection became free within the I/O timeout (every
    /// connection of the pool was busy). Says nothing about the server's
    /// health, so it does not mark the server down.
    #[error("no free connection to {server} within {after:?}")]
    PoolTimeout {
        /// The server address.
        server: String,
        /// How long we waited.
        after: Duration,
    },

    /// The server is marked down after a failure and its retry time has not
    /// come yet; the call failed fast without I/O.
    #[error("server {server} is marked down (next retry in {retry_in:?})")]
    MarkedDown {
        /// The server address.
        server: String,
        /// Time left until the next attempt is allowed.
        retry_in: Duration,
    },

    /// With [`FailurePolicy::Rehash`](crate::FailurePolicy::Rehash), every
    /// candidate server for a key was down.
    #[error("no live server for key {key:?} after {tries} rehash tries")]
    NoLiveServer {
        /// The key (lossily printed).
        key: String,
        /// How many buckets were tried.
        tries: usize,
    },

    /// The server refused a value as too large (`SERVER_ERROR object too
    /// large for cache`): its item limit includes per-item overhead, so it
    /// can be slightly below the configured `max_value_size`.
    #[error("server {server} rejected a value of {size} bytes as too large")]
    ServerTooLarge {
        /// The server address.
        server: String,
        /// Size of the rejected value.
        size: usize,
        /// The largest value the server stores under that key and flags,
        /// when its `item_size_max` is known (`stats settings`).
        limit: Option<usize>,
    },

    /// The server runs with `-C`: it reports CAS unique 0 for every item,
    /// so no version can be read and no save can be conditional.
    #[error("memcached at {server} runs with -C (CAS disabled); memorycached needs CAS")]
    CasDisabled {
        /// The server address.
        server: String,
    },

    /// The server answered `SERVER_ERROR`, `CLIENT_ERROR` or `ERROR`.
    #[error("server {server} answered an error: {message}")]
    ServerError {
        /// The server address.
        server: String,
        /// The error line, without the line ending.
        message: String,
    },

    /// The server answered something the protocol does not allow.
    #[error("protocol error from {server}: {message}")]
    Protocol {
        /// The server address.
        server: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// True when the request was certainly never sent, so trying another
    /// server (Cache::Memcached's rehash) cannot apply it twice.
    pub(crate) fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::MarkedDown { .. }
                | Error::Io { sent: false, .. }
                | Error::Timeout { sent: false, .. }
        )
    }

    /// True when the server failed to carry the request (connect, I/O or
    /// deadline), whether or not it was sent: a read that fails so may be
    /// asked of another server, since reading twice changes nothing.
    pub(crate) fn is_transport_failure(&self) -> bool {
        self.is_connect_failure() || matches!(self, Error::Io { .. } | Error::Timeout { .. })
    }

    /// The same error, noting that the request was certainly not sent
    /// (the failure happened before its first byte was written).
    pub(crate) fn unsent(self) -> Self {
        match self {
            Error::Io {
                operation,
                server,
                source,
                ..
            } => Error::Io {
                operation,
                server,
                source,
                sent: false,
            },
            Error::Timeout {
                operation,
                server,
                after,
                ..
            } => Error::Timeout {
                operation,
                server,
                after,
                sent: false,
            },
            other => other,
        }
    }

    /// Whether the request may have reached the server, as the conversion
    /// into [`session_core::Error`] reports it.
    pub(crate) fn delivery(&self) -> Option<session_core::Delivery> {
        use session_core::Delivery;
        match self {
            Error::Io { sent: true, .. } | Error::Timeout { sent: true, .. } => {
                Some(Delivery::Unknown)
            }
            Error::Io { sent: false, .. }
            | Error::Timeout { sent: false, .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::PoolTimeout { .. }
            | Error::MarkedDown { .. }
            | Error::NoLiveServer { .. } => Some(Delivery::NotSent),
            _ => None,
        }
    }

    /// True when the failure says the server itself is unhealthy, so it
    /// should be marked down. A server that answered with an error line is
    /// alive and stays up.
    pub(crate) fn marks_down(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::Io { .. }
                | Error::Timeout { .. }
                | Error::Protocol { .. }
        )
    }
}

impl From<Error> for session_core::Error {
    fn from(e: Error) -> Self {
        use session_core::{Delivery, Error as Core};
        // Failures before the request was written are `NotSent`: a caller
        // may retry anything. Failures after are `Unknown`: the server may
        // have applied the request. `Error::delivery` is the one place
        // that decides which.
        let delivery = e.delivery().unwrap_or(Delivery::Unknown);
        match e {
            Error::InvalidConfig(message) => Core::InvalidConfig(message),
            Error::Input(inner) => inner,
            Error::Connect { server, source } => Core::Unavailable {
                server,
                message: format!("connect failed: {source}"),
                delivery,
            },
            Error::ConnectTimeout { server, after } => Core::Timeout {
                operation: "connect",
                server,
                after,
                delivery,
            },
            Error::Io {
                operation,
                server,
                source,
                ..
            } => Core::Unavailable {
                server,
                message: format!("{operation} failed: {source}"),
                delivery,
            },
            Error::Timeout {
                operation,
                server,
                after,
                ..
            } => Core::Timeout {
                operation,
                server,
                after,
                delivery,
            },
            Error::PoolTimeout { server, after } => Core::Timeout {
                operation: "pool checkout",
                server,
                after,
                delivery,
            },
            Error::MarkedDown { server, retry_in } => Core::Unavailable {
                server,
                message: format!("marked down, next retry in {retry_in:?}"),
                delivery,
            },
            Error::NoLiveServer { key, tries } => Core::Unavailable {
                server: "(all candidates)".to_owned(),
                message: format!("no live server for key {key:?} after {tries} tries"),
                delivery,
            },
            Error::ServerTooLarge { size, limit, .. } => Core::ValueTooLarge {
                size,
                // The limit comes from the server's `item_size_max`, learned
                // when its first connection opened. Only an endpoint that
                // does not answer `stats settings` (a proxy) leaves it
                // unknown; then the one thing we know is that the limit is
                // below this value's size.
                limit: limit.unwrap_or(size.saturating_sub(1)),
            },
            // A deployment fault, not a transient one: retrying cannot help,
            // so it is reported as configuration (kind `Config`).
            e @ (Error::CasDisabled { .. } | Error::MetaUnsupported { .. }) => {
                Core::InvalidConfig(e.to_string())
            }
            Error::ServerError { server, message } | Error::Protocol { server, message } => {
                Core::Protocol { server, message }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use session_core::Delivery;

    use super::*;

    fn io(sent: bool) -> Error {
        Error::Io {
            operation: "add",
            server: "s:1".into(),
            source: io::ErrorKind::UnexpectedEof.into(),
            sent,
        }
    }

    fn timeout(sent: bool) -> Error {
        Error::Timeout {
            operation: "add",
            server: "s:1".into(),
            after: Duration::from_millis(5),
            sent,
        }
    }

    #[test]
    fn delivery_survives_the_conversion() {
        // Regression: a timeout or broken connection before the request's
        // first byte was written (say, while reading `stats settings`) was
        // reported as "sent, outcome unknown".
        for (e, expected) in [
            (io(true), Delivery::Unknown),
            (io(false), Delivery::NotSent),
            (timeout(true), Delivery::Unknown),
            (timeout(false), Delivery::NotSent),
            (
                Error::PoolTimeout {
                    server: "s:1".into(),
                    after: Duration::from_millis(5),
                },
                Delivery::NotSent,
            ),
            (
                Error::MarkedDown {
                    server: "s:1".into(),
                    retry_in: Duration::from_millis(5),
                },
                Delivery::NotSent,
            ),
        ] {
            // A full pool says the server is busy, not down: never rehashed.
            let rehashable = e.is_connect_failure() || matches!(e, Error::PoolTimeout { .. });
            let core = session_core::Error::from(e);
            assert_eq!(core.delivery(), Some(expected), "{core:?}");
            assert_eq!(rehashable, expected == Delivery::NotSent, "{core:?}");
        }
        assert_eq!(
            session_core::Error::from(io(true).unsent()).delivery(),
            Some(Delivery::NotSent)
        );
    }

    #[test]
    fn a_meta_refusing_endpoint_is_a_config_error_with_the_hint() {
        let core = session_core::Error::from(Error::MetaUnsupported {
            server: "127.0.0.1:22121".into(),
            command: "mg",
        });
        assert!(
            matches!(&core, session_core::Error::InvalidConfig(m) if m.contains("protocol=classic")),
            "{core:?}"
        );
        assert_eq!(core.delivery(), None);
    }
}

//! The crate's own error enum, richer than [`session_core::Error`].
//!
//! It tells apart failures that look the same to a caller of the
//! [`Store`](session_core::Store) trait but not to a failure policy: a
//! refused connect (the request was never sent, so rehashing to another
//! server is safe) versus a connection that broke after the request went out
//! (it may have been applied). Callers of the `Store` trait see one
//! [`session_core::Error`] through the single `From` impl at the bottom.
//!
//! The enum is public because [`RawConnection`](crate::raw::RawConnection),
//! the replicator's client, returns it as it is; its classifiers
//! ([`Error::delivery`], [`Error::is_connect_failure`],
//! [`Error::is_transport_failure`], [`Error::marks_down`]) are public so
//! that such a caller decides as the store does, without matching variants.

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

    /// memcached refused the credentials (`user:password@`) of a new
    /// connection: wrong user or password for its `-Y` file. Nothing else
    /// was sent; retrying cannot help, so it is a configuration error to a
    /// `Store` caller and does not mark the server down.
    #[error(
        "memcached at {server} refused the credentials of user {user:?} (wrong user or \
         password for its -Y file)"
    )]
    Unauthorized {
        /// The server address.
        server: String,
        /// The user name (never the password).
        user: String,
    },

    /// TLS with the server failed before any request was sent.
    #[error("TLS with {server} failed: {cause}: {detail}")]
    Tls {
        /// The server address.
        server: String,
        /// What went wrong, in a word.
        cause: TlsFailure,
        /// rustls's own words, or what happened to the connection.
        detail: String,
    },

    /// A new connection got no answer at all to its first request: nothing
    /// within the connect timeout, or the server closed it. A memcached
    /// serving TLS only (`-Z`) does either to a plaintext client, hence the
    /// hint; a hung or dying server does too.
    #[error(
        "{server} did not answer {step} ({detail}); a memcached serving TLS (-Z) does so to a \
         plaintext client: if it does, use memcacheds://"
    )]
    NoAnswer {
        /// The server address.
        server: String,
        /// The request that got no answer.
        step: &'static str,
        /// What happened instead: silence past the connect timeout, or a
        /// closed connection.
        detail: String,
        /// `Some(connect timeout)` when it was silence: to a `Store` caller
        /// that is a timeout, as a hung server's would be.
        silent_for: Option<Duration>,
    },
}

/// The operation a silent first request is reported as, through
/// [`session_core::Error::Timeout`].
const SILENT_FIRST_REQUEST: &str = "the first request of a new connection (a memcached serving \
     TLS, -Z, never answers a plaintext client: if it does, use memcacheds://)";

/// Why TLS with a server failed ([`Error::Tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate chain does not lead to a trusted CA (`ca=`
    /// or the system's roots), or is otherwise invalid.
    UntrustedCertificate,
    /// The server's certificate (or one of its chain) has expired or is not
    /// valid yet.
    ExpiredCertificate,
    /// The server's certificate is not issued for the name we connected to
    /// (its host, or `server_name=`).
    HostnameMismatch,
    /// The server answered in plaintext: the port does not serve TLS (use
    /// `memcached://`, or start memcached with `-Z`).
    NotTls,
    /// No handshake answer within the connect timeout: a plaintext
    /// memcached waits for a line end the ClientHello may not contain.
    HandshakeTimeout,
    /// The server refused our client certificate, or wanted one we did
    /// not give (`cert=`/`key=`; memcached's `ssl_verify_mode`).
    ClientCertificateRefused,
    /// Anything else (see the detail).
    Other,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFailure::UntrustedCertificate => "the server's certificate is not trusted",
            TlsFailure::ExpiredCertificate => "the server's certificate has expired",
            TlsFailure::HostnameMismatch => {
                "the server's certificate is not valid for its name (see server_name=)"
            }
            TlsFailure::NotTls => {
                "the server answered in plaintext: it does not serve TLS (memcached -Z) on this port"
            }
            TlsFailure::HandshakeTimeout => {
                "no TLS handshake answer: the port may not serve TLS (memcached -Z)"
            }
            TlsFailure::ClientCertificateRefused => {
                "the server refused or missed our client certificate (cert=, key=)"
            }
            TlsFailure::Other => "handshake failed",
        })
    }
}

impl Error {
    /// True when the request was certainly never sent, so trying another
    /// server (Cache::Memcached's rehash) cannot apply it twice.
    pub fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::MarkedDown { .. }
                | Error::Io { sent: false, .. }
                | Error::Timeout { sent: false, .. }
                | Error::NoAnswer { .. }
                | Error::Tls {
                    cause: TlsFailure::HandshakeTimeout,
                    ..
                }
        )
    }

    /// True when the server failed to carry the request (connect, I/O or
    /// deadline), whether or not it was sent: a read that fails so may be
    /// asked of another server, since reading twice changes nothing.
    pub fn is_transport_failure(&self) -> bool {
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
    /// into [`session_core::Error`] reports it: `None` for errors that are
    /// no failure to carry the request (bad input, configuration, an answer
    /// the server gave).
    pub fn delivery(&self) -> Option<session_core::Delivery> {
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
            | Error::NoLiveServer { .. }
            | Error::NoAnswer { .. }
            | Error::Tls {
                cause: TlsFailure::HandshakeTimeout,
                ..
            } => Some(Delivery::NotSent),
            _ => None,
        }
    }

    /// True when the failure says the server itself is unhealthy, so it
    /// should be marked down. A server that answered with an error line is
    /// alive and stays up.
    pub fn marks_down(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::Io { .. }
                | Error::Timeout { .. }
                | Error::Protocol { .. }
                | Error::NoAnswer { .. }
                | Error::Tls {
                    cause: TlsFailure::HandshakeTimeout,
                    ..
                }
        )
    }
}

impl From<Error> for session_core::Error {
    fn from(e: Error) -> Self {
        use session_core::{Delivery, Error as Core};
        // Failures before the request was written are `NotSent`: a caller
        // may retry anything. Failures after are `Unknown`: the server may
        // have applied the request. `Error::delivery` is the one place
        // that decides which; a garbled answer is `Unknown` too.
        let delivery = e.delivery().unwrap_or(Delivery::Unknown);
        match e {
            Error::InvalidConfig(message) => Core::InvalidConfig(message),
            Error::Input(inner) => inner,
            Error::Connect { server, source } => Core::connect_failed(server, source, delivery),
            Error::ConnectTimeout { server, after } => {
                Core::connect_timed_out(server, after, delivery)
            }
            Error::Io {
                operation,
                server,
                source,
                ..
            } => Core::request_failed(operation, server, source, delivery),
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
            Error::MarkedDown { server, retry_in } => Core::marked_down(server, retry_in, delivery),
            Error::NoLiveServer { key, tries } => Core::Unavailable {
                server: "(all candidates)".to_owned(),
                message: format!("no live server for key {key:?} after {tries} tries"),
                delivery,
                source: None,
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
            // So are refused credentials and a certificate that does not
            // verify: retrying cannot help, and nothing was sent.
            e @ (Error::CasDisabled { .. }
            | Error::MetaUnsupported { .. }
            | Error::Unauthorized { .. }
            | Error::Tls {
                cause:
                    TlsFailure::UntrustedCertificate
                    | TlsFailure::ExpiredCertificate
                    | TlsFailure::HostnameMismatch
                    | TlsFailure::NotTls
                    | TlsFailure::ClientCertificateRefused
                    | TlsFailure::Other,
                ..
            }) => Core::InvalidConfig(e.to_string()),
            // Silence: maybe a TLS/plaintext mix-up, maybe a hung server;
            // the message says which to suspect.
            // Silence is a timeout to a `Store` caller (as before this
            // was named); its operation carries the hint.
            Error::NoAnswer {
                server,
                silent_for: Some(after),
                ..
            } => Core::Timeout {
                operation: SILENT_FIRST_REQUEST,
                server,
                after,
                delivery,
            },
            Error::NoAnswer {
                server,
                step,
                detail,
                silent_for: None,
            } => Core::Unavailable {
                message: format!(
                    "no answer to {step} ({detail}); a memcached serving TLS (-Z) does so to a \
                     plaintext client: if it does, use memcacheds://"
                ),
                server,
                delivery,
                source: None,
            },
            Error::Tls {
                server,
                cause: cause @ TlsFailure::HandshakeTimeout,
                detail,
            } => Core::Unavailable {
                message: format!("TLS: {cause}: {detail}"),
                server,
                delivery,
                source: None,
            },
            Error::ServerError { server, message } | Error::Protocol { server, message } => {
                Core::Protocol {
                    server,
                    message,
                    delivery,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The crate's own error enum, converted into [`session_core::Error`] by one
//! `From` impl at the bottom, which decides each failure's
//! [`Delivery`](session_core::Delivery).
//!
//! The enum is public (configuration errors of [`RedisConfig`](crate::RedisConfig)
//! and `from_url` are this type); its classifiers [`Error::delivery`] and
//! [`Error::breaks_connection`] are public so a caller holding one decides
//! as the store does. Building one from a `redis::RedisError`
//! (`from_request`, `from_connect`) stays inside the crate: only it talks
//! to the client.

use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (struct or URL) is invalid.
    #[error("invalid redis configuration: {0}")]
    InvalidConfig(String),

    /// A key or value was rejected before any I/O.
    #[error(transparent)]
    Input(#[from] session_core::Error),

    /// Connecting (TCP, TLS, `AUTH`, `SELECT`) failed. No request was sent.
    #[error("connect to {server} failed: {source}")]
    Connect {
        /// The server address.
        server: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },

    /// Connecting did not finish within the connect timeout. No request was sent.
    #[error("connect to {server} timed out after {after:?}")]
    ConnectTimeout {
        /// The server address.
        server: String,
        /// The connect timeout.
        after: Duration,
    },

    /// The server refused our credentials or our user lacks a permission
    /// (`WRONGPASS`, `NOAUTH`, `NOPERM`): a deployment fault.
    #[error("{server} refused access: {message}")]
    Auth {
        /// The server address.
        server: String,
        /// The server's answer.
        message: String,
    },

    /// A connect failed recently and its backoff has not run out: the call
    /// failed fast without I/O.
    #[error("{server} is down (next connect attempt in {retry_in:?})")]
    MarkedDown {
        /// The server address.
        server: String,
        /// Time left until the next connect attempt.
        retry_in: Duration,
    },

    /// The connection broke around a request.
    #[error("{operation} on {server} failed: {source}")]
    Io {
        /// The request (`"get"`, `"cas"`, ...).
        operation: &'static str,
        /// The server address.
        server: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
        /// False when the request certainly did not leave this process.
        sent: bool,
    },

    /// A request got no full answer within the response timeout.
    #[error("{operation} on {server} timed out after {after:?}")]
    Timeout {
        /// The request.
        operation: &'static str,
        /// The server address.
        server: String,
        /// The response timeout.
        after: Duration,
    },

    /// The cluster could not serve the request (`CLUSTERDOWN`, `TRYAGAIN`,
    /// redirections left after the client's retries, no connection to the
    /// slot's node).
    #[error("{operation} on {server}: cluster unavailable: {message}")]
    Cluster {
        /// The request.
        operation: &'static str,
        /// The cluster's seed address.
        server: String,
        /// The client's or server's words.
        message: String,
    },

    /// The server answered an error (`ERR ...`, `OOM ...`, `READONLY`).
    #[error("{operation} on {server}: server error: {message}")]
    Server {
        /// The request.
        operation: &'static str,
        /// The server address.
        server: String,
        /// The error reply.
        message: String,
    },

    /// A key holds something this crate did not write (no item header, or
    /// another Redis type).
    #[error("key {key:?} on {server} holds a value not written by RedisStore")]
    Foreign {
        /// The server address.
        server: String,
        /// The key (with the configured prefix).
        key: String,
    },

    /// The server answered something our scripts never return.
    #[error("protocol error from {server}: {message}")]
    Protocol {
        /// The server address.
        server: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// Classifies a failed request's client error.
    pub(crate) fn from_request(
        operation: &'static str,
        server: &str,
        after: Duration,
        e: redis::RedisError,
    ) -> Error {
        use redis::{ErrorKind, ServerErrorKind};
        let server = server.to_owned();
        if e.is_timeout() {
            return Error::Timeout {
                operation,
                server,
                after,
            };
        }
        match e.kind() {
            ErrorKind::Io => Error::Io {
                operation,
                server,
                sent: !e.is_connection_refusal(),
                source: e,
            },
            ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm) => {
                Error::Auth {
                    server,
                    message: e.to_string(),
                }
            }
            ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading,
            ) => Error::Cluster {
                operation,
                server,
                message: e.to_string(),
            },
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => Error::Protocol {
                server,
                message: format!("{operation}: {e}"),
            },
            _ => Error::Server {
                operation,
                server,
                message: e.to_string(),
            },
        }
    }

    /// Classifies a failed connect.
    pub(crate) fn from_connect(server: &str, e: redis::RedisError) -> Error {
        use redis::{ErrorKind, ServerErrorKind};
        match e.kind() {
            ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm) => {
                Error::Auth {
                    server: server.to_owned(),
                    message: e.to_string(),
                }
            }
            // `SELECT 99` on a server with 16 databases, and the like.
            ErrorKind::Server(ServerErrorKind::ResponseError) => {
                Error::InvalidConfig(format!("{server} refused the connection's setup: {e}"))
            }
            _ => Error::Connect {
                server: server.to_owned(),
                source: e,
            },
        }
    }

    /// True when the connection that carried the request is broken and
    /// must be replaced (a timeout leaves it usable: a late answer is
    /// matched to its request and dropped).
    pub fn breaks_connection(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    /// Whether the request may have reached the server, as the conversion
    /// into [`session_core::Error`] reports it: `None` for errors that are
    /// no failure to carry the request (configuration, access, an answer
    /// the server gave).
    pub fn delivery(&self) -> Option<session_core::Delivery> {
        use session_core::Delivery;
        match self {
            Error::Io { sent: false, .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::MarkedDown { .. } => Some(Delivery::NotSent),
            Error::Io { sent: true, .. } | Error::Timeout { .. } | Error::Cluster { .. } => {
                Some(Delivery::Unknown)
            }
            _ => None,
        }
    }
}

impl From<Error> for session_core::Error {
    fn from(e: Error) -> Self {
        use session_core::{Delivery, Error as Core};
        // `Error::delivery` decides; an answer the server gave (an error
        // reply, a foreign value, a garbled reply) came from a request that
        // went out, so it is `Unknown` too.
        let delivery = e.delivery().unwrap_or(Delivery::Unknown);
        match e {
            Error::InvalidConfig(message) => Core::InvalidConfig(message),
            e @ Error::Auth { .. } => Core::InvalidConfig(e.to_string()),
            Error::Input(inner) => inner,
            Error::Connect { server, source } => Core::connect_failed(server, source, delivery),
            Error::ConnectTimeout { server, after } => {
                Core::connect_timed_out(server, after, delivery)
            }
            Error::MarkedDown { server, retry_in } => Core::marked_down(server, retry_in, delivery),
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
            } => Core::Timeout {
                operation,
                server,
                after,
                delivery,
            },
            Error::Cluster {
                operation,
                server,
                message,
            } => Core::Unavailable {
                server,
                message: format!("{operation}: {message}"),
                delivery,
                source: None,
            },
            Error::Server {
                operation,
                server,
                message,
            } => Core::Protocol {
                server,
                message: format!("{operation}: {message}"),
                delivery,
            },
            Error::Foreign { server, key } => Core::Protocol {
                server,
                message: format!("key {key:?} holds a value not written by RedisStore"),
                delivery,
            },
            Error::Protocol { server, message } => Core::Protocol {
                server,
                message,
                delivery,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use session_core::{Delivery, RetryMethod};

    use super::*;

    fn io(kind: std::io::ErrorKind) -> redis::RedisError {
        std::io::Error::from(kind).into()
    }

    #[test]
    fn requests_are_classified_with_their_delivery() {
        let after = Duration::from_millis(5);
        let cases = [
            (
                io(std::io::ErrorKind::TimedOut),
                Some(Delivery::Unknown),
                true,
            ),
            (
                io(std::io::ErrorKind::ConnectionReset),
                Some(Delivery::Unknown),
                false,
            ),
            (
                io(std::io::ErrorKind::ConnectionRefused),
                Some(Delivery::NotSent),
                false,
            ),
        ];
        for (e, delivery, timeout) in cases {
            let mine = Error::from_request("get", "h:1", after, e);
            assert_eq!(mine.breaks_connection(), !timeout, "{mine:?}");
            let core = session_core::Error::from(mine);
            assert_eq!(core.delivery(), delivery, "{core:?}");
            assert_eq!(core.is_timeout(), timeout, "{core:?}");
            assert!(core.is_retryable(), "{core:?}");
        }
        let down = session_core::Error::from(Error::MarkedDown {
            server: "h:1".into(),
            retry_in: after,
        });
        assert_eq!(down.retry_method(), RetryMethod::Retry);
    }

    #[test]
    fn server_answers_are_not_retryable_and_auth_is_config() {
        let e: redis::RedisError = (redis::ErrorKind::AuthenticationFailed, "WRONGPASS").into();
        let core = session_core::Error::from(Error::from_connect("h:1", e));
        assert!(
            matches!(core, session_core::Error::InvalidConfig(_)),
            "{core:?}"
        );
        let foreign = session_core::Error::from(Error::Foreign {
            server: "h:1".into(),
            key: "k".into(),
        });
        assert!(foreign.is_io() && !foreign.is_retryable(), "{foreign:?}");
    }

    /// The public classifiers on every variant built without a client
    /// error: (breaks the connection, delivery).
    #[test]
    fn classifiers_cover_every_variant() {
        let d = Duration::from_millis(5);
        let server = || "h:1".to_owned();
        let cases = [
            (Error::InvalidConfig("x".into()), false, None),
            (
                Error::Auth {
                    server: server(),
                    message: "WRONGPASS".into(),
                },
                false,
                None,
            ),
            (
                Error::ConnectTimeout {
                    server: server(),
                    after: d,
                },
                false,
                Some(Delivery::NotSent),
            ),
            (
                Error::MarkedDown {
                    server: server(),
                    retry_in: d,
                },
                false,
                Some(Delivery::NotSent),
            ),
            (
                Error::Timeout {
                    operation: "get",
                    server: server(),
                    after: d,
                },
                false,
                Some(Delivery::Unknown),
            ),
            (
                Error::Cluster {
                    operation: "get",
                    server: server(),
                    message: "CLUSTERDOWN".into(),
                },
                false,
                Some(Delivery::Unknown),
            ),
            (
                Error::Server {
                    operation: "get",
                    server: server(),
                    message: "OOM".into(),
                },
                false,
                None,
            ),
            (
                Error::Foreign {
                    server: server(),
                    key: "k".into(),
                },
                false,
                None,
            ),
            (
                Error::Protocol {
                    server: server(),
                    message: "garbled".into(),
                },
                false,
                None,
            ),
        ];
        for (e, breaks, delivery) in cases {
            assert_eq!(e.breaks_connection(), breaks, "{e:?}");
            assert_eq!(e.delivery(), delivery, "{e:?}");
        }
        let connect = Error::from_connect("h:1", io(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(connect, Error::Connect { .. }), "{connect:?}");
        assert_eq!(connect.delivery(), Some(Delivery::NotSent));
        let broken = Error::from_request("get", "h:1", d, io(std::io::ErrorKind::BrokenPipe));
        assert!(broken.breaks_connection(), "{broken:?}");
    }

    /// The client's error stays the cause through the conversion.
    #[test]
    fn the_cause_survives_the_conversion() {
        use std::error::Error as _;
        let mine = Error::from_request(
            "get",
            "h:1",
            Duration::from_millis(5),
            io(std::io::ErrorKind::ConnectionReset),
        );
        let core = session_core::Error::from(mine);
        assert!(
            core.source().is_some_and(|c| c.is::<redis::RedisError>()),
            "{core:?}"
        );
        assert!(core.chain().to_string().len() > core.to_string().len());
        let down = session_core::Error::from(Error::MarkedDown {
            server: "h:1".into(),
            retry_in: Duration::from_millis(5),
        });
        // tests/failure.rs recognises the fail-fast error by these words.
        assert!(down.to_string().contains("next connect attempt"), "{down}");
    }
}

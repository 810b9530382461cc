//! The crate's one error enum.

/// Everything the replicator library reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (checked before any I/O).
    #[error("invalid replicator configuration: {0}")]
    InvalidConfig(String),
    /// Talking to a memcached server failed.
    #[error(transparent)]
    Memcached(#[from] backend_memcached::Error),
    /// A server failed recently and is not tried again before its backoff
    /// ends.
    #[error("{server} is down; next try in {retry_in:?}")]
    Down {
        /// The server address.
        server: String,
        /// Time left until the next attempt.
        retry_in: std::time::Duration,
    },
    /// The change feed's companion `stats` connection failed: the server
    /// is unreachable even if the feed connection has not noticed yet.
    #[error("{server}: lost while watching: {source}")]
    FeedLost {
        /// The server address.
        server: String,
        /// The failure of the `stats` poll.
        #[source]
        source: backend_memcached::Error,
    },
    /// A server's run marker could not be read or left (see the crate
    /// docs on restarts).
    #[error("{server}: run marker: {what}")]
    RunMarker {
        /// The server address.
        server: String,
        /// What went wrong.
        what: String,
    },
    /// A server does not support something the replicator needs.
    #[error("{server}: {what}")]
    Unsupported {
        /// The server address.
        server: String,
        /// What is missing.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

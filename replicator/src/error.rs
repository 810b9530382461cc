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

//! [`Error`]: the one error enum of the bridge library (configuration,
//! binding, serving). Errors of single requests never reach it: they become
//! SOAP faults, JSON error objects or pages in their surface.

/// What can stop the bridge from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid (flag, config file, store URL...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store URL could not be opened.
    #[error(transparent)]
    Store(#[from] store_url::Error),
    /// session-core refused the configuration.
    #[error("sessions: {0}")]
    Sessions(#[from] session_core::Error),
    /// The TLS certificate or key (`[tls]`) cannot be used.
    #[error("tls: {0}")]
    Tls(String),
    /// Binding or accepting on the listen address failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

//! The one error type of the crate.

use std::{io, time::Duration};

/// Everything that can go wrong while starting, driving or stopping a test server.
///
/// Messages are written for the person reading a failed test: each says what
/// was tried and, where there is one, what to do about it.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server binary is not installed (process provider, or building a local image).
    #[error(
        "`{binary}` not found (looked in {searched}); install it with `{install}`, or point \
         {env_var} at the binary"
    )]
    BinaryNotFound {
        /// The binary that was looked for, e.g. `memcached`.
        binary: &'static str,
        /// The command that installs it, e.g. `apt-get install memcached`.
        install: &'static str,
        /// The environment variable that overrides the lookup.
        env_var: &'static str,
        /// Where it was looked for.
        searched: String,
    },
    /// `MEMORYCACHED_PROVIDER` (or a `--provider` flag) holds an unknown value.
    #[error("unknown provider `{0}`: expected `docker`, `process` or `auto`")]
    UnknownProvider(String),
    /// The docker provider was asked for but no Docker daemon answered.
    #[error("no Docker daemon answered ({0}); start one, or use MEMORYCACHED_PROVIDER=process")]
    DockerUnavailable(String),
    /// A Docker Engine API call failed.
    #[error("docker: {context}: {message}")]
    Docker {
        /// What was being done.
        context: String,
        /// The daemon's or client's message.
        message: String,
    },
    /// Neither an official image nor a locally built one could be had.
    #[error(
        "no usable image for {server}: official image `{official}` is not present and could not be \
         pulled ({pull_error}); building `{local}` from the host binary failed: {build_error}"
    )]
    NoImage {
        /// `memcached` or `redis`.
        server: &'static str,
        /// The official image that was tried first.
        official: String,
        /// Why it could not be used.
        pull_error: String,
        /// The local image that was tried next.
        local: String,
        /// Why building it failed.
        build_error: String,
    },
    /// A server process or container did not answer its protocol ping in time.
    #[error("{server} on {addr} was not ready after {waited:?}: {detail}")]
    NotReady {
        /// `memcached` or `redis`.
        server: &'static str,
        /// The address that was pinged.
        addr: String,
        /// How long it was waited for.
        waited: Duration,
        /// The last error, and the tail of the server's log where there is one.
        detail: String,
    },
    /// A shared-server environment variable is missing or malformed.
    #[error("{var} {problem} (set by `cargo xtask test`; run that, or export {var}=host:port,...)")]
    SharedServers {
        /// The variable, e.g. `MEMORYCACHED_MEMCACHED`.
        var: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// `Debug` is the message: tests `unwrap()` these errors, and the message
/// (with its `apt-get install ...` hint) is what the reader needs.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn docker(context: impl Into<String>) -> impl FnOnce(String) -> Error {
        let context = context.into();
        move |message| Error::Docker { context, message }
    }
}

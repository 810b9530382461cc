//! Constructors of [`Error`]: the variants that keep a cause, and the
//! transport failures every network backend converts its own error into.
//!
//! The backends' `From` impls used to spell these out each (and word them
//! apart); building them here gives every backend the same words and the
//! same cause chain.

use std::time::Duration;

use super::{Cause, Delivery, Error};

impl Error {
    /// [`Error::Field`] without a cause: `field` may not be written or
    /// holds what the caller cannot use (also for an
    /// [`update`](crate::Sessions::update) closure that gives up).
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field {
            field: field.into(),
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Field`] for a conversion that failed, keeping serde's error.
    pub(crate) fn field_conversion(field: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Field {
            field: field.into(),
            message: String::new(),
            source: Some(cause.into()),
        }
    }

    /// [`Error::Decode`] whose cause is the decoder's error; `message` adds
    /// what the cause does not say (may be empty).
    pub(crate) fn decode_failed(
        codec: &'static str,
        message: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Decode {
            codec,
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// [`Error::Decode`] found by our own checks, with no cause.
    pub(crate) fn undecodable(codec: &'static str, message: impl Into<String>) -> Self {
        Error::Decode {
            codec,
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Encode`] whose cause is the encoder's error.
    pub(crate) fn encode_failed(codec: &'static str, cause: impl Into<Cause>) -> Self {
        Error::Encode {
            codec,
            message: String::new(),
            source: Some(cause.into()),
        }
    }

    /// [`Error::Encode`] found by our own checks, with no cause.
    pub(crate) fn unencodable(codec: &'static str, message: impl Into<String>) -> Self {
        Error::Encode {
            codec,
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Unavailable`] for a connect to `server` that failed
    /// (refused, unreachable, TLS, authentication handshake broken),
    /// keeping the OS's or client's error as the cause. A backend's own
    /// error decides `delivery` (`NotSent` unless the request went out on
    /// a connection opened for it).
    pub fn connect_failed(
        server: impl Into<String>,
        cause: impl Into<Cause>,
        delivery: Delivery,
    ) -> Self {
        Error::Unavailable {
            server: server.into(),
            message: "connect failed".to_owned(),
            delivery,
            source: Some(cause.into()),
        }
    }

    /// [`Error::Timeout`] of a connect to `server` that did not finish
    /// within `after`.
    pub fn connect_timed_out(
        server: impl Into<String>,
        after: Duration,
        delivery: Delivery,
    ) -> Self {
        Error::Timeout {
            operation: "connect",
            server: server.into(),
            after,
            delivery,
        }
    }

    /// [`Error::Unavailable`] for `operation` on `server` whose connection
    /// broke (reset, closed, write failed), keeping the OS's or client's
    /// error as the cause.
    pub fn request_failed(
        operation: &'static str,
        server: impl Into<String>,
        cause: impl Into<Cause>,
        delivery: Delivery,
    ) -> Self {
        Error::Unavailable {
            server: server.into(),
            message: format!("{operation} failed"),
            delivery,
            source: Some(cause.into()),
        }
    }

    /// [`Error::Unavailable`] for a call that failed fast, without I/O,
    /// because `server` failed lately and its next connect attempt is
    /// `retry_in` away.
    pub fn marked_down(server: impl Into<String>, retry_in: Duration, delivery: Delivery) -> Self {
        Error::Unavailable {
            server: server.into(),
            message: format!("marked down, next connect attempt in {retry_in:?}"),
            delivery,
            source: None,
        }
    }
}

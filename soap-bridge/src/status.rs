//! How a failed operation is answered: one HTTP status (with `Retry-After`
//! when waiting helps) and one SOAP fault code per class of error, shared
//! by every surface so the JSON mirror, LemonLDAP::NG's REST service, the
//! admin pages and both SOAP services cannot drift apart. The table is in
//! the [crate docs](crate#errors-status-codes-and-faults).
//!
//! The class of a store error is session-core's [`ErrorKind`], not its
//! message: a new variant of an existing kind is answered right without a
//! change here.
//!
//! Imports the service (for [`OpError`]) and the SOAP fault type; every
//! surface imports it, and it imports no surface.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use session_core::ErrorKind;

use crate::service::OpError;
use crate::soap::{Fault, FaultCode};

/// Seconds a client is told to wait (`Retry-After`) when the store is
/// unavailable or timed out: the store's own down-marking retries a server
/// about that often, so sooner would only find it still down.
pub const RETRY_AFTER_SECS: u32 = 1;

/// How an error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The HTTP status of the JSON, REST and admin answers.
    pub status: StatusCode,
    /// The `Retry-After` seconds, when retrying later may succeed.
    pub retry_after: Option<u32>,
    /// The SOAP fault code: `Client` for what the caller must change (the
    /// 4xx rows), `Server` for what failed on our side (the 5xx rows).
    pub fault: FaultCode,
}

impl ErrorAnswer {
    fn new(status: StatusCode, retry_after: Option<u32>) -> Self {
        let fault = if status.is_client_error() {
            FaultCode::Client
        } else {
            FaultCode::Server
        };
        ErrorAnswer {
            status,
            retry_after,
            fault,
        }
    }

    /// Sets `response`'s status and, when there is one, its `Retry-After`.
    pub fn apply(&self, response: &mut Response) {
        *response.status_mut() = self.status;
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
}

/// The answer to `e`: the one mapping of the bridge (table in the crate
/// docs).
pub fn answer(e: &OpError) -> ErrorAnswer {
    let status = match e {
        OpError::InvalidId(_) | OpError::BadRequest(_) => StatusCode::BAD_REQUEST,
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::NotConfigured(_) => StatusCode::NOT_IMPLEMENTED,
        OpError::Store(inner) => return store_answer(inner.kind()),
    };
    ErrorAnswer::new(status, None)
}

/// The answer to a store error of kind `kind`.
fn store_answer(kind: ErrorKind) -> ErrorAnswer {
    let status = match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Gone => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Timeout | ErrorKind::Io => {
            return ErrorAnswer::new(StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_AFTER_SECS));
        }
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        // Full is not fixed by waiting (session-core: no retry): the
        // store's limit or the sessions' size must change.
        ErrorKind::Capacity => StatusCode::INSUFFICIENT_STORAGE,
        // Stored bytes we cannot read, a bug of ours, a bad deployment,
        // and any kind a newer session-core adds: our side, no retry.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ErrorAnswer::new(status, None)
}

/// `e` as a SOAP fault, `Client` or `Server` by [`answer`]'s class.
pub fn fault(e: &OpError) -> Fault {
    Fault {
        code: answer(e).fault,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! One test per row of the crate docs' table, each on an error built
    //! the way session-core builds it.

    use std::time::Duration;

    use session_core::{Delivery, Error as CoreError};

    use super::*;

    fn store(e: CoreError) -> ErrorAnswer {
        answer(&OpError::Store(e))
    }

    fn check(a: ErrorAnswer, status: u16, retry: bool, fault: FaultCode) {
        assert_eq!(a.status.as_u16(), status);
        assert_eq!(a.retry_after.is_some(), retry);
        assert_eq!(a.fault, fault);
    }

    #[test]
    fn invalid_id_is_400_client() {
        check(
            answer(&OpError::InvalidId("x".into())),
            400,
            false,
            FaultCode::Client,
        );
    }

    #[test]
    fn invalid_input_is_400_client() {
        check(
            answer(&OpError::BadRequest("x".into())),
            400,
            false,
            FaultCode::Client,
        );
        check(
            store(CoreError::ValueTooLarge { size: 2, limit: 1 }),
            400,
            false,
            FaultCode::Client,
        );
    }

    #[test]
    fn unknown_is_404_client() {
        check(
            answer(&OpError::NotFound("x".into())),
            404,
            false,
            FaultCode::Client,
        );
        check(
            store(CoreError::SessionGone { id: "x".into() }),
            404,
            false,
            FaultCode::Client,
        );
    }

    #[test]
    fn conflict_is_409_client() {
        check(
            store(CoreError::Conflict {
                key: "k".into(),
                attempts: 3,
            }),
            409,
            false,
            FaultCode::Client,
        );
        check(
            store(CoreError::IdTaken { id: "x".into() }),
            409,
            false,
            FaultCode::Client,
        );
    }

    #[test]
    fn unavailable_is_503_with_retry_after_server() {
        let down = CoreError::Unavailable {
            server: "127.0.0.1:1".into(),
            message: "connection refused".into(),
            delivery: Delivery::NotSent,
            source: None,
        };
        check(store(down), 503, true, FaultCode::Server);
    }

    #[test]
    fn timeout_is_503_with_retry_after_server() {
        let late = CoreError::Timeout {
            operation: "get",
            server: "127.0.0.1:1".into(),
            after: Duration::from_millis(200),
            delivery: Delivery::Unknown,
        };
        let a = store(late);
        check(a, 503, true, FaultCode::Server);
        assert_eq!(a.retry_after, Some(RETRY_AFTER_SECS));
    }

    #[test]
    fn undecodable_data_is_500_server() {
        check(
            store(CoreError::Decode {
                codec: "json",
                message: "garbage".into(),
                source: None,
            }),
            500,
            false,
            FaultCode::Server,
        );
        check(
            store(CoreError::UnknownCodec {
                flags: 0x8000,
                hint: "",
            }),
            500,
            false,
            FaultCode::Server,
        );
    }

    #[test]
    fn misuse_is_500_server() {
        check(
            store(CoreError::Deleted { id: "x".into() }),
            500,
            false,
            FaultCode::Server,
        );
    }

    #[test]
    fn configuration_is_500_server() {
        check(
            store(CoreError::InvalidConfig("x".into())),
            500,
            false,
            FaultCode::Server,
        );
    }

    #[test]
    fn unsupported_is_501_server() {
        check(
            answer(&OpError::NotConfigured("x".into())),
            501,
            false,
            FaultCode::Server,
        );
        check(
            store(CoreError::Unsupported { capability: "scan" }),
            501,
            false,
            FaultCode::Server,
        );
    }

    #[test]
    fn full_is_507_server() {
        check(
            store(CoreError::StoreFull {
                needed: 2,
                used: 1,
                limit: 2,
            }),
            507,
            false,
            FaultCode::Server,
        );
    }

    #[test]
    fn fault_takes_the_class_and_the_words() {
        let f = fault(&OpError::InvalidId("zz".into()));
        assert_eq!(f.code, FaultCode::Client);
        assert!(f.message.contains("zz"));
        let mut r = Response::new(axum::body::Body::empty());
        store(CoreError::Timeout {
            operation: "get",
            server: "s".into(),
            after: Duration::from_millis(1),
            delivery: Delivery::NotSent,
        })
        .apply(&mut r);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}

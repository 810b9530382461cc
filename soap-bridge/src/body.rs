//! Request bodies under the configured limits: at most `body_limit` bytes
//! (a declared `Content-Length` over it is refused before reading), within
//! `body_timeout`. Every surface reads its bodies here and turns a
//! [`BodyError`] into its own answer (413, 408 or 400, as a SOAP fault, a
//! JSON error or a page).
//!
//! A leaf: it imports only [`crate::config`]. Surfaces import it, never the
//! reverse.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};

use crate::config::Config;

/// Why a request body was not read.
pub(crate) enum BodyError {
    /// Over `body_limit` (declared or read); the limit.
    TooLarge(usize),
    /// Not all there within `body_timeout`.
    Timeout,
    /// The connection failed while reading.
    Broken(String),
}

impl BodyError {
    /// The HTTP status that says what the transport refused.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// [`BodyError::status`]'s code as text, for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) => "413",
            BodyError::Timeout => "408",
            BodyError::Broken(_) => "400",
        }
    }

    /// The text for the client.
    pub(crate) fn message(&self) -> String {
        match self {
            BodyError::TooLarge(limit) => format!("request body exceeds {limit} bytes"),
            BodyError::Timeout => "request body did not arrive in time".into(),
            BodyError::Broken(e) => format!("reading the request body failed: {e}"),
        }
    }
}

/// Reads a body under the size limit and the body timeout. A declared
/// `Content-Length` over the limit is refused before reading anything.
pub(crate) async fn read_body(
    config: &Config,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, BodyError> {
    let limit = config.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(config.body_timeout(), collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_status_codes() {
        for e in [
            BodyError::TooLarge(1),
            BodyError::Timeout,
            BodyError::Broken("x".into()),
        ] {
            assert_eq!(e.label(), e.status().as_str());
        }
    }
}

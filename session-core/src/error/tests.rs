//! One test per row of the table in the module docs (kind, retry method,
//! delivery), and the cause chain.

use std::error::Error as _;
use std::time::Duration;

use super::*;
use crate::codec::{Codec, FLAGS_JSON, FLAGS_PERL_COMPRESSED};

/// Checks one row of the table.
fn row(e: &Error, kind: ErrorKind, retry: RetryMethod, delivery: Option<Delivery>) {
    assert_eq!(e.kind(), kind, "{e:?}");
    assert_eq!(e.retry_method(), retry, "{e:?}");
    assert_eq!(e.is_retryable(), retry != RetryMethod::NoRetry, "{e:?}");
    assert_eq!(e.delivery(), delivery, "{e:?}");
    assert_eq!(e.is_conflict(), kind == ErrorKind::Conflict, "{e:?}");
    assert_eq!(
        e.is_invalid_input(),
        kind == ErrorKind::InvalidInput,
        "{e:?}"
    );
    assert_eq!(e.is_timeout(), kind == ErrorKind::Timeout, "{e:?}");
    assert_eq!(e.is_io(), kind == ErrorKind::Io, "{e:?}");
}

fn timeout(delivery: Delivery) -> Error {
    Error::Timeout {
        operation: "get",
        server: "127.0.0.1:1".into(),
        after: Duration::from_millis(5),
        delivery,
    }
}

fn refused() -> std::io::Error {
    std::io::ErrorKind::ConnectionRefused.into()
}

#[test]
fn invalid_key() {
    let e = crate::key::validate_key("a b").unwrap_err();
    assert!(matches!(e, Error::InvalidKey { .. }));
    row(&e, ErrorKind::InvalidInput, RetryMethod::NoRetry, None);
}

#[test]
fn invalid_session_id() {
    let e = crate::SessionId::parse("not hex").unwrap_err();
    assert!(matches!(e, Error::InvalidSessionId { .. }));
    row(&e, ErrorKind::InvalidInput, RetryMethod::NoRetry, None);
}

#[test]
fn value_too_large() {
    let e = Error::ValueTooLarge { size: 2, limit: 1 };
    row(&e, ErrorKind::InvalidInput, RetryMethod::NoRetry, None);
}

#[test]
fn encode() {
    let e = Error::unencodable("json", "too deep");
    row(&e, ErrorKind::InvalidInput, RetryMethod::NoRetry, None);
}

#[test]
fn field() {
    let e = Error::field("uid", "no");
    row(&e, ErrorKind::InvalidInput, RetryMethod::NoRetry, None);
}

#[test]
fn unknown_codec() {
    let e = Codec::from_flags(0x7777, "k").unwrap_err();
    assert!(matches!(e, Error::UnknownCodec { .. }));
    row(&e, ErrorKind::Data, RetryMethod::NoRetry, None);
}

#[test]
fn not_a_session() {
    let e = Codec::from_flags(0, "k").unwrap_err();
    assert!(matches!(e, Error::NotASession { .. }));
    row(&e, ErrorKind::Data, RetryMethod::NoRetry, None);
}

#[test]
fn seal() {
    let e = Codec::decode_stored(b"x", FLAGS_JSON | crate::codec::FLAGS_SEALED, "k").unwrap_err();
    assert!(matches!(
        e,
        Error::Seal {
            problem: SealProblem::NoKeys,
            ..
        }
    ));
    row(&e, ErrorKind::Data, RetryMethod::NoRetry, None);
    let e = Error::Seal {
        key: "k".into(),
        key_id: Some(3),
        problem: SealProblem::Tampered,
    };
    assert!(e.to_string().contains("(key id 3)"), "{e}");
}

#[test]
fn decode() {
    let e = Codec::Json.decode(b"{", "k").unwrap_err();
    assert!(matches!(e, Error::Decode { .. }));
    row(&e, ErrorKind::Data, RetryMethod::NoRetry, None);
}

#[test]
fn unsupported() {
    let e = Error::Unsupported { capability: "scan" };
    row(&e, ErrorKind::Unsupported, RetryMethod::NoRetry, None);
}

#[test]
fn id_taken() {
    let e = Error::IdTaken { id: "ab".into() };
    row(&e, ErrorKind::Conflict, RetryMethod::NoRetry, None);
}

#[test]
fn conflict() {
    let e = Error::Conflict {
        key: "k".into(),
        attempts: 3,
    };
    row(&e, ErrorKind::Conflict, RetryMethod::Reload, None);
}

#[test]
fn field_conflict() {
    let e = Error::FieldConflict {
        key: "k".into(),
        fields: vec!["uid".into()],
    };
    row(&e, ErrorKind::Conflict, RetryMethod::Reload, None);
}

#[test]
fn session_gone() {
    let e = Error::SessionGone { id: "ab".into() };
    row(&e, ErrorKind::Gone, RetryMethod::NoRetry, None);
}

#[test]
fn deleted() {
    let e = Error::Deleted { id: "ab".into() };
    row(&e, ErrorKind::Misuse, RetryMethod::NoRetry, None);
}

#[test]
fn store_full() {
    let e = Error::StoreFull {
        needed: 2,
        used: 1,
        limit: 2,
    };
    row(&e, ErrorKind::Capacity, RetryMethod::NoRetry, None);
}

#[test]
fn timeout_row() {
    row(
        &timeout(Delivery::NotSent),
        ErrorKind::Timeout,
        RetryMethod::Retry,
        Some(Delivery::NotSent),
    );
    row(
        &timeout(Delivery::Unknown),
        ErrorKind::Timeout,
        RetryMethod::RetryIfIdempotent,
        Some(Delivery::Unknown),
    );
    let connect = Error::connect_timed_out("h:1", Duration::from_millis(5), Delivery::NotSent);
    assert!(matches!(
        connect,
        Error::Timeout {
            operation: "connect",
            ..
        }
    ));
    row(
        &connect,
        ErrorKind::Timeout,
        RetryMethod::Retry,
        Some(Delivery::NotSent),
    );
}

#[test]
fn unavailable() {
    for (e, retry, delivery) in [
        (
            Error::connect_failed("h:1", refused(), Delivery::NotSent),
            RetryMethod::Retry,
            Delivery::NotSent,
        ),
        (
            Error::marked_down("h:1", Duration::from_secs(1), Delivery::NotSent),
            RetryMethod::Retry,
            Delivery::NotSent,
        ),
        (
            Error::request_failed("add", "h:1", refused(), Delivery::Unknown),
            RetryMethod::RetryIfIdempotent,
            Delivery::Unknown,
        ),
    ] {
        assert!(matches!(e, Error::Unavailable { .. }));
        row(&e, ErrorKind::Io, retry, Some(delivery));
    }
}

#[test]
fn protocol() {
    let e = Error::Protocol {
        server: "h:1".into(),
        message: "garbled".into(),
        delivery: Delivery::Unknown,
    };
    row(
        &e,
        ErrorKind::Io,
        RetryMethod::NoRetry,
        Some(Delivery::Unknown),
    );
}

#[test]
fn invalid_config() {
    let e = Codec::from_name("yaml").unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)));
    row(&e, ErrorKind::Config, RetryMethod::NoRetry, None);
}

/// The cause is kept as a typed source, and printed once: `Display` holds
/// this error's own words, the chain adds the cause's.
#[test]
fn causes_are_kept_and_printed_once() {
    let e = Codec::Json.decode(b"{", "k").unwrap_err();
    let cause = e.source().unwrap();
    assert!(
        cause.downcast_ref::<serde_json::Error>().is_some(),
        "{cause:?}"
    );
    assert_eq!(e.to_string(), "cannot decode value with json");
    assert_eq!(e.chain().to_string(), format!("{e}: {cause}"));

    let e = Codec::MessagePack.decode(b"\xc1", "k").unwrap_err();
    assert!(
        e.source()
            .and_then(|c| c.downcast_ref::<rmp_serde::decode::Error>())
            .is_some(),
        "{e:?}"
    );

    let e = Codec::decode_stored(b"not gzip", FLAGS_JSON | FLAGS_PERL_COMPRESSED, "k").unwrap_err();
    let io = e.source().and_then(|c| c.downcast_ref::<std::io::Error>());
    assert!(io.is_some(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "cannot decode value with gzip: cannot inflate a compressed value"
    );

    let session = crate::Session::new(
        crate::SessionId::parse("0123456789abcdef").unwrap(),
        [("n".to_owned(), serde_json::json!("x"))]
            .into_iter()
            .collect(),
        None,
        crate::session::State::Stored,
    );
    let e = session.get::<u32>("n").unwrap_err();
    assert!(e.source().unwrap().is::<serde_json::Error>(), "{e:?}");
    assert_eq!(e.to_string(), "session field \"n\"");
    assert!(
        e.chain().to_string().contains("expected u32"),
        "{}",
        e.chain()
    );

    let e = Error::connect_failed("h:1", refused(), Delivery::NotSent);
    assert!(e.source().unwrap().is::<std::io::Error>(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "server h:1 unavailable: connect failed (request not sent)"
    );
    let chain = e.chain().to_string();
    assert!(chain.starts_with(&e.to_string()) && chain.len() > e.to_string().len());

    // A caller's own error wrapping ours shows the whole chain too.
    #[derive(Debug, thiserror::Error)]
    #[error("store error")]
    struct Outer(#[source] Error);
    let outer = Outer(Error::connect_failed("h:1", refused(), Delivery::NotSent));
    assert_eq!(
        Chain::new(&outer).to_string(),
        format!("store error: {chain}")
    );
}

/// Errors without a cause say everything in `Display`.
#[test]
fn errors_without_a_cause_keep_their_words() {
    let e = Error::field("_session_id", "set by the store");
    assert!(e.source().is_none());
    assert_eq!(
        e.to_string(),
        "session field \"_session_id\": set by the store"
    );
    assert_eq!(e.chain().to_string(), e.to_string());
}

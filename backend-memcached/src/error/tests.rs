//! Tests of the error classifiers and of the conversion into
//! `session_core::Error`.

use std::time::Duration;

use session_core::Delivery;

use super::*;

fn io(sent: bool) -> Error {
    Error::Io {
        operation: "add",
        server: "s:1".into(),
        source: io::ErrorKind::UnexpectedEof.into(),
        sent,
    }
}

fn timeout(sent: bool) -> Error {
    Error::Timeout {
        operation: "add",
        server: "s:1".into(),
        after: Duration::from_millis(5),
        sent,
    }
}

#[test]
fn delivery_survives_the_conversion() {
    // Regression: a timeout or broken connection before the request's
    // first byte was written (say, while reading `stats settings`) was
    // reported as "sent, outcome unknown".
    for (e, expected) in [
        (io(true), Delivery::Unknown),
        (io(false), Delivery::NotSent),
        (timeout(true), Delivery::Unknown),
        (timeout(false), Delivery::NotSent),
        (
            Error::PoolTimeout {
                server: "s:1".into(),
                after: Duration::from_millis(5),
            },
            Delivery::NotSent,
        ),
        (
            Error::MarkedDown {
                server: "s:1".into(),
                retry_in: Duration::from_millis(5),
            },
            Delivery::NotSent,
        ),
    ] {
        // A full pool says the server is busy, not down: never rehashed.
        let rehashable = e.is_connect_failure() || matches!(e, Error::PoolTimeout { .. });
        let core = session_core::Error::from(e);
        assert_eq!(core.delivery(), Some(expected), "{core:?}");
        assert_eq!(rehashable, expected == Delivery::NotSent, "{core:?}");
    }
    assert_eq!(
        session_core::Error::from(io(true).unsent()).delivery(),
        Some(Delivery::NotSent)
    );
}

#[test]
fn refused_credentials_and_bad_certificates_are_config_errors_not_retried() {
    for e in [
        Error::Unauthorized {
            server: "s:1".into(),
            user: "app".into(),
        },
        Error::Tls {
            server: "s:1".into(),
            cause: TlsFailure::HostnameMismatch,
            detail: "certificate not valid for name".into(),
        },
    ] {
        let core = session_core::Error::from(e);
        assert_eq!(core.kind(), session_core::ErrorKind::Config, "{core:?}");
        assert!(!core.is_retryable(), "{core:?}");
    }
    let core = session_core::Error::from(Error::NoAnswer {
        server: "s:1".into(),
        step: "`stats settings`",
        detail: "nothing within 5ms".into(),
        silent_for: Some(Duration::from_millis(5)),
    });
    assert!(core.to_string().contains("memcacheds://"), "{core}");
    assert_eq!(core.delivery(), Some(Delivery::NotSent));
    assert!(core.is_timeout(), "silence is a timeout: {core:?}");
}

#[test]
fn a_meta_refusing_endpoint_is_a_config_error_with_the_hint() {
    let core = session_core::Error::from(Error::MetaUnsupported {
        server: "127.0.0.1:22121".into(),
        command: "mg",
    });
    assert!(
        matches!(&core, session_core::Error::InvalidConfig(m) if m.contains("protocol=classic")),
        "{core:?}"
    );
    assert_eq!(core.delivery(), None);
}

/// Every variant through the public classifiers: (connect failure,
/// transport failure, marks down, delivery).
#[test]
fn classifiers_cover_every_variant() {
    let d = Duration::from_millis(5);
    let server = || "s:1".to_owned();
    let cases = [
        (Error::InvalidConfig("x".into()), false, false, false, None),
        (
            Error::Input(session_core::Error::Unsupported { capability: "scan" }),
            false,
            false,
            false,
            None,
        ),
        (
            Error::Connect {
                server: server(),
                source: io::ErrorKind::ConnectionRefused.into(),
            },
            true,
            true,
            true,
            Some(Delivery::NotSent),
        ),
        (
            Error::ConnectTimeout {
                server: server(),
                after: d,
            },
            true,
            true,
            true,
            Some(Delivery::NotSent),
        ),
        (io(true), false, true, true, Some(Delivery::Unknown)),
        (io(false), true, true, true, Some(Delivery::NotSent)),
        (timeout(true), false, true, true, Some(Delivery::Unknown)),
        (timeout(false), true, true, true, Some(Delivery::NotSent)),
        (
            Error::MetaUnsupported {
                server: server(),
                command: "mg",
            },
            false,
            false,
            false,
            None,
        ),
        (
            Error::PoolTimeout {
                server: server(),
                after: d,
            },
            false,
            false,
            false,
            Some(Delivery::NotSent),
        ),
        (
            Error::MarkedDown {
                server: server(),
                retry_in: d,
            },
            true,
            true,
            false,
            Some(Delivery::NotSent),
        ),
        (
            Error::NoLiveServer {
                key: "k".into(),
                tries: 3,
            },
            false,
            false,
            false,
            Some(Delivery::NotSent),
        ),
        (
            Error::ServerTooLarge {
                server: server(),
                size: 2,
                limit: Some(1),
            },
            false,
            false,
            false,
            None,
        ),
        (
            Error::CasDisabled { server: server() },
            false,
            false,
            false,
            None,
        ),
        (
            Error::ServerError {
                server: server(),
                message: "SERVER_ERROR out of memory".into(),
            },
            false,
            false,
            false,
            None,
        ),
        (
            Error::Protocol {
                server: server(),
                message: "garbled".into(),
            },
            false,
            false,
            true,
            None,
        ),
        (
            Error::Unauthorized {
                server: server(),
                user: "app".into(),
            },
            false,
            false,
            false,
            None,
        ),
        (
            Error::Tls {
                server: server(),
                cause: TlsFailure::UntrustedCertificate,
                detail: "x".into(),
            },
            false,
            false,
            false,
            None,
        ),
        (
            Error::Tls {
                server: server(),
                cause: TlsFailure::HandshakeTimeout,
                detail: "x".into(),
            },
            true,
            true,
            true,
            Some(Delivery::NotSent),
        ),
        (
            Error::NoAnswer {
                server: server(),
                step: "`stats settings`",
                detail: "closed".into(),
                silent_for: None,
            },
            true,
            true,
            true,
            Some(Delivery::NotSent),
        ),
    ];
    for (e, connect, transport, down, delivery) in cases {
        assert_eq!(e.is_connect_failure(), connect, "{e:?}");
        assert_eq!(e.is_transport_failure(), transport, "{e:?}");
        assert_eq!(e.marks_down(), down, "{e:?}");
        assert_eq!(e.delivery(), delivery, "{e:?}");
    }
}

/// The OS error stays the cause through the conversion, printed once;
/// an answer the server garbled keeps "outcome unknown".
#[test]
fn the_cause_survives_the_conversion() {
    use std::error::Error as _;
    let core = session_core::Error::from(Error::Connect {
        server: "s:1".into(),
        source: io::ErrorKind::ConnectionRefused.into(),
    });
    let cause = core.source().and_then(|c| c.downcast_ref::<io::Error>());
    assert_eq!(
        cause.map(io::Error::kind),
        Some(io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        core.chain().to_string(),
        format!(
            "{core}: {}",
            io::Error::from(io::ErrorKind::ConnectionRefused)
        )
    );
    let core = session_core::Error::from(io(true));
    assert!(
        core.source().is_some_and(|c| c.is::<io::Error>()),
        "{core:?}"
    );
    let garbled = session_core::Error::from(Error::Protocol {
        server: "s:1".into(),
        message: "garbled".into(),
    });
    assert_eq!(garbled.delivery(), Some(Delivery::Unknown));
    assert!(!garbled.is_retryable(), "{garbled:?}");
}

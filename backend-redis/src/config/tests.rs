//! Tests of the configuration: URL parsing, validation, and the docs' table
//! of query keys against the one list the parser uses.

use super::*;

#[test]
fn parses_full_url() {
    let c = RedisConfig::from_url(
        "redis://app:p%40ss%2Fw@cache.example:6380/3?timeout_ms=500&connect_timeout_ms=250\
         &prefix=sess%3A&max_value_size=1000&backoff_initial_ms=10&backoff_max_ms=20",
    )
    .unwrap();
    assert_eq!(c.nodes, vec![NodeSpec::new("cache.example", 6380)]);
    assert_eq!(c.username.as_deref(), Some("app"));
    assert_eq!(c.password.as_deref(), Some("p@ss/w"));
    assert_eq!(c.db, 3);
    assert_eq!(c.key_prefix, "sess:");
    assert_eq!(c.response_timeout, Duration::from_millis(500));
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.max_value_size, 1000);
    assert_eq!(c.backoff_initial, Duration::from_millis(10));
    assert_eq!(c.backoff_max, Duration::from_millis(20));
    assert!(!c.tls && !c.cluster);
    // The password never shows in Debug output.
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("p@ss") && debug.contains("<redacted>"),
        "{debug}"
    );
}

#[test]
fn defaults_and_short_forms() {
    let c = RedisConfig::from_url("redis://localhost").unwrap();
    assert_eq!(c, RedisConfig::with_node(NodeSpec::new("localhost", 6379)));
    RedisConfig::default().validate().unwrap();
    let c = RedisConfig::from_url("redis://:secret@[::1]:7000/").unwrap();
    assert_eq!(c.nodes[0].addr(), "[::1]:7000");
    assert_eq!((c.username, c.password.as_deref()), (None, Some("secret")));
}

#[test]
fn rejects_bad_input() {
    for url in [
        "http://h:1",
        "redis://",
        "redis://h:",
        "redis://h:0",
        "redis://h:99999",
        "redis://h:1/x",
        "redis://h:1/-1",
        "redis://h:1?bogus=1",
        "redis://h:1?timeout_ms=1&timeout_ms=2",
        "redis://h:1?timeout_ms=abc",
        "redis://h:1?timeout_ms=0",
        "redis://h:1?timeout_ms=3600001",
        "redis://h:1?cluster=maybe",
        "redis://h:1?max_value_size=0",
        "redis://h:1?prefix=a%20b",
        "redis://h:1?backoff_initial_ms=50&backoff_max_ms=10",
        "redis://h:1?noequals",
        "redis://h1:1,h2:2",
        "redis://h1:1,h1:1?cluster=true",
        "redis://user@h:1",
        "redis://[::1:1",
        "redis://h:1#frag",
    ] {
        let e = RedisConfig::from_url(url).expect_err(url);
        assert!(matches!(e, Error::InvalidConfig(_)), "{url}: {e:?}");
    }
    let e = RedisConfig::from_url("redis://h:1?timeuot_ms=5").unwrap_err();
    assert!(e.to_string().contains("known: timeout_ms"), "{e}");
    let e = RedisConfig::from_url("redis://a:1,b:2").unwrap_err();
    assert!(e.to_string().contains("cluster=true"), "{e}");
}

#[test]
fn features_decide_tls_and_cluster() {
    let tls = RedisConfig::from_url("rediss://h:1?ca_file=%2Ftmp%2Fca%20x.pem");
    assert_eq!(tls.is_ok(), cfg!(feature = "tls"), "{tls:?}");
    match tls {
        Ok(c) => {
            assert!(c.tls);
            assert_eq!(c.tls_ca_file.as_deref(), Some("/tmp/ca x.pem".as_ref()));
        }
        Err(e) => assert!(e.to_string().contains("`tls` feature"), "{e}"),
    }
    let e = RedisConfig::from_url("redis://h:1?ca_file=/ca.pem").unwrap_err();
    assert!(e.to_string().contains("rediss://"), "{e}");
    let cluster = RedisConfig::from_url("redis://a:1,b:2?cluster=true");
    assert_eq!(cluster.is_ok(), cfg!(feature = "cluster"), "{cluster:?}");
    if let Err(e) = cluster {
        assert!(e.to_string().contains("`cluster` feature"), "{e}");
    }
    let c = RedisConfig {
        cluster: true,
        db: 1,
        ..RedisConfig::default()
    };
    assert!(c.validate().is_err());
}

#[test]
fn connections_are_bounded() {
    let c = RedisConfig::from_url("redis://h:1?connections=4").unwrap();
    assert_eq!(c.connections, 4);
    assert_eq!(RedisConfig::default().connections, DEFAULT_CONNECTIONS);
    for bad in ["0", "65", "x"] {
        let e = RedisConfig::from_url(&format!("redis://h:1?connections={bad}")).unwrap_err();
        assert!(e.to_string().contains("connections"), "{bad}: {e}");
    }
}

#[test]
fn docs_table_lists_every_query_key() {
    let docs = include_str!("mod.rs");
    for key in URL_KEYS {
        assert!(
            docs.contains(&format!("//! | `{}` |", key.key)),
            "query key {} missing from the module docs' table",
            key.key
        );
    }
    let rows = docs.lines().filter(|l| l.starts_with("//! | `")).count();
    assert_eq!(
        rows,
        URL_KEYS.len(),
        "the docs' table lists a key the parser does not know"
    );
}

/// Fuzz finding (store_urls): the error for a URL of another scheme
/// echoed the URL, password included (`redis:/u:pw@h` is a typo away).
#[test]
fn a_wrong_scheme_error_shows_no_password() {
    for url in [
        "redis:/u:Secret00ff@h",
        "redsi://:Secret00ff@h",
        "://:Secret00ff@",
    ] {
        let e = RedisConfig::from_url(url).unwrap_err().to_string();
        assert!(!e.contains("Secret00ff"), "{url}: {e}");
    }
}

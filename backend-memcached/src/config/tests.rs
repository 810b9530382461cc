//! Tests of the configuration: URL parsing, validation, and the docs' table
//! of query keys against the one list the parser uses.

use super::url::URL_KEYS;
use super::*;

#[test]
fn parses_full_url() {
    let c = MemcachedConfig::from_url(
        "memcached://h1:11211,h2:1234:3,[::1]:5,h4?timeout_ms=500&connect_timeout_ms=250\
         &protocol=classic&routing=ketama&failure=rehash&max_value_size=1000&pool_size=4\
         &backoff_initial_ms=10&backoff_max_ms=20",
    )
    .unwrap();
    assert_eq!(
        c.servers,
        vec![
            ServerSpec::new("h1", 11211),
            ServerSpec::new("h2", 1234).with_weight(3),
            ServerSpec::new("::1", 5),
            ServerSpec::new("h4", 11211),
        ]
    );
    assert_eq!(c.servers[2].addr(), "[::1]:5");
    assert_eq!(c.io_timeout, Duration::from_millis(500));
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.protocol, Protocol::Classic);
    assert_eq!(c.routing, Routing::Ketama);
    assert_eq!(c.failure, FailurePolicy::Rehash);
    assert_eq!(c.max_value_size, 1000);
    assert_eq!(c.pool_size, 4);
    assert_eq!(c.backoff_initial, Duration::from_millis(10));
    assert_eq!(c.backoff_max, Duration::from_millis(20));
}

#[test]
fn defaults() {
    let c = MemcachedConfig::from_url("memcached://localhost").unwrap();
    assert_eq!(c.servers, vec![ServerSpec::new("localhost", 11211)]);
    assert_eq!(
        c,
        MemcachedConfig::with_servers(vec![ServerSpec::new("localhost", 11211)])
    );
    assert_eq!(c.failure, FailurePolicy::Fail);
    assert_eq!(c.protocol, Protocol::Meta);
    MemcachedConfig::default().validate().unwrap();
}

#[test]
fn rejects_bad_input() {
    for url in [
        "http://h:1",
        "memcached://",
        "memcached://h:1?bogus=1",
        "memcached://h:1?timeout_ms=1&timeout_ms=2",
        "memcached://h:1?timeout_ms=abc",
        "memcached://h:1?timeout_ms=0",
        "memcached://h:1?protocol=binary",
        "memcached://h:1?routing=modulo",
        "memcached://h:1?failure=ignore",
        "memcached://h:1?pool_size=0",
        "memcached://h:1?max_value_size=0",
        "memcached://h:1?noequals",
        "memcached://h:0",
        "memcached://h:99999",
        "memcached://h:1:0",
        "memcached://h:1:x",
        "memcached://h:1:2:3",
        // Regression: a trailing colon was read as the default port.
        "memcached://h:",
        "memcached://h:11211:",
        "memcached://[::1]:",
        "memcached://h::2",
        "memcached://::1",
        "memcached://[::1",
        "memcached://h:1,h:1",
        "memcached://h:1,,h:2",
        "memcached://h:1:20000",
        "memcached://h:1?backoff_initial_ms=100&backoff_max_ms=10",
        "memcached://h:1?backoff_max_ms=18446744073709551615",
        "memcached://h:1?backoff_max_ms=3600001",
        "memcached://h:1?timeout_ms=3600001",
        "memcached://h:1?connect_timeout_ms=18446744073709551615",
    ] {
        let err = MemcachedConfig::from_url(url).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{url}: {err}");
    }
}

#[test]
fn durations_are_capped() {
    // Regression: `backoff_max = Duration::MAX` passed validate() and
    // then overflowed `Instant + backoff` in the server's down-marking.
    for set in [
        (|c: &mut MemcachedConfig| c.backoff_max = Duration::MAX) as fn(&mut MemcachedConfig),
        |c| c.io_timeout = Duration::MAX,
        |c| c.connect_timeout = MAX_DURATION + Duration::from_nanos(1),
        |c| {
            c.backoff_initial = Duration::MAX;
            c.backoff_max = Duration::MAX;
        },
    ] {
        let mut c = MemcachedConfig::default();
        set(&mut c);
        let err = c.validate().unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig(ref m) if m.contains("longer than")),
            "{err}"
        );
    }
    let c = MemcachedConfig {
        backoff_max: MAX_DURATION,
        io_timeout: MAX_DURATION,
        ..MemcachedConfig::default()
    };
    c.validate().unwrap();
    assert!(MemcachedConfig::from_url("memcached://h?backoff_max_ms=3600000").is_ok());
}

#[test]
fn every_url_key_is_documented_and_parsed() {
    // The module docs' table lists exactly the keys of `URL_KEYS`.
    let source = include_str!("mod.rs");
    let documented: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let known: Vec<&str> = URL_KEYS.iter().map(|o| o.key).collect();
    assert_eq!(documented, known);
    // And every one is accepted with a good value, refused with a bad one.
    for key in known {
        let good = match key {
            "protocol" => "classic",
            "routing" => "ketama",
            "failure" => "rehash",
            "mode" => "pooled",
            "connections" => "10",
            "server_name" => "mc.example",
            "ca" | "cert" | "key" => "/x.pem",
            "delete_markers" => "1",
            _ => "100",
        };
        let (scheme, bad) = match key {
            "ca" | "cert" | "key" | "server_name" => ("memcacheds", ""),
            _ => ("memcached", "bogus"),
        };
        let with_pair = match key {
            "cert" => "&key=/k.pem",
            "key" => "&cert=/c.pem",
            _ => "",
        };
        MemcachedConfig::from_url(&format!("{scheme}://h?{key}={good}{with_pair}"))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let err = MemcachedConfig::from_url(&format!("{scheme}://h?{key}={bad}")).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn unknown_key_error_names_it() {
    let err = MemcachedConfig::from_url("memcached://h?timeuot_ms=5").unwrap_err();
    assert!(err.to_string().contains("timeuot_ms"), "{err}");
}

#[test]
fn tls_and_credentials_from_the_url() {
    let c = MemcachedConfig::from_url(
        "memcacheds://app:p%40ss:w@a:1,b:2?ca=%2Fetc%2Fca%20x.pem&cert=/c.pem&key=/k.pem&server_name=mc.example",
    )
    .unwrap();
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.ca_file.as_deref(), Some("/etc/ca x.pem".as_ref()));
    assert_eq!(tls.cert_file.as_deref(), Some("/c.pem".as_ref()));
    assert_eq!(tls.server_name.as_deref(), Some("mc.example"));
    let auth = c.auth.as_ref().unwrap();
    assert_eq!(auth.user, "app");
    assert_eq!(auth.password, Password::new("p@ss:w"));
    assert_eq!(c.servers.len(), 2);
    // TLS with the system's roots; plain with credentials.
    assert!(
        MemcachedConfig::from_url("memcacheds://h")
            .unwrap()
            .tls
            .is_some()
    );
    let plain = MemcachedConfig::from_url("memcached://u:pw@h").unwrap();
    assert!(plain.tls.is_none() && plain.auth.is_some());
}

#[test]
fn tls_options_need_the_tls_scheme_and_each_other() {
    let err = MemcachedConfig::from_url("memcached://h?ca=/ca.pem").unwrap_err();
    assert!(err.to_string().contains("memcacheds://"), "{err}");
    let err = MemcachedConfig::from_url("memcacheds://h?cert=/c.pem").unwrap_err();
    assert!(err.to_string().contains("key="), "{err}");
    for bad in [
        "memcached://user@h",
        "memcached://:pw@h",
        "memcached://u:@h",
        "memcached://a%20b:pw@h",
        "memcached://u:p%0Aw@h",
    ] {
        assert!(MemcachedConfig::from_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_password_is_never_printed() {
    let secret = "Zq9-very-secret";
    let url = format!("memcached://app:{secret}@h:1");
    let c = MemcachedConfig::from_url(&url).unwrap();
    assert!(!format!("{c:?}").contains(secret));
    assert_eq!(redact_url(&url), "memcached://app:***@h:1");
    // Errors of URLs holding it: a bad server, a bad key, a bad scheme.
    for bad in [
        format!("memcached://app:{secret}@h:x"),
        format!("memcached://app:{secret}@h?nope=1"),
        format!("memcache://app:{secret}@h"),
        format!("memcached://app:{secret}\n@h"),
    ] {
        let err = MemcachedConfig::from_url(&bad).unwrap_err();
        let printed = format!("{err} {err:?}");
        assert!(!printed.contains(secret), "{printed}");
    }
}

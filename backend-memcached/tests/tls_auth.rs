//! `memcacheds://` and `user:password@` against real memcached 1.6.18
//! servers started with `-Z` (TLS only, certificates made here by the
//! `openssl` command line tool through `test_support::tls`) and `-Y`
//! (ASCII authentication): the whole conformance kit over TLS + authentication + a client certificate (in the
//! adaptive and multiplexed modes), the raw connection the replicator uses,
//! and every fault as a typed error before any session data crosses:
//! a wrong password, an untrusted, expired or misnamed certificate, a
//! missing client certificate, plaintext to the TLS port and TLS to a
//! plaintext port (both within the connect timeout), and the password
//! nowhere in logs, `Debug` output, stats or errors.
//!
//! Its servers come from the provider the run uses (`MEMORYCACHED_PROVIDER`):
//! local processes read the certificate and auth files where they are,
//! containers get copies of them (`Provider::memcached_secured`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_memcached::raw::RawConnection;
use backend_memcached::{MemcachedStore, TlsFailure};
use session_core::{ErrorKind, Namespaced, SessionId, Store, Ttl};
use test_support::tls::Certificates;
use test_support::{MemcachedOptions, MemcachedSecurity, MemcachedTls, Provider, Server};

const USER: &str = "app";
/// Distinctive, so a leak anywhere is found by a plain substring search.
const PASSWORD: &str = "Pw-7d1f3c9e-never-printed";

/// One test's certificates, provider and TLS+auth server; the other
/// servers are started by the tests that need them. Per test rather than
/// shared in a `static`, which is never dropped: its containers would
/// outlive the test process.
struct World {
    certs: Certificates,
    provider: Provider,
    /// `-Z` with a client certificate required, and `-Y`.
    secured: Server,
}

/// The other servers a test may start.
enum Other {
    /// `-Z` with an expired server certificate.
    Expired,
    /// Plain memcached.
    Plain,
    /// `-Y` alone.
    AuthOnly,
}

async fn world() -> World {
    let certs = Certificates::new("mc-tls").unwrap();
    certs.add_ca("other-ca").unwrap();
    certs
        .add_cert("stale", "ca", -1, Certificates::SERVER_EXT)
        .unwrap();
    certs
        .add_cert("client", "ca", 1, Certificates::CLIENT_EXT)
        .unwrap();
    std::fs::write(certs.path("auth"), format!("{USER}:{PASSWORD}\n")).unwrap();
    // Whichever provider the run uses: the docker provider copies the
    // certificates and the auth file into the container.
    let provider = Provider::from_env().await.unwrap();
    let secured = start(
        &provider,
        MemcachedSecurity {
            tls: Some(tls(&certs, "server", Some(certs.path("ca.pem")))),
            auth_file: Some(certs.path("auth")),
        },
    )
    .await;
    eprintln!("tls_auth: servers from {}", provider.description());
    World {
        certs,
        provider,
        secured,
    }
}

fn tls(certs: &Certificates, cert: &str, client_ca: Option<PathBuf>) -> MemcachedTls {
    MemcachedTls {
        chain_cert: certs.path(&format!("{cert}.pem")),
        key: certs.path(&format!("{cert}.key")),
        client_ca,
    }
}

async fn start(provider: &Provider, security: MemcachedSecurity) -> Server {
    provider
        .memcached_secured(MemcachedOptions::default(), security)
        .await
        .unwrap()
}

impl World {
    async fn start(&self, other: Other) -> Server {
        let security = match other {
            Other::Expired => MemcachedSecurity {
                tls: Some(tls(&self.certs, "stale", None)),
                auth_file: None,
            },
            Other::Plain => MemcachedSecurity::default(),
            Other::AuthOnly => MemcachedSecurity {
                tls: None,
                auth_file: Some(self.certs.path("auth")),
            },
        };
        start(&self.provider, security).await
    }

    /// The secured server's URL with `userinfo` (`user:password@` or
    /// empty), trusting `ca`, with the client certificate, plus `query`.
    fn url_with(&self, userinfo: &str, ca: &str, query: &str) -> String {
        format!(
            "memcacheds://{userinfo}{}?ca={}&cert={}&key={}&connect_timeout_ms=2000&timeout_ms=2000{query}",
            self.secured.addr(),
            self.certs.url_path(&format!("{ca}.pem")),
            self.certs.url_path("client.pem"),
            self.certs.url_path("client.key"),
        )
    }

    fn good_url(&self, query: &str) -> String {
        self.url_with(&format!("{USER}:{PASSWORD}@"), "ca", query)
    }
}

fn store(url: &str) -> MemcachedStore {
    MemcachedStore::from_url(url).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of one `get` through `url`, and how long it took.
async fn get_error(url: &str) -> (session_core::Error, Duration) {
    let store = store(url);
    let started = Instant::now();
    let e = store.get("k").await.unwrap_err();
    (e, started.elapsed())
}

/// Every log line any test of this binary wrote, at every level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn conformance(url: String) -> session_core::conformance::MakeStore {
    session_core::conformance::make_store(move || {
        let url = url.clone();
        async move {
            let prefix = format!("tls{}:", SessionId::generate(16).unwrap());
            Arc::new(Namespaced::new(prefix, store(&url)).unwrap()) as Arc<dyn Store>
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_passes_over_tls_auth_and_a_client_certificate() {
    logs();
    let w = world().await;
    for mode in ["adaptive", "multiplexed"] {
        let url = w.good_url(&format!("&mode={mode}"));
        if let Err(failures) = session_core::conformance::run_all(conformance(url)).await {
            panic!("conformance over TLS+auth ({mode}) failed: {failures:#?}");
        }
    }
    // Pooled too, on a few writes and reads.
    let s = store(&w.good_url("&mode=pooled"));
    s.set("pooled", b"v", 1, Ttl::seconds(60)).await.unwrap();
    assert_eq!(s.get("pooled").await.unwrap().unwrap().value, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_connection_and_the_watch_take_the_same_url() {
    logs();
    let w = world().await;
    let url = w.good_url("");
    let mut raw = RawConnection::connect(&url, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(raw.server(), w.secured.addr());
    raw.set("raw-k", b"raw-v", 3, Ttl::seconds(60))
        .await
        .unwrap();
    let items = raw.get_many(&["raw-k"]).await.unwrap();
    assert_eq!(items[0].as_ref().unwrap().value, b"raw-v");
    assert!(
        backend_memcached::raw::Watch::open(&url, "mutations", Duration::from_secs(2))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        backend_memcached::raw::target_addr(&url).unwrap(),
        w.secured.addr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_config_error_tried_once_per_call() {
    logs();
    let w = world().await;
    // Authentication without TLS, on this test's own server, so its
    // connection count is ours.
    let auth_only = w.start(Other::AuthOnly).await;
    let addr = auth_only.addr();
    let mut raw = RawConnection::connect(
        &format!("memcached://{USER}:{PASSWORD}@{addr}"),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let connections = |stats: Vec<(String, String)>| -> u64 {
        stats
            .iter()
            .find(|(k, _)| k == "total_connections")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    };
    let before = connections(raw.stats().await.unwrap());
    let bad = format!("memcached://{USER}:wrong-{PASSWORD}@{addr}");
    let (e, took) = get_error(&bad).await;
    assert_eq!(e.kind(), ErrorKind::Config, "{e:?}");
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let after = connections(raw.stats().await.unwrap());
    assert_eq!(after - before, 1, "one connection, no retry loop");
    // The same over TLS.
    let bad = w.url_with(&format!("{USER}:wrong-{PASSWORD}@"), "ca", "");
    let (e, _) = get_error(&bad).await;
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    // No credentials at all: memcached answers the first request with
    // CLIENT_ERROR unauthenticated; never a session read.
    let (e, _) = get_error(&w.url_with("", "ca", "")).await;
    assert!(e.to_string().contains("unauthenticated"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_that_do_not_verify_are_named() {
    logs();
    let w = world().await;
    // Signed by a CA we do not trust.
    let (e, _) = get_error(&w.url_with(&format!("{USER}:{PASSWORD}@"), "other-ca", "")).await;
    assert_eq!(e.kind(), ErrorKind::Config, "{e:?}");
    assert!(
        e.to_string()
            .contains(&TlsFailure::UntrustedCertificate.to_string()),
        "{e}"
    );
    // Valid, but for another name.
    let (e, _) = get_error(&w.good_url("&server_name=memcached.example")).await;
    assert!(
        e.to_string()
            .contains(&TlsFailure::HostnameMismatch.to_string()),
        "{e}"
    );
    // Expired.
    let stale = w.start(Other::Expired).await;
    let expired = format!(
        "memcacheds://{}?ca={}",
        stale.addr(),
        w.certs.url_path("ca.pem")
    );
    let (e, _) = get_error(&expired).await;
    assert!(
        e.to_string()
            .contains(&TlsFailure::ExpiredCertificate.to_string()),
        "{e}"
    );
    // No client certificate where memcached requires one.
    let no_cert = format!(
        "memcacheds://{USER}:{PASSWORD}@{}?ca={}",
        w.secured.addr(),
        w.certs.url_path("ca.pem")
    );
    let (e, _) = get_error(&no_cert).await;
    assert!(
        e.to_string()
            .contains(&TlsFailure::ClientCertificateRefused.to_string()),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_tls_mixed_up_fail_within_the_connect_timeout() {
    logs();
    let w = world().await;
    // Plaintext to the TLS port: memcached says nothing at all.
    let plain_to_tls = format!(
        "memcached://{USER}:{PASSWORD}@{}?connect_timeout_ms=300&timeout_ms=5000",
        w.secured.addr()
    );
    let (e, took) = get_error(&plain_to_tls).await;
    assert!(e.to_string().contains("memcacheds://"), "{e}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let plain_to_tls = format!(
        "memcached://{}?connect_timeout_ms=300&timeout_ms=5000",
        w.secured.addr()
    );
    let (e, took) = get_error(&plain_to_tls).await;
    assert!(e.to_string().contains("memcacheds://"), "{e}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // TLS to the plaintext port: memcached answers the ClientHello with an
    // error line (not TLS), or waits for a line end it never gets.
    let plain = w.start(Other::Plain).await;
    let tls_to_plain = format!(
        "memcacheds://{}?ca={}&connect_timeout_ms=300&timeout_ms=5000",
        plain.addr(),
        w.certs.url_path("ca.pem")
    );
    let (e, took) = get_error(&tls_to_plain).await;
    let text = e.to_string();
    assert!(
        text.contains(&TlsFailure::NotTls.to_string())
            || text.contains(&TlsFailure::HandshakeTimeout.to_string()),
        "{text}"
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere() {
    let logs = logs();
    let w = world().await;
    let good = w.good_url("");
    let s = store(&good);
    s.set("leak", b"v", 1, Ttl::seconds(60)).await.unwrap();
    let mut printed = format!("{s:?} {:?}", s.stats());
    printed += &format!(
        "{:?}",
        backend_memcached::MemcachedConfig::from_url(&good).unwrap()
    );
    printed += &backend_memcached::redact_url(&good);
    // Errors of every kind, Display and Debug, with their causes.
    let bad = w.url_with(&format!("{USER}:wrong-{PASSWORD}@"), "ca", "");
    for url in [
        bad.clone(),
        w.url_with(&format!("{USER}:{PASSWORD}@"), "other-ca", ""),
        format!(
            "memcached://{USER}:{PASSWORD}@{}?connect_timeout_ms=200",
            w.secured.addr()
        ),
    ] {
        let (e, _) = get_error(&url).await;
        printed += &format!("{e} {e:?} {}", e.chain());
    }
    for url in [
        format!("memcacheds://{USER}:{PASSWORD}@h:1?ca=/nonexistent.pem"),
        format!("memcacheds://{USER}:{PASSWORD}@h:x"),
        format!("memcacheds://{USER}:{PASSWORD}@h?bogus=1"),
    ] {
        let e = MemcachedStore::from_url(&url).unwrap_err();
        printed += &format!("{e} {e:?}");
    }
    let e = RawConnection::connect(&bad, Duration::from_secs(2))
        .await
        .unwrap_err();
    printed += &format!("{e} {e:?}");
    assert!(printed.contains(USER), "the user is shown: {printed}");
    assert!(!printed.contains(PASSWORD), "{printed}");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logged.contains(PASSWORD), "{logged}");
}

//! `memcacheds://` and `user:password@` against real memcached 1.6.18
//! processes started with `-Z` (TLS only, certificates made here by the
//! `openssl` command line tool) and `-Y` (ASCII authentication): the whole
//! conformance kit over TLS + authentication + a client certificate (in the
//! adaptive and multiplexed modes), the raw connection the replicator uses,
//! and every fault as a typed error before any session data crosses:
//! a wrong password, an untrusted, expired or misnamed certificate, a
//! missing client certificate, plaintext to the TLS port and TLS to a
//! plaintext port (both within the connect timeout), and the password
//! nowhere in logs, `Debug` output, stats or errors.
//!
//! Its servers are always local processes, whichever provider the run
//! uses (the certificate files are local paths the memcached process
//! reads, which a container would not see), so it runs in every pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_memcached::raw::RawConnection;
use backend_memcached::{MemcachedStore, TlsFailure};
use session_core::{ErrorKind, Namespaced, SessionId, Store, Ttl};
use test_support::{MemcachedOptions, Provider, ProviderKind, Server};

const USER: &str = "app";
/// Distinctive, so a leak anywhere is found by a plain substring search.
const PASSWORD: &str = "Pw-7d1f3c9e-never-printed";

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Scratch {
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e} (install it: apt-get install openssl)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A self-signed CA `name`.pem / `name`.key.
fn make_ca(dir: &Path, name: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=memorycached test {name}"),
    );
    let mut args = vec!["req", "-x509", "-nodes", "-days", "1"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
    openssl(dir, &args);
}

/// A certificate `name`.pem / `name`.key signed by `ca`, valid for `days`
/// (negative: already expired), with `ext` (subjectAltName, usage).
fn make_cert(dir: &Path, name: &str, ca: &str, days: &str, ext: &str) {
    let (key, csr, pem, cnf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &args);
    std::fs::write(dir.join(&cnf), ext).unwrap();
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            days,
            "-extfile",
            &cnf,
            "-out",
            &pem,
        ],
    );
}

/// Everything the tests share: the certificates and the servers, made once
/// (servers live on test-support's own runtime, so every test's runtime
/// may use them).
struct World {
    certs: Scratch,
    /// `-Z` with a client certificate required, and `-Y`.
    secured: Server,
    /// `-Z` with an expired server certificate.
    expired: Server,
    /// Plain memcached.
    plain: Server,
    /// `-Y` alone, used by one test only (it counts connections).
    auth_only: Server,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(make_world())
        })
        .join()
        .unwrap()
    })
}

async fn make_world() -> World {
    let dir = std::env::temp_dir().join(format!(
        "memorycached-mc-tls-{}-{}",
        std::process::id(),
        SessionId::generate(16).unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = Scratch(dir.clone());
    make_ca(&dir, "ca");
    make_ca(&dir, "other-ca");
    let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    make_cert(&dir, "server", "ca", "1", server_ext);
    make_cert(&dir, "stale", "ca", "-1", server_ext);
    make_cert(&dir, "client", "ca", "1", "extendedKeyUsage=clientAuth\n");
    let mut auth = std::fs::File::create(dir.join("auth")).unwrap();
    writeln!(auth, "{USER}:{PASSWORD}").unwrap();

    let provider = Provider::new(ProviderKind::Process).await.unwrap();
    let tls_args = |cert: &str, extra: &str| {
        vec![
            "-Z".to_owned(),
            "-o".to_owned(),
            format!(
                "ssl_chain_cert={},ssl_key={}{extra}",
                certs.file(&format!("{cert}.pem")),
                certs.file(&format!("{cert}.key"))
            ),
        ]
    };
    let mut secured_args = tls_args(
        "server",
        &format!(",ssl_verify_mode=2,ssl_ca_cert={}", certs.file("ca.pem")),
    );
    secured_args.extend(["-Y".to_owned(), certs.file("auth")]);
    let start = |extra_args: Vec<String>| {
        provider.memcached_with(MemcachedOptions {
            extra_args,
            ..MemcachedOptions::default()
        })
    };
    let secured = start(secured_args).await.unwrap();
    let expired = start(tls_args("stale", "")).await.unwrap();
    let plain = start(Vec::new()).await.unwrap();
    let auth_only = start(vec!["-Y".to_owned(), certs.file("auth")])
        .await
        .unwrap();
    World {
        certs,
        secured,
        expired,
        plain,
        auth_only,
    }
}

/// Percent-encodes what a path may hold that a URL query may not.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The secured server's URL with `userinfo` (`user:password@` or empty),
/// trusting `ca`, with the client certificate, plus `query`.
fn url_with(userinfo: &str, ca: &str, query: &str) -> String {
    let w = world();
    format!(
        "memcacheds://{userinfo}{}?ca={}&cert={}&key={}&connect_timeout_ms=2000&timeout_ms=2000{query}",
        w.secured.addr(),
        enc(&w.certs.file(&format!("{ca}.pem"))),
        enc(&w.certs.file("client.pem")),
        enc(&w.certs.file("client.key")),
    )
}

fn good_url(query: &str) -> String {
    url_with(&format!("{USER}:{PASSWORD}@"), "ca", query)
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

fn conformance(mode: &'static str) -> session_core::conformance::MakeStore {
    let url = good_url(&format!("&mode={mode}"));
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
    for mode in ["adaptive", "multiplexed"] {
        if let Err(failures) = session_core::conformance::run_all(conformance(mode)).await {
            panic!("conformance over TLS+auth ({mode}) failed: {failures:#?}");
        }
    }
    // Pooled too, on a few writes and reads.
    let s = store(&good_url("&mode=pooled"));
    s.set("pooled", b"v", 1, Ttl::seconds(60)).await.unwrap();
    assert_eq!(s.get("pooled").await.unwrap().unwrap().value, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_connection_and_the_watch_take_the_same_url() {
    logs();
    let url = good_url("");
    let mut raw = RawConnection::connect(&url, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(raw.server(), world().secured.addr());
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
        world().secured.addr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_config_error_tried_once_per_call() {
    logs();
    // Authentication without TLS, on a server no other test uses, so its
    // connection count is ours.
    let addr = world().auth_only.addr();
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
    let bad = url_with(&format!("{USER}:wrong-{PASSWORD}@"), "ca", "");
    let (e, _) = get_error(&bad).await;
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    // No credentials at all: memcached answers the first request with
    // CLIENT_ERROR unauthenticated; never a session read.
    let (e, _) = get_error(&url_with("", "ca", "")).await;
    assert!(e.to_string().contains("unauthenticated"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_that_do_not_verify_are_named() {
    logs();
    // Signed by a CA we do not trust.
    let (e, _) = get_error(&url_with(&format!("{USER}:{PASSWORD}@"), "other-ca", "")).await;
    assert_eq!(e.kind(), ErrorKind::Config, "{e:?}");
    assert!(
        e.to_string()
            .contains(&TlsFailure::UntrustedCertificate.to_string()),
        "{e}"
    );
    // Valid, but for another name.
    let (e, _) = get_error(&good_url("&server_name=memcached.example")).await;
    assert!(
        e.to_string()
            .contains(&TlsFailure::HostnameMismatch.to_string()),
        "{e}"
    );
    // Expired.
    let w = world();
    let expired = format!(
        "memcacheds://{}?ca={}",
        w.expired.addr(),
        enc(&w.certs.file("ca.pem"))
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
        enc(&w.certs.file("ca.pem"))
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
    let w = world();
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
    let tls_to_plain = format!(
        "memcacheds://{}?ca={}&connect_timeout_ms=300&timeout_ms=5000",
        w.plain.addr(),
        enc(&w.certs.file("ca.pem"))
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
    let good = good_url("");
    let s = store(&good);
    s.set("leak", b"v", 1, Ttl::seconds(60)).await.unwrap();
    let mut printed = format!("{s:?} {:?}", s.stats());
    printed += &format!(
        "{:?}",
        backend_memcached::MemcachedConfig::from_url(&good).unwrap()
    );
    printed += &backend_memcached::redact_url(&good);
    // Errors of every kind, Display and Debug, with their causes.
    let bad = url_with(&format!("{USER}:wrong-{PASSWORD}@"), "ca", "");
    for url in [
        bad.clone(),
        url_with(&format!("{USER}:{PASSWORD}@"), "other-ca", ""),
        format!(
            "memcached://{USER}:{PASSWORD}@{}?connect_timeout_ms=200",
            world().secured.addr()
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

//! `rediss://` against a real `redis-server` serving TLS only, with a CA
//! and a server certificate made here by the `openssl` command line tool
//! (`test_support::tls`):
//! the whole conformance kit over TLS, and the refusals that show the
//! certificate is really checked (untrusted CA, plain `redis://` to a TLS
//! port) come back as typed errors.
//!
//! Needs the local `redis-server` (built with TLS, as Debian's is) and
//! `openssl`, so it runs with the process provider only (feature
//! `process-provider-tests`, turned on by `cargo xtask test --provider
//! process`); a missing binary fails the test with what to install.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_redis::RedisStore;
use session_core::{SessionId, Store, Ttl};
use test_support::tls::Certificates;

/// How long the server may take to accept its first TLS connection.
const START_BUDGET: Duration = Duration::from_secs(10);

/// A `redis-server` child killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-server` listening with TLS only (no plain port).
fn start_redis(certs: &Certificates) -> Redis {
    let port = free_port();
    let file = |f: &str| certs.file(f);
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .args(["--tls-port", &port.to_string()])
        .args(["--tls-cert-file", &file("server.pem")])
        .args(["--tls-key-file", &file("server.key")])
        .args(["--tls-ca-cert-file", &file("ca.pem")])
        .args(["--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting redis-server: {e} (install it: apt-get install redis-server)")
        });
    Redis { child, port }
}

fn tls_url(redis: &Redis, certs: &Certificates, query: &str) -> String {
    let ca = certs.url_path("ca.pem");
    format!(
        "rediss://127.0.0.1:{}?ca_file={ca}&timeout_ms=2000&connect_timeout_ms=2000{query}",
        redis.port
    )
}

/// Polls a first write until the server answers over TLS; fails the test
/// if the server exits or does not answer within [`START_BUDGET`].
async fn wait_ready(redis: &mut Redis, store: &RedisStore) {
    let start = Instant::now();
    loop {
        match store.set("ready", b"1", 0, Ttl::seconds(60)).await {
            Ok(_) => return,
            Err(e) => {
                if let Some(status) = redis.child.try_wait().unwrap() {
                    let mut err = String::new();
                    if let Some(mut s) = redis.child.stderr.take() {
                        use std::io::Read as _;
                        let _ = s.read_to_string(&mut err);
                    }
                    panic!("redis-server exited ({status}) before serving TLS: {err}");
                }
                assert!(
                    start.elapsed() < START_BUDGET,
                    "no TLS answer within {START_BUDGET:?}: {e}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_passes_the_conformance_kit_and_checks_the_certificate() {
    let certs = Certificates::new("redis-tls").unwrap();
    let mut redis = start_redis(&certs);
    // Short backoff: the readiness poll reconnects until the server is up.
    let probe = RedisStore::from_url(&tls_url(
        &redis,
        &certs,
        "&backoff_initial_ms=20&backoff_max_ms=50",
    ))
    .unwrap();
    wait_ready(&mut redis, &probe).await;

    let entry = probe.get("ready").await.unwrap().expect("written above");
    assert_eq!(entry.value, b"1");
    assert!(entry.ttl.is_some_and(|t| t.as_secs() <= 60), "{entry:?}");

    // The whole kit, each store with its own prefix over TLS.
    let url = tls_url(&redis, &certs, "");
    let make = session_core::conformance::make_store(move || {
        let url = format!("{url}&prefix=tls{}%3A", SessionId::generate(16).unwrap());
        async move { Arc::new(RedisStore::from_url(&url).unwrap()) as Arc<dyn Store> }
    });
    if let Err(failures) = session_core::conformance::run_all(make).await {
        panic!("conformance over TLS failed: {failures:#?}");
    }

    // Without our CA the server's certificate is not trusted: a typed,
    // retryable connect error, nothing sent.
    let untrusted = RedisStore::from_url(&format!(
        "rediss://127.0.0.1:{}?connect_timeout_ms=2000",
        redis.port
    ))
    .unwrap();
    let e = untrusted.get("ready").await.unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert!(
        format!("{e:?}").to_lowercase().contains("certificate"),
        "{e:?}"
    );

    // Plain RESP to the TLS port gets no answer the client accepts.
    let plain = RedisStore::from_url(&format!(
        "redis://127.0.0.1:{}?timeout_ms=500&connect_timeout_ms=500",
        redis.port
    ))
    .unwrap();
    let e = plain.get("ready").await.unwrap_err();
    assert!(e.is_io(), "{e:?}");
}

#[test]
fn a_missing_ca_file_is_a_configuration_error() {
    let e =
        RedisStore::from_url("rediss://127.0.0.1:1?ca_file=%2Fnonexistent%2Fca.pem").unwrap_err();
    assert!(
        matches!(e, backend_redis::Error::InvalidConfig(ref m) if m.contains("/nonexistent/ca.pem")),
        "{e:?}"
    );
}

//! HTTPS served by the bridge itself (`[tls]`, `--tls-cert/--tls-key`),
//! with a CA and a server certificate made here by the `openssl` command
//! line tool (`test_support::tls`): the original's Perl SOAP::Lite client over `https://` (LWP
//! trusting the test CA) and curl with `--cacert` work; curl without the CA
//! refuses the certificate; a plain HTTP request and a client that stalls in
//! the handshake are dropped without holding anything (the header timeout
//! bounds the handshake, and a graceful stop is not held up); the command
//! says `https://`, takes its `[auth]` token from a `token_file` and
//! refuses a certificate without its key (or a key file that is missing);
//! the admin login cookies are `Secure`.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ANSWER_WITHIN, Bridge, blocking, memcached, perl_env, read_reply, test_config};
use soap_bridge::Config;
use soap_bridge::config::{AdminConfig, Auth, TlsConfig};
use test_support::tls::Certificates;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and
/// localhost (`server.pem`, `server.key`), in a directory removed on drop.
fn certificates(name: &str) -> Certificates {
    Certificates::new(&format!("soap-bridge-https-{name}")).unwrap()
}

fn tls(certs: &Certificates) -> TlsConfig {
    TlsConfig {
        cert: Some(certs.path("server.pem")),
        key: Some(certs.path("server.key")),
    }
}

/// Runs curl with `args`; panics when curl is missing.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running curl: {e} (install it: apt-get install curl)"))
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "curl failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_lite_and_curl_over_https() {
    let certs = certificates("clients");
    let server = memcached().await;
    let bridge = Bridge::start(Config {
        tls: tls(&certs),
        ..test_config(&format!("memcached://{}", server.addr()))
    })
    .await;
    let base = format!("https://127.0.0.1:{}", bridge.addr.port());
    let ca = certs.file("ca.pem");

    // curl trusting the test CA: the JSON mirror.
    let (b, c) = (base.clone(), ca.clone());
    let created = blocking(move || {
        curl(&[
            "--cacert",
            &c,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"uid":"tls-user"}"#,
            &format!("{b}/sessions"),
        ])
    })
    .await;
    let id = serde_json::from_str::<serde_json::Value>(&stdout(&created)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (b, c) = (base.clone(), ca.clone());
    let read = blocking(move || curl(&["--cacert", &c, &format!("{b}/sessions/{id}")])).await;
    assert!(stdout(&read).contains("tls-user"));
    // Without the test CA, curl refuses the certificate (exit 60).
    let b = base.clone();
    let refused = blocking(move || curl(&[&format!("{b}/healthz")])).await;
    assert_eq!(refused.status.code(), Some(60), "{refused:?}");

    // The original's SOAP::Lite client, LWP checking the certificate
    // against the test CA (and the host name, its default).
    let url = format!("https://127.0.0.1:{}/", bridge.addr.port());
    let out = blocking(move || {
        perl_env(
            "roundtrip.pl",
            &[&url, "1"],
            &[
                ("PERL_LWP_SSL_CA_FILE", &ca),
                ("HTTPS_CA_FILE", &ca),
                ("PERL_LWP_SSL_VERIFY_HOSTNAME", "1"),
            ],
        )
    })
    .await;
    assert!(out.contains("PASS"), "{out}");
    // And LWP really checks: without the test CA the same client fails.
    let url = format!("https://127.0.0.1:{}/", bridge.addr.port());
    let script = format!("{}/tests/perl/roundtrip.pl", env!("CARGO_MANIFEST_DIR"));
    let untrusting = blocking(move || {
        Command::new("perl")
            .args([&script, &url, "1"])
            .env_remove("PERL_LWP_SSL_CA_FILE")
            .env_remove("HTTPS_CA_FILE")
            .output()
            .unwrap()
    })
    .await;
    assert!(!untrusting.status.success(), "{untrusting:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&untrusting.stdout),
        String::from_utf8_lossy(&untrusting.stderr)
    );
    assert!(said.contains("certificate verify failed"), "{said}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_and_plain_http_hold_nothing() {
    let certs = certificates("stall");
    let bridge = Bridge::start(Config {
        tls: tls(&certs),
        ..test_config("memory://")
    })
    .await;
    let addr = bridge.addr;
    let ca = certs.file("ca.pem");

    // A client that connects and never starts the handshake.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    // Meanwhile others are served.
    let (c, port) = (ca.clone(), addr.port());
    let ok =
        blocking(move || curl(&["--cacert", &c, &format!("https://127.0.0.1:{port}/healthz")]))
            .await;
    assert_eq!(stdout(&ok), "ok\n");
    // The stalled one is dropped after the header timeout (1 s here).
    let start = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(1) + ANSWER_WITHIN,
        read_reply(&mut stalled),
    )
    .await
    .expect("a stalled handshake was not dropped");
    assert!(answer.is_none());
    assert!(start.elapsed() < Duration::from_secs(1) + ANSWER_WITHIN);

    // Plain HTTP to the HTTPS port: no HTTP answer, the connection closes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(ANSWER_WITHIN, read_reply(&mut plain))
        .await
        .expect("plain HTTP on the TLS port was not dropped");
    assert!(answer.is_none(), "{answer:?}");

    // A stop while a handshake stalls is not held past the header timeout.
    let _stalled_again = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    bridge.stop().await;
    assert!(start.elapsed() < Duration::from_secs(1) + ANSWER_WITHIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cookies_are_secure_over_https() {
    let certs = certificates("cookie");
    let bridge = Bridge::start(Config {
        tls: tls(&certs),
        auth: Some(Auth::Bearer {
            token: "cookie-token".into(),
        }),
        admin: AdminConfig {
            enabled: true,
            ..AdminConfig::default()
        },
        ..test_config("memory://")
    })
    .await;
    let (ca, port) = (certs.file("ca.pem"), bridge.addr.port());
    let page = blocking(move || {
        curl(&[
            "-i",
            "--cacert",
            &ca,
            &format!("https://127.0.0.1:{port}/admin/login"),
        ])
    })
    .await;
    let page = stdout(&page);
    let cookie = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: mc_admin_form=")
        })
        .unwrap_or_else(|| panic!("{page}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    bridge.stop().await;
}

#[test]
fn the_command_serves_https_with_a_token_file_and_wants_both_files() {
    let certs = certificates("command");
    let (cert, key, ca) = (
        certs.file("server.pem"),
        certs.file("server.key"),
        certs.file("ca.pem"),
    );
    let bin = env!("CARGO_BIN_EXE_soap-bridge");
    let alone = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--tls-cert", &cert])
        .output()
        .unwrap();
    assert!(!alone.status.success());
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(err.contains("tls needs both cert and key"), "{err}");

    // The deployment the README describes: the token in a file of its own
    // (a final newline, as editors write it), the certificate by flags.
    std::fs::write(certs.path("token"), "command-token\n").unwrap();
    std::fs::write(
        certs.path("bridge.toml"),
        format!(
            "[auth]\ntype = \"bearer\"\ntoken_file = {:?}\n",
            certs.file("token")
        ),
    )
    .unwrap();
    let missing = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(certs.path("bridge.toml"))
        .args(["--tls-cert", &cert, "--tls-key", &certs.file("nope.key")])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nope.key"), "{err}");

    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(certs.path("bridge.toml"))
        .args(["--tls-cert", &cert, "--tls-key", &key])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line
        .strip_prefix("soap-bridge listening on https://127.0.0.1:")
        .unwrap_or_else(|| panic!("{line}"));
    let port = rest.split('/').next().unwrap();
    let url = format!("https://127.0.0.1:{port}/sessions");
    let code = |auth: &[&str]| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}", "--cacert", &ca];
        args.extend(auth);
        args.extend(["-H", "Content-Type: application/json", "-d", "{}", &url]);
        stdout(&curl(&args))
    };
    let with_token = code(&["-H", "Authorization: Bearer command-token"]);
    let without = code(&[]);
    let wrong = code(&["-H", "Authorization: Bearer command-token\\n"]);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert_eq!(with_token, "201");
    assert_eq!(without, "401");
    assert_eq!(wrong, "401");
    assert!(status.success(), "{status}");
}

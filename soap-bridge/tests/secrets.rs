//! A password in the store URL (`memcached://USER:PASSWORD@H:P`) is shown
//! nowhere by the bridge: not in what the command prints when it starts,
//! not in its logs (at `trace`), not in `/metrics`, not in error bodies
//! (JSON, SOAP faults, LL::NG REST) — with the right password against a
//! memcached started with `-Y` (ASCII authentication), with the same
//! password refused by another such memcached (so every request fails),
//! and in the error of a store URL refused at start.
//!
//! The bridge runs as the binary, as deployed, so its own start line and
//! log setup are what is checked.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, json, request, soap};
use serde_json::json;
use test_support::{MemcachedOptions, MemcachedSecurity, PROVIDER_ENV, Provider, Server};

const USER: &str = "sess-app7";
/// Distinctive, so a leak is found by a plain substring search.
const SECRET: &str = "SECRETPW-3c71e09b";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "bridge-secrets-{}-{}",
            std::process::id(),
            session_core::SessionId::generate(16).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A memcached with `-Y` accepting `USER:password` only.
async fn auth_memcached(dir: &Scratch, name: &str, password: &str) -> Server {
    let file = dir.path(name);
    std::fs::write(&file, format!("{USER}:{password}\n")).unwrap();
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    provider
        .memcached_secured(
            MemcachedOptions::default(),
            MemcachedSecurity {
                tls: None,
                auth_file: Some(file),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("memcached -Y ({}): {e}", provider.description()))
}

fn store_url(server: &Server) -> String {
    format!(
        "memcached://{USER}:{SECRET}@{}?connect_timeout_ms=1000&timeout_ms=1000",
        server.addr()
    )
}

/// The binary on `store`, logging everything; stdout and stderr go to
/// files (a pipe nobody reads could fill and stall it).
struct Running {
    child: Child,
    addr: SocketAddr,
    stdout: PathBuf,
    stderr: PathBuf,
}

fn spawn(dir: &Scratch, name: &str, store: &str) -> (Child, PathBuf, PathBuf) {
    let stdout = dir.path(&format!("{name}.out"));
    let stderr = dir.path(&format!("{name}.err"));
    let child = Command::new(env!("CARGO_BIN_EXE_soap-bridge"))
        .args(["--listen", "127.0.0.1:0", "--principal", "uid"])
        .args(["--store", store])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(File::create(&stdout).unwrap()))
        .stderr(Stdio::from(File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    (child, stdout, stderr)
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Starts the bridge and waits (polling) for the address it prints.
async fn start(dir: &Scratch, name: &str, store: &str) -> Running {
    let (mut child, stdout, stderr) = spawn(dir, name, store);
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let out = read(&stdout);
        if let Some(rest) = out.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited ({status}) before listening:\n{}", read(&stderr));
        }
        assert!(Instant::now() < deadline, "no address printed within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Running {
        child,
        addr,
        stdout,
        stderr,
    }
}

impl Running {
    /// SIGTERM, a clean exit (polled), then everything it printed.
    async fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{status}: {}", read(&self.stderr));
        format!("{}\n{}", read(&self.stdout), read(&self.stderr))
    }
}

/// Every reply's status line, headers and body, for the leak search.
fn shown(replies: &[&Reply]) -> String {
    replies
        .iter()
        .map(|r| format!("{} {:?}\n{}\n", r.status, r.headers, r.body))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_password_appears_in_no_output_log_metric_or_error() {
    let dir = Scratch::new();
    let good = auth_memcached(&dir, "auth-good", SECRET).await;
    let refusing = auth_memcached(&dir, "auth-other", "another-password").await;

    // The right password: sessions work, /metrics counts them.
    let ok = start(&dir, "ok", &store_url(&good)).await;
    let created = json(ok.addr, "POST", "/sessions", &json!({"uid": "jdoe"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let read_back = json(ok.addr, "GET", &format!("/sessions/{id}"), &json!(null)).await;
    assert_eq!(read_back.status, 200, "{}", read_back.body);
    assert_eq!(read_back.json()["uid"], "jdoe");
    let unknown = json(
        ok.addr,
        "GET",
        &format!("/sessions/{}", "0".repeat(32)),
        &json!(null),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let metrics = request(ok.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("soap_bridge_"), "{}", metrics.body);
    let health = request(ok.addr, "GET", "/healthz", &[], b"").await;
    let mut everything = shown(&[&created, &read_back, &unknown, &metrics, &health]);
    let printed = ok.stop().await;
    assert!(printed.contains("listening on"), "{printed}");
    assert!(printed.contains("serving"), "logs captured: {printed}");
    everything += &printed;

    // The same password, refused: every store call fails, with a body.
    let refused = start(&dir, "refused", &store_url(&refusing)).await;
    let create = json(refused.addr, "POST", "/sessions", &json!({"uid": "jdoe"})).await;
    assert!(create.status >= 500, "{} {}", create.status, create.body);
    assert!(create.json()["error"].is_string(), "{}", create.body);
    let get = json(
        refused.addr,
        "GET",
        &format!("/sessions/{id}"),
        &json!(null),
    )
    .await;
    assert!(get.status >= 500, "{} {}", get.status, get.body);
    let fault = soap(refused.addr, "getSession", &format!("<c>{id}</c>")).await;
    assert_eq!(fault.status, 500, "{}", fault.body);
    assert!(fault.body.contains("faultstring"), "{}", fault.body);
    let llng = request(
        refused.addr,
        "GET",
        &format!("/llng/sessions/global/{id}"),
        &[],
        b"",
    )
    .await;
    assert!(llng.status >= 400, "{} {}", llng.status, llng.body);
    let metrics = request(refused.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let health = request(refused.addr, "GET", "/healthz", &[], b"").await;
    everything += &shown(&[&create, &get, &fault, &llng, &metrics, &health]);
    let printed = refused.stop().await;
    // The refusal itself is logged, so the search below covers it.
    assert!(
        printed.contains("refused the credentials") || printed.contains("unauthenticated"),
        "the failure is logged:\n{printed}"
    );
    everything += &printed;

    // A store URL refused at start: the one-line error.
    let (mut child, stdout, stderr) = spawn(
        &dir,
        "bad-url",
        &format!("memcached://{USER}:{SECRET}@127.0.0.1:1?bogus=1"),
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    let err = read(&stderr);
    assert!(err.contains("bogus"), "{err}");
    everything += &read(&stdout);
    everything += &err;

    assert!(everything.contains(USER), "the user is shown somewhere");
    if let Some(at) = everything.find(SECRET) {
        let from = everything[..at].rfind('\n').map_or(0, |n| n + 1);
        let to = everything[at..]
            .find('\n')
            .map_or(everything.len(), |n| at + n);
        panic!("the password is shown: {}", &everything[from..to]);
    }
}

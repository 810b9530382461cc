//! Test helpers: the bridge started in-process on `127.0.0.1:0` through the
//! same `serve` entry point the command uses, a memcached from
//! `test-support` (container or local process, as `MEMORYCACHED_PROVIDER`
//! says), a raw HTTP/1.1 client (so tests see exactly what goes over the
//! wire, stalls included), and runners for the real Perl and Python clients.
//! Missing prerequisites fail with what to install; nothing skips.

// Each test binary uses a different subset of these helpers, and a helper
// that cannot do its job panics: that panic is the test failure report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use soap_bridge::Config;
use test_support::{PROVIDER_ENV, Provider, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running bridge; stopped (gracefully) on drop.
pub struct Bridge {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bridge {
    /// Starts a bridge with `config` (its `listen` is ignored).
    pub async fn start(config: Config) -> Bridge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            soap_bridge::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("bridge failed");
        });
        Bridge {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A bridge on the in-memory store with test-sized timeouts.
    pub async fn memory() -> Bridge {
        Bridge::start(test_config("memory://")).await
    }

    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops it and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A config on `store` with short timeouts (1 s) for the hardening tests.
pub fn test_config(store: &str) -> Config {
    Config {
        store: store.into(),
        principal: Some("uid".into()),
        header_timeout_ms: 1_000,
        body_timeout_ms: 1_000,
        shutdown_grace_ms: 2_000,
        ..Config::default()
    }
}

/// A memcached started for this test.
pub async fn memcached() -> Server {
    let provider = Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    });
    provider
        .memcached()
        .await
        .unwrap_or_else(|e| panic!("starting memcached ({}): {e}", provider.description()))
}

/// An HTTP response as read from the wire.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (with `Connection: close`) and reads the whole reply.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (413) and close before the whole body is sent:
    // a failed write is fine, the reply is what the test checks.
    if stream.write_all(head.as_bytes()).await.is_ok() {
        let _ = stream.write_all(body).await;
    }
    read_reply(&mut stream)
        .await
        .expect("connection closed without a reply")
}

/// Reads a reply until the server closes; `None` if it closed without one.
pub async fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A JSON request.
pub async fn json(addr: SocketAddr, method: &str, path: &str, body: &serde_json::Value) -> Reply {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        &bytes,
    )
    .await
}

/// A SOAP request for `method` with `params` (already encoded elements).
pub async fn soap(addr: SocketAddr, method: &str, params: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><{method} xmlns=\"urn:MemcachedSOAPClass\">{params}</{method}></soap:Body></soap:Envelope>"
    );
    let action = format!("\"urn:MemcachedSOAPClass#{method}\"");
    request(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "text/xml; charset=utf-8"),
            ("SOAPAction", &action),
        ],
        body.as_bytes(),
    )
    .await
}

/// Runs `perl` on a script of `tests/perl/` with `args`; returns stdout.
/// Fails with what to install when SOAP::Lite is missing.
pub fn perl(script: &str, args: &[&str]) -> String {
    perl_env(script, args, &[])
}

/// [`perl`] with environment variables (e.g. LWP's CA file for HTTPS).
pub fn perl_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let check = Command::new("perl")
        .args(["-MSOAP::Lite", "-e", "1"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!("Perl's SOAP::Lite is needed for this test: apt-get install libsoap-lite-perl"),
    }
    let path = format!("{}/tests/perl/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("perl")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "perl {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `python3` on a script of `tests/python/` with `args`; returns stdout.
/// Fails with what to install when zeep is missing.
pub fn python(script: &str, args: &[&str]) -> String {
    let check = Command::new("python3").args(["-c", "import zeep"]).output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!("Python's zeep is needed for this test: pip install zeep"),
    }
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a blocking child-process helper off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Upper bound the hardening tests allow for an answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

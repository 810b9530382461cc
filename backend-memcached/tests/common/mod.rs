//! Test helpers: memcached servers from `test-support` (containers or local
//! processes, as `MEMORYCACHED_PROVIDER` says; `auto` when unset), and real
//! Perl Cache::Memcached.
//!
//! Every server sits behind test-support's proxy, so [`Server::addr`] stays
//! the same across `stop`/`start` and the network faults (`cut`,
//! `blackhole`, `set_latency`) behave the same on both providers.
//! A missing binary, image, Docker daemon or Perl module FAILS the test with
//! what to install or set: these tests never skip themselves.

// Each test binary uses a different subset of these helpers, and a helper
// that cannot do its job panics: that panic is the test failure report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake;

use std::io::Write;
use std::process::{Command, Stdio};

use backend_memcached::ServerSpec;
pub use test_support::Server;
use test_support::{MemcachedOptions, PROVIDER_ENV, Provider};

/// A provider as `MEMORYCACHED_PROVIDER` says.
///
/// One per call rather than one per test process: it is cheap (nothing for
/// processes; a daemon ping and a private network, about 60 ms, for Docker),
/// and a provider in a `static` would never be dropped, leaving its Docker
/// network behind until the next run cleans it up. A provider's network
/// lives as long as its servers, so callers may drop it at once.
async fn provider() -> Provider {
    Provider::from_env().await.unwrap_or_else(|e| {
        panic!("no provider for test servers (set {PROVIDER_ENV}=docker|process): {e}")
    })
}

/// A memcached with default options (64 MB, 1 MiB items), started and ready.
pub async fn memcached() -> Server {
    memcached_with(MemcachedOptions::default()).await
}

/// A memcached with `opts`, started and ready.
pub async fn memcached_with(opts: MemcachedOptions) -> Server {
    let provider = provider().await;
    provider
        .memcached_with(opts)
        .await
        .unwrap_or_else(|e| panic!("starting memcached ({}): {e}", provider.description()))
}

/// `n` memcached servers with default options, started concurrently, in a
/// stable order.
pub async fn memcacheds(n: usize) -> Vec<Server> {
    let provider = provider().await;
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..n {
        let provider = provider.clone();
        starts.spawn(async move { (i, provider.memcached().await) });
    }
    let mut servers: Vec<Option<Server>> = (0..n).map(|_| None).collect();
    while let Some(joined) = starts.join_next().await {
        let (i, started) = joined.expect("a server start task panicked");
        let server = started
            .unwrap_or_else(|e| panic!("starting memcached ({}): {e}", provider.description()));
        servers[i] = Some(server);
    }
    servers.into_iter().map(Option::unwrap).collect()
}

/// The [`ServerSpec`] a store uses to reach `server` (its stable proxy address).
pub fn spec(server: &Server) -> ServerSpec {
    let addr = server.socket_addr();
    ServerSpec::new(addr.ip().to_string(), addr.port())
}

/// A loopback port that refuses connections for as long as this value lives:
/// a socket is bound to it but never listens, so no other test or server
/// can take the port meanwhile, and a connect gets an immediate RST.
///
/// This is a *dead host* as clients see it, which a stopped [`Server`] is
/// not: its proxy still accepts connections and then resets them.
pub struct DeadPort {
    socket: tokio::net::TcpSocket,
    /// The refused port.
    pub port: u16,
}

/// Reserves a [`DeadPort`].
pub fn dead_port() -> DeadPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("create a TCP socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind a loopback port");
    let port = socket.local_addr().expect("bound address").port();
    DeadPort { socket, port }
}

/// Fails unless perl with Cache::Memcached is installed.
pub fn require_perl_cache_memcached() {
    let ok = Command::new("perl")
        .args(["-MCache::Memcached", "-e1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "perl with Cache::Memcached is required: install the Debian package \
         `libcache-memcached-perl` (apt-get install libcache-memcached-perl)"
    );
}

/// Runs a Perl script with `args`, feeding `stdin`, and returns its stdout.
/// Panics with stderr if it fails.
pub fn run_perl(script: &str, args: &[&str], stdin: &str) -> String {
    require_perl_cache_memcached();
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "perl failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A test key set: plain words, numbered keys, session-id-like hex and
/// punctuation, all valid memcached keys.
pub fn test_keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("key{i}"),
            1 => format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
            ),
            2 => format!("session:{i}:user@example.org"),
            _ => format!("k-{}-{}", i * 7919, "x".repeat(i % 13)),
        })
        .collect()
}

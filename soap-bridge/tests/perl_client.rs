//! The original's clients, for real: SOAP::Lite scripts (tests/perl/) built
//! like the distribution's own (`->uri('urn:MemcachedSOAPClass')->proxy($url)`)
//! against the bridge on the in-memory store and on a real memcached, at both
//! endpoint paths and in both of SOAP::Lite's output modes.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bridge, blocking, memcached, perl, test_config};
use soap_bridge::config::Config;

async fn run(bridge: &Bridge, path: &str, readable: bool) {
    let url = format!("http://{}{path}", bridge.addr);
    let mode = if readable { "1" } else { "0" };
    let out = blocking(move || perl("roundtrip.pl", &[&url, mode])).await;
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("ok field cn comes back eq"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_lite_on_memory_store() {
    let bridge = Bridge::memory().await;
    run(&bridge, "/", true).await;
    run(&bridge, "/cgi-bin/MemcachedSOAP.cgi", false).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_lite_on_memcached() {
    let server = memcached().await;
    let bridge = Bridge::start(test_config(&format!("memcached://{}", server.addr()))).await;
    run(&bridge, "/cgi-bin/MemcachedSOAP.cgi", true).await;
    // A second bridge on the same memcached serves the same sessions.
    let second = Bridge::start(test_config(&format!("memcached://{}", server.addr()))).await;
    run(&second, "/", false).await;
    second.stop().await;
    bridge.stop().await;
}

/// `--codec storable`: what a SOAP client writes through the bridge, a Perl
/// node reads straight from memcached, as the original's own sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storable_sessions_are_read_by_a_perl_node() {
    let server = memcached().await;
    let addr = server.addr().to_string();
    let bridge = Bridge::start(Config {
        codec: "storable".into(),
        ..test_config(&format!("memcached://{addr}"))
    })
    .await;
    let url = format!("http://{}/", bridge.addr);
    let out = blocking(move || perl("storable_node.pl", &[&url, &addr])).await;
    assert!(out.contains("PASS"), "{out}");
    run(&bridge, "/", true).await;
    bridge.stop().await;
}

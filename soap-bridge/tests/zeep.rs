//! The WSDL, checked with a real WSDL-driven client: Python's zeep loads
//! `GET /?wsdl` and calls every operation through it
//! (tests/python/zeep_client.py).

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bridge, blocking, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_drives_every_operation_through_the_wsdl() {
    let bridge = Bridge::memory().await;
    let wsdl = format!("{}?wsdl", bridge.url());
    let out = blocking(move || python("zeep_client.py", &[&wsdl])).await;
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("ok findByPrincipal"), "{out}");
    bridge.stop().await;
}

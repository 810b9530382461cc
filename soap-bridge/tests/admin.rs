//! The `/admin` session explorer. In a real headless Chromium (Debian's
//! `chromium` and `chromium-driver`, driven by Python Selenium,
//! tests/python/admin_browser.py): log in, find a session created over
//! SOAP, edit it (seen afterwards through `getSession`), a conflicting edit
//! refused, hostile values shown as text, a user revoked. Over plain HTTP:
//! CSRF tokens, login, security headers, POST-only actions, and the
//! explorer being off unless enabled.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{Bridge, Reply, blocking, memcached, request};
use serde_json::{Value, json};
use soap_bridge::Config;
use soap_bridge::config::{AdminConfig, Auth};

const TOKEN: &str = "admin-test-token";
const AUTH: (&str, &str) = ("Authorization", "Bearer admin-test-token");

fn admin_config(store: &str) -> Config {
    Config {
        store: store.into(),
        principal: Some("uid".into()),
        principal_index: true,
        timeout: 3600,
        auth: Some(Auth::Bearer {
            token: TOKEN.into(),
        }),
        admin: AdminConfig {
            enabled: true,
            ..AdminConfig::default()
        },
        ..Config::default()
    }
}

async fn create(addr: SocketAddr, fields: Value) -> String {
    let r = request(
        addr,
        "POST",
        "/sessions",
        &[AUTH, ("Content-Type", "application/json")],
        fields.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn soap_call(addr: SocketAddr, method: &str, params: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><{method} xmlns=\"urn:MemcachedSOAPClass\">{params}</{method}></soap:Body></soap:Envelope>"
    );
    let action = format!("\"urn:MemcachedSOAPClass#{method}\"");
    let r = request(
        addr,
        "POST",
        "/",
        &[
            AUTH,
            ("Content-Type", "text/xml; charset=utf-8"),
            ("SOAPAction", &action),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// Chromium, its driver and Selenium, or a panic saying how to get them.
fn require_browser() {
    for (path, package) in [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is needed for the admin browser test: apt-get install {package}"
        );
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .output();
    assert!(
        selenium.is_ok_and(|o| o.status.success()),
        "Python Selenium is needed for the admin browser test: pip install selenium \
         (it drives /usr/bin/chromium; no browser is downloaded)"
    );
}

/// Sessions for the browser, the script run against `bridge`, and the
/// effects checked over SOAP and JSON. Screenshots go to `shots`.
async fn browser_flow(bridge: &Bridge, shots: String) {
    require_browser();
    let a = bridge.addr;
    // The session to edit, created over SOAP like the original's clients.
    let r = soap_call(
        a,
        "setSession",
        "<a xsi:type=\"xsd:string\">uid</a><b xsi:type=\"xsd:string\">alice</b>\
         <c xsi:type=\"xsd:string\">cn</c><d xsi:type=\"xsd:string\">Alice</d>\
         <e xsi:type=\"xsd:string\">logins</e><f xsi:type=\"xsd:int\">42</f>",
    )
    .await;
    let start = r.body.find("xsi:type=\"xsd:string\">").unwrap() + 22;
    let edit = r.body[start..start + 32].to_owned();
    let patch = request(
        a,
        "PATCH",
        &format!("/sessions/{edit}"),
        &[AUTH, ("Content-Type", "application/json")],
        json!({"prefs": {"theme": "dark", "langs": ["en", "fr"], "tz": null}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(patch.status, 204, "{}", patch.body);
    let xss = create(
        a,
        json!({"uid": "eve", "note": "<script>alert(1)</script>",
               "<img src=x onerror=alert(2)>": "\"><script>window.pwned=1</script>"}),
    )
    .await;
    let mut mallory = Vec::new();
    for n in 0..3 {
        mallory.push(create(a, json!({"uid": "mallory", "device": n})).await);
    }

    let base = format!("http://{a}");
    let xss_arg = xss.clone();
    let out = blocking(move || {
        let path = format!(
            "{}/tests/python/admin_browser.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = Command::new("python3")
            .args([&path, &base, TOKEN, &edit, &xss_arg, "mallory", "3", &shots])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "admin_browser.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        (edit, stdout)
    })
    .await;
    let (edit, stdout) = out;
    assert!(stdout.contains("PASS"), "{stdout}");

    // The edits, seen by a SOAP client.
    let g = soap_call(
        a,
        "getSession",
        &format!("<c xsi:type=\"xsd:string\">{edit}</c>"),
    )
    .await;
    assert!(
        g.body.contains(">Alice Edited<"),
        "edit not seen: {}",
        g.body
    );
    assert!(!g.body.contains("Lost update"), "{}", g.body);
    assert!(
        g.body.contains(">light<"),
        "the other client's change: {}",
        g.body
    );
    assert!(!g.body.contains("logins"), "deleted field: {}", g.body);
    // The revoked user has no session left; the others are untouched.
    for id in &mallory {
        let r = request(a, "GET", &format!("/sessions/{id}"), &[AUTH], b"").await;
        assert_eq!(r.status, 404, "{id} survived the revocation: {}", r.body);
    }
    let r = request(a, "GET", &format!("/sessions/{xss}"), &[AUTH], b"").await;
    assert_eq!(r.status, 200);
}

fn shots_dir(store: &str) -> String {
    // ADMIN_SCREENSHOTS=docs/admin (from the workspace root) refreshes the
    // README's pictures; by default they go under target/.
    match std::env::var("ADMIN_SCREENSHOTS") {
        Ok(dir) if store == "memory" => {
            format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"))
        }
        _ => format!("{}/admin-screenshots/{store}", env!("CARGO_TARGET_TMPDIR")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_explores_edits_and_revokes_on_memory() {
    let bridge = Bridge::start(admin_config("memory://")).await;
    browser_flow(&bridge, shots_dir("memory")).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_explores_edits_and_revokes_on_memcached() {
    let server = memcached().await;
    let bridge = Bridge::start(admin_config(&format!("memcached://{}", server.addr()))).await;
    browser_flow(&bridge, shots_dir("memcached")).await;
    bridge.stop().await;
}

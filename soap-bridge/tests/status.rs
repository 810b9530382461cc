//! The error classes through a running bridge on a real memcached (the
//! table in the crate docs, `soap_bridge::status`): the JSON mirror,
//! LemonLDAP::NG's REST service and the admin pages answer the same
//! status for the same class, and both SOAP services the same fault code.
//! Unknown is 404 (LL::NG REST: 400, what its client expects), invalid
//! input 400, stored bytes that do not decode 500, a stopped memcached 503
//! with `Retry-After`.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::{Bridge, Reply, memcached, request, test_config};
use soap_bridge::Config;
use soap_bridge::config::{AdminConfig, Auth};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "status-test-token";
const AUTH: (&str, &str) = ("Authorization", "Bearer status-test-token");

fn config(store: &str) -> Config {
    Config {
        auth: Some(Auth::Bearer {
            token: TOKEN.into(),
        }),
        admin: AdminConfig {
            enabled: true,
            ..AdminConfig::default()
        },
        ..test_config(store)
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[AUTH], b"").await
}

/// A SOAP call of the original service (with the credentials).
async fn soap(addr: SocketAddr, method: &str, id: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><{method} xmlns=\"urn:MemcachedSOAPClass\"><c>{id}</c></{method}></soap:Body></soap:Envelope>"
    );
    let action = format!("\"urn:MemcachedSOAPClass#{method}\"");
    request(
        addr,
        "POST",
        "/",
        &[AUTH, ("SOAPAction", &action), ("Content-Type", "text/xml")],
        body.as_bytes(),
    )
    .await
}

/// A SOAP call of LL::NG's service (with the credentials).
async fn llng_soap(addr: SocketAddr, method: &str, id: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><{method} xmlns=\"urn:Lemonldap/NG/Common/PSGI/SOAPService\"><c>{id}</c></{method}></soap:Body></soap:Envelope>"
    );
    let action = format!("\"urn:Lemonldap/NG/Common/PSGI/SOAPService#{method}\"");
    request(
        addr,
        "POST",
        "/llng/soap",
        &[AUTH, ("SOAPAction", &action), ("Content-Type", "text/xml")],
        body.as_bytes(),
    )
    .await
}

/// The value of `name="NAME" value="..."` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap() + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// `name=value` of a Set-Cookie header.
fn cookie(r: &Reply, name: &str) -> String {
    let set = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{name}=")))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers));
    set.split(';').next().unwrap().to_owned()
}

/// Logs in to /admin; returns the login cookie.
async fn admin_login(addr: SocketAddr) -> String {
    let form = request(addr, "GET", "/admin/login", &[], b"").await;
    let pre = cookie(&form, "mc_admin_form");
    let body = format!("csrf={}&token={TOKEN}", hidden(&form.body, "csrf"));
    let r = request(
        addr,
        "POST",
        "/admin/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &pre),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    cookie(&r, "mc_admin")
}

/// Writes `bytes` under `key` in memcached with `flags`, as a foreign
/// writer would.
async fn raw_set(server: &str, key: &str, flags: u32, bytes: &[u8]) {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut command = format!("set {key} {flags} 0 {}\r\n", bytes.len()).into_bytes();
    command.extend_from_slice(bytes);
    command.extend_from_slice(b"\r\n");
    stream.write_all(&command).await.unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    assert_eq!(line, "STORED\r\n");
}

fn assert_fault(r: &Reply, code: &str) {
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.contains(&format!("<faultcode>{code}</faultcode>")),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_invalid_and_undecodable_on_every_surface() {
    let server = memcached().await;
    let bridge = Bridge::start(config(&format!("memcached://{}", server.addr()))).await;
    let a = bridge.addr;
    let admin = admin_login(a).await;
    let page = |id: String| {
        let admin = admin.clone();
        async move {
            request(
                a,
                "GET",
                &format!("/admin/session?id={id}"),
                &[("Cookie", &admin)],
                b"",
            )
            .await
        }
    };

    // Unknown: 404, and no Retry-After (waiting does not help).
    let unknown = "0123456789abcdef0123456789abcdef";
    let r = get(a, &format!("/sessions/{unknown}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(page(unknown.into()).await.status, 404);
    // LL::NG's client reads any 400 as "no such session".
    let r = get(a, &format!("/llng/sessions/global/{unknown}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("does not exist"), "{}", r.body);

    // Invalid input: 400 and soap:Client.
    let r = get(a, "/sessions/not-hex").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "invalid_id");
    assert_eq!(page("not-hex".into()).await.status, 400);
    assert_fault(&soap(a, "deleteSession", "not-hex").await, "soap:Client");

    // Bytes under a session key that the codec its flags name (JSON,
    // 0x100) cannot read: our side, 500, and soap:Server.
    let broken = "fedcba9876543210fedcba9876543210";
    raw_set(&server.addr(), broken, 0x100, b"{not json").await;
    let r = get(a, &format!("/sessions/{broken}")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.json()["code"], "store_error");
    let r = get(a, &format!("/llng/sessions/global/{broken}")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(page(broken.into()).await.status, 500);
    assert_fault(&soap(a, "getSession", broken).await, "soap:Server");
    assert_fault(&llng_soap(a, "getAttributes", broken).await, "soap:Server");

    // A good session still reads.
    let r = request(
        a,
        "POST",
        "/sessions",
        &[AUTH, ("Content-Type", "application/json")],
        br#"{"uid":"u"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(get(a, &format!("/sessions/{id}")).await.status, 200);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_is_503_with_retry_after() {
    let server = memcached().await;
    let bridge = Bridge::start(config(&format!(
        "memcached://{}?timeout_ms=300&connect_timeout_ms=300",
        server.addr()
    )))
    .await;
    let a = bridge.addr;
    let admin = admin_login(a).await;
    let r = request(
        a,
        "POST",
        "/sessions",
        &[AUTH, ("Content-Type", "application/json")],
        br#"{"uid":"u"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();

    server.stop().await.unwrap();

    for path in [
        format!("/sessions/{id}"),
        format!("/llng/sessions/global/{id}"),
    ] {
        let r = get(a, &path).await;
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("1"), "{path}");
    }
    let r = request(
        a,
        "GET",
        &format!("/admin/session?id={id}"),
        &[("Cookie", &admin)],
        b"",
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_fault(&soap(a, "getSession", &id).await, "soap:Server");
    assert_fault(&llng_soap(a, "getAttributes", &id).await, "soap:Server");
    bridge.stop().await;
}

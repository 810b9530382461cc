//! Hostile and broken requests get an answer (or a closed connection) within
//! two seconds, and the bridge keeps serving everyone else meanwhile:
//! malformed XML, oversized bodies, an entity bomb, clients that stall in
//! their headers or their body. Also authentication and the ops endpoints.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ANSWER_WITHIN, Bridge, read_reply, request, soap, test_config};
use soap_bridge::Auth;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A status call answered quickly: the bridge is still serving.
async fn still_serving(bridge: &Bridge) {
    let start = Instant::now();
    let r = soap(bridge.addr, "status", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("OK"));
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "status took {:?}",
        start.elapsed()
    );
}

fn post_xml(action: &str) -> Vec<(&str, &str)> {
    vec![
        ("Content-Type", "text/xml; charset=utf-8"),
        ("SOAPAction", action),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_bodies_are_client_faults() {
    let bridge = Bridge::memory().await;
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><getSession xmlns=\"urn:MemcachedSOAPClass\">&lol9;</getSession></soap:Body></soap:Envelope>",
        (1..10)
            .map(|i| format!(
                "<!ENTITY lol{i} \"{}\">",
                format!("&lol{};", i - 1)
                    .repeat(10)
                    .replace("&lol0;", "&lol;")
            ))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed", b"<a><b></a>".to_vec(), "malformed XML"),
        ("unclosed", b"<a><b>".to_vec(), "unexpected end"),
        (
            "unknown prefix",
            b"<soap:Envelope/>".to_vec(),
            "undeclared namespace prefix",
        ),
        ("not xml", b"hello".to_vec(), ""),
        ("not utf-8", vec![0xff, 0xfe, 0x00], "UTF-8"),
        ("entity bomb", bomb.into_bytes(), "DTD"),
        ("not an envelope", b"<a/>".to_vec(), "SOAP 1.1 envelope"),
        ("empty", Vec::new(), ""),
    ];
    for (what, body, says) in cases {
        let start = Instant::now();
        let r = request(
            bridge.addr,
            "POST",
            "/",
            &post_xml("\"urn:MemcachedSOAPClass#getSession\""),
            &body,
        )
        .await;
        assert!(
            start.elapsed() < ANSWER_WITHIN,
            "{what}: {:?}",
            start.elapsed()
        );
        assert_eq!(r.status, 500, "{what}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
        assert!(
            r.body.contains("<faultcode>soap:Client</faultcode>"),
            "{what}: {}",
            r.body
        );
        assert!(r.body.contains(says), "{what}: {}", r.body);
    }
    // A SOAPAction naming another method, as the original refused it.
    let r = request(
        bridge.addr,
        "POST",
        "/",
        &post_xml("\"urn:Other#status\""),
        br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><status xmlns="urn:MemcachedSOAPClass"/></s:Body></s:Envelope>"#,
    )
    .await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("SOAPAction shall match"), "{}", r.body);
    still_serving(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let bridge = Bridge::memory().await;
    let big = vec![b'x'; (1 << 20) + 1];
    let start = Instant::now();
    let r = request(bridge.addr, "POST", "/", &post_xml(""), &big).await;
    assert!(start.elapsed() < ANSWER_WITHIN);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("soap:Client"), "{}", r.body);
    // Declared small, sent chunked and large: cut at the limit.
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    stream
        .write_all(b"POST /sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, "y".repeat(1 << 16));
    let start = Instant::now();
    for _ in 0..20 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let r = read_reply(&mut stream).await.expect("a reply");
    assert!(start.elapsed() < ANSWER_WITHIN);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "body");
    still_serving(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_cut_off_while_others_are_served() {
    let bridge = Bridge::memory().await;
    // Stalls in the middle of its headers.
    let mut in_headers = TcpStream::connect(bridge.addr).await.unwrap();
    in_headers
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Connects and says nothing.
    let mut silent = TcpStream::connect(bridge.addr).await.unwrap();
    // Sends its headers, then a third of its body.
    let mut in_body = TcpStream::connect(bridge.addr).await.unwrap();
    in_body
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\nContent-Type: text/xml\r\n\r\n<soap:Envelope")
        .await
        .unwrap();
    let start = Instant::now();
    still_serving(&bridge).await;
    still_serving(&bridge).await;

    let header_stall = read_reply(&mut in_headers).await;
    assert!(
        start.elapsed() < ANSWER_WITHIN,
        "header stall held for {:?}",
        start.elapsed()
    );
    if let Some(r) = header_stall {
        assert_eq!(r.status, 408, "{r:?}");
    }
    let silent_reply = read_reply(&mut silent).await;
    assert!(
        start.elapsed() < ANSWER_WITHIN,
        "silent client held for {:?}",
        start.elapsed()
    );
    if let Some(r) = silent_reply {
        assert_eq!(r.status, 408, "{r:?}");
    }
    let body_stall = read_reply(&mut in_body)
        .await
        .expect("a reply to the body stall");
    assert!(
        start.elapsed() < ANSWER_WITHIN,
        "body stall held for {:?}",
        start.elapsed()
    );
    assert_eq!(body_stall.status, 408);
    assert!(
        body_stall.body.contains("did not arrive in time"),
        "{}",
        body_stall.body
    );
    still_serving(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication() {
    let config = soap_bridge::Config {
        auth: Some(Auth::Bearer {
            token: "s3cret".into(),
        }),
        ..test_config("memory://")
    };
    let bridge = Bridge::start(config).await;
    let body = br#"{"uid":"jdoe"}"#;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic czNjcmV0")],
    ] {
        let r = request(bridge.addr, "POST", "/sessions", &headers, body).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json()["code"], "unauthorized");
        assert!(r.header("www-authenticate").is_some());
        let r = request(bridge.addr, "GET", "/metrics", &headers, b"").await;
        assert_eq!(r.status, 401);
    }
    let r = soap(
        bridge.addr,
        "getSession",
        "<id>0123456789abcdef0123456789abcdef</id>",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("soap:Client") && r.body.contains("authentication required"));
    // Open without credentials: status, /healthz, the WSDL.
    still_serving(&bridge).await;
    assert_eq!(
        request(bridge.addr, "GET", "/healthz", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        request(bridge.addr, "GET", "/?wsdl", &[], b"").await.status,
        200
    );
    let ok = [("Authorization", "Bearer s3cret")];
    let r = request(bridge.addr, "POST", "/sessions", &ok, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    bridge.stop().await;

    let config = soap_bridge::Config {
        auth: Some(Auth::Basic {
            user: "app".into(),
            password: "pw".into(),
        }),
        ..test_config("memory://")
    };
    let bridge = Bridge::start(config).await;
    // base64("app:pw") and base64("app:px")
    let r = request(
        bridge.addr,
        "POST",
        "/sessions",
        &[("Authorization", "Basic YXBwOnB4")],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        bridge.addr,
        "POST",
        "/sessions",
        &[("Authorization", "Basic YXBwOnB3")],
        body,
    )
    .await;
    assert_eq!(r.status, 201);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_healthz_and_wsdl() {
    let bridge = Bridge::memory().await;
    still_serving(&bridge).await;
    let _ = soap(bridge.addr, "getSession", "<id>nothex</id>").await;
    let r = request(bridge.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = request(bridge.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        r.body
            .contains("soap_bridge_requests_total{operation=\"status\",status=\"200\"} 1"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(
            "soap_bridge_requests_total{operation=\"getSession\",status=\"soap:Client\"} 1"
        ),
        "{}",
        r.body
    );
    assert!(r.body.contains(
        "soap_bridge_request_duration_seconds_bucket{operation=\"status\",le=\"+Inf\"} 1"
    ));
    assert!(
        r.body
            .contains("# TYPE soap_bridge_store_errors_total counter")
    );
    for path in ["/?wsdl", "/cgi-bin/MemcachedSOAP.cgi?WSDL"] {
        let r = request(bridge.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("<definitions"), "{}", r.body);
        assert!(
            r.body
                .contains(&format!("location=\"http://{}", bridge.addr))
        );
    }
    let r = request(bridge.addr, "GET", "/nope", &[], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");
    bridge.stop().await;
}

//! The original's captured requests, replayed byte for byte (both of
//! SOAP::Lite's output modes), and what a client could notice in the
//! answers: HTTP status, content type, envelope, the wire types SOAP::Lite's
//! autotyping chose (xsd:int 77777 stays xsd:int, "00000" stays a string,
//! Latin-1 bytes go back as the same base64Binary). Also the store failing:
//! a `soap:Server` fault, a JSON 503, and the store error counted.

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bridge, json, request, soap, test_config};

const READABLE: &str = include_str!("data/set_session_readable.xml");
const COMPACT: &str = include_str!("data/set_session_compact.xml");

fn headers(method: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "text/xml; charset=utf-8".to_owned()),
        ("SOAPAction", format!("\"urn:MemcachedSOAPClass#{method}\"")),
        ("User-Agent", "SOAP::Lite/Perl/1.27".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_get_compatible_answers() {
    let bridge = Bridge::memory().await;
    for body in [READABLE, COMPACT] {
        let h = headers("setSession");
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request(
            bridge.addr,
            "POST",
            "/cgi-bin/MemcachedSOAP.cgi",
            &h,
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
        assert!(r.body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope soap:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soap="));
        assert!(!r.body.ends_with('\n'));
        let start =
            r.body.find("xsi:type=\"xsd:string\">").unwrap() + "xsi:type=\"xsd:string\">".len();
        let id = &r.body[start..start + 32];
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{}", r.body);

        let g = soap(
            bridge.addr,
            "getSession",
            &format!("<c-gensym44 xsi:type=\"xsd:string\">{id}</c-gensym44>"),
        )
        .await;
        assert_eq!(g.status, 200);
        // The key `xml` makes the session a Map, as in the original.
        assert!(
            g.body
                .contains("xmlns:apachens=\"http://xml.apache.org/xml-soap\"")
        );
        assert!(
            g.body
                .contains("<result xmlns=\"\" xsi:type=\"apachens:Map\">"),
            "{}",
            g.body
        );
        for item in [
            "<key xsi:type=\"xsd:string\">APT_APT</key><value xsi:type=\"xsd:string\">00000</value>",
            "<key xsi:type=\"xsd:string\">big</key><value xsi:type=\"xsd:long\">5000000000</value>",
            "<key xsi:type=\"xsd:string\">boitier</key><value xsi:type=\"xsd:int\">77777</value>",
            "<key xsi:type=\"xsd:string\">cn</key><value xsi:type=\"xsd:int\">88888</value>",
            "<key xsi:type=\"xsd:string\">empty</key><value xsi:type=\"xsd:string\" />",
            "<key xsi:type=\"xsd:string\">f</key><value xsi:type=\"xsd:float\">1.5</value>",
            "<key xsi:type=\"xsd:string\">list</key><value soapenc:arrayType=\"xsd:anyType[3]\" xsi:type=\"soapenc:Array\"><item xsi:type=\"xsd:int\">1</item><item xsi:type=\"xsd:string\">two</item><item soapenc:arrayType=\"xsd:int[1]\" xsi:type=\"soapenc:Array\"><item xsi:type=\"xsd:int\">3</item></item></value>",
            "<key xsi:type=\"xsd:string\">uid</key><value xsi:type=\"xsd:base64Binary\">TGUgVmVuZ2V1ciBNYXNxdek=</value>",
            "<key xsi:type=\"xsd:string\">xml</key><value xsi:type=\"xsd:string\">a&lt;b&gt;&amp;c\"d</value>",
        ] {
            assert!(g.body.contains(item), "missing {item} in {}", g.body);
        }
        // The JSON view of the same session: numbers are numbers, the
        // Latin-1 bytes are the characters they stand for.
        let j = json(
            bridge.addr,
            "GET",
            &format!("/sessions/{id}"),
            &serde_json::Value::Null,
        )
        .await
        .json();
        assert_eq!(j["boitier"], 77777);
        assert_eq!(j["APT_APT"], "00000");
        assert_eq!(j["uid"], "Le Vengeur Masqu\u{e9}");
    }
    // An unknown id: an empty result element, HTTP 200.
    let g = soap(
        bridge.addr,
        "getSession",
        "<c xsi:type=\"xsd:string\">0123456789abcdef0123456789abcdef</c>",
    )
    .await;
    assert_eq!(g.status, 200);
    assert!(g.body.contains("<getSessionResponse xmlns=\"urn:MemcachedSOAPClass\"><result xmlns=\"\" /></getSessionResponse>"), "{}", g.body);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_are_server_faults_and_counted() {
    // Nothing listens on port 1.
    let bridge = Bridge::start(test_config(
        "memcached://127.0.0.1:1?timeout_ms=200&connect_timeout_ms=200",
    ))
    .await;
    let r = soap(
        bridge.addr,
        "getSession",
        "<c>0123456789abcdef0123456789abcdef</c>",
    )
    .await;
    assert_eq!(r.status, 500);
    assert!(
        r.body.contains("<faultcode>soap:Server</faultcode>"),
        "{}",
        r.body
    );
    let r = json(
        bridge.addr,
        "GET",
        "/sessions/0123456789abcdef0123456789abcdef",
        &serde_json::Value::Null,
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "store_error");
    let m = request(bridge.addr, "GET", "/metrics", &[], b"").await;
    assert!(
        m.body.contains("soap_bridge_store_errors_total{kind="),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(
            "soap_bridge_requests_total{operation=\"getSession\",status=\"soap:Server\"} 1"
        )
    );
    assert!(
        m.body
            .contains("soap_bridge_requests_total{operation=\"get\",status=\"503\"} 1")
    );
    // Still answering status: it needs no store.
    assert_eq!(soap(bridge.addr, "status", "").await.status, 200);
    bridge.stop().await;
}

//! The bridge as LemonLDAP::NG's session server, driven by LL::NG's own
//! client modules from Debian (unchanged: `Lemonldap::NG::Common::Session`
//! over `...::Apache::Session::SOAP` and `...::REST`, through
//! `tests/perl/llng/session.pl`), on the in-memory store and on memcached
//! with the Storable codec, where the sessions LL::NG wrote are read back
//! through the JSON mirror, the original SOAP protocol and a Perl node of
//! the original (Cache::Memcached + Storable). Also: 64-hex ids, Latin-1
//! values, wrong credentials (401), bad and expired `__secret` (403),
//! `all=1` and `search`, and malformed requests (400 with a JSON error,
//! never a panic).

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use base64::Engine as _;
use common::{Bridge, blocking, memcached, perl, request, test_config};
use soap_bridge::config::{Auth, Config, LlngConfig};

const USER: &str = "llng";
const PASSWORD: &str = "s3cret";
const KEY: &str = "llng-test-key";

/// A config on `store` with basic auth and, if `key`, LL::NG's key.
fn llng_config(store: &str, key: Option<&str>) -> Config {
    Config {
        auth: Some(Auth::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        }),
        llng: LlngConfig {
            key: key.map(str::to_owned),
            ..LlngConfig::default()
        },
        principal_index: true,
        ..test_config(store)
    }
}

/// Runs the LL::NG driver: `protocol` soap|rest, `cipher` as the script
/// takes it; stdout.
async fn driver(
    addr: SocketAddr,
    protocol: &str,
    password: &str,
    cipher: &str,
    args: &[&str],
) -> String {
    let url = match protocol {
        "soap" => format!("http://{addr}/llng/soap"),
        _ => format!("http://{addr}/llng/sessions/global"),
    };
    let mut all: Vec<String> = vec![
        protocol.into(),
        url,
        USER.into(),
        password.into(),
        cipher.into(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    blocking(move || {
        let check = Command::new("perl")
            .args([
                "-MLemonldap::NG::Common::Session",
                "-MLemonldap::NG::Handler::Main",
                "-e",
                "1",
            ])
            .output();
        match check {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "LemonLDAP::NG's Perl modules are needed for this test: \
                 apt-get install liblemonldap-ng-common-perl liblemonldap-ng-handler-perl"
            ),
        }
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        perl("llng/session.pl", &args)
    })
    .await
}

/// The `id=` line of a driver's output.
fn id_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("id="))
        .unwrap_or_else(|| panic!("no id in:\n{out}"))
        .to_owned()
}

/// The `attr KEY HEX` lines as (key, bytes).
fn attrs(out: &str) -> Vec<(String, Vec<u8>)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("attr "))
        .map(|l| {
            let (k, hex) = l.split_once(' ').unwrap_or((l, ""));
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (k.to_owned(), bytes)
        })
        .collect()
}

fn attr(out: &str, key: &str) -> Option<Vec<u8>> {
    attrs(out)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// What session.pl's `create` writes, as Perl bytes.
fn assert_created_fields(out: &str, uid: &str) {
    assert_eq!(attr(out, "uid").as_deref(), Some(uid.as_bytes()), "{out}");
    assert_eq!(
        attr(out, "cn").as_deref(),
        Some(&b"Le Vengeur Masqu\xe9"[..]),
        "{out}"
    );
    assert_eq!(
        attr(out, "sn").as_deref(),
        Some(&b"Caf\xc3\xa9"[..]),
        "{out}"
    );
    assert_eq!(
        attr(out, "_session_kind").as_deref(),
        Some(&b"SSO"[..]),
        "{out}"
    );
}

fn basic() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Basic {token}")
}

async fn crud_both(bridge: &Bridge) {
    let out = driver(bridge.addr, "soap", PASSWORD, KEY, &["crud", "dwho"]).await;
    assert!(out.contains("PASS"), "{out}");
    let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["crud", "dwho"]).await;
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("ok REST id is 64 hex digits"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_over_soap_and_rest_on_memory_store() {
    let bridge = Bridge::start(llng_config("memory://", Some(KEY))).await;
    crud_both(&bridge).await;

    // A 64-hex id made by the REST client is served over SOAP too, and a
    // SOAP session over REST.
    let rest_id = id_of(&driver(bridge.addr, "rest", PASSWORD, KEY, &["create", "rtyler"]).await);
    assert_eq!(rest_id.len(), 64, "{rest_id}");
    let out = driver(bridge.addr, "soap", PASSWORD, KEY, &["read", &rest_id]).await;
    assert_created_fields(&out, "rtyler");
    let soap_id = id_of(&driver(bridge.addr, "soap", PASSWORD, KEY, &["create", "msmith"]).await);
    let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["read", &soap_id]).await;
    assert_created_fields(&out, "msmith");
    let out = driver(bridge.addr, "soap", PASSWORD, KEY, &["delete", &rest_id]).await;
    assert!(out.contains("removed=1"), "{out}");
    let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["read", &rest_id]).await;
    assert!(
        out.contains("error=") && out.contains("unexistant session"),
        "{out}"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_with_401() {
    let bridge = Bridge::start(llng_config("memory://", Some(KEY))).await;
    // The SOAP client reads the 401's fault: its message is the error.
    let out = driver(bridge.addr, "soap", "wrong", KEY, &["create", "dwho"]).await;
    assert!(
        out.contains("error=") && out.contains("SOAP Error: authentication required"),
        "{out}"
    );
    let out = driver(bridge.addr, "rest", "wrong", KEY, &["create", "dwho"]).await;
    assert!(out.contains("REST server returns 401"), "{out}");
    // Both answer 401 with the Basic challenge LWP needs to send the
    // credentials at all; with them, the right ones pass.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong"))
    );
    for (method, path) in [
        ("POST", "/llng/soap"),
        ("GET", "/llng/sessions/global/0123456789abcdef"),
    ] {
        for headers in [vec![], vec![("Authorization", wrong.as_str())]] {
            let r = request(bridge.addr, method, path, &headers, b"").await;
            assert_eq!(r.status, 401, "{path}: {}", r.body);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"soap-bridge\"")
            );
        }
    }
    // Nothing was written by the refused clients.
    let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["all"]).await;
    assert!(out.contains("count=0"), "{out}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_expired_secret_is_refused_with_403() {
    let bridge = Bridge::start(llng_config("memory://", Some(KEY))).await;
    for cipher in ["another-key".to_owned(), format!("expired:{KEY}")] {
        let out = driver(bridge.addr, "rest", PASSWORD, &cipher, &["create", "dwho"]).await;
        assert!(out.contains("REST server returns 403"), "{cipher}: {out}");
        let id = id_of(&out);
        let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["read", &id]).await;
        assert!(
            out.contains("unexistant session"),
            "{cipher}: created anyway: {out}"
        );
        let out = driver(
            bridge.addr,
            "rest",
            PASSWORD,
            &cipher,
            &["search", "uid", "dwho"],
        )
        .await;
        assert!(out.contains("REST server returns 403"), "{cipher}: {out}");
    }
    // No secret at all: the id is unknown, as LL::NG's server says.
    let out = driver(bridge.addr, "rest", PASSWORD, "none", &["create", "dwho"]).await;
    assert!(out.contains("REST server returns 400"), "{out}");

    // Without a key configured, a valid-looking secret cannot create or list.
    let keyless = Bridge::start(llng_config("memory://", None)).await;
    let out = driver(keyless.addr, "rest", PASSWORD, KEY, &["create", "dwho"]).await;
    assert!(out.contains("REST server returns 403"), "{out}");
    let r = request(
        keyless.addr,
        "POST",
        "/llng/sessions/global/?all=1",
        &[
            ("Authorization", &basic()),
            ("Content-Type", "application/json"),
        ],
        b"{\"data\":null,\"__secret\":\"x\"}",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("no key is configured"),
        "{}",
        r.body
    );
    // SOAP needs no secret: its sessions get the bridge's ids.
    let out = driver(keyless.addr, "soap", PASSWORD, "none", &["crud", "dwho"]).await;
    assert!(out.contains("PASS"), "{out}");
    keyless.stop().await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_and_search_by_uid() {
    // With the per-user index, a search by the principal field reads the
    // index instead of scanning.
    for indexed in [false, true] {
        let mut config = llng_config("memory://", Some(KEY));
        config.principal_index = indexed;
        let bridge = Bridge::start(config).await;
        let a = id_of(&driver(bridge.addr, "rest", PASSWORD, KEY, &["create", "dwho"]).await);
        let b = id_of(&driver(bridge.addr, "soap", PASSWORD, KEY, &["create", "dwho"]).await);
        let c = id_of(&driver(bridge.addr, "rest", PASSWORD, KEY, &["create", "rtyler"]).await);
        // A persistent session is not one of the global type's.
        let r = request(
            bridge.addr,
            "POST",
            "/llng/sessions/persistent",
            &[("Authorization", &basic())],
            b"{\"uid\":\"dwho\"}",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["session"]["_session_kind"], "Persistent");

        let out = driver(
            bridge.addr,
            "rest",
            PASSWORD,
            KEY,
            &["search", "uid", "dwho"],
        )
        .await;
        let mut want = vec![format!("found {a} dwho"), format!("found {b} dwho")];
        want.sort();
        let found: Vec<&str> = out.lines().filter(|l| l.starts_with("found ")).collect();
        assert_eq!(found, want, "{out}");
        let out = driver(bridge.addr, "rest", PASSWORD, KEY, &["all"]).await;
        assert!(out.contains("count=3") && out.contains(&c), "{out}");
        bridge.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_forms_of_get() {
    let bridge = Bridge::start(llng_config("memory://", Some(KEY))).await;
    let auth = basic();
    let h = [("Authorization", auth.as_str())];
    let r = request(
        bridge.addr,
        "POST",
        "/llng/sessions/global",
        &h,
        b"{\"uid\":\"dwho\",\"cn\":\"Masqu\xe9\"}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let created = r.json();
    assert_eq!(created["result"], 1);
    let id = created["session"]["_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created["session"]["_utime"].is_u64(), "{}", r.body);
    let base = format!("/llng/sessions/global/{id}");
    let r = request(bridge.addr, "GET", &format!("{base}/uid"), &h, b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "\"dwho\""));
    let r = request(bridge.addr, "GET", &format!("{base}/[uid,nope]"), &h, b"").await;
    assert_eq!(r.json(), serde_json::json!({"uid": "dwho", "nope": null}));
    // The Latin-1 byte comes back as one byte.
    let r = request(bridge.addr, "GET", &format!("{base}/cn"), &h, b"").await;
    assert_eq!(
        r.body, "\"Masqu\u{fffd}\"",
        "one 0xe9 byte, read lossily as UTF-8"
    );
    // The JSON mirror sees the character.
    let r = request(bridge.addr, "GET", &format!("/sessions/{id}"), &h, b"").await;
    assert_eq!(r.json()["cn"], "Masqu\u{e9}");
    // PUT sets and removes keys.
    let r = request(
        bridge.addr,
        "PUT",
        &base,
        &h,
        b"{\"mail\":\"d@x\",\"cn\":null}",
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"result": 1}))
    );
    let r = request(bridge.addr, "GET", &base, &h, b"").await;
    assert_eq!(r.json()["mail"], "d@x");
    assert!(r.json().get("cn").is_none(), "{}", r.body);
    // Unknown ids: 400, whatever the verb.
    let unknown = format!("/llng/sessions/global/{}", "ab".repeat(32));
    for method in ["GET", "PUT", "DELETE"] {
        let r = request(bridge.addr, method, &unknown, &h, b"{}").await;
        assert_eq!(r.status, 400, "{method}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
    let r = request(bridge.addr, "GET", "/llng/sessions/nosuchtype/ab", &h, b"").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(bridge.addr, "DELETE", &base, &h, b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"result": 1}))
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_with_a_json_error() {
    let bridge = Bridge::start(llng_config("memory://", Some(KEY))).await;
    let auth = basic();
    let h = [("Authorization", auth.as_str())];
    let id = "cd".repeat(32);
    let put = format!("/llng/sessions/global/{id}");
    for (method, path, body) in [
        ("POST", "/llng/sessions/global", &b"{\"uid\":"[..]),
        ("POST", "/llng/sessions/global", b"[1,2]"),
        ("POST", "/llng/sessions/global", b""),
        ("POST", "/llng/sessions/global/?all=1", b"not json"),
        ("PUT", put.as_str(), b"{\"__secret\":"),
        ("PUT", put.as_str(), b"\"text\""),
        ("PUT", put.as_str(), b"\xff\xfe{"),
    ] {
        let r = request(bridge.addr, method, path, &h, body).await;
        assert_eq!(r.status, 400, "{method} {path} {body:?}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
    // A secret of the wrong shape is a 403, not a crash.
    let r = request(bridge.addr, "PUT", &put, &h, b"{\"__secret\":[1]}").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = request(bridge.addr, "PUT", &put, &h, b"{\"__secret\":\"%%%\"}").await;
    assert_eq!(r.status, 403, "{}", r.body);

    // SOAP: malformed XML and wrong parameters are faults.
    let envelope = |inner: &str| {
        format!(
            "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{inner}</soap:Body></soap:Envelope>"
        )
    };
    let ns = "urn:Lemonldap/NG/Common/PSGI/SOAPService";
    for body in [
        "<soap:Envelope".to_owned(),
        envelope(&format!("<getAttributes xmlns=\"{ns}\"/>")),
        envelope(&format!(
            "<setAttributes xmlns=\"{ns}\"><id>{id}</id><h>text</h></setAttributes>"
        )),
        envelope(&format!("<getCookies xmlns=\"{ns}\"/>")),
        envelope("<getAttributes xmlns=\"urn:MemcachedSOAPClass\"><id>x</id></getAttributes>"),
    ] {
        let r = request(bridge.addr, "POST", "/llng/soap", &h, body.as_bytes()).await;
        assert_eq!(r.status, 500, "{body}: {}", r.body);
        assert!(
            r.body.contains("<faultcode>soap:Client</faultcode>"),
            "{}",
            r.body
        );
    }
    // An unknown or malformed id is error 1, not a fault.
    for id in [id.as_str(), "not-an-id"] {
        let body = envelope(&format!(
            "<getAttributes xmlns=\"{ns}\"><id>{id}</id></getAttributes>"
        ));
        let r = request(bridge.addr, "POST", "/llng/soap", &h, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body
                .contains("<session><error xsi:type=\"xsd:int\">1</error></session>"),
            "{}",
            r.body
        );
    }
    // setAttributes never creates under the caller's id.
    let body = envelope(&format!(
        "<setAttributes xmlns=\"{ns}\"><id>{id}</id><h><uid>x</uid></h></setAttributes>"
    ));
    let r = request(bridge.addr, "POST", "/llng/soap", &h, body.as_bytes()).await;
    assert!(
        r.body.contains("<result xsi:type=\"xsd:int\">0</result>"),
        "{}",
        r.body
    );
    // The bridge still answers.
    let r = request(bridge.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    bridge.stop().await;
}

/// Logs in to the `/admin` explorer with the bridge's basic credentials;
/// the login cookie (`mc_admin=...`).
async fn admin_login(addr: SocketAddr) -> String {
    let form = request(addr, "GET", "/admin/login", &[], b"").await;
    let pre = cookie(&form, "mc_admin_form");
    let marker = "name=\"csrf\" value=\"";
    let start = form.body.find(marker).expect("csrf field") + marker.len();
    let csrf = form.body[start..].split('"').next().unwrap();
    let body = format!("csrf={csrf}&user={USER}&password={PASSWORD}");
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

/// `name=value` of a reply's Set-Cookie for `name`.
fn cookie(r: &common::Reply, name: &str) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| {
            v.starts_with(&format!("{name}="))
                .then(|| v.split(';').next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers))
}

/// On memcached with the Storable codec: what LL::NG writes over SOAP and
/// REST is read by the JSON mirror, the original's SOAP protocol, the
/// `/admin` explorer and a Perl node of the original, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_storable_sessions_are_shared_with_the_other_protocols() {
    let server = memcached().await;
    let addr = server.addr().to_string();
    let mut config = Config {
        codec: "storable".into(),
        ..llng_config(&format!("memcached://{addr}"), Some(KEY))
    };
    config.admin.enabled = true;
    let bridge = Bridge::start(config).await;
    crud_both(&bridge).await;
    let admin = admin_login(bridge.addr).await;

    let auth = basic();
    for protocol in ["soap", "rest"] {
        let id = id_of(&driver(bridge.addr, protocol, PASSWORD, KEY, &["create", "dwho"]).await);
        if protocol == "rest" {
            assert_eq!(id.len(), 64, "{id}");
        }
        // A Perl node of the original, straight from memcached.
        let (a, i) = (addr.clone(), id.clone());
        let node = blocking(move || perl("llng/storable_read.pl", &[&a, &i])).await;
        assert_created_fields(&node, "dwho");
        // The JSON mirror: the Latin-1 byte as the character.
        let r = request(
            bridge.addr,
            "GET",
            &format!("/sessions/{id}"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["cn"], "Le Vengeur Masqu\u{e9}");
        assert_eq!(r.json()["_session_kind"], "SSO");
        // The original SOAP protocol.
        let body = format!(
            "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><getSession xmlns=\"urn:MemcachedSOAPClass\"><id xsi:type=\"xsd:string\">{id}</id></getSession></soap:Body></soap:Envelope>"
        );
        let r = request(
            bridge.addr,
            "POST",
            "/",
            &[
                ("Authorization", &auth),
                ("SOAPAction", "\"urn:MemcachedSOAPClass#getSession\""),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // "Le Vengeur Masqu\xe9" as base64Binary, as the original wrote it.
        assert!(r.body.contains("TGUgVmVuZ2V1ciBNYXNxdek="), "{}", r.body);
        assert!(r.body.contains(&id), "{}", r.body);
        // The explorer: the session, and the user's sessions through the
        // per-user index.
        let page = request(
            bridge.addr,
            "GET",
            &format!("/admin/session?id={id}"),
            &[("Cookie", &admin)],
            b"",
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Le Vengeur Masqu\u{e9}"),
            "{}",
            page.body
        );
        let page = request(
            bridge.addr,
            "GET",
            "/admin/user?uid=dwho",
            &[("Cookie", &admin)],
            b"",
        )
        .await;
        assert!(page.body.contains(&id), "{}", page.body);
        // And deleted by LL::NG, gone for the Perl node too.
        let out = driver(bridge.addr, protocol, PASSWORD, KEY, &["delete", &id]).await;
        assert!(out.contains("removed=1"), "{out}");
        let (a, i) = (addr.clone(), id.clone());
        let node = blocking(move || perl("llng/storable_read.pl", &[&a, &i])).await;
        assert!(node.contains("missing"), "{node}");
    }
    bridge.stop().await;
}

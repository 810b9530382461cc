//! Live interop with the Perl original on three real memcached servers.
//!
//! `tests/perl/memorycached_node.pl` is a Perl node as the original
//! deployment runs it: Apache::Session (Debian's libapache-session-perl)
//! with Apache::Session::Memorycached's store over Cache::Memcached —
//! sessions as Storable `nfreeze` with flags 1 under the bare id, the
//! reverse key `md5_hex(uid) -> id` with flags 0. Sessions cross between it
//! and `Sessions` on `MemcachedStore` in both directions, and each key must
//! sit on the server both sides route it to.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use backend_memcached::{MemcachedConfig, MemcachedStore, ServerSpec};
use common::{Server, memcacheds, require_perl_cache_memcached, spec};
use serde_json::{Value, json};
use session_core::principal::md5_hex;
use session_core::{Codec, Sessions, SessionsConfig, Store};
use session_core::{codec, storable};

/// Runs the Perl node in `mode` against `servers`, one JSON request per
/// line; returns one JSON answer per request.
fn perl_node(mode: &str, servers: &[ServerSpec], requests: &[Value]) -> Vec<Value> {
    require_perl_cache_memcached();
    let has_apache_session = Command::new("perl")
        .args(["-MApache::Session", "-MJSON::PP", "-e1"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_apache_session,
        "perl with Apache::Session is required: apt-get install -y libapache-session-perl"
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/perl/memorycached_node.pl");
    let mut child = Command::new("perl")
        .arg(script)
        .arg(mode)
        .args(servers.iter().map(ServerSpec::addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perl");
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "perl node {mode} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    answers
}

struct Cluster {
    _running: Vec<Server>,
    specs: Vec<ServerSpec>,
    store: Arc<MemcachedStore>,
}

async fn cluster() -> Cluster {
    let running = memcacheds(3).await;
    let specs: Vec<ServerSpec> = running.iter().map(spec).collect();
    let store =
        Arc::new(MemcachedStore::connect(MemcachedConfig::with_servers(specs.clone())).unwrap());
    Cluster {
        _running: running,
        specs,
        store,
    }
}

impl Cluster {
    fn sessions(&self, codec: Codec) -> Sessions {
        let config = SessionsConfig {
            principal: Some("uid".into()),
            codec,
            ..Default::default()
        };
        Sessions::new(self.store.clone(), config).unwrap()
    }

    /// Checks that `key` is stored on the server we route it to and on no
    /// other (Perl put it there, or Perl found it there); returns that server.
    async fn home_of(&self, key: &str) -> String {
        let home = self.store.server_for(key).to_owned();
        for server in &self.specs {
            let single =
                MemcachedStore::connect(MemcachedConfig::with_servers(vec![server.clone()]))
                    .unwrap();
            let here = single.get(key).await.unwrap().is_some();
            assert_eq!(here, server.addr() == home, "{key} on {}", server.addr());
        }
        home
    }
}

/// Session data covering the mapping: Latin-1 text Perl holds as bytes,
/// UTF-8 text, UTF-8 bytes never decoded ("cafÃ©" is what Perl holds for
/// them), integers of every width, numeric strings, nesting, undef, long.
fn sample(i: usize) -> Value {
    json!({
        "uid": format!("user{i}"),
        "name": "Zoë Ångström",
        "city": "São Paulo",
        "greeting": "日本語 – 12 €",
        "raw": "cafÃ©",
        "small": i, "negative": -129, "wide": 5_000_000_000i64, "looks_numeric": "007",
        "roles": ["admin", "é", {"nested": [1, null, {"deep": "ü"}]}],
        "prefs": {"lang": "fr", "clé": "valeur", "€": "euro key"},
        "nothing": null,
        "long": "é".repeat(300 + i),
    })
}

#[tokio::test]
async fn perl_writes_rust_loads_identical_sessions() {
    let c = cluster().await;
    let requests: Vec<Value> = (0..24).map(|i| json!({ "data": sample(i) })).collect();
    let written = perl_node("write", &c.specs, &requests);
    // A JSON-writing node reads them too: on read, the flags decide.
    let sessions = c.sessions(Codec::Json);
    let mut homes = BTreeSet::new();
    for (i, w) in written.iter().enumerate() {
        let id = w["id"].as_str().unwrap();
        let session = sessions.load(id).await.unwrap().expect("Perl's session");
        assert_eq!(Value::Object(session.data().clone()), w["data"], "{id}");
        // Exactly as the original stores it.
        let entry = c.store.get(id).await.unwrap().unwrap();
        assert_eq!(entry.flags, 1, "Storable");
        let uid = format!("user{i}");
        let reverse = c
            .store
            .get(&md5_hex(uid.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (reverse.value.as_slice(), reverse.flags),
            (id.as_bytes(), 0)
        );
        assert_eq!(w["data"]["uid_MD5"], md5_hex(uid.as_bytes()));
        // The reverse key Perl wrote is found by Rust.
        let found = sessions.find_by_principal(&uid).await.unwrap().unwrap();
        assert_eq!(found.id().as_str(), id);
        homes.insert(c.home_of(id).await);
        homes.insert(c.home_of(&md5_hex(uid.as_bytes())).await);
    }
    assert_eq!(homes.len(), 3, "keys spread over all three servers");
    // Perl's byte strings arrive as the same characters.
    let w = &written[0]["data"];
    assert_eq!(w["city"], "São Paulo");
    assert_eq!(w["raw"], "cafÃ©");
    assert_eq!(
        w["wide"], "5000000000",
        "Perl's nfreeze writes wide integers as strings"
    );
}

#[tokio::test]
async fn rust_saves_perl_reads_identical_sessions() {
    let c = cluster().await;
    let sessions = c.sessions(Codec::Storable);
    let mut expected = Vec::new();
    for i in 0..24 {
        let mut session = sessions.create().await.unwrap();
        let Value::Object(data) = sample(i) else {
            unreachable!()
        };
        for (k, v) in data {
            session.insert(&k, v).unwrap();
        }
        session.insert("float", 1.5).unwrap();
        session.insert("flag", true).unwrap();
        sessions.save(&mut session).await.unwrap();
        let entry = c.store.get(session.id().as_str()).await.unwrap().unwrap();
        assert_eq!(entry.flags, 1, "Storable, as Perl writes it");
        let mut data = session.data().clone();
        data.insert("flag".into(), json!(1)); // no booleans in Storable 3.26
        expected.push((session.id().as_str().to_owned(), Value::Object(data)));
    }
    let reads: Vec<Value> = expected.iter().map(|(id, _)| json!({ "id": id })).collect();
    let read = perl_node("read", &c.specs, &reads);
    let finds: Vec<Value> = (0..24)
        .map(|i| json!({ "value": format!("user{i}") }))
        .collect();
    let found = perl_node("find", &c.specs, &finds);
    let mut homes = BTreeSet::new();
    for (((id, want), r), f) in expected.iter().zip(&read).zip(&found) {
        assert_eq!(&r["data"], want, "Perl reads {id}");
        // Rust's integers are Perl integers (JSON::PP prints them bare).
        assert_eq!(r["data"]["wide"], json!(5_000_000_000i64));
        assert_eq!(r["data"]["looks_numeric"], json!("007"));
        // The reverse key Rust wrote is found by Perl.
        assert_eq!(&f["id"], id);
        assert_eq!(&f["data"], want);
        homes.insert(c.home_of(id).await);
    }
    assert_eq!(homes.len(), 3, "sessions spread over all three servers");
}

#[tokio::test]
async fn a_perl_session_changed_by_rust_keeps_the_other_fields() {
    let c = cluster().await;
    let written = perl_node("write", &c.specs, &[json!({ "data": sample(7) })]);
    let id = written[0]["id"].as_str().unwrap().to_owned();
    let sessions = c.sessions(Codec::Storable);
    let mut session = sessions.load(&id).await.unwrap().unwrap();
    session.insert("small", 8).unwrap();
    session.insert("added_by_rust", "ça marche").unwrap();
    sessions.save(&mut session).await.unwrap();

    let read = perl_node("read", &c.specs, &[json!({ "id": id })]);
    let mut want = written[0]["data"].clone();
    want["small"] = json!(8);
    want["added_by_rust"] = json!("ça marche");
    assert_eq!(
        read[0]["data"], want,
        "untouched fields are as Perl wrote them"
    );

    // And back: Perl changes one field, Rust sees it and everything else.
    let modified = perl_node(
        "modify",
        &c.specs,
        &[json!({ "id": id, "set": { "city": "Zürich" } })],
    );
    want["city"] = json!("Zürich");
    assert_eq!(modified[0]["data"], want);
    let session = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(Value::Object(session.data().clone()), want);
}

#[tokio::test]
async fn perl_compressed_sessions_inflate() {
    let c = cluster().await;
    let mut data = sample(1);
    data["blob"] = json!("compressible text ".repeat(500));
    let written = perl_node(
        "write",
        &c.specs,
        &[json!({ "data": data, "compress": 1000 })],
    );
    let id = written[0]["id"].as_str().unwrap();
    let entry = c.store.get(id).await.unwrap().unwrap();
    assert_eq!(entry.flags, 1 | 2, "Storable, gzipped by Cache::Memcached");
    let image = codec::unpack(&entry.value, entry.flags)
        .unwrap()
        .into_owned();
    assert!(image.len() > entry.value.len() * 4);
    assert_eq!(storable::decode(&image).unwrap(), written[0]["data"]);
    // And through the session API, as any node reads it.
    let loaded = c.sessions(Codec::Json).load(id).await.unwrap().unwrap();
    assert_eq!(loaded.get_value("blob"), Some(&data["blob"]));
}

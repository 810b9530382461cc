//! The example app with sessions sealed at rest (`session_core::seal`),
//! keys read from a key file as `--seal-keys-file` reads them
//! (`Keyring::from_file`), on session-core's `MemoryStore` and on the
//! memcached servers of `cargo xtask test` (`MEMORYCACHED_MEMCACHED`):
//! what the app stores is sealed (the raw bytes carry the seal flag and
//! none of the session's text), it reads back through the app (another
//! app on the same keys, as after a restart), and an app with another key,
//! an unknown key id or no keys at all answers the cookie with a fresh
//! session, not an error page, leaving the stored one as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Backend, Browser, serve_ours};
use serde_json::{Value, json};
use session_core::codec::FLAGS_SEALED;
use session_core::seal::{SEAL_VERSION, key_id_of};
use session_core::{
    Keyring, PrincipalIndex, SealConfig, SessionId, Sessions, SessionsConfig, Store, Ttl,
};
use tower_sessions_memorycached::id::session_id_of;

const HOUR: time::Duration = time::Duration::hours(1);
const KEY_1: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The same key id, other material.
const KEY_1_OTHER: &str = "1:f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
/// A key id the sealing app never used.
const KEY_2: &str = "2:f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";

/// A key file, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(text: &str) -> KeyFile {
        let path = std::env::temp_dir().join(format!(
            "memorycached-app-seal-{}-{}",
            std::process::id(),
            SessionId::generate(16).unwrap()
        ));
        std::fs::write(&path, format!("# current key\n{text}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        KeyFile(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `Sessions` as the example app configures them (`uid` the principal,
/// indexed), on `store`, sealed with the keys of `keys` when given.
fn sessions(store: &Arc<dyn Store>, keys: Option<&KeyFile>) -> Sessions {
    let seal = keys.map(|k| SealConfig::new(Keyring::from_file(&k.0).unwrap()));
    let config = SessionsConfig {
        timeout: Ttl::seconds(3600),
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        seal,
        ..SessionsConfig::default()
    };
    Sessions::new(store.clone(), config).unwrap()
}

/// The store key of the session behind a cookie (the default empty
/// `key_prefix`: the bare id).
fn store_key(cookie: &str) -> String {
    session_id_of(cookie.parse().unwrap()).unwrap().to_string()
}

macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario(super::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memcached() {
                super::$scenario(super::Backend::Memcached).await;
            }
        }
    };
}

on_both!(sessions_are_sealed_in_the_store_and_read_back_through_the_app);

async fn sessions_are_sealed_in_the_store_and_read_back_through_the_app(backend: Backend) {
    let store = common::store(backend);
    let keys = KeyFile::new(KEY_1);
    let sealing = sessions(&store, Some(&keys));
    let (app, _tower_store) = serve_ours(&sealing, HOUR).await;
    let browser = Browser::new();
    // A unique user per run: the memcached servers are shared.
    let uid = format!("sealed-user-{}", SessionId::generate(16).unwrap());
    assert_eq!(browser.post(&app, "/login", &[("uid", &uid)]).await.0, 303);
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=1".into()));
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=2".into()));
    let cookie = browser.cookie(&app).expect("a session cookie");
    let key = store_key(&cookie);

    // The raw bytes: flagged sealed, version 2 under key 1, no plaintext.
    let raw = store
        .get(&key)
        .await
        .unwrap()
        .expect("the session is stored");
    assert_ne!(raw.flags & FLAGS_SEALED, 0, "flags {:#x}", raw.flags);
    assert_eq!(raw.value.first(), Some(&SEAL_VERSION));
    assert_eq!(key_id_of(&raw.value), Some(1));
    for text in [uid.as_str(), "uid", "count", "_session_id", key.as_str()] {
        assert!(
            !raw.value.windows(text.len()).any(|w| w == text.as_bytes()),
            "{text:?} readable in the stored value"
        );
    }

    // Read back through the app: another one on the same keys (a restart).
    drop(app);
    let again = sessions(&store, Some(&keys));
    let (app, _tower_store) = serve_ours(&again, HOUR).await;
    browser.set_cookie(&app, &cookie);
    assert_eq!(browser.field(&app, "uid").await, json!(uid));
    assert_eq!(browser.get(&app, "/counter").await, (200, "count=3".into()));
    let (status, page) = browser.get(&app, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("Logged in as <b>{uid}</b>")),
        "{page}"
    );
    assert_eq!(
        again.stats().seal_tampered + again.stats().seal_unknown_key,
        0
    );
    drop(app);

    // Other keys: a fresh, empty session, never an error page; each
    // refusal counted. Then the stored session is still the one above.
    let other = KeyFile::new(KEY_1_OTHER);
    let unknown = KeyFile::new(KEY_2);
    for (what, keys) in [
        ("other material under the same id", Some(&other)),
        ("an unknown key id", Some(&unknown)),
        ("no keys at all", None),
    ] {
        let wrong = sessions(&store, keys);
        let (app, _tower_store) = serve_ours(&wrong, HOUR).await;
        let stranger = Browser::new();
        stranger.set_cookie(&app, &cookie);
        let (status, page) = stranger.get(&app, "/").await;
        assert_eq!(status, 200, "{what}: {page}");
        assert!(page.contains("Not logged in."), "{what}: {page}");
        stranger.set_cookie(&app, &cookie);
        assert_eq!(
            stranger.get(&app, "/counter").await,
            (200, "count=1".into()),
            "{what}"
        );
        let fresh = stranger.cookie(&app).unwrap();
        assert_ne!(fresh, cookie, "{what}: a new id");
        assert_eq!(stranger.field(&app, "uid").await, Value::Null, "{what}");
        let stats = wrong.stats();
        let refused = stats.seal_tampered + stats.seal_unknown_key;
        assert!(refused >= 1, "{what}: not counted: {stats:?}");
    }
    let kept = sealing.load(&key).await.unwrap().expect("still stored");
    assert_eq!(kept.get::<i64>("count").unwrap(), Some(3));
    assert_eq!(kept.get::<String>("uid").unwrap(), Some(uid));
}

//! Fuzz target: a lazy load against the full decode, through the public
//! API only (`Sessions` on a `MemoryStore`).
//!
//! The input's first byte picks the flags (JSON or MessagePack); the rest
//! is stored as is under a session's key and loaded with `Sessions::load`,
//! which keeps the stored bytes and an index of the fields when the
//! format's scanner is sure of them, and decodes in full otherwise.
//!
//! Checked, besides "no panic":
//! - a load that errs is an input the full decode (`Codec::decode`) refuses
//!   too; a load never answers "no session" for a stored one;
//! - a loaded session's data is the full decode's map, `_session_id` set
//!   to the id (the store key is the truth about the id);
//! - one field inserted, the session saves, and a reload gives the same
//!   map plus that field. A save may only fail when a field nests too
//!   deep to encode (a foreign writer's map that reads but cannot be
//!   written back whole).
//!
//! Limit: the load holds at most 64 bytes per input byte plus 64 KiB at
//! once, as `codec_roundtrip` asserts for the full decode.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;
use serde_json::Value;
use session_core::codec::MAX_DEPTH;
use session_core::{
    Codec, Error, MemoryStore, SessionData, Sessions, SessionsConfig, Store as _, Ttl,
};

/// The session every input is stored as.
const ID: &str = "0123456789abcdef0123456789abcdef";
/// The field each loaded session gets before it is saved.
const ADDED: &str = "lazy_decode_added";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Nesting depth as the encoders count it: 0 for a scalar, 1 for `[1]`.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let codec = if mode % 2 == 0 {
        Codec::Json
    } else {
        Codec::MessagePack
    };
    let store = Arc::new(MemoryStore::new());
    let sessions =
        Sessions::new(store.clone(), SessionsConfig::default()).expect("the default config");
    let key = sessions.key_of(&session_core::SessionId::parse(ID).expect("a valid id"));
    runtime()
        .block_on(store.set(&key, bytes, codec.flags(), Ttl::seconds(300)))
        .expect("a small item fits the memory store");
    let eager = codec.decode(bytes, &key);
    let limit = 64 * bytes.len() + (64 << 10);
    let loaded = within("Sessions::load", limit, || {
        runtime().block_on(sessions.load(ID))
    });
    let mut session = match loaded {
        Ok(Some(s)) => s,
        Ok(None) => panic!("a stored {codec:?} value loaded as no session"),
        Err(e) => {
            assert!(
                eager.is_err(),
                "the load failed ({e}) but the full decode reads {eager:?}"
            );
            return;
        }
    };
    let mut expected: SessionData = match eager {
        Ok(map) => map,
        Err(e) => panic!("the load succeeded but the full decode fails: {e}"),
    };
    expected.insert("_session_id".into(), Value::from(ID));
    assert_eq!(session.data(), &expected, "{codec:?}");

    session.insert(ADDED, 1).expect("a plain field");
    expected.insert(ADDED.into(), Value::from(1));
    let too_deep = expected.values().any(|v| depth(v) >= MAX_DEPTH);
    match runtime().block_on(sessions.save(&mut session)) {
        Ok(_) => {}
        Err(Error::Encode { .. }) if too_deep => return,
        Err(e) => panic!("a loaded session did not save: {e}"),
    }
    let reloaded = runtime()
        .block_on(sessions.load(ID))
        .expect("a saved session loads")
        .expect("a saved session is there");
    assert_eq!(reloaded.data(), &expected, "{codec:?} after a save");
});

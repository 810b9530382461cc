//! The session-core conformance kit against a real Redis.
//!
//! The server is the shared one `cargo xtask test` starts (a container or a
//! process) and names in `MEMORYCACHED_REDIS`; a missing variable fails the
//! test with how to set it. Each factory call returns a fresh `RedisStore`
//! (a connection belongs to the runtime that opened it, and each check runs
//! on its own runtime). Half the stores add their namespace through the
//! URL's `prefix`, half through `Namespaced`, so both prefix paths (and
//! `scan`'s prefix stripping) are exercised.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backend_redis::RedisStore;
use session_core::{Namespaced, SessionId, Store};

fn fresh_store() -> Arc<dyn Store> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let servers =
        test_support::shared_servers(test_support::REDIS_ENV).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("cf{}:", SessionId::generate(16).unwrap());
    if N.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
        let url = format!("redis://{}?prefix={prefix}", servers[0]);
        Arc::new(RedisStore::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}")))
    } else {
        let url = format!("redis://{}", servers[0]);
        let store = RedisStore::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        Arc::new(Namespaced::new(prefix, store).unwrap())
    }
}

session_core::conformance_tests!(async { fresh_store() });

//! The session-core conformance kit against real memcached servers, in both
//! protocol modes, with the default (adaptive) connections — one check at a
//! time runs on pooled connections there — and with every request on the
//! multiplexed ones.
//!
//! The servers are the shared ones `cargo xtask test` starts (containers or
//! processes) and names in `MEMORYCACHED_MEMCACHED`; every store spans all of
//! them, so routing is exercised too. Each factory call returns a fresh
//! `MemcachedStore` (a pooled connection belongs to the runtime that opened
//! it, and each check runs on its own runtime) inside a fresh namespace.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use backend_memcached::{ConnectionMode, MemcachedConfig, MemcachedStore, Protocol};
use session_core::{Namespaced, SessionId, Store};

fn fresh_store(protocol: Protocol, mode: ConnectionMode) -> Arc<dyn Store> {
    let servers =
        test_support::shared_servers("MEMORYCACHED_MEMCACHED").unwrap_or_else(|e| panic!("{e}"));
    let mut config = MemcachedConfig::from_url(&format!("memcached://{}", servers.join(",")))
        .unwrap_or_else(|e| panic!("bad server list {servers:?}: {e}"));
    config.protocol = protocol;
    config.mode = mode;
    let store = MemcachedStore::connect(config).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("cf{}:", SessionId::generate(16).unwrap());
    Arc::new(Namespaced::new(prefix, store).unwrap())
}

mod meta {
    use super::*;
    session_core::conformance_tests!(async {
        fresh_store(Protocol::Meta, ConnectionMode::Adaptive)
    });
}

mod classic {
    use super::*;
    session_core::conformance_tests!(async {
        fresh_store(Protocol::Classic, ConnectionMode::Adaptive)
    });
}

mod meta_multiplexed {
    use super::*;
    session_core::conformance_tests!(async {
        fresh_store(Protocol::Meta, ConnectionMode::Multiplexed)
    });
}

mod classic_multiplexed {
    use super::*;
    session_core::conformance_tests!(async {
        fresh_store(Protocol::Classic, ConnectionMode::Multiplexed)
    });
}

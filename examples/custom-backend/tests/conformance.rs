//! The conformance kit against the example custom backend, [`SlowStore`]:
//! once over the embedded `MemoryStore`, once over the memcached servers of
//! `cargo xtask test` (containers or processes; run just this crate's tests
//! with `cargo xtask test --backend memorycached-custom-backend`).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use backend_memcached::MemcachedStore;
use memorycached_custom_backend::SlowStore;
use session_core::{MemoryStore, Namespaced, SessionId, Store};

const DELAY: Duration = Duration::from_millis(1);

mod on_memory {
    use super::*;
    session_core::conformance_tests!(async {
        Arc::new(SlowStore::new(MemoryStore::new(), DELAY)) as Arc<dyn Store>
    });
}

mod on_memcached {
    use super::*;
    session_core::conformance_tests!(async {
        let servers = test_support::shared_servers(test_support::MEMCACHED_ENV).unwrap();
        let store =
            MemcachedStore::from_url(&format!("memcached://{}", servers.join(","))).unwrap();
        let fresh = Namespaced::new(format!("ex{}:", SessionId::generate(16).unwrap()), store);
        Arc::new(SlowStore::new(fresh.unwrap(), DELAY)) as Arc<dyn Store>
    });
}

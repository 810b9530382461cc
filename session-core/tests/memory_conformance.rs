//! MemoryStore passes the whole conformance kit.

use std::sync::Arc;

use session_core::{MemoryStore, Store};

session_core::conformance_tests!(async { Arc::new(MemoryStore::new()) as Arc<dyn Store> });

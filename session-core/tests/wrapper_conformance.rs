//! The whole conformance kit through `StoreWrapper`s: one that overrides
//! nothing (every method is a default that forwards: a method the defaults
//! forgot or got wrong fails a case) and `Namespaced`, which overrides the
//! keyed methods, both over a `MemoryStore`.

use std::sync::Arc;

use session_core::{MemoryStore, Namespaced, Store};

/// A wrapper that writes no method but `inner`.
mod forward {
    use std::sync::Arc;

    use session_core::Store;
    use session_core::wrapper::StoreWrapper;

    #[derive(Debug)]
    pub struct Forward(pub Arc<dyn Store>);

    impl StoreWrapper for Forward {
        type Inner = dyn Store;

        fn inner(&self) -> &dyn Store {
            &*self.0
        }
    }
}

mod forwarding {
    use super::*;
    session_core::conformance_tests!(async {
        Arc::new(forward::Forward(Arc::new(MemoryStore::new()))) as Arc<dyn Store>
    });
}

mod namespaced {
    use super::*;
    session_core::conformance_tests!(async {
        match Namespaced::new("ns:", MemoryStore::new()) {
            Ok(store) => Arc::new(store) as Arc<dyn Store>,
            Err(e) => panic!("a valid prefix: {e}"),
        }
    });
}

//! The process provider against the local `memcached` and `redis-server` binaries.
//!
//! Built only with the feature `process-provider-tests`, which `cargo xtask
//! test` turns on when its servers are local processes (see `docker.rs`).

mod common;

provider_tests!(ProviderKind::Process);

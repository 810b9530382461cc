//! The runnable examples of memorycached; this library is only their index.
//!
//! Run one with `cargo run -p memorycached-examples --example <name>`:
//!
//! | example | what it shows |
//! |---|---|
//! | `memory_sessions` | create, load, save (a concurrent save merged), find by principal and delete, on the embedded `MemoryStore` |
//! | `memcached_local_cache` | the original's deployment: principal memcached servers plus a local read-first cache, and whether a load was answered by the local copy |
//!
//! A complete custom backend, with the conformance kit run against it, is the
//! package `memorycached-custom-backend` in `examples/custom-backend/`
//! (`cargo xtask test --backend memorycached-custom-backend`). It is a package
//! of its own so that building these examples does not build the test
//! harness.

//! test-support's own tests of each provider; the library is empty.
//!
//! `tests/docker.rs` checks the docker provider (containers, cleanup of
//! interrupted runs, both ways of building local images) and needs a Docker
//! daemon; `tests/process.rs` checks the process provider and needs the
//! local `memcached` and `redis-server`. Each builds only with its feature
//! (`docker-provider-tests`, `process-provider-tests`), which `cargo xtask
//! test` turns on for the provider its servers came from; the other file is
//! left out, and xtask prints so. Run one by hand with, e.g.,
//! `cargo test -p test-support-provider-tests --features docker-provider-tests`.

//! Failure handling against real memcached servers under test-support's
//! faults (`stop`/`start`, `pause`/`unpause`, `cut`/`heal`, `blackhole`,
//! `set_latency`), on containers or processes alike: typed errors within the
//! deadlines, down-marking with backoff, recovery, and the rehash policy.
//!
//! Every case runs in both connection modes (`multiplexed::*`, `pooled::*`):
//! the cases are one file, `failure/cases.rs`, included into a module per
//! mode that names its `MODE`.
//!
//! Every wait is bounded: a call that hangs, or a recovery that never comes,
//! fails the test instead of stalling the run.

// Test code: a panic is the failure report. clippy's allow-unwrap-in-tests
// covers `#[test]` functions only, not the shared check functions here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod multiplexed {
    const MODE: backend_memcached::ConnectionMode = backend_memcached::ConnectionMode::Multiplexed;
    include!("failure/cases.rs");
}

mod pooled {
    const MODE: backend_memcached::ConnectionMode = backend_memcached::ConnectionMode::Pooled;
    include!("failure/cases.rs");
}

//! Failure handling against real memcached servers under test-support's
//! faults (`stop`/`start`, `pause`/`unpause`, `cut`/`heal`, `blackhole`,
//! `set_latency`), on containers or processes alike: typed errors within the
//! deadlines, down-marking with backoff, recovery, and the rehash policy.
//!
//! Every case runs in both connection modes (`multiplexed::cases::*`,
//! `pooled::cases::*`): the cases are one file, `failure/cases.rs`, made
//! the `cases` module of a module per mode that names its `MODE`.
//!
//! Every wait is bounded: a call that hangs, or a recovery that never comes,
//! fails the test instead of stalling the run.

// Test code: a panic is the failure report. clippy's allow-unwrap-in-tests
// covers `#[test]` functions only, not the shared check functions here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "failure/multiplexed.rs"]
mod multiplexed;

#[path = "failure/pooled.rs"]
mod pooled;

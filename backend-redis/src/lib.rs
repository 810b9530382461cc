//! `RedisStore`: the [`session_core::Store`] contract on Redis. **Not built yet.**
//!
//! Planned by its own issue, after the foundation and the memcached backend:
//! values with their flags and a version in one hash per key, `cas` checked in
//! a Lua script, `add` as `SET NX`, expiry as `PEXPIRE`, `scan` through `SCAN`,
//! and the conformance kit run against a real `redis-server` by `cargo xtask test`.
//! Until then this crate deliberately exports nothing.

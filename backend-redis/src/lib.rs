//! `RedisStore`: the [`session_core::Store`] contract on Redis, standalone
//! or Redis Cluster (cargo feature `cluster`), on the `redis` crate's async
//! client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use backend_redis::RedisStore;
//! use session_core::{Sessions, SessionsConfig};
//!
//! let store = RedisStore::from_url("redis://127.0.0.1:6379/0?prefix=sess:&timeout_ms=500")?;
//! let sessions = Sessions::new(Arc::new(store), SessionsConfig::default())?;
//! # let _ = sessions; Ok(()) }
//! ```
//!
//! # How the contract maps onto Redis
//!
//! | contract | Redis |
//! |---|---|
//! | item | one string: a 13-byte header (flags, version) then the value (`envelope.rs`) |
//! | `get` | script: `GET` + `PTTL` (the TTL is read, rounded up to seconds) |
//! | `add` / `set` | `SET ... NX PX` / `SET ... PX` with a new version |
//! | `cas` / `delete_if` | scripts comparing the stored version, then `SET` / `DEL` |
//! | `delete` | `DEL` |
//! | `touch` | script: `PEXPIRE`, or `PERSIST` for [`Ttl::NEVER`](session_core::Ttl::NEVER) |
//! | `version` | `GETRANGE key 0 12`: the header only |
//! | `get_many` | one script over every key (cluster: one read per key, sent together) |
//! | `get_and_touch` | script: `GET` + `PEXPIRE` + `PTTL` |
//! | `scan` | `SCAN MATCH <prefix>*` (cluster: each master in turn); see `scan.rs` |
//!
//! **Versions.** Redis has no CAS unique, so every write stores a new
//! version of 64 random bits with the value (the store contract allows
//! that; a per-key counter would restart after a delete). Values carry the
//! same flags as on memcached, so the session codecs work unchanged and a
//! session written here reads the same as one written through memcached.
//!
//! **Cluster.** Every script touches one key, so it runs on that key's node
//! and needs no hash tag; a `key_prefix` may hold a `{tag}` to put every
//! key of the store in one slot when wanted. The redis crate's cluster
//! client follows `MOVED`/`ASK` and refreshes its slot map.
//!
//! **Failures.** Nothing connects before the first call. A broken
//! connection is dropped and the next call reconnects; a failed connect
//! makes calls fail fast ([`Error::MarkedDown`]) for a backoff that doubles
//! from `backoff_initial` to `backoff_max`. Every failure reaches callers
//! as a [`session_core::Error`] saying whether the request may have been
//! applied ([`session_core::Delivery`]); a paused server fails each call by
//! its response timeout.
//!
//! **TLS** (`rediss://`) is parsed but not built yet: the redis crate's
//! rustls support needs a crypto provider installed by the application,
//! and this workspace does not carry one, so `validate()` refuses
//! `rediss://` with a configuration error that says so.
//!
//! Modules: `config/` ([`RedisConfig`], the URL form and its table of query
//! keys), `envelope.rs` (the stored form), `scripts.rs` (the Lua scripts),
//! `conn.rs` (connect, reconnect, backoff), `scan.rs` (cursor and pattern),
//! `store.rs` (the `Store` impl), `error.rs` ([`Error`] and its conversion).

mod config;
mod conn;
mod envelope;
mod error;
mod scan;
mod scripts;
mod store;

pub use config::{
    DEFAULT_MAX_VALUE_SIZE, DEFAULT_PORT, MAX_DURATION, MAX_PREFIX_LEN, MAX_VALUE_SIZE_LIMIT,
    NodeSpec, RedisConfig, URL_SCHEMES,
};
pub use envelope::HEADER_LEN;
pub use error::{Error, Result};
pub use store::RedisStore;

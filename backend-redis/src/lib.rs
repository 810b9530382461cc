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
//! | `get` | `GET` + `PTTL`, pipelined (cluster: one script doing the same); the TTL rounded up to seconds |
//! | `add` / `set` | `SET ... NX PX` / `SET ... PX` with a new version |
//! | `cas` | after a read, on Valkey 8.1+ / Redis 8.4+: `SET ... IFEQ <string read>` (`ifeq.rs`); else a script comparing the stored version (`GETRANGE`), then `SET` |
//! | `delete_if` | a script comparing the stored version, then `DEL` |
//! | `delete` | `DEL` |
//! | `touch` | `PEXPIRE`; for [`Ttl::NEVER`](session_core::Ttl::NEVER) a script (`PERSIST` cannot tell a missing key) |
//! | `version` | `GETRANGE key 0 12`: the header only |
//! | `get_many` | `GET` + `PTTL` of every key in one pipeline (cluster: one read per key, sent together) |
//! | `get_and_touch` | `MULTI` `GET` `PEXPIRE` `PTTL` `EXEC` (cluster: one script) |
//!
//! **Scripts only where atomicity needs them.** Redis runs a Lua script
//! several times slower than plain commands (Redis 7.0, `INFO
//! commandstats`, 500-byte sessions: the read script about 4 µs against
//! 0.45 µs for `GET` + `PTTL`; the `cas` script about 6 µs against 0.4 µs
//! for a `SET`), and with many concurrent callers the server's one thread
//! is what limits the store. Reads are therefore plain commands,
//! pipelined (`get_and_touch` in `MULTI`/`EXEC`, being atomic by
//! contract); only compare-and-set and conditional delete, which Redis 7
//! cannot do without one, run scripts. On a cluster the reads stay scripts
//! (see `store.rs`, also for why a read's `GET` and `PTTL` need no
//! transaction). A server with `SET ... IFEQ` (Valkey 8.1+, Redis 8.4+)
//! takes a `cas` that follows a read (a session's save after its load) as
//! that one plain command: the store keeps the strings it read lately
//! (bounded, about 10 MiB at most) and learns from the first try whether
//! the server knows the option ([`RedisStore::server_has_ifeq`]).
//! | `scan` | `SCAN MATCH <prefix>*` (cluster: each master in turn); see `scan.rs` |
//!
//! **Versions.** Redis has no CAS unique, so every write stores a new
//! 64-bit version with the value: a process-wide counter started at 64
//! random bits, mixed (the store contract allows that; a per-key counter
//! would restart after a delete; see `envelope.rs`). Values carry the
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
//! **Connections.** `connections` (default 1) multiplexed connections,
//! used in turn; each pipelines any number of concurrent calls (see
//! `conn.rs` for when more than one pays).
//!
//! **TLS** (`rediss://`, cargo feature `tls`): rustls with the `ring`
//! crypto provider, which the store installs as the process default when
//! the application has installed none; `ca_file=` names the CAs to trust,
//! the system's roots otherwise. Without the feature `validate()` refuses
//! `rediss://` with a configuration error that says so.
//!
//! Modules: `config/` ([`RedisConfig`], the URL form and its table of query
//! keys), `envelope.rs` (the stored form), `scripts.rs` (the Lua scripts),
//! `ifeq.rs` (`cas` as `SET ... IFEQ`, and the strings kept for it),
//! `conn.rs` (connect, reconnect, backoff), `scan.rs` (cursor and pattern),
//! `store.rs` (the `Store` impl), `error.rs` ([`Error`] and its conversion).

mod config;
mod conn;
mod envelope;
mod error;
mod ifeq;
mod scan;
mod scripts;
mod store;

pub use config::{
    DEFAULT_CONNECTIONS, DEFAULT_MAX_VALUE_SIZE, DEFAULT_PORT, MAX_CONNECTIONS, MAX_DURATION,
    MAX_PREFIX_LEN, MAX_VALUE_SIZE_LIMIT, NodeSpec, RedisConfig, URL_SCHEMES,
};
pub use envelope::HEADER_LEN;
pub use error::{Error, Result};
pub use store::RedisStore;

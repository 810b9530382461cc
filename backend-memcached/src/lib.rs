//! [`MemcachedStore`]: the memorycached [`Store`](session_core::Store) on one
//! or more memcached servers, with a small client of our own on tokio.
//!
//! # Why our own client
//!
//! The existing Rust memcached crates each miss something we need (as we
//! found when choosing, in 2026): the classic `memcache` client is blocking, has no connect timeout and silently drops
//! `NOT_STORED` on an ASCII `add`; its async client is experimental and
//! meta-only; `async-memcached` has no pool, no multi-server and no classic
//! `gets`/`cas`/`touch`; none routes keys like Perl Cache::Memcached or
//! rehashes like it. We need both the meta protocol and a classic mode (to
//! run behind mcrouter/twemproxy), Perl-exact routing with its rehash, and a
//! failure policy of our own (typed errors within a deadline, down-marking
//! with backoff). That is a few hundred lines over tokio, small enough to own.
//!
//! # Layout
//!
//! - [`config`]: [`MemcachedConfig`] from code or a `memcached://` URL, with
//!   `validate()`.
//! - [`router`]: Perl Cache::Memcached CRC32 buckets with its rehash
//!   sequence, and ketama.
//! - `protocol`: request encoding and answer parsing, `meta` and `classic`
//!   dialects behind one op/reply shape; answers are read as frames first
//!   and interpreted with the request afterwards, so both connection modes
//!   share one parser.
//! - `connection`: one connection, and the bounded answer reader both
//!   modes use; `connector` opens it (TCP within a connect deadline, then
//!   the TLS handshake and memcached's authentication when configured),
//!   `transport` is its byte stream, plain TCP or TLS.
//! - `pool`: a bounded per-server pool that never reuses a connection whose
//!   answer was not read completely, or that holds bytes no request asked
//!   for (so neither a cancelled request nor a misbehaving server can leak
//!   a stale answer to the next caller).
//! - `mux`: one multiplexed connection, shared by every task: requests
//!   batched into one write, answers matched to callers in order (see
//!   [`ConnectionMode`] for when each path serves: by default a lone call
//!   takes a pooled connection and overlapping calls share these).
//! - `server`: one server: `health` (down-marking, exponential backoff,
//!   counters in [`ServerStats`]), `request` (one call within one deadline
//!   covering pool wait, connect and resend; whether a failed request was
//!   sent; telling an endpoint without the meta protocol from a dead one),
//!   `multiplexed` (the same call on a shared connection, and the adaptive
//!   choice between the two), and the server's
//!   settings (`item_size_max`, capped, and CAS) read when its first
//!   connection opens.
//! - `store`: [`MemcachedStore`] and its `Store` impl, with the
//!   [`FailurePolicy`] and the optional capabilities: `get_many`,
//!   `get_and_touch` (meta `mg T`, classic `gats`), `delete_if` (meta
//!   `md C`; not in classic mode) and `scan`.
//! - [`scan`]: how `scan` lists keys with `lru_crawler metadump`, its
//!   cursor and its cost.
//! - [`raw`]: one server, low level (items with flags, TTL and CAS,
//!   conditional writes, key dumps, `watch` streams), for the replicator.
//! - [`delete_marker`]: the marker a delete leaves with
//!   `delete_markers=1`, which the replicator's feed reads as that delete.
//! - [`error`]: this crate's [`Error`] and its one conversion into
//!   [`session_core::Error`].
//!
//! # Securing the connections
//!
//! `memcacheds://` speaks TLS (rustls, ring provider) to every server:
//! certificates are verified against `ca=FILE` (or the system's roots) and
//! host names checked, always; `cert=`/`key=` give a client certificate for
//! memcached's `ssl_verify_mode`, `server_name=` the name to check.
//! `user:password@` turns on memcached's ASCII authentication (`-Y FILE`),
//! sent once per new connection before any request. Both serve every
//! connection mode and [`raw`] alike (see [`config`] for the URL form and
//! why a scheme). Failures are typed before any request is sent:
//! [`Error::Unauthorized`], [`Error::Tls`] with a [`TlsFailure`] naming the
//! cause, [`Error::NoAnswer`] for a plaintext/TLS mix-up; the password is
//! kept out of `Debug` output, errors and logs ([`redact_url`] prints a
//! URL). TLS session resumption is off: memcached 1.6.18 with client
//! certificates answers it with an `internal_error` alert.
//!
//! # Invariants
//!
//! - Keys and value sizes are checked before any I/O.
//! - Every call finishes within one deadline, `connect_timeout +
//!   io_timeout` from its start: a dead or hung server gives
//!   [`session_core::Error::Timeout`] or [`session_core::Error::Unavailable`],
//!   never a hang, and the error's [`session_core::Delivery`] says whether
//!   the request may have been applied.
//! - No answer reaches a caller other than the one whose request it
//!   answers: a pooled connection is reused only when fully read, and a
//!   multiplexed one checks each meta answer's `O` token and is closed at
//!   the first doubt.

pub mod config;
mod connection;
mod connector;
pub mod delete_marker;
pub mod error;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../tests/common/fake.rs"]
mod fake;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod mux;
mod pool;
mod protocol;
pub mod raw;
pub mod router;
pub mod scan;
mod server;
mod store;
mod transport;

pub use config::{
    ConnectionMode, Credentials, FailurePolicy, MemcachedConfig, Protocol, Routing, ServerSpec,
    TlsConfig, redact_url,
};
pub use error::{Error, Result, TlsFailure};
pub use router::Router;
pub use server::{ServerState, ServerStats};
pub use store::MemcachedStore;

//! A [`tower-sessions`](https://docs.rs/tower-sessions) store over
//! memorycached's [`Sessions`](session_core::Sessions): axum and tower apps
//! keep their sessions in memcached (with or without a local tier), Redis or
//! the in-process `MemoryStore`, in any codec — Storable included, so Perl
//! nodes of Apache::Session::Memorycached read and write the same sessions
//! — and concurrent requests of one user no longer overwrite each other.
//!
//! ```no_run
//! use std::sync::Arc;
//! use session_core::{MemoryStore, Sessions, SessionsConfig, Ttl};
//! use tower_sessions_memorycached::SessionsStore;
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SessionsConfig { timeout: Ttl::seconds(3600), ..Default::default() };
//! let sessions = Sessions::new(Arc::new(MemoryStore::new()), config)?;
//! let store = SessionsStore::new(sessions)?;
//! // axum: .layer(tower_sessions::SessionManagerLayer::new(store))
//! # Ok(()) }
//! ```
//!
//! # What maps onto what
//!
//! - Ids: tower-sessions' `Id(i128)` is the store key's 32 hex digits, the
//!   same 16 bytes both ways; the table with an example is in [`id`].
//! - Records: data map ↔ fields, expiry date ↔ TTL; see [`record`].
//! - Operations: `create` never overwrites, `save` is conflict-safe,
//!   `delete`, and `cycle_id` as delete + create; see [`store`].
//!
//! # Concurrent requests of one session
//!
//! tower-sessions' own stores write the whole record on `save`, so of two
//! concurrent requests of one user — one adding `cart`, one setting
//! `theme` — the later one erases the other's change. This store writes
//! only what the request changed: it keeps the session handle `load`
//! returned to each request (its fields and the version they were read
//! at; per session id and tokio task, bounded; see [`base`]), and `save`
//! applies the difference (fields set, fields removed) to that handle and
//! writes it with [`Sessions::save`](session_core::Sessions::save): a
//! conditional write on the version loaded, merged field by field with
//! whatever another request wrote meanwhile. Two requests changing
//! different fields both survive; two changing the same field: the later
//! save wins that field (under the default
//! [`FieldConflict::Mine`](session_core::FieldConflict::Mine)). A counter
//! read and incremented by two requests at once (both read 5, both write 6)
//! is a lost update any field-level store has; use
//! [`SessionsStore::sessions`] and `Sessions::update` for such values.
//!
//! A session deleted while a request was running (logout elsewhere, "log
//! out everywhere" through `revoke_principal`, expiry) is not written back
//! by that request's save: the next request starts a new one.
//!
//! # Errors
//!
//! Store and codec failures reach tower-sessions as its
//! `session_store::Error` (`Encode`, `Decode`, or `Backend` with the message
//! of [`Error`]); its middleware answers 500. A cookie that does not decode
//! or names no session is not an error: tower-sessions starts a new session.

pub mod base;
pub mod error;
pub mod id;
pub mod record;
pub mod store;

pub use error::Error;
pub use store::{SessionsStore, StoreStats};

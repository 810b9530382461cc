//! Session semantics for memorycached, independent of any server.
//!
//! ```
//! # async fn demo() -> Result<(), session_core::Error> {
//! use std::sync::Arc;
//! use session_core::{MemoryStore, Sessions, SessionsConfig, Ttl};
//!
//! let config = SessionsConfig { timeout: Ttl::seconds(300), ..Default::default() };
//! let sessions = Sessions::new(Arc::new(MemoryStore::new()), config)?;
//! let mut session = sessions.create().await?;            // 32 random hex digits
//! session.insert("uid", "jdoe")?;
//! sessions.save(&mut session).await?;                    // CAS: concurrent saves merge
//! let loaded = sessions.load(session.id().as_str()).await?.expect("just saved");
//! assert_eq!(loaded.get::<String>("uid")?.as_deref(), Some("jdoe"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Layout
//!
//! - [`store`]: the byte-level [`Store`] trait every backend implements
//!   (get / add / set / cas / delete / touch with versions), and its value types.
//! - [`key`]: the key rules every store enforces before any I/O.
//! - [`error`]: the one [`Error`] enum of this crate and its classifiers.
//! - [`id`]: [`SessionId`], random ids from the OS generator, and their parsing.
//! - [`codec`]: how a session map becomes bytes, tagged by memcached flags.
//! - [`storable`]: Perl Storable `nfreeze`, the Perl original's format.
//! - [`session`]: [`Session`], the "tied hash" with deep change tracking.
//! - [`sessions`]: [`Sessions`], the tie factory: create / load / save /
//!   delete / touch / find_by_principal, and the by-id operations for
//!   stateless callers (`create_with`, `patch`, `replace`, `touch_id`).
//! - [`config`]: [`SessionsConfig`], the original's knobs (`timeout`,
//!   `update_only`, `principal`, `IDLength`) and ours, with `validate()`.
//! - `local`: the read-first `local` tier and its staleness rule ([`LocalPolicy`]).
//! - [`principal`]: the reverse index `md5_hex(user) -> id`; `index`: the
//!   per-user index of every live session (`list_by_principal`,
//!   `revoke_principal`).
//! - [`lock`]: opt-in lease locks on a session ([`LockGuard`]).
//! - [`seal`]: sessions sealed at rest ([`SealConfig`], [`Keyring`]):
//!   AES-256-GCM around any codec, the store key as associated data,
//!   key ids for rotation.
//! - [`stats`]: [`SessionStats`], the counters of a `Sessions`.
//! - [`memory`]: [`MemoryStore`], the embedded in-process store.
//! - [`namespaced`]: [`Namespaced`], a store wrapper that prefixes keys.
//! - [`url_options`]: the query options of a store URL, one table per
//!   backend, parsed by the same rules in every backend.
//! - [`wrapper`]: [`StoreWrapper`](wrapper::StoreWrapper), for a store
//!   around another store that writes only the methods it changes (the
//!   `Arc<S>` impl, [`Namespaced`]; see `examples/custom-backend`).
//! - `conformance` (feature `conformance`): the checks every store must pass.
//!
//! This crate does no network I/O and starts no tasks: backends bring the
//! I/O, binaries bring the runtime. It uses two pieces of tokio that need
//! no runtime of their own: an async mutex (tasks of one process take turns
//! writing a session) and the timer, for the jittered waits after a lost
//! race and while waiting for a lock (outside a tokio runtime those waits
//! only yield).
//!
//! # Writing a backend
//!
//! A backend is one crate that implements [`Store`] and runs
//! `session_core::conformance_tests!` (feature `conformance`) in its tests;
//! `examples/custom-backend` in the workspace is a runnable one. Three
//! pieces here save it work:
//!
//! - [`store::check_write`]: the key and size checks every write makes
//!   before any I/O.
//! - [`url_options`]: a store URL's `?key=value` options from one table of
//!   [`UrlOption`](url_options::UrlOption)s, with the same rules (unknown
//!   or repeated keys are errors) as the stores of this workspace.
//! - [`wrapper::StoreWrapper`]: for a store *around* another store (a key
//!   prefix, a delay, a fault injected at one moment), name the wrapped
//!   store and write only the methods that change; the rest are forwarded,
//!   and the wrapper is a [`Store`].

pub mod codec;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod data;
pub mod error;
pub mod id;
mod index;
pub mod key;
mod local;
pub mod lock;
pub mod memory;
pub mod namespaced;
pub mod principal;
mod scan;
pub mod seal;
pub mod session;
pub mod sessions;
pub mod stats;
pub mod storable;
pub mod store;
pub mod url_options;
pub mod wrapper;

pub use codec::Codec;
pub use config::{
    Backoff, ConflictPolicy, FieldConflict, LocalPolicy, PrincipalIndex, PrincipalKeying,
    SessionsConfig,
};
pub use error::{Delivery, Error, ErrorKind, Result, RetryMethod, SealProblem};
pub use id::SessionId;
pub use lock::LockGuard;
pub use memory::{MemoryStore, MemoryStoreConfig};
pub use namespaced::Namespaced;
pub use seal::{Keyring, SealConfig, SealKey};
pub use session::{Session, SessionData};
pub use sessions::{Patch, ResealOutcome, SaveOutcome, Sessions};
pub use stats::SessionStats;
pub use store::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, ScanCursor, ScanPage, Store, Ttl,
    Version,
};

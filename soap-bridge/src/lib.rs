//! The memorycached SOAP bridge: sessions for every language, over SOAP
//! (compatible with the original `MemcachedSOAPClass` and its SOAP::Lite
//! clients) and over JSON, on any [`session_core::Store`]; and a session
//! server for LemonLDAP::NG over its own SOAP and REST protocols
//! (`/llng/...`, see [`llng`] and docs/llng.md).
//!
//! `cargo run -p soap-bridge` serves it on the in-memory store at
//! `127.0.0.1:8080`; [`serve`] runs it in-process (the tests bind
//! `127.0.0.1:0`).
//!
//! # Layout
//!
//! Layers, each importing only those above it (no module imports one
//! that imports it back):
//!
//! - leaves: [`config`] ([`Config`] from TOML and flags, with
//!   `validate()`), [`error`] (the crate's [`Error`] enum), [`metrics`]
//!   (counters and histogram in Prometheus text format), [`soap`] (the SOAP
//!   1.1 wire format: parse, encode, faults, WSDL; pure), `credentials`
//!   (the `[auth]` check, constant-time compare, random tokens), `body`
//!   (request bodies under the size and time limits), [`logins`] (the admin
//!   login table), [`llng`] (LemonLDAP::NG's wire formats: the SOAP
//!   answers, the REST bodies' Latin-1 JSON, the `__secret` check);
//! - [`service`]: the operations on `Sessions` (the only module calling
//!   it);
//! - [`status`]: how a failed operation is answered (HTTP status,
//!   `Retry-After`, SOAP fault code), one mapping for every surface;
//! - [`state`]: [`AppState`], what every handler is given;
//! - [`surfaces`]: one module per protocol or page set over the service —
//!   the original SOAP, the JSON mirror, `/metrics` and `/healthz`, the
//!   `/admin` explorer, LemonLDAP::NG's SOAP and REST — and the route
//!   table; its docs say how to add one;
//! - [`server`]: the accept loop with timeouts and graceful shutdown, over
//!   plain TCP or HTTPS ([`tls`]: the rustls acceptor from `[tls]`).
//!
//! # Values
//!
//! Sessions are maps of JSON-like values (session-core). What a SOAP
//! client sends keeps the meaning SOAP::Lite's autotyping gave it:
//! `xsd:int` 77777 is stored as the number 77777 and comes back as
//! `xsd:int`; the string "00000" stays a string; a number whose text would
//! not survive (`+5`, `1.50`) is kept as its text. `xsd:base64Binary` bytes
//! are stored as a string of the code points 0–255 (Latin-1), so a Perl byte
//! string such as `"Masqu\xe9"` comes back as the same bytes (as
//! base64Binary, like the original), and a JSON reader sees `"Masqué"`.
//! The tables in [`soap::parse::to_value`] and [`soap::encode`] give every
//! rule.
//!
//! # Errors: status codes and faults
//!
//! Every surface answers a failed operation by its class
//! ([`status::answer`]; session-core's `ErrorKind` for store errors), so
//! the JSON mirror, LemonLDAP::NG's REST service and the admin pages give
//! the same status, and both SOAP services the same fault code (SOAP 1.1
//! faults always go out with HTTP 500). One unit test per row in
//! `status.rs`; the 404, 400, 503 and 500 rows are also driven through a
//! running bridge on real servers (`tests/status.rs`).
//!
//! | error | class (`ErrorKind`) | HTTP | SOAP fault |
//! |---|---|---|---|
//! | invalid session id | `InvalidInput` | 400 (LL::NG REST: 400 "does not exist") | `Client` |
//! | other invalid input (bad field, too large, not encodable) | `InvalidInput` | 400 | `Client` |
//! | unknown id, session gone | `Gone` | 404 (LL::NG REST: 400, what its client expects) | `Client` (where the operation does not answer "none") |
//! | a conflict the caller must resolve (changed concurrently past the retries, id taken) | `Conflict` | 409 | `Client` |
//! | store unavailable or timed out | `Io`, `Timeout` | 503 with `Retry-After: 1` | `Server` |
//! | stored data that cannot be decoded (codec, not a session, seal) | `Data` | 500 | `Server` |
//! | a bug of ours (`Misuse`), a bad deployment (`Config`), any kind added later | `Misuse`, `Config` | 500 | `Server` |
//! | a feature the store or the configuration lacks | `Unsupported` | 501 | `Server` |
//! | the store is full | `Capacity` | 507 | `Server` |
//!
//! Store errors are logged (`warn`) with their whole cause chain.
//!
//! # Differences from the original service, on purpose
//!
//! - An invalid id is a `soap:Client` fault (the original said
//!   `soap:Server`): the caller must fix it.
//! - `_session_id` in `setSession` must name an existing session, which is
//!   updated; the original let any caller write any id (see
//!   [`service::Service::set`]).
//! - Writes are conditional saves with per-field merge; the original's
//!   last writer won.

mod body;
pub mod config;
mod credentials;
pub mod error;
pub mod llng;
pub mod logins;
pub mod metrics;
pub mod server;
pub mod service;
pub mod soap;
pub mod state;
pub mod status;
pub mod surfaces;
pub mod tls;

pub use config::{Auth, Config};
pub use error::Error;
pub use server::{app_state, serve, serve_state};
pub use state::AppState;

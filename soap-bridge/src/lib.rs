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
//! - [`state`]: [`AppState`], what every handler is given;
//! - [`surfaces`]: one module per protocol or page set over the service —
//!   the original SOAP, the JSON mirror, `/metrics` and `/healthz`, the
//!   `/admin` explorer, LemonLDAP::NG's SOAP and REST — and the route
//!   table; its docs say how to add one;
//! - [`server`]: the accept loop with timeouts and graceful shutdown.
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
pub mod surfaces;

pub use config::{Auth, Config};
pub use error::Error;
pub use server::{app_state, serve, serve_state};
pub use state::AppState;

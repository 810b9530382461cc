//! The bridge's surfaces — one module per protocol or page set, each over
//! the shared [`crate::service`] — and [`router`], the route table that
//! mounts them.
//!
//! | surface | paths | what |
//! |---|---|---|
//! | [`memcached_soap`] | `/`, `/cgi-bin/MemcachedSOAP.cgi` | the original SOAP service (`urn:MemcachedSOAPClass`) and its WSDL |
//! | [`json`] | `/sessions...`, `/principals/{uid}` | the JSON mirror; its 404 is also the fallback of every unknown route |
//! | [`monitoring`] | `/metrics`, `/healthz` | Prometheus text, liveness |
//! | [`admin`] | `/admin/...` | the web session explorer (only with `[admin] enabled`) |
//! | [`llng_soap`] | `/llng/soap` | LemonLDAP::NG's SOAP session service (`urn:Lemonldap/NG/Common/PSGI/SOAPService`) |
//! | [`llng_rest`] | `/llng/sessions/{type}/...` | LemonLDAP::NG's REST session service |
//!
//! # Adding a surface
//!
//! 1. Write `surfaces/<name>.rs` (or `surfaces/<name>/mod.rs` with its
//!    children) with `pub fn routes() -> Router<AppState>`, under paths of
//!    its own. Its handlers take `State<AppState>` and call
//!    [`crate::service`]; they read bodies with `crate::body`, check
//!    `[auth]` with `crate::credentials`, and count requests in
//!    [`crate::state::AppState::metrics`]. The wire format belongs in a
//!    module that knows no HTTP (as [`crate::soap`] for SOAP).
//! 2. Declare it below and merge its `routes()` in [`router`]: one line.
//! 3. Test it in `tests/` against the running bridge.
//!
//! # Import rule
//!
//! Surfaces import the leaves (`state`, `body`, `credentials`, `logins`,
//! `config`, `metrics`), the `service` and the wire formats; never each
//! other, and never this module. Nothing imports a surface but this
//! module, so the graph has no ring.

pub mod admin;
pub mod json;
pub mod llng_rest;
pub mod llng_soap;
pub mod memcached_soap;
pub mod monitoring;

use axum::Router;

use crate::state::AppState;

/// The router of the bridge: every surface's routes, and a JSON 404 for the
/// rest.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new()
        .merge(memcached_soap::routes())
        .merge(json::routes())
        .merge(monitoring::routes())
        .merge(llng_soap::routes())
        .merge(llng_rest::routes());
    if state.config.admin.enabled {
        routes = routes.merge(admin::routes());
    }
    routes.fallback(json::not_found).with_state(state)
}

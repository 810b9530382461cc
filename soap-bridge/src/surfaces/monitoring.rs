//! What operators and load balancers poll: `/metrics` and `/healthz`.
//!
//! | route | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text ([`crate::metrics`] plus session-core's counters); needs credentials with `[auth]` |
//! | `GET /healthz` | `ok`, never behind credentials |
//!
//! Imports the shared leaves (state, credentials) and the counters; no
//! other surface, and nothing imports it but the route table.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::credentials::{authorized, challenge};
use crate::state::AppState;

/// The monitoring routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state.config, &headers) {
        let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        return r;
    }
    let s = state.service.stats();
    let mut extra = String::from(
        "# HELP soap_bridge_sessions_total Session operations since start (session-core counters).\n# TYPE soap_bridge_sessions_total counter\n",
    );
    for (name, n) in [
        ("created", s.created),
        ("loads", s.loads),
        ("local_hits", s.local_hits),
        ("not_found", s.not_found),
        ("saves_written", s.saves_written),
        ("saves_unchanged", s.saves_unchanged),
        ("merges", s.merges),
        ("conflicts", s.conflicts),
        ("deletes", s.deletes),
    ] {
        extra.push_str(&format!(
            "soap_bridge_sessions_total{{event=\"{name}\"}} {n}\n"
        ));
    }
    let mut r = state.metrics.render(&extra).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

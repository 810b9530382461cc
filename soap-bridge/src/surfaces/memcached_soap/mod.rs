//! The original SOAP service, `urn:MemcachedSOAPClass`, as its SOAP::Lite
//! clients call it: the HTTP side of one exchange (body, SOAPAction,
//! credentials, metrics, the response's headers) and the WSDL.
//! [`dispatch`] maps its operations onto [`crate::service`]; the wire
//! format is [`crate::soap`].
//!
//! | route | what |
//! |---|---|
//! | `POST /`, `POST /cgi-bin/MemcachedSOAP.cgi` | SOAP endpoint |
//! | `GET /?wsdl` (either path) | the WSDL |
//! | `GET /` (either path, no `?wsdl`) | a line saying what to do here |
//!
//! SOAP faults go out with HTTP 500, as SOAP 1.1 says, except 401/413/408,
//! which say what the transport refused (the body is still a
//! `soap:Fault`). With `[auth]`, every operation but `status` needs
//! credentials; the WSDL needs none.
//!
//! Imports the shared leaves (state, body, credentials) and the service;
//! no other surface, and nothing imports it but the route table.

pub mod dispatch;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use self::dispatch::{check_soap_action, metric_name};
use crate::body::read_body;
use crate::credentials::{authorized, challenge};
use crate::soap::parse::parse_call;
use crate::soap::wsdl::wsdl;
use crate::soap::{Fault, FaultCode};
use crate::state::AppState;

/// The service's routes: the two paths the original answered on.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(soap_get).post(soap_post))
        .route("/cgi-bin/MemcachedSOAP.cgi", get(soap_get).post(soap_post))
}

fn soap_response(status: StatusCode, xml: String) -> Response {
    let mut r = (status, xml).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    h.insert(
        "SOAPServer",
        HeaderValue::from_static(concat!(
            "memorycached-soap-bridge/",
            env!("CARGO_PKG_VERSION")
        )),
    );
    r
}

fn fault_response(status: StatusCode, fault: &Fault) -> Response {
    soap_response(status, fault.to_xml())
}

async fn soap_get(State(state): State<AppState>, request: Request) -> Response {
    let wants_wsdl = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("wsdl")));
    if !wants_wsdl {
        return (
            StatusCode::OK,
            "memorycached soap-bridge: POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n",
        )
            .into_response();
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let endpoint = format!("http://{host}{}", request.uri().path());
    state
        .metrics
        .observe("wsdl", "200", std::time::Duration::ZERO);
    let mut r = (StatusCode::OK, wsdl(&endpoint)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

async fn soap_post(State(state): State<AppState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let (op, status, response) = soap_exchange(&state, &parts.headers, body).await;
    state.metrics.observe(op, status, start.elapsed());
    response
}

/// One SOAP exchange: (operation for metrics, outcome label, response).
async fn soap_exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, &'static str, Response) {
    let body = match read_body(&state.config, headers, body).await {
        Ok(b) => b,
        Err(e) => {
            let r = fault_response(e.status(), &Fault::client(e.message()));
            return ("unparsed", e.label(), r);
        }
    };
    let call = match parse_call(&body) {
        Ok(c) => c,
        Err(f) => {
            return (
                "unparsed",
                "soap:Client",
                fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
            );
        }
    };
    let op = metric_name(&call.method);
    let action = headers.get("soapaction").and_then(|v| v.to_str().ok());
    if let Err(f) = check_soap_action(action, &call.method) {
        return (
            op,
            "soap:Client",
            fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
        );
    }
    if call.method != "status" && !authorized(&state.config, headers) {
        let mut r = fault_response(
            StatusCode::UNAUTHORIZED,
            &Fault::client("authentication required"),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge(&state.config));
        return (op, "401", r);
    }
    match dispatch::call(&state.service, &call).await {
        Ok(xml) => (op, "200", soap_response(StatusCode::OK, xml)),
        Err(f) => {
            if f.code == FaultCode::Server {
                state.metrics.store_error("soap");
                tracing::warn!(operation = op, fault = %f.message, "store error");
            }
            let label = match f.code {
                FaultCode::Client => "soap:Client",
                FaultCode::Server => "soap:Server",
            };
            (
                op,
                label,
                fault_response(StatusCode::INTERNAL_SERVER_ERROR, &f),
            )
        }
    }
}

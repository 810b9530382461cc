//! [`serve`]: the accept loop. Each connection is served by hyper's HTTP/1
//! server with a header read timeout (a client that stalls before finishing
//! its headers is dropped; body stalls are caught by the body timeout in
//! `crate::body`), on its own task, so a slow client holds nothing but its
//! own connection. With `[tls]`, the TLS handshake runs first on that task,
//! under the same header timeout: a client that stalls in the handshake is
//! dropped like one that stalls in its headers. On shutdown, the listener
//! closes at once and connections get `shutdown_grace` to finish the
//! requests in flight.

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use session_core::Sessions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::state::AppState;
use crate::surfaces::router;

/// Builds the application state from `config`: validates it (the TLS
/// files included: they are read once here to be checked), opens the
/// store URL(s), makes the `Sessions`. No I/O on the store yet.
pub fn app_state(config: Config) -> Result<AppState, Error> {
    config.validate()?;
    crate::tls::acceptor(&config.tls)?;
    let (servers, local) = store_url::open(&config.store, config.local.as_deref())?;
    let mut sessions = Sessions::new(servers, config.sessions_config()?)?;
    if let Some(local) = local {
        sessions = sessions.with_local(local);
    }
    Ok(AppState {
        service: Service::new(sessions),
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(config),
        admin: Arc::default(),
    })
}

/// Serves the bridge described by `config` on `listener` until `shutdown`
/// completes, then drains connections for `shutdown_grace`.
/// `config.listen` is not used: the caller bound `listener` (tests bind
/// `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let state = app_state(config)?;
    serve_state(state, listener, shutdown).await
}

/// [`serve`] with an already built state; HTTPS when `state.config.tls`
/// says so.
pub async fn serve_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let tls = crate::tls::acceptor(&state.config.tls)?;
    let header_timeout = state.config.header_timeout();
    let grace = state.config.shutdown_grace();
    let app = router(state);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the
                // connections we have, try again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Watched from the accept on: a shutdown waits for a handshake in
        // progress too (bounded by the header timeout).
        let watcher = graceful.watcher();
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, app, header_timeout, watcher, peer).await,
                Some(tls) => {
                    handshake_then_serve(tls, stream, app, header_timeout, watcher, peer).await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// The TLS handshake, under the header timeout, then the connection.
async fn handshake_then_serve(
    tls: TlsAcceptor,
    stream: TcpStream,
    app: Router,
    header_timeout: Duration,
    watcher: Watcher,
    peer: SocketAddr,
) {
    match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, app, header_timeout, watcher, peer).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not done within the header timeout"),
    }
}

/// One HTTP/1 connection on `io` (plain or TLS), until it ends.
async fn connection<I>(
    io: I,
    app: Router,
    header_timeout: Duration,
    watcher: Watcher,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

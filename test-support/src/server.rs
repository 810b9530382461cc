//! [`Server`]: one running memcached or Redis behind its fault-injecting proxy.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::{
    Error,
    docker::DockerServer,
    kind::{ProviderKind, ServerKind},
    process::ProcessServer,
    proxy::{Mode, Proxy},
};

/// What actually runs the server.
pub(crate) enum Backend {
    Process(ProcessServer),
    Docker(DockerServer),
}

impl Backend {
    /// Stops the server; a no-op when it is already stopped.
    async fn stop(&self) -> Result<(), Error> {
        match self {
            Backend::Process(p) => p.stop().await,
            Backend::Docker(d) => d.stop().await,
        }
    }

    /// Starts the stopped server and returns its new upstream address once ready.
    async fn start(&self) -> Result<SocketAddr, Error> {
        match self {
            Backend::Process(p) => p.start().await,
            Backend::Docker(d) => d.start().await,
        }
    }

    async fn pause(&self, pause: bool) -> Result<(), Error> {
        match self {
            Backend::Process(p) => p.pause(pause).await,
            Backend::Docker(d) => d.pause(pause).await,
        }
    }

    fn provider(&self) -> ProviderKind {
        match self {
            Backend::Process(_) => ProviderKind::Process,
            Backend::Docker(_) => ProviderKind::Docker,
        }
    }
}

/// A running memcached or Redis, started and ready, reachable at [`Server::addr`].
///
/// The address belongs to an in-process proxy (see the crate docs), so it
/// stays the same across [`stop`](Server::stop)/[`start`](Server::start) and
/// every fault. Dropping the `Server` kills the process or removes the
/// container, blocking briefly; no async context is needed.
///
/// Fault methods take `&self` and can be called from any runtime, or none
/// needed beyond the `.await`: the work runs on the crate's own runtime.
pub struct Server {
    kind: ServerKind,
    proxy: Proxy,
    backend: Backend,
    /// Serialises stop/start/pause so concurrent calls cannot interleave.
    ops: tokio::sync::Mutex<()>,
    running: AtomicBool,
    paused: AtomicBool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("kind", &self.kind)
            .field("provider", &self.backend.provider())
            .field("addr", &self.proxy.addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(crate) fn new(
        kind: ServerKind,
        backend: Backend,
        upstream: SocketAddr,
    ) -> Result<Server, Error> {
        Ok(Server {
            kind,
            proxy: Proxy::start(Some(upstream))?,
            backend,
            ops: tokio::sync::Mutex::new(()),
            running: AtomicBool::new(true),
            paused: AtomicBool::new(false),
        })
    }

    /// A server whose proxy was bound before it started (a cluster node
    /// announces its proxy's port, so the port must be known first).
    pub(crate) fn with_proxy(
        kind: ServerKind,
        backend: Backend,
        upstream: SocketAddr,
        proxy: Proxy,
    ) -> Server {
        proxy.set_upstream(Some(upstream));
        Server {
            kind,
            proxy,
            backend,
            ops: tokio::sync::Mutex::new(()),
            running: AtomicBool::new(true),
            paused: AtomicBool::new(false),
        }
    }

    /// `127.0.0.1:PORT` for clients; stable for the life of the `Server`.
    pub fn addr(&self) -> String {
        self.proxy.addr().to_string()
    }

    /// The same address, parsed.
    pub fn socket_addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// The server's own address, bypassing the proxy: no fault applies there,
    /// and it changes when the server restarts; `None` while it is stopped.
    ///
    /// For measurements (`cargo xtask bench`), where the proxy's forwarding
    /// would be measured too. Tests use [`addr`](Server::addr).
    pub fn direct_addr(&self) -> Option<SocketAddr> {
        self.proxy.upstream()
    }

    /// The server process's id, for reading its memory use (`cargo xtask
    /// bench` reports each daemon's peak RSS); `None` for a container or
    /// while stopped.
    pub fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Process(p) => p.pid(),
            Backend::Docker(_) => None,
        }
    }

    /// memcached or Redis.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Which provider runs it ([`ProviderKind::Process`] or [`ProviderKind::Docker`]).
    pub fn provider(&self) -> ProviderKind {
        self.backend.provider()
    }

    /// The Docker image the server runs from (and whether it is official or
    /// built from the host binary); `None` for a local process.
    pub fn image(&self) -> Option<&str> {
        match &self.backend {
            Backend::Process(_) => None,
            Backend::Docker(d) => Some(d.image()),
        }
    }

    /// Stops the server: open connections are reset and new ones are refused
    /// (accepted, then reset) until [`start`](Server::start). Stopping a
    /// stopped server does nothing.
    pub async fn stop(&self) -> Result<(), Error> {
        let _guard = self.ops.lock().await;
        self.proxy.set_upstream(None);
        self.proxy.reset_connections();
        if self.paused.swap(false, Ordering::SeqCst) {
            // A frozen process cannot be stopped gracefully, and Docker
            // refuses to stop a paused container.
            self.backend.pause(false).await?;
        }
        self.backend.stop().await?;
        self.running.store(false, Ordering::SeqCst);
        // Anything that slipped in while the backend went down.
        self.proxy.reset_connections();
        Ok(())
    }

    /// Starts the server again, with empty memory, on the same [`addr`](Server::addr),
    /// and returns once it answers its protocol ping. On a running server it
    /// restarts it, so memory is empty afterwards in every case.
    pub async fn start(&self) -> Result<(), Error> {
        let _guard = self.ops.lock().await;
        if self.running.load(Ordering::SeqCst) {
            self.proxy.set_upstream(None);
            self.proxy.reset_connections();
            if self.paused.swap(false, Ordering::SeqCst) {
                self.backend.pause(false).await?;
            }
            self.backend.stop().await?;
            self.running.store(false, Ordering::SeqCst);
        }
        let upstream = self.backend.start().await?;
        self.running.store(true, Ordering::SeqCst);
        self.proxy.set_upstream(Some(upstream));
        Ok(())
    }

    /// Freezes the server (SIGSTOP, or `docker pause`): connections are still
    /// accepted and requests are still sent, but nothing is ever answered.
    pub async fn pause(&self) -> Result<(), Error> {
        let _guard = self.ops.lock().await;
        if self.running.load(Ordering::SeqCst) && !self.paused.load(Ordering::SeqCst) {
            self.backend.pause(true).await?;
            self.paused.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Thaws a paused server; requests sent meanwhile are answered now.
    pub async fn unpause(&self) -> Result<(), Error> {
        let _guard = self.ops.lock().await;
        if self.paused.load(Ordering::SeqCst) {
            self.backend.pause(false).await?;
            self.paused.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Cuts the network between clients and server: open connections are
    /// reset and new ones are reset as soon as they are accepted, until
    /// [`heal`](Server::heal). The server itself keeps running, with its data.
    pub async fn cut(&self) -> Result<(), Error> {
        self.proxy.set_mode(Mode::Cut);
        Ok(())
    }

    /// Makes the network drop everything silently, like a partition: open
    /// connections stall and new ones are accepted but never answered, until
    /// [`heal`](Server::heal), after which held-back data flows again.
    pub async fn blackhole(&self) -> Result<(), Error> {
        self.proxy.set_mode(Mode::Blackhole);
        Ok(())
    }

    /// Undoes [`cut`](Server::cut) and [`blackhole`](Server::blackhole).
    pub async fn heal(&self) -> Result<(), Error> {
        self.proxy.set_mode(Mode::Open);
        Ok(())
    }

    /// Delays every chunk of data by `latency`, in both directions
    /// (`Duration::ZERO` removes the delay). A request/response round trip
    /// therefore takes at least twice `latency` longer.
    pub async fn set_latency(&self, latency: Duration) -> Result<(), Error> {
        self.proxy.set_latency(latency);
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Connections go first; the backend's own `Drop` (kill and reap, or
        // `docker rm -f`) runs when the fields are dropped right after.
        self.proxy.set_mode(Mode::Closed);
    }
}

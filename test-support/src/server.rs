//! [`Server`]: one running memcached or Redis behind its fault-injecting proxy.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    Error, ProviderKind, docker::DockerServer, process::ProcessServer, proxy::Mode, proxy::Proxy,
};

/// Which server a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// memcached (ASCII/meta protocol).
    Memcached,
    /// Redis (RESP).
    Redis,
}

impl ServerKind {
    /// `memcached` or `redis`.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Memcached => "memcached",
            ServerKind::Redis => "redis",
        }
    }
}

/// Options for [`Provider::memcached_with`](crate::Provider::memcached_with).
///
/// Build it with struct-update syntax:
/// `MemcachedOptions { item_size_max: Some(2 << 20), ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedOptions {
    /// Cache memory in megabytes (`-m`); 64 by default.
    pub memory_mb: u32,
    /// Largest item in bytes (`-I`); memcached's default (1 MiB) when `None`.
    /// memcached refuses values above half of `memory_mb`.
    pub item_size_max: Option<u64>,
    /// Further arguments appended verbatim, e.g. `["-o", "modern"]`.
    pub extra_args: Vec<String>,
}

impl Default for MemcachedOptions {
    fn default() -> Self {
        MemcachedOptions {
            memory_mb: 64,
            item_size_max: None,
            extra_args: Vec::new(),
        }
    }
}

impl MemcachedOptions {
    /// The provider-independent arguments (no listen address, port or user).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-U".to_owned(),
            "0".to_owned(),
            "-m".to_owned(),
            self.memory_mb.to_string(),
        ];
        if let Some(size) = self.item_size_max {
            args.extend(["-I".to_owned(), size.to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// The provider-independent Redis arguments: no persistence of any kind.
pub(crate) fn redis_args() -> Vec<String> {
    ["--save", "", "--appendonly", "no"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

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

    /// `127.0.0.1:PORT` for clients; stable for the life of the `Server`.
    pub fn addr(&self) -> String {
        self.proxy.addr().to_string()
    }

    /// The same address, parsed.
    pub fn socket_addr(&self) -> SocketAddr {
        self.proxy.addr()
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

/// How long one ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One connect and protocol ping (`version` / `PING`); `Err` says what failed.
pub(crate) async fn ping(kind: ServerKind, addr: SocketAddr) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (request, expect): (&[u8], &[u8]) = match kind {
            ServerKind::Memcached => (b"version\r\n", b"VERSION "),
            ServerKind::Redis => (b"PING\r\n", b"+PONG"),
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 64];
        while !reply.ends_with(b"\r\n") {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before a reply".to_owned());
            }
            reply.extend_from_slice(&buf[..n]);
        }
        if reply.starts_with(expect) {
            Ok(())
        } else {
            Err(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(&reply).trim_end()
            ))
        }
    };
    match tokio::time::timeout(PING_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no reply within {PING_TIMEOUT:?}")),
    }
}

/// Pings until the server answers or `budget` runs out. `check` runs before
/// each attempt and stops the wait early (a process that exited, say).
pub(crate) async fn wait_ready(
    kind: ServerKind,
    addr: SocketAddr,
    budget: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), Error> {
    let started = Instant::now();
    let not_ready = |detail: String| Error::NotReady {
        server: kind.name(),
        addr: addr.to_string(),
        waited: started.elapsed(),
        detail,
    };
    loop {
        check().map_err(not_ready)?;
        match ping(kind, addr).await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() >= budget => return Err(not_ready(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

//! The fault-injecting TCP proxy that fronts every [`Server`](crate::Server).
//!
//! The proxy listens on the server's stable address and forwards each accepted
//! connection to the current upstream (the process's port, or the container's
//! published port, which changes on every container restart). Faults are
//! injected here, identically for both providers:
//!
//! - **cut**: every open connection is reset and every new one is accepted and
//!   reset at once, so clients fail fast ("connection reset");
//! - **blackhole**: nothing is forwarded any more, in either direction; open
//!   connections stall and new ones are accepted but never answered, like a
//!   partition that drops packets; data held back flows again after `heal`;
//! - **latency**: each chunk waits the given time before it is written on,
//!   in both directions.
//!
//! Everything runs on the background runtime (see `runtime.rs`), so the proxy
//! keeps forwarding whichever runtime, if any, the test runs on.

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{Error, runtime};

/// How long the proxy waits for the upstream to accept a connection before it
/// gives up on it and resets the client.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per chunk; latency is added per chunk.
const CHUNK: usize = 16 * 1024;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward everything.
    Open,
    /// Reset open connections and every new one.
    Cut,
    /// Forward nothing; connections stall.
    Blackhole,
    /// The proxy is gone: like `Cut`, and the listener closes.
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct Control {
    mode: Mode,
    /// Bumped to reset every connection opened before, whatever the mode.
    epoch: u64,
}

struct State {
    upstream: Mutex<Option<SocketAddr>>,
    control: watch::Sender<Control>,
    latency_micros: AtomicU64,
}

impl State {
    fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }
}

/// A running proxy; dropping it closes the listener and resets its connections.
pub(crate) struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Binds a fresh loopback port and starts forwarding to `upstream`.
    pub(crate) fn start(upstream: Option<SocketAddr>) -> Result<Proxy, Error> {
        let listener = StdListener::bind("127.0.0.1:0")
            .map_err(Error::io("binding the proxy's loopback port"))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("making the proxy listener non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the proxy's address"))?;
        let (control, _) = watch::channel(Control {
            mode: Mode::Open,
            epoch: 0,
        });
        let state = Arc::new(State {
            upstream: Mutex::new(upstream),
            control,
            latency_micros: AtomicU64::new(0),
        });
        runtime::spawn(accept_loop(listener, Arc::clone(&state)))?;
        Ok(Proxy { addr, state })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go now; `None` while the server is stopped.
    pub(crate) fn upstream(&self) -> Option<SocketAddr> {
        *self
            .state
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Points new connections at `upstream` (`None`: reset them).
    pub(crate) fn set_upstream(&self, upstream: Option<SocketAddr>) {
        *self
            .state
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = upstream;
    }

    /// Resets every connection open now; new ones are unaffected.
    pub(crate) fn reset_connections(&self) {
        self.state.control.send_modify(|c| c.epoch += 1);
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.control.send_modify(|c| c.mode = mode);
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.state.latency_micros.store(micros, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set_mode(Mode::Closed);
    }
}

async fn accept_loop(listener: StdListener, state: Arc<State>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut control = state.control.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tokio::spawn(connection(client, Arc::clone(&state)));
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            changed = control.changed() => {
                if changed.is_err() || control.borrow().mode == Mode::Closed {
                    return;
                }
            }
        }
    }
}

/// Outcome of a wait on the control channel.
enum Gate {
    Pass,
    Reset,
}

/// Waits while the proxy is blackholed; says whether to go on or reset.
async fn gate(control: &mut watch::Receiver<Control>, epoch: u64) -> Gate {
    loop {
        let now = *control.borrow_and_update();
        if now.epoch != epoch {
            return Gate::Reset;
        }
        match now.mode {
            Mode::Open => return Gate::Pass,
            Mode::Blackhole => {}
            Mode::Cut | Mode::Closed => return Gate::Reset,
        }
        if control.changed().await.is_err() {
            return Gate::Reset;
        }
    }
}

/// Resolves when the connection must be reset (cut, closed, or a new epoch).
async fn killed(mut control: watch::Receiver<Control>, epoch: u64) {
    loop {
        let now = *control.borrow_and_update();
        if now.epoch != epoch || matches!(now.mode, Mode::Cut | Mode::Closed) {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

/// Closes with RST rather than FIN, as a dying peer or a broken path would.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(mut client: TcpStream, state: Arc<State>) {
    let _ = client.set_nodelay(true);
    let mut control = state.control.subscribe();
    let epoch = control.borrow().epoch;
    if let Gate::Reset = gate(&mut control, epoch).await {
        return reset(client);
    }
    let upstream_addr = *state
        .upstream
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(upstream_addr) = upstream_addr else {
        return reset(client);
    };
    let mut upstream =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream_addr))
            .await
        {
            Ok(Ok(upstream)) => upstream,
            _ => return reset(client),
        };
    let _ = upstream.set_nodelay(true);

    let clean = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let (to_upstream, to_client) = (control.clone(), control.clone());
        let both = async {
            tokio::try_join!(
                pump(client_read, upstream_write, &state, to_upstream, epoch),
                pump(upstream_read, client_write, &state, to_client, epoch),
            )
        };
        tokio::select! {
            done = both => done.is_ok(),
            () = killed(control, epoch) => false,
        }
    };
    if !clean {
        reset(client);
        reset(upstream);
    }
}

/// Copies one direction chunk by chunk; `Err` means "reset the connection".
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    state: &State,
    mut control: watch::Receiver<Control>,
    epoch: u64,
) -> Result<(), ()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(drop)?;
        if n == 0 {
            // Half-close: pass the FIN on and let the other direction finish.
            let _ = to.shutdown().await;
            return Ok(());
        }
        if let Gate::Reset = gate(&mut control, epoch).await {
            return Err(());
        }
        let latency = state.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        to.write_all(&buf[..n]).await.map_err(drop)?;
    }
}

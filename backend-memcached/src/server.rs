//! One server: its pool, its health (up, or down with exponential backoff),
//! its counters, and the request path that ties them together.
//!
//! A failure that says the server is unhealthy (connect refused or timed
//! out, I/O error, request timeout, garbage on the wire) marks it down.
//! While down, calls fail fast without I/O until the retry time; then one
//! call is let through as a probe (the retry time is pushed out at once, so
//! concurrent callers keep failing fast instead of piling onto a sick
//! server). A successful probe marks the server up; a failed one doubles the
//! backoff, up to the configured maximum.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{MemcachedConfig, Protocol};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::protocol::{self, Op, Reply};

/// Whether a server takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerState {
    /// Requests go through.
    Up,
    /// Marked down after a failure; calls fail fast (or rehash) until the
    /// next retry.
    Down {
        /// Time left until a probe request is let through (zero when due).
        retry_in: Duration,
        /// The current backoff delay.
        backoff: Duration,
    },
}

/// A snapshot of one server's counters, from
/// [`MemcachedStore::stats`](crate::MemcachedStore::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server address, `host:port`.
    pub server: String,
    /// Up or down now.
    pub state: ServerState,
    /// Requests routed to this server, including those that failed fast
    /// while it was down.
    pub requests: u64,
    /// Requests that returned an error (any kind, timeouts included).
    pub errors: u64,
    /// Requests that ran out of their connect, I/O or pool deadline.
    pub timeouts: u64,
    /// Times the server went from up to down.
    pub marked_down: u64,
    /// Times the server came back up.
    pub marked_up: u64,
    /// Connections in use right now.
    pub busy_connections: usize,
    /// Idle pooled connections right now.
    pub idle_connections: usize,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    marked_down: AtomicU64,
    marked_up: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    retry_at: Instant,
    backoff: Duration,
}

/// One configured server.
#[derive(Debug)]
pub(crate) struct Server {
    addr: String,
    protocol: Protocol,
    connect_timeout: Duration,
    io_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    pool: Pool,
    // A std mutex: held for a few instructions, never across an await.
    down: Mutex<Option<Down>>,
    counters: Counters,
}

impl Server {
    /// A server at `addr` with the store's settings.
    pub(crate) fn new(addr: String, config: &MemcachedConfig) -> Self {
        Server {
            pool: Pool::new(addr.clone(), config.pool_size),
            addr,
            protocol: config.protocol,
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            down: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// The server address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// True if a call would be let through now (up, or its retry is due),
    /// without claiming the probe. Used to route multi-key reads.
    pub(crate) fn is_available(&self) -> bool {
        match self.down.lock() {
            Ok(d) => d.is_none_or(|d| Instant::now() >= d.retry_at),
            Err(_) => true,
        }
    }

    /// Lets a call through or fails fast while the server is down.
    fn admit(&self) -> Result<()> {
        let Ok(mut guard) = self.down.lock() else {
            return Ok(());
        };
        let Some(down) = guard.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= down.retry_at {
            // This call is the probe; others fail fast until it is done.
            down.retry_at = now + down.backoff;
            Ok(())
        } else {
            Err(Error::MarkedDown {
                server: self.addr.clone(),
                retry_in: down.retry_at - now,
            })
        }
    }

    fn on_success(&self) {
        let Ok(mut guard) = self.down.lock() else {
            return;
        };
        if guard.take().is_some() {
            self.counters.marked_up.fetch_add(1, Ordering::Relaxed);
            tracing::info!(server = %self.addr, "memcached server is back up");
        }
    }

    fn on_failure(&self, error: &Error) {
        let Ok(mut guard) = self.down.lock() else {
            return;
        };
        let now = Instant::now();
        match guard.as_mut() {
            None => {
                *guard = Some(Down {
                    retry_at: now + self.backoff_initial,
                    backoff: self.backoff_initial,
                });
                drop(guard);
                self.counters.marked_down.fetch_add(1, Ordering::Relaxed);
                // Idle connections to a server that just failed are most
                // likely dead too; a reconnect on recovery is cheap.
                self.pool.clear();
                tracing::warn!(
                    server = %self.addr,
                    %error,
                    retry_in = ?self.backoff_initial,
                    "memcached server marked down"
                );
            }
            Some(down) => {
                down.backoff = (down.backoff * 2).min(self.backoff_max);
                down.retry_at = now + down.backoff;
                tracing::debug!(
                    server = %self.addr,
                    %error,
                    retry_in = ?down.backoff,
                    "memcached server still down"
                );
            }
        }
    }

    /// Runs `op` on this server: health check, pooled connection, deadline,
    /// and health/counter bookkeeping.
    pub(crate) async fn call(&self, op: &Op<'_>) -> Result<Reply> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match self.admit() {
            Ok(()) => self.exchange(op).await,
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => self.on_success(),
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(
                    e,
                    Error::Timeout { .. }
                        | Error::ConnectTimeout { .. }
                        | Error::PoolTimeout { .. }
                ) {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                if e.marks_down() {
                    self.on_failure(e);
                } else if !matches!(e, Error::MarkedDown { .. } | Error::PoolTimeout { .. }) {
                    // It answered (with an error line): it is alive.
                    self.on_success();
                }
            }
        }
        result
    }

    async fn exchange(&self, op: &Op<'_>) -> Result<Reply> {
        // Held until this function returns or its future is dropped.
        let _permit = self.pool.permit(self.io_timeout).await?;
        let mut pooled = self.pool.take_idle();
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => Connection::connect(&self.addr, self.connect_timeout).await?,
            };
            let outcome = tokio::time::timeout(
                self.io_timeout,
                protocol::execute(self.protocol, &mut conn, op),
            )
            .await;
            match outcome {
                Ok(Ok(reply)) => {
                    self.pool.put_idle(conn);
                    return Ok(reply);
                }
                // An idle connection the server closed meanwhile (restart,
                // idle timeout) fails before any answer byte: the request was
                // not processed, so one retry on a fresh connection is safe.
                Ok(Err(Error::Io { .. })) if reused && conn.nothing_read() => continue,
                // Any other error drops `conn`: after an error line or a
                // broken stream we cannot be sure what is left to read.
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(Error::Timeout {
                        operation: op.name(),
                        server: self.addr.clone(),
                        after: self.io_timeout,
                    });
                }
            }
        }
    }

    /// A snapshot of the counters and state.
    pub(crate) fn stats(&self) -> ServerStats {
        let state = match self.down.lock().ok().and_then(|d| *d) {
            None => ServerState::Up,
            Some(d) => ServerState::Down {
                retry_in: d.retry_at.saturating_duration_since(Instant::now()),
                backoff: d.backoff,
            },
        };
        let (busy, idle) = self.pool.counts();
        let c = &self.counters;
        ServerStats {
            server: self.addr.clone(),
            state,
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            marked_down: c.marked_down.load(Ordering::Relaxed),
            marked_up: c.marked_up.load(Ordering::Relaxed),
            busy_connections: busy,
            idle_connections: idle,
        }
    }
}

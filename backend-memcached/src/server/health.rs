//! A server's health: up, or down with exponential backoff, and the
//! counters a [`ServerStats`] snapshot reports.
//!
//! A failure that says the server is unhealthy (connect refused or timed
//! out, I/O error, request timeout, garbage on the wire) marks it down.
//! While down, calls fail fast without I/O until the retry time; then one
//! call is let through as a probe (the retry time is pushed out at once, so
//! concurrent callers keep failing fast instead of piling onto a sick
//! server). A successful probe marks the server up; a failed one doubles the
//! backoff, up to the configured maximum. Only the probe's failure may
//! lengthen the backoff: calls admitted while the server was still up that
//! fail after it was marked down (say, all the requests in flight when it
//! stalled) are counted, and change nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Server;
use crate::config::MAX_DURATION;
use crate::error::{Error, Result};

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
    /// Connections closed because the server sent bytes no request asked
    /// for (a protocol anomaly): they are never reused, so such bytes
    /// cannot be read as the answer to the next request.
    pub unsolicited_data: u64,
    /// Connections in use right now.
    pub busy_connections: usize,
    /// Idle pooled connections right now.
    pub idle_connections: usize,
    /// Open multiplexed connections right now (always 0 in
    /// [`ConnectionMode::Pooled`](crate::ConnectionMode::Pooled)).
    pub multiplexed_connections: usize,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) marked_down: AtomicU64,
    pub(super) marked_up: AtomicU64,
    pub(super) unsolicited_data: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Down {
    pub(super) retry_at: Instant,
    pub(super) backoff: Duration,
}

/// Up or down, and which probe is the current one.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) down: Option<Down>,
    /// Numbers the probes, so that only the latest one's failure doubles
    /// the backoff (a slow probe overtaken by the next is just counted).
    pub(super) last_probe: u64,
}

/// How [`Server::admit`] let a call through; decides what its failure may
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The server was up.
    Up,
    /// The server was down and this call is probe number `n`.
    Probe(u64),
}

/// `now + d`, saturating instead of panicking on overflow.
pub(super) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_DURATION))
        .unwrap_or(now)
}

impl Server {
    /// True if a call would be let through now (up, or its retry is due),
    /// without claiming the probe. Used to route multi-key reads.
    pub(crate) fn is_available(&self) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        match self.health.lock() {
            Ok(h) => h.down.is_none_or(|d| Instant::now() >= d.retry_at),
            Err(_) => true,
        }
    }

    /// Lets a call through or fails fast while the server is down.
    pub(super) fn admit(&self) -> Result<Admission> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(Admission::Up);
        }
        let Ok(mut guard) = self.health.lock() else {
            return Ok(Admission::Up);
        };
        let health = &mut *guard;
        let Some(down) = health.down.as_mut() else {
            return Ok(Admission::Up);
        };
        let now = Instant::now();
        if now >= down.retry_at {
            // This call is the probe; others fail fast until it is done.
            down.retry_at = later(now, down.backoff);
            health.last_probe += 1;
            Ok(Admission::Probe(health.last_probe))
        } else {
            Err(Error::MarkedDown {
                server: self.addr.clone(),
                retry_in: down.retry_at - now,
            })
        }
    }

    pub(super) fn on_success(&self) {
        if !self.down.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut guard) = self.health.lock() else {
            return;
        };
        if guard.down.take().is_some() {
            self.down.store(false, Ordering::Release);
            self.counters.marked_up.fetch_add(1, Ordering::Relaxed);
            tracing::info!(server = %self.addr, "memcached server is back up");
        }
    }

    pub(super) fn on_failure(&self, admission: Admission, error: &Error) {
        let Ok(mut guard) = self.health.lock() else {
            return;
        };
        let health = &mut *guard;
        let now = Instant::now();
        match (health.down.as_mut(), admission) {
            (None, _) => {
                health.down = Some(Down {
                    retry_at: later(now, self.backoff_initial),
                    backoff: self.backoff_initial,
                });
                self.down.store(true, Ordering::Release);
                drop(guard);
                self.counters.marked_down.fetch_add(1, Ordering::Relaxed);
                // Idle connections to a server that just failed are most
                // likely dead too; a reconnect on recovery is cheap.
                self.pool.clear();
                // It may come back restarted with another `-I` (or `-C`).
                if let Ok(mut settings) = self.settings.lock() {
                    *settings = None;
                }
                tracing::warn!(
                    server = %self.addr,
                    %error,
                    retry_in = ?self.backoff_initial,
                    "memcached server marked down"
                );
            }
            // Only the current probe's failure is news: the server was given
            // another chance and failed it.
            (Some(down), Admission::Probe(n)) if n == health.last_probe => {
                down.backoff = down.backoff.saturating_mul(2).min(self.backoff_max);
                down.retry_at = later(now, down.backoff);
                tracing::debug!(
                    server = %self.addr,
                    %error,
                    retry_in = ?down.backoff,
                    "memcached server still down"
                );
            }
            // A call admitted before the server was marked down (or a probe
            // a newer one overtook) failing now is the same failure seen
            // again: N requests in flight when a server stalls all time out
            // together, and doubling for each gave a backoff of
            // initial * 2^(N-1). Counted by the caller, nothing more.
            (Some(_), _) => {
                tracing::trace!(
                    server = %self.addr,
                    %error,
                    "memcached call admitted before the down mark failed"
                );
            }
        }
    }

    /// A snapshot of the counters and state.
    pub(crate) fn stats(&self) -> ServerStats {
        let state = match self.health.lock().ok().and_then(|h| h.down) {
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
            unsolicited_data: c.unsolicited_data.load(Ordering::Relaxed),
            busy_connections: busy,
            idle_connections: idle,
            multiplexed_connections: self.mux.as_ref().map_or(0, |m| m.open_count()),
        }
    }
}

//! One server: its pool, its settings, its health and the request path
//! that ties them together.
//!
//! - `health.rs`: up or down with backoff, and the counters.
//! - `request.rs`: one call from admission to answer, within one deadline,
//!   on a pooled connection.
//! - `multiplexed.rs`: the same on a shared multiplexed connection.
//! - `tests.rs`: both, against the shared scripted fake (`tests/common/fake.rs`).
//!
//! The first connection to a server also asks for its `stats settings`
//! ([`Settings`]): its `item_size_max`, so that a write it would refuse is
//! refused here before any I/O (memcached drops the key's old item when it
//! refuses a value as too large), and whether CAS is enabled.

mod health;
mod multiplexed;
#[cfg(test)]
mod mux_tests;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub use health::{ServerState, ServerStats};

use crate::config::{
    ConnectionMode, ITEM_FLAGS_OVERHEAD, ITEM_OVERHEAD, MemcachedConfig, Protocol,
};
use crate::connection::{Connection, IdleState};
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::protocol::{Op, Settings};
use health::{Counters, Health};

/// Slack over the largest value a server can hold before a data block's
/// announced length is taken for a corrupt stream (see [`Server::max_block`]).
const BLOCK_SLACK: usize = 4 * 1024;

/// memcached's default `item_size_max` (`-I 1m`), assumed for an endpoint
/// that does not answer `stats settings`.
const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

/// One configured server.
#[derive(Debug)]
pub(crate) struct Server {
    addr: String,
    protocol: Protocol,
    connect_timeout: Duration,
    io_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    max_value_size: usize,
    pool: Pool,
    /// Opens this server's connections (TLS, authentication).
    connector: Connector,
    /// The shared connections, in [`ConnectionMode::Adaptive`] and
    /// [`ConnectionMode::Multiplexed`].
    mux: Option<multiplexed::Slots>,
    mode: ConnectionMode,
    /// Calls to this server in flight now (for [`ConnectionMode::Adaptive`]).
    in_flight: AtomicUsize,
    // A std mutex: held for a few instructions, never across an await.
    health: Mutex<Health>,
    /// `health.down.is_some()`, readable without the lock: every call asks
    /// twice (admit, then success), and on a healthy server the answer is
    /// always "up" (the lock measured a few percent of a busy client's CPU).
    /// Written only under the lock.
    down: AtomicBool,
    /// What the server's `stats settings` said; `None` until its first
    /// connection asked (and again after it was marked down: it may come
    /// back restarted with other settings).
    settings: Mutex<Option<Settings>>,
    counters: Counters,
}

impl Server {
    /// A server at `addr` with the store's settings, on plain TCP.
    #[cfg(test)]
    pub(crate) fn new(addr: String, config: &MemcachedConfig) -> Self {
        Server::with_connector(addr, config, Connector::plain())
    }

    /// A server at `addr` with the store's settings, whose connections
    /// `connector` opens.
    pub(crate) fn with_connector(
        addr: String,
        config: &MemcachedConfig,
        connector: Connector,
    ) -> Self {
        Server {
            connector,
            pool: Pool::new(addr.clone(), config.pool_size),
            mux: match config.mode {
                ConnectionMode::Adaptive | ConnectionMode::Multiplexed => {
                    Some(multiplexed::Slots::new(config.connections))
                }
                ConnectionMode::Pooled => None,
            },
            mode: config.mode,
            in_flight: AtomicUsize::new(0),
            addr,
            protocol: config.protocol,
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            max_value_size: config.max_value_size,
            health: Mutex::new(Health::default()),
            down: AtomicBool::new(false),
            settings: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// The server address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    fn settings(&self) -> Option<Settings> {
        self.settings.lock().ok().and_then(|s| *s)
    }

    fn set_settings(&self, learned: Settings) {
        if let Ok(mut s) = self.settings.lock() {
            *s = Some(learned);
        }
    }

    /// Refuses, before any I/O, what the server's settings say it would
    /// refuse: a write larger than its `item_size_max` (memcached 1.6 then
    /// unlinks the key's existing item, in every meta mode, so a failed
    /// save would delete the session), or anything on a server without CAS.
    fn check(&self, settings: Settings, op: &Op<'_>) -> Result<()> {
        if settings.cas_enabled == Some(false) {
            return Err(Error::CasDisabled {
                server: self.addr.clone(),
            });
        }
        if let (
            Some(item_size_max),
            Op::Store {
                key, value, flags, ..
            },
        ) = (settings.item_size_max, op)
        {
            let limit = value_limit(item_size_max, key, *flags);
            if value.len() > limit {
                return Err(Error::Input(session_core::Error::ValueTooLarge {
                    size: value.len(),
                    limit,
                }));
            }
        }
        Ok(())
    }

    /// The longest data block a connection accepts: what the server can
    /// hold (its `item_size_max`, or memcached's default 1 MiB when it did
    /// not say) or what we may write (`max_value_size`), whichever is
    /// larger, plus slack.
    fn max_block(&self) -> usize {
        let server = self
            .settings()
            .and_then(|s| s.item_size_max)
            .unwrap_or(DEFAULT_ITEM_SIZE_MAX);
        server.max(self.max_value_size).saturating_add(BLOCK_SLACK)
    }

    /// Returns a connection to the pool if its stream is in sync: after a
    /// complete answer, bytes left unread were sent unasked and would be
    /// read as the next request's answer, so that connection is closed.
    fn release(&self, conn: Connection) {
        if conn.has_unread() {
            self.unsolicited(&conn);
        } else {
            self.pool.put_idle(conn);
        }
    }

    fn unsolicited(&self, conn: &Connection) {
        self.counters
            .unsolicited_data
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            server = %conn.server(),
            "memcached server sent bytes no request asked for; connection closed"
        );
    }

    /// An idle pooled connection that is safe to send on, if any.
    fn take_idle(&self) -> Option<Connection> {
        while let Some(mut conn) = self.pool.take_idle() {
            match conn.idle_state() {
                IdleState::Clean => return Some(conn),
                // Closed by the server meanwhile: dropped here rather than
                // found out after a request was written on it.
                IdleState::Closed => {}
                IdleState::Unsolicited => self.unsolicited(&conn),
            }
        }
        None
    }
}

/// The largest value a server with `item_size_max` stores under `key` with
/// `flags`: memcached counts the whole item (see
/// [`ITEM_OVERHEAD`](crate::config::ITEM_OVERHEAD)) against its limit.
fn value_limit(item_size_max: usize, key: &str, flags: u32) -> usize {
    let flags_overhead = if flags == 0 { 0 } else { ITEM_FLAGS_OVERHEAD };
    item_size_max.saturating_sub(ITEM_OVERHEAD + key.len() + flags_overhead)
}

//! The request path of [`ConnectionMode::Multiplexed`](crate::ConnectionMode),
//! and of [`ConnectionMode::Adaptive`](crate::ConnectionMode) for calls that
//! overlap: a few shared connections per server (`crate::mux`), used in
//! turn.
//!
//! What stays on the pooled path (`request.rs`): scans and `stats` (long
//! answers that would hold up everyone queued behind them), and every
//! request while the server's settings are unknown — the pooled path learns
//! them on a fresh connection, finds endpoints that refuse `stats settings`
//! or meta commands, and from then on this path knows the limits to check
//! before sending.
//!
//! A connection that closes is replaced by the next request that picks its
//! slot. A request refused by a closed connection before it was written is
//! sent once more on a fresh one, as the pooled path resends on a stale
//! pooled connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::Server;
use crate::config::{ConnectionMode, Protocol};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::mux::MuxConn;
use crate::protocol::{self, Op, Reply};

/// One place for a connection: the open one, and a lock that lets one
/// caller at a time open its replacement.
#[derive(Debug, Default)]
struct Slot {
    // A std mutex: held to clone an `Arc`, never across an await.
    open: Mutex<Option<Arc<MuxConn>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn current(&self) -> Option<Arc<MuxConn>> {
        let open = self.open.lock().ok()?;
        open.as_ref().filter(|c| c.is_open()).cloned()
    }
}

/// A server's multiplexed connections.
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Slots {
    /// `n` empty slots (connections open on first use).
    pub(crate) fn new(n: usize) -> Self {
        Slots {
            slots: (0..n.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Open connections.
    pub(crate) fn open_count(&self) -> usize {
        self.slots.iter().filter(|s| s.current().is_some()).count()
    }
}

impl Server {
    /// The shared connections `op` goes on, or `None` for a pooled one;
    /// `alone` says no other call to this server is in flight,
    /// `settings_known` that a pooled connection already learned the
    /// server's settings.
    pub(super) fn multiplexed_slots(
        &self,
        op: &Op<'_>,
        alone: bool,
        settings_known: bool,
    ) -> Option<&Slots> {
        // Scans and stats stay pooled; so does a lone call in the adaptive
        // mode, and every call until the settings are known.
        let pooled = matches!(op, Op::Scan { .. } | Op::Stats)
            || (alone && self.mode == ConnectionMode::Adaptive)
            || !settings_known;
        self.mux.as_ref().filter(|_| !pooled)
    }

    /// The next slot's open connection, opening one if it has none.
    async fn mux_connection(&self, slots: &Slots, deadline: Instant) -> Result<Arc<MuxConn>> {
        let i = slots.next.fetch_add(1, Ordering::Relaxed) % slots.slots.len();
        let slot = &slots.slots[i];
        if let Some(conn) = slot.current() {
            return Ok(conn);
        }
        let (until, after) = Server::bounded(deadline, self.connect_timeout);
        let Ok(_turn) = tokio::time::timeout_at(until, slot.connecting.lock()).await else {
            return Err(Error::ConnectTimeout {
                server: self.addr.clone(),
                after,
            });
        };
        // Someone else may have opened it while we waited for our turn.
        if let Some(conn) = slot.current() {
            return Ok(conn);
        }
        let stream = Connection::connect_until(&self.connector, &self.addr, until, after)
            .await?
            .into_stream();
        let conn = Arc::new(MuxConn::start(stream, self.addr.clone(), self.max_block()));
        if let Ok(mut open) = slot.open.lock() {
            *open = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Runs `op` on a multiplexed connection within `deadline`.
    pub(super) async fn exchange_multiplexed(
        &self,
        slots: &Slots,
        op: &Op<'_>,
        deadline: Instant,
    ) -> Result<Reply> {
        protocol::refuse_unsendable(self.protocol, &self.addr, op)?;
        if let Op::GetMany([]) = op {
            // No request, so no answer for the reader to wait for.
            return Ok(Reply::Entries(Vec::new()));
        }
        let mut resent = false;
        loop {
            let conn = self.mux_connection(slots, deadline).await?;
            let (until, after) = Server::bounded(deadline, self.io_timeout);
            // Encoded anew for a resend (rare) rather than copied each time.
            let (bytes, framing) = protocol::encode_all(self.protocol, op);
            match conn.request(bytes, framing, op.name(), until, after).await {
                Ok(frames) => return protocol::interpret(self.protocol, &self.addr, op, frames),
                // Closed before it was written: once more on a new one.
                Err(Error::Io { sent: false, .. }) if !resent => resent = true,
                // Closed on a meta command before any answer: a dead
                // server, or an endpoint that does not speak meta.
                Err(e @ Error::Io { sent: true, .. })
                    if self.protocol == Protocol::Meta && !conn.ever_read() =>
                {
                    if self.speaks_classic(deadline).await {
                        return Err(Error::MetaUnsupported {
                            server: self.addr.clone(),
                            command: super::request::meta_command(op).unwrap_or("mg"),
                        });
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

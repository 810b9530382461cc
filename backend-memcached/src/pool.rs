//! A bounded pool of connections to one server.
//!
//! A semaphore bounds how many connections exist at once (idle or in use);
//! idle ones wait in a list for reuse. The rule that keeps the protocol
//! stream in sync: a connection goes back to the idle list only after its
//! answer was read completely ([`Pool::put_idle`] is called by the code that
//! finished reading). Anything else — an error, a timeout, or the caller's
//! future being dropped mid-request — drops the connection, which closes it,
//! so no later request can read a stale answer meant for another. The
//! caller also drops, rather than returns, a connection with bytes left
//! unread after a complete answer, or with bytes waiting when it is taken
//! for reuse: a misbehaving server's unsolicited bytes would otherwise be
//! read as the next request's answer (`Server::release`,
//! `Server::take_idle`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::connection::Connection;
use crate::error::{Error, Result};

/// Connections to one server.
#[derive(Debug)]
pub(crate) struct Pool {
    server: String,
    size: usize,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// An empty pool of at most `size` connections to `server`.
    pub(crate) fn new(server: String, size: usize) -> Self {
        Pool {
            server,
            size,
            permits: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
        }
    }

    /// Waits up to `wait` for the right to use one connection.
    pub(crate) async fn permit(&self, wait: Duration) -> Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(wait, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            // The semaphore is never closed; treat it like exhaustion anyway.
            Ok(Err(_)) | Err(_) => Err(Error::PoolTimeout {
                server: self.server.clone(),
                after: wait,
            }),
        }
    }

    /// An idle connection, most recently used first (it is the least likely
    /// to have been closed by the server or a middlebox).
    pub(crate) fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    /// Returns a connection whose last answer was read completely and that
    /// holds no unread bytes (checked by the caller).
    pub(crate) fn put_idle(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.size
        {
            idle.push(conn);
        }
    }

    /// Closes every idle connection (after the server was marked down, they
    /// are most likely dead).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// (connections in use, idle connections).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        (self.size - self.permits.available_permits(), idle)
    }
}

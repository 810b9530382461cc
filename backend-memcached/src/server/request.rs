//! The request path of one server: admission, a pooled or new connection,
//! the server's settings on a fresh connection, the request, its answer,
//! and the health and counter bookkeeping afterwards.
//!
//! **One deadline per call.** A call gets `connect_timeout + io_timeout`
//! from its start, whatever it has to do: waiting for a free pooled
//! connection (at most `io_timeout` of it), connecting (at most
//! `connect_timeout`), reading the server's settings, the request itself
//! (at most `io_timeout`) and the one resend on a fresh connection that a
//! stale pooled connection may cost. Each step gets what is left, so the
//! steps cannot add up past the budget.
//!
//! **Sent or not.** Every error says whether the request's bytes may have
//! reached the server (`Error::delivery`): failures before its first byte
//! was written (pool wait, connect, reading settings, a write that wrote
//! nothing) are "not sent", so callers and the rehash policy may retry
//! them anywhere; failures after are "outcome unknown".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Server;
use crate::config::Protocol;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::protocol::{self, Op, Reply};

/// Counts a call in flight until dropped (also when its future is).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The meta command an op is sent as, for [`Error::MetaUnsupported`];
/// `None` for ops that use a classic command in both dialects.
pub(super) fn meta_command(op: &Op<'_>) -> Option<&'static str> {
    match op {
        Op::Get(_) | Op::Version(_) | Op::Touch(..) | Op::GetAndTouch(..) | Op::GetMany(_) => {
            Some("mg")
        }
        Op::Store { .. } => Some("ms"),
        Op::Delete(_) | Op::DeleteIf(..) => Some("md"),
        Op::Scan { .. } | Op::Stats => None,
    }
}

impl Server {
    /// Runs `op` on this server: health check, pooled connection, deadline,
    /// and health/counter bookkeeping.
    pub(crate) async fn call(&self, op: &Op<'_>) -> Result<Reply> {
        // Known limits are input checks: no I/O, no health change.
        let settings = self.settings();
        if let Some(settings) = settings {
            self.check(settings, op)?;
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (result, admission) = match self.admit() {
            Ok(admission) => {
                let budget = self.connect_timeout.saturating_add(self.io_timeout);
                let deadline = Instant::now() + budget;
                let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
                let _in_flight = InFlight(&self.in_flight);
                let result = match self.multiplexed_slots(op, alone, settings.is_some()) {
                    Some(slots) => self.exchange_multiplexed(slots, op, deadline).await,
                    None => self.exchange(op, deadline).await,
                };
                (self.refine(op, result), Some(admission))
            }
            Err(e) => (Err(e), None),
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
                        | Error::NoAnswer { .. }
                        | Error::Tls {
                            cause: crate::error::TlsFailure::HandshakeTimeout,
                            ..
                        }
                ) {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                if e.marks_down() {
                    if let Some(admission) = admission {
                        self.on_failure(admission, e);
                    }
                } else if !matches!(e, Error::MarkedDown { .. } | Error::PoolTimeout { .. }) {
                    // It answered (with an error line, or classic commands
                    // where it refused meta ones): it is alive.
                    self.on_success();
                }
            }
        }
        result
    }

    /// Completes what a failed call learned, in either mode: a refusal as
    /// too large gets the server's real limit, and a server found to run
    /// without CAS is remembered so later calls fail before any I/O.
    fn refine(&self, op: &Op<'_>, result: Result<Reply>) -> Result<Reply> {
        match result {
            Err(Error::ServerTooLarge { server, size, .. }) => {
                let limit = match (self.settings().and_then(|s| s.item_size_max), op) {
                    (Some(max), Op::Store { key, flags, .. }) => {
                        Some(super::value_limit(max, key, *flags))
                    }
                    _ => None,
                };
                Err(Error::ServerTooLarge {
                    server,
                    size,
                    limit,
                })
            }
            Err(e @ Error::CasDisabled { .. }) => {
                let mut settings = self.settings().unwrap_or_default();
                settings.cas_enabled = Some(false);
                self.set_settings(settings);
                Err(e)
            }
            other => other,
        }
    }

    /// The instant a step limited to `step` must end by, within the call's
    /// `deadline`, and the time that gives it (for the error).
    pub(super) fn bounded(deadline: Instant, step: Duration) -> (Instant, Duration) {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let given = step.min(left);
        (now + given, given)
    }

    /// Asks a fresh connection for the server's settings. `Ok(false)`: the
    /// endpoint closed the connection instead of answering (twemproxy does
    /// so for commands it does not route, memcached -Z for any plaintext);
    /// the connection is spent and the caller tells which.
    async fn learn(&self, conn: &mut Connection) -> Result<bool> {
        match protocol::read_settings(conn).await {
            Ok(learned) => {
                self.set_settings(learned);
                Ok(true)
            }
            Err(error @ Error::Io { .. }) => {
                tracing::info!(
                    server = %self.addr,
                    %error,
                    "memcached endpoint does not answer `stats settings`; its item size limit \
                     is unknown"
                );
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// True when a new connection's `version` gets a `VERSION` answer
    /// within the connect timeout: the endpoint is alive and speaks the
    /// classic protocol.
    pub(super) async fn speaks_classic(&self, deadline: Instant) -> bool {
        let (until, after) = Server::bounded(deadline, self.connect_timeout);
        let Ok(mut conn) =
            Connection::connect_until(&self.connector, &self.addr, until, after).await
        else {
            return false;
        };
        let answer = tokio::time::timeout_at(until, async {
            conn.send("version", b"version\r\n").await?;
            conn.read_line("version").await
        })
        .await;
        matches!(answer, Ok(Ok(line)) if line.starts_with(b"VERSION "))
    }

    pub(super) async fn exchange(&self, op: &Op<'_>, deadline: Instant) -> Result<Reply> {
        // Held until this function returns or its future is dropped.
        let (_, wait) = Server::bounded(deadline, self.io_timeout);
        let _permit = self.pool.permit(wait).await?;
        let mut pooled = self.take_idle();
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => {
                    let (until, after) = Server::bounded(deadline, self.connect_timeout);
                    Connection::connect_until(&self.connector, &self.addr, until, after).await?
                }
            };
            if !reused && self.settings().is_none() {
                // Part of opening the connection, so within the connect
                // timeout: a plaintext client on a TLS port (memcached -Z)
                // gets silence here, reported as such rather than as a
                // slow request. Nothing of the op is sent yet.
                let (until, after) = Server::bounded(deadline, self.connect_timeout);
                match tokio::time::timeout_at(until, self.learn(&mut conn)).await {
                    Ok(Ok(true)) => {
                        if let Some(settings) = self.settings() {
                            self.check(settings, op)?;
                        }
                    }
                    // Closed on `stats settings`: a proxy that answers
                    // classic commands (twemproxy) goes on with unknown
                    // settings; anything else, such as a TLS port (memcached
                    // -Z closes on a plaintext request), is named.
                    Ok(Ok(false)) => {
                        drop(conn);
                        if self.speaks_classic(deadline).await {
                            self.set_settings(super::Settings::default());
                            continue;
                        }
                        return Err(Error::NoAnswer {
                            server: self.addr.clone(),
                            step: "`stats settings`",
                            detail: "the server closed the connection".into(),
                            silent_for: None,
                        });
                    }
                    Ok(Err(e)) => return Err(crate::connector::tls_refusal(e).unsent()),
                    Err(_) if conn.nothing_read() => {
                        return Err(Error::NoAnswer {
                            server: self.addr.clone(),
                            step: "`stats settings`",
                            detail: format!("nothing within the connect timeout of {after:?}"),
                            silent_for: Some(after),
                        });
                    }
                    Err(_) => {
                        return Err(Error::Timeout {
                            operation: op.name(),
                            server: self.addr.clone(),
                            after,
                            sent: false,
                        });
                    }
                }
            }
            // Set just before the op's own bytes go out.
            let mut started = false;
            let (until, after) = Server::bounded(deadline, self.io_timeout);
            let outcome = tokio::time::timeout_at(until, async {
                conn.set_max_block(self.max_block());
                started = true;
                protocol::execute(self.protocol, &mut conn, op).await
            })
            .await;
            let outcome = match outcome {
                Ok(Err(e)) if !started => Ok(Err(e.unsent())),
                other => other,
            };
            match outcome {
                Ok(Ok(reply)) => {
                    self.release(conn);
                    return Ok(reply);
                }
                // A stale pooled connection (server restarted, idle timeout)
                // fails before any answer byte. The op is resent on a fresh
                // connection only when that cannot apply it twice: none of it
                // was written, or it is idempotent (`Op::is_idempotent`:
                // get, version, touch, delete, set). An `add` or `cas` the
                // server may have applied before the connection broke
                // reports the error instead of answering `Exists`/`Conflict`
                // against our own write. Closed idle connections are mostly
                // weeded out before sending (`take_idle`).
                Ok(Err(Error::Io { .. }))
                    if reused
                        && conn.nothing_read()
                        && (conn.nothing_written() || op.is_idempotent()) =>
                {
                    continue;
                }
                // A fresh connection closed on a meta command without a
                // byte of answer: either the server died just now, or the
                // endpoint does not speak meta (twemproxy closes on `mg`).
                // A classic `version` on another connection tells which.
                Ok(Err(e @ Error::Io { sent: true, .. }))
                    if !reused && self.protocol == Protocol::Meta && conn.nothing_read() =>
                {
                    drop(conn);
                    if let Some(command) = meta_command(op)
                        && self.speaks_classic(deadline).await
                    {
                        return Err(Error::MetaUnsupported {
                            server: self.addr.clone(),
                            command,
                        });
                    }
                    return Err(e);
                }
                // Any other error drops `conn`: after an error line or a
                // broken stream we cannot be sure what is left to read.
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(Error::Timeout {
                        operation: op.name(),
                        server: self.addr.clone(),
                        after,
                        sent: started && !conn.nothing_written(),
                    });
                }
            }
        }
    }
}

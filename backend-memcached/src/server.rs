//! One server: its pool, its health (up, or down with exponential backoff),
//! its counters, and the request path that ties them together.
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
//!
//! The first connection to a server also asks for its `stats settings`
//! ([`Settings`]): its `item_size_max`, so that a write it would refuse is
//! refused here before any I/O (memcached drops the key's old item when it
//! refuses a value as too large), and whether CAS is enabled.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{ITEM_FLAGS_OVERHEAD, ITEM_OVERHEAD, MAX_DURATION, MemcachedConfig, Protocol};
use crate::connection::{Connection, IdleState};
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::protocol::{self, Op, Reply, Settings};

/// Slack over the largest value a server can hold before a data block's
/// announced length is taken for a corrupt stream (see [`Server::max_block`]).
const BLOCK_SLACK: usize = 4 * 1024;

/// memcached's default `item_size_max` (`-I 1m`), assumed for an endpoint
/// that does not answer `stats settings`.
const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

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
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    marked_down: AtomicU64,
    marked_up: AtomicU64,
    unsolicited_data: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    retry_at: Instant,
    backoff: Duration,
}

/// Up or down, and which probe is the current one.
#[derive(Debug, Default)]
struct Health {
    down: Option<Down>,
    /// Numbers the probes, so that only the latest one's failure doubles
    /// the backoff (a slow probe overtaken by the next is just counted).
    last_probe: u64,
}

/// How [`Server::admit`] let a call through; decides what its failure may
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// The server was up.
    Up,
    /// The server was down and this call is probe number `n`.
    Probe(u64),
}

/// `now + d`, saturating instead of panicking on overflow.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_DURATION))
        .unwrap_or(now)
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
    max_value_size: usize,
    pool: Pool,
    // A std mutex: held for a few instructions, never across an await.
    health: Mutex<Health>,
    /// What the server's `stats settings` said; `None` until its first
    /// connection asked (and again after it was marked down: it may come
    /// back restarted with other settings).
    settings: Mutex<Option<Settings>>,
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
            max_value_size: config.max_value_size,
            health: Mutex::new(Health::default()),
            settings: Mutex::new(None),
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
        match self.health.lock() {
            Ok(h) => h.down.is_none_or(|d| Instant::now() >= d.retry_at),
            Err(_) => true,
        }
    }

    /// Lets a call through or fails fast while the server is down.
    fn admit(&self) -> Result<Admission> {
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

    fn on_success(&self) {
        let Ok(mut guard) = self.health.lock() else {
            return;
        };
        if guard.down.take().is_some() {
            self.counters.marked_up.fetch_add(1, Ordering::Relaxed);
            tracing::info!(server = %self.addr, "memcached server is back up");
        }
    }

    fn on_failure(&self, admission: Admission, error: &Error) {
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
        while let Some(conn) = self.pool.take_idle() {
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

    /// Runs `op` on this server: health check, pooled connection, deadline,
    /// and health/counter bookkeeping.
    pub(crate) async fn call(&self, op: &Op<'_>) -> Result<Reply> {
        // Known limits are input checks: no I/O, no health change.
        if let Some(settings) = self.settings() {
            self.check(settings, op)?;
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (result, admission) = match self.admit() {
            Ok(admission) => (self.exchange(op).await, Some(admission)),
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
                ) {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                if e.marks_down() {
                    if let Some(admission) = admission {
                        self.on_failure(admission, e);
                    }
                } else if !matches!(e, Error::MarkedDown { .. } | Error::PoolTimeout { .. }) {
                    // It answered (with an error line): it is alive.
                    self.on_success();
                }
            }
        }
        result
    }

    /// Asks a fresh connection for the server's settings if they are not
    /// known yet. `Ok(false)`: the endpoint closed the connection instead of
    /// answering (twemproxy does so for commands it does not route); the
    /// settings are then recorded as unknown and the connection is spent.
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
                self.set_settings(Settings::default());
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn exchange(&self, op: &Op<'_>) -> Result<Reply> {
        // Held until this function returns or its future is dropped.
        let _permit = self.pool.permit(self.io_timeout).await?;
        let mut pooled = self.take_idle();
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => Connection::connect(&self.addr, self.connect_timeout).await?,
            };
            let learn = !reused && self.settings().is_none();
            let outcome = tokio::time::timeout(self.io_timeout, async {
                if learn {
                    if !self.learn(&mut conn).await? {
                        return Ok(None);
                    }
                    if let Some(settings) = self.settings() {
                        // Still before any byte of the request is sent.
                        self.check(settings, op)?;
                    }
                }
                conn.set_max_block(self.max_block());
                protocol::execute(self.protocol, &mut conn, op)
                    .await
                    .map(Some)
            })
            .await;
            match outcome {
                Ok(Ok(Some(reply))) => {
                    self.release(conn);
                    return Ok(reply);
                }
                // The settings request cost the connection; the op was not
                // sent, so it goes on a new one (settings are known now).
                Ok(Ok(None)) => continue,
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
                // Any other error drops `conn`: after an error line or a
                // broken stream we cannot be sure what is left to read.
                // A refusal as too large gets the server's real limit.
                Ok(Err(Error::ServerTooLarge { server, size, .. })) => {
                    let limit = match (self.settings().and_then(|s| s.item_size_max), op) {
                        (Some(max), Op::Store { key, flags, .. }) => {
                            Some(value_limit(max, key, *flags))
                        }
                        _ => None,
                    };
                    return Err(Error::ServerTooLarge {
                        server,
                        size,
                        limit,
                    });
                }
                Ok(Err(e)) => {
                    if matches!(e, Error::CasDisabled { .. }) {
                        // Remembered, so later calls fail before any I/O.
                        let mut settings = self.settings().unwrap_or_default();
                        settings.cas_enabled = Some(false);
                        self.set_settings(settings);
                    }
                    return Err(e);
                }
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
        }
    }
}

/// The largest value a server with `item_size_max` stores under `key` with
/// `flags`: memcached counts the whole item (see
/// [`ITEM_OVERHEAD`](crate::config::ITEM_OVERHEAD)) against its limit.
fn value_limit(item_size_max: usize, key: &str, flags: u32) -> usize {
    let flags_overhead = if flags == 0 { 0 } else { ITEM_FLAGS_OVERHEAD };
    item_size_max.saturating_sub(ITEM_OVERHEAD + key.len() + flags_overhead)
}

#[cfg(test)]
mod tests {
    //! Health bookkeeping, and the request path against fake servers
    //! written here with tokio: protocol misbehaviour a real memcached never
    //! shows (stray bytes, lying lengths, a connection closed after a write)
    //! has to be scripted. Real-server behaviour is tested in `tests/`.

    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use session_core::Version;

    use crate::protocol::StoreReply;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::protocol::StoreMode;

    /// What the fake server does with one request line.
    enum Act {
        /// Writes these bytes (in one write).
        Reply(Vec<u8>),
        /// Writes the first bytes, waits, then writes the second.
        ReplyLater(Vec<u8>, Duration, Vec<u8>),
        /// Closes the connection without answering.
        Close,
        /// Writes these bytes, then closes the connection.
        ReplyClose(Vec<u8>),
        /// Answers nothing (a stalled server).
        Ignore,
    }

    fn reply(s: &str) -> Act {
        Act::Reply(s.as_bytes().to_vec())
    }

    type Log = Arc<Mutex<Vec<(usize, String)>>>;

    /// A fake server on a free port: `script(connection number, request
    /// line)` decides each answer. Storage commands' data blocks are read
    /// and not passed on. Returns the address and the log of
    /// `(connection number, request line)`.
    async fn fake(script: impl Fn(usize, &str) -> Act + Send + Sync + 'static) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Log = Arc::default();
        let script = Arc::new(script);
        let log2 = Arc::clone(&log);
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (script, log) = (Arc::clone(&script), Arc::clone(&log2));
                tokio::spawn(async move {
                    let mut socket = BufReader::new(socket);
                    loop {
                        let mut line = String::new();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_owned();
                        let fields: Vec<&str> = line.split(' ').collect();
                        let data_len = match fields[0] {
                            "ms" => fields.get(2),
                            "set" | "add" | "cas" => fields.get(4),
                            _ => None,
                        };
                        if let Some(len) = data_len.and_then(|l| l.parse::<usize>().ok()) {
                            let mut data = vec![0; len + 2];
                            if socket.read_exact(&mut data).await.is_err() {
                                return;
                            }
                        }
                        log.lock().unwrap().push((n, line.clone()));
                        match script(n, &line) {
                            Act::Reply(b) => {
                                let _ = socket.get_mut().write_all(&b).await;
                            }
                            Act::ReplyLater(a, wait, b) => {
                                let _ = socket.get_mut().write_all(&a).await;
                                tokio::time::sleep(wait).await;
                                let _ = socket.get_mut().write_all(&b).await;
                            }
                            Act::Close => return,
                            Act::ReplyClose(b) => {
                                let _ = socket.get_mut().write_all(&b).await;
                                return;
                            }
                            Act::Ignore => {}
                        }
                    }
                });
            }
        });
        (addr, log)
    }

    /// `stats settings` as a default memcached 1.6 answers it (abridged).
    const SETTINGS: &str =
        "STAT maxbytes 67108864\r\nSTAT item_size_max 1048576\r\nSTAT cas_enabled yes\r\nEND\r\n";

    fn config(pool_size: usize) -> MemcachedConfig {
        MemcachedConfig {
            pool_size,
            io_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            ..MemcachedConfig::default()
        }
    }

    fn requests(log: &Log, prefix: &str) -> Vec<(usize, String)> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn backoff(server: &Server) -> Option<Duration> {
        match server.stats().state {
            ServerState::Down { backoff, .. } => Some(backoff),
            ServerState::Up => None,
        }
    }

    fn make_due(server: &Server) {
        let mut h = server.health.lock().unwrap();
        if let Some(d) = h.down.as_mut() {
            d.retry_at = Instant::now();
        }
    }

    fn timeout_error() -> Error {
        Error::Timeout {
            operation: "get",
            server: "s".into(),
            after: Duration::from_millis(1),
        }
    }

    fn store(mode: StoreMode, key: &'static str, value: &'static [u8], flags: u32) -> Op<'static> {
        Op::Store {
            mode,
            key,
            value,
            flags,
            exptime: 0,
        }
    }

    #[test]
    fn only_the_probe_doubles_the_backoff() {
        // Regression: 16 calls in flight when the server stalled, failing
        // together, doubled the backoff 15 times (100 ms -> 30 s).
        let server = Server::new("s:1".into(), &config(16));
        let admitted: Vec<Admission> = (0..16).map(|_| server.admit().unwrap()).collect();
        for a in admitted {
            assert_eq!(a, Admission::Up);
            server.on_failure(a, &timeout_error());
        }
        assert_eq!(backoff(&server), Some(Duration::from_millis(100)));
        assert_eq!(server.stats().marked_down, 1);

        // A failed probe doubles it, once.
        make_due(&server);
        let probe = server.admit().unwrap();
        assert_eq!(probe, Admission::Probe(1));
        assert!(matches!(server.admit(), Err(Error::MarkedDown { .. })));
        server.on_failure(probe, &timeout_error());
        assert_eq!(backoff(&server), Some(Duration::from_millis(200)));

        // A slow probe overtaken by the next one: only the latest counts.
        make_due(&server);
        let old = server.admit().unwrap();
        make_due(&server);
        let new = server.admit().unwrap();
        server.on_failure(old, &timeout_error());
        assert_eq!(backoff(&server), Some(Duration::from_millis(200)));
        server.on_failure(new, &timeout_error());
        assert_eq!(backoff(&server), Some(Duration::from_millis(400)));

        server.on_success();
        assert_eq!(server.stats().state, ServerState::Up);
    }

    #[test]
    fn backoff_arithmetic_saturates() {
        // Regression: `backoff * 2` and `Instant + backoff` panicked for
        // durations near `Duration::MAX` (validate() now caps them too).
        let mut c = config(1);
        c.backoff_initial = Duration::MAX / 2 + Duration::from_secs(1);
        c.backoff_max = Duration::MAX;
        let server = Server::new("s:1".into(), &c);
        server.on_failure(Admission::Up, &timeout_error());
        make_due(&server);
        let probe = server.admit().unwrap();
        server.on_failure(probe, &timeout_error());
        assert_eq!(backoff(&server), Some(Duration::MAX));
    }

    #[tokio::test]
    async fn concurrent_timeouts_mark_down_once_and_recovery_is_quick() {
        let stalled = Arc::new(AtomicBool::new(true));
        let s2 = Arc::clone(&stalled);
        let (addr, _log) = fake(move |_, line| match line {
            _ if s2.load(Ordering::SeqCst) => Act::Ignore,
            "stats settings" => reply(SETTINGS),
            _ => reply("EN\r\n"),
        })
        .await;
        let server = Arc::new(Server::new(addr, &config(16)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let server = Arc::clone(&server);
            tasks.spawn(async move { server.call(&Op::Version("k")).await });
        }
        while let Some(r) = tasks.join_next().await {
            assert!(matches!(r.unwrap(), Err(Error::Timeout { .. })));
        }
        assert_eq!(backoff(&server), Some(Duration::from_millis(100)));
        assert_eq!(server.stats().timeouts, 16);

        stalled.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(matches!(
            server.call(&Op::Version("k")).await,
            Ok(Reply::Version(None))
        ));
        assert_eq!(server.stats().state, ServerState::Up);
    }

    #[tokio::test]
    async fn unsolicited_bytes_are_never_read_as_the_next_answer() {
        // Regression: `HD c999` sent after the answer to `mg a` stayed in
        // the pooled connection's buffer and became the answer to `mg b`.
        let (addr, _log) = fake(|_, line| match line {
            "stats settings" => reply(SETTINGS),
            "mg a v f c t" => reply("VA 1 f0 c5 t-1\r\nx\r\nHD c999\r\n"),
            _ => reply("EN\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        assert!(matches!(
            server.call(&Op::Get("a")).await,
            Ok(Reply::Entry(Some(e))) if e.version == Version::new(5)
        ));
        assert!(matches!(
            server.call(&Op::Version("b")).await,
            Ok(Reply::Version(None))
        ));
        assert_eq!(server.stats().unsolicited_data, 1);
        assert_eq!(server.stats().state, ServerState::Up);
    }

    #[tokio::test]
    async fn late_unsolicited_bytes_are_found_before_reuse() {
        // The same, with the stray bytes arriving after the answer was
        // parsed and the connection pooled.
        let (addr, _log) = fake(|_, line| match line {
            "stats settings" => reply(SETTINGS),
            "mg a v f c t" => Act::ReplyLater(
                b"VA 1 f0 c5 t-1\r\nx\r\n".to_vec(),
                Duration::from_millis(20),
                b"HD c999\r\n".to_vec(),
            ),
            _ => reply("EN\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        assert!(matches!(
            server.call(&Op::Get("a")).await,
            Ok(Reply::Entry(Some(_)))
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            server.call(&Op::Version("b")).await,
            Ok(Reply::Version(None))
        ));
        assert_eq!(server.stats().unsolicited_data, 1);
    }

    #[tokio::test]
    async fn a_lying_block_length_is_refused_without_waiting_for_it() {
        // Regression: any length up to 1 GiB was accepted and allocated up
        // front, then awaited until the I/O timeout.
        let (addr, _log) = fake(|_, line| match line {
            "stats settings" => reply(SETTINGS),
            _ => reply("VA 1073741824 f0 c1 t-1\r\nxx"),
        })
        .await;
        let mut c = config(1);
        c.io_timeout = Duration::from_secs(5);
        let server = Server::new(addr, &c);
        let started = Instant::now();
        let err = server.call(&Op::Get("k")).await.unwrap_err();
        assert!(
            matches!(&err, Error::Protocol { message, .. } if message.contains("1073741824")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(server.stats().idle_connections, 0, "connection dropped");
        assert!(server.max_block() < 2 * 1024 * 1024);
    }

    #[tokio::test]
    async fn values_over_the_servers_item_size_are_refused_before_io() {
        let (addr, log) = fake(|_, line| match line {
            "stats settings" => reply("STAT item_size_max 1024\r\nSTAT cas_enabled yes\r\nEND\r\n"),
            _ => reply("HD c7\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        static BIG: [u8; 1024] = [b'x'; 1024];
        // The first call learns the limit on its fresh connection and is
        // refused before its own bytes are sent.
        let err = server
            .call(&store(StoreMode::Cas(3), "key", &BIG, 0))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Input(session_core::Error::ValueTooLarge { size: 1024, limit })
                    if limit == 1024 - ITEM_OVERHEAD - 3
            ),
            "{err:?}"
        );
        // Later ones without any I/O; non-zero flags cost 4 bytes more.
        let limit = 1024 - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 3;
        let err = server
            .call(&store(StoreMode::Add, "key", &BIG[..limit + 1], 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Input(session_core::Error::ValueTooLarge { limit: l, .. }) if l == limit),
            "{err:?}"
        );
        assert!(requests(&log, "ms").is_empty());
        assert_eq!(requests(&log, "stats").len(), 1, "learned once");
        assert_eq!(server.stats().requests, 1);
        assert!(matches!(
            server
                .call(&store(StoreMode::Set, "key", &BIG[..limit], 1))
                .await,
            Ok(Reply::Stored(StoreReply::Stored(Some(_))))
        ));
        assert_eq!(requests(&log, "ms").len(), 1);
    }

    #[tokio::test]
    async fn a_servers_too_large_answer_reports_its_real_limit() {
        let (addr, _log) = fake(|_, line| match line {
            "stats settings" => reply(SETTINGS),
            _ => reply("SERVER_ERROR object too large for cache\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        let err = server
            .call(&store(StoreMode::Set, "key", b"v", 9))
            .await
            .unwrap_err();
        let core = session_core::Error::from(err);
        assert!(
            matches!(core, session_core::Error::ValueTooLarge { size: 1, limit }
                if limit == 1024 * 1024 - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 3),
            "{core:?}"
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_closes_on_stats_settings_still_works() {
        // twemproxy closes the connection on a command it does not route.
        let (addr, log) = fake(|_, line| match line {
            "stats settings" => Act::Close,
            _ => reply("EN\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(2));
        assert!(matches!(
            server.call(&Op::Version("k")).await,
            Ok(Reply::Version(None))
        ));
        assert_eq!(server.settings(), Some(Settings::default()));
        assert_eq!(requests(&log, "stats").len(), 1, "asked once");
        assert_eq!(server.stats().state, ServerState::Up);
    }

    #[tokio::test]
    async fn a_server_without_cas_is_a_typed_error() {
        // Learned from `stats settings`: refused before the write is sent.
        let (addr, log) = fake(|_, line| match line {
            "stats settings" => {
                reply("STAT item_size_max 1048576\r\nSTAT cas_enabled no\r\nEND\r\n")
            }
            _ => reply("HD c0\r\n"),
        })
        .await;
        let server = Server::new(addr.clone(), &config(1));
        for _ in 0..2 {
            let err = server
                .call(&store(StoreMode::Add, "k", b"v", 1))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::CasDisabled { .. }), "{err:?}");
        }
        assert!(requests(&log, "ms").is_empty());
        assert_eq!(server.stats().state, ServerState::Up);
        let message = session_core::Error::from(Error::CasDisabled { server: addr }).to_string();
        assert!(message.contains("runs with -C (CAS disabled); memorycached needs CAS"));

        // Seen in a reply (an endpoint that did not say): the same error,
        // and later calls fail before any I/O.
        let (addr, log) = fake(|_, line| match line {
            "stats settings" => reply("ERROR\r\n"),
            _ => reply("VA 1 f0 c0 t-1\r\nx\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        for _ in 0..2 {
            let err = server.call(&Op::Get("k")).await.unwrap_err();
            assert!(matches!(err, Error::CasDisabled { .. }), "{err:?}");
        }
        assert_eq!(requests(&log, "mg").len(), 1);
    }

    /// A fake whose first connection answers one `mg` and then closes on
    /// the next request after reading it whole (a server that applied it
    /// and died before answering); later connections answer everything.
    async fn breaks_after_second_request() -> (String, Log) {
        fake(|n, line| match line {
            "stats settings" => reply(SETTINGS),
            _ if n == 0 && !line.starts_with("mg") => Act::Close,
            l if l.starts_with("ms") => reply("HD c42\r\n"),
            _ => reply("EN\r\n"),
        })
        .await
    }

    #[tokio::test]
    async fn a_write_that_may_have_been_applied_is_not_resent() {
        // Regression: an `add`/`cas` that broke a reused connection after
        // being written was resent, and answered `Exists`/`Conflict`
        // against its own first copy.
        for mode in [StoreMode::Add, StoreMode::Cas(5)] {
            let (addr, log) = breaks_after_second_request().await;
            let server = Server::new(addr, &config(1));
            server.call(&Op::Version("k")).await.unwrap();
            let err = server.call(&store(mode, "k", b"v", 1)).await.unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err:?}");
            assert_eq!(requests(&log, "ms").len(), 1, "{mode:?} sent once");
        }
        // Idempotent ops are still retried once on a fresh connection.
        let (addr, log) = breaks_after_second_request().await;
        let server = Server::new(addr, &config(1));
        server.call(&Op::Version("k")).await.unwrap();
        assert!(matches!(
            server.call(&store(StoreMode::Set, "k", b"v", 1)).await,
            Ok(Reply::Stored(StoreReply::Stored(Some(_))))
        ));
        assert_eq!(
            requests(&log, "ms")
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_used() {
        // Found closed before the write, so even an `add` goes through.
        let (addr, log) = fake(|n, line| match line {
            "stats settings" => reply(SETTINGS),
            _ if n == 0 => Act::ReplyClose(b"EN\r\n".to_vec()),
            _ => reply("HD c42\r\n"),
        })
        .await;
        let server = Server::new(addr, &config(1));
        server.call(&Op::Version("k")).await.unwrap();
        assert_eq!(server.stats().idle_connections, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            server.call(&store(StoreMode::Add, "k", b"v", 1)).await,
            Ok(Reply::Stored(StoreReply::Stored(Some(_))))
        ));
        assert_eq!(
            requests(&log, "ms")
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>(),
            [1]
        );
    }
}

//! [`MemcachedStore`]: the [`Store`] implementation, routing each key to a
//! server and applying the failure policy.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use session_core::key::validate_key;
use session_core::store::check_write;
use session_core::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, ScanCursor, ScanPage, Store, Ttl,
    Version,
};

use crate::config::{FailurePolicy, MemcachedConfig, Protocol};
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::protocol::{self, Op, Reply, StoreMode, StoreReply};
use crate::router::Router;
use crate::server::{Server, ServerStats};

/// How long a delete marker lives (see `MemcachedConfig::delete_markers`):
/// long enough for a replicator to read it, short enough to leave no trace.
const DELETE_MARKER_TTL_SECS: i64 = 30;

/// A [`Store`] on one or more memcached servers.
///
/// Cheap to clone (one `Arc`); clones share pools, health and counters.
///
/// Multi-key reads ([`Store::get_many`]) send one pipelined request per
/// server, all servers at once; under [`FailurePolicy::Fail`] one failing
/// server fails the whole call.
///
/// One server-side behaviour to know: when memcached refuses a value as too
/// large, it also drops the key's old value (meta `ms` in every mode,
/// classic `set`), so a failed save would delete the session. Each server's
/// `item_size_max` is therefore read (`stats settings`) when its first
/// connection opens, and a write it would refuse is refused before any I/O
/// with [`session_core::Error::ValueTooLarge`]. Only an endpoint that does
/// not answer `stats settings` (a proxy) leaves the server to refuse it.
/// A server started with `-C` (CAS disabled) is refused with
/// [`session_core::Error::InvalidConfig`]: sessions need versions.
///
/// Optional capabilities ([`Store::capabilities`]): `get_many` and `scan`
/// (see [`crate::scan`] for its cursor and cost) in both protocol modes;
/// `get_and_touch` in both (meta `mg <k> T<ttl> v f c t`, classic
/// `gats <ttl> <k>`, which reports the CAS too); `ttl_read` and
/// `delete_if` (meta `md <k> C<cas>`) in meta mode only: classic memcached
/// has no conditional delete, so there `delete_if` returns
/// [`session_core::Error::Unsupported`] before any I/O.
///
/// Connections are opened lazily, on first use: making a store does no I/O,
/// so a server that is down at start-up is handled like one that goes down
/// later.
///
/// ```no_run
/// # async fn demo() -> Result<(), session_core::Error> {
/// use backend_memcached::MemcachedStore;
/// use session_core::{Store, Ttl};
///
/// let store = MemcachedStore::from_url("memcached://127.0.0.1:11211?timeout_ms=500")?;
/// store.set("greeting", b"hello", 0, Ttl::seconds(60)).await?;
/// assert_eq!(store.get("greeting").await?.unwrap().value, b"hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcachedStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: MemcachedConfig,
    router: Router,
    servers: Vec<Server>,
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field(
                "servers",
                &self
                    .inner
                    .servers
                    .iter()
                    .map(Server::addr)
                    .collect::<Vec<_>>(),
            )
            .field("protocol", &self.inner.config.protocol)
            .field("routing", &self.inner.config.routing)
            .field("failure", &self.inner.config.failure)
            .finish_non_exhaustive()
    }
}

impl MemcachedStore {
    /// Validates `config` and makes a store (no network I/O; see the type
    /// docs). With TLS, the certificate files are read here: a missing or
    /// unusable one is an [`Error::InvalidConfig`] now, not a failure of
    /// the first request.
    pub fn connect(config: MemcachedConfig) -> Result<Self> {
        config.validate()?;
        let connector = Connector::new(&config)?;
        let router = Router::new(&config.servers, config.routing);
        let servers = config
            .servers
            .iter()
            .map(|s| Server::with_connector(s.addr(), &config, connector.clone()))
            .collect();
        Ok(MemcachedStore {
            inner: Arc::new(Inner {
                config,
                router,
                servers,
            }),
        })
    }

    /// Parses a `memcached://` URL (see [`crate::config`]) and makes a store.
    pub fn from_url(url: &str) -> Result<Self> {
        MemcachedStore::connect(MemcachedConfig::from_url(url)?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &MemcachedConfig {
        &self.inner.config
    }

    /// The address of `key`'s home server (where it goes while every server
    /// is up), from the configured routing.
    pub fn server_for(&self, key: &str) -> &str {
        self.inner.servers[self.inner.router.server_for(key)].addr()
    }

    /// One counter snapshot per server, in configuration order.
    pub fn stats(&self) -> Vec<ServerStats> {
        self.inner.servers.iter().map(Server::stats).collect()
    }

    /// Runs a single-key op on the key's server, applying the failure policy.
    async fn call(&self, key: &str, op: &Op<'_>) -> Result<Reply> {
        let inner = &*self.inner;
        match inner.config.failure {
            FailurePolicy::Fail => inner.servers[inner.router.server_for(key)].call(op).await,
            FailurePolicy::Rehash => {
                let mut tried = vec![false; inner.servers.len()];
                let mut tries = 0;
                for idx in inner.router.candidates(key) {
                    tries += 1;
                    // Perl may name a dead server again; it would be skipped
                    // again, so asking it once per call gives the same result.
                    if std::mem::replace(&mut tried[idx], true) {
                        continue;
                    }
                    match inner.servers[idx].call(op).await {
                        // Never sent: another server cannot apply it twice.
                        Err(e) if e.is_connect_failure() => continue,
                        // A read may have been sent, but asking the next
                        // server as well changes nothing (Perl moves on too).
                        Err(e) if op.is_read_only() && e.is_transport_failure() => continue,
                        other => return other,
                    }
                }
                Err(Error::NoLiveServer {
                    key: key.chars().take(80).collect(),
                    tries,
                })
            }
        }
    }

    /// With [`MemcachedConfig::delete_markers`]: the marker of a delete of
    /// `key`, on `key`'s server (routed by `key`, not by the marker's own
    /// name, so that server's feed reports it). The delete is done either
    /// way: a marker that cannot be written only leaves the replicator its
    /// slower path, and is logged at debug level.
    async fn leave_delete_marker(&self, key: &str) {
        if !self.inner.config.delete_markers {
            return;
        }
        let Some(marker) = crate::delete_marker::delete_marker(key) else {
            return;
        };
        let op = Op::Store {
            mode: StoreMode::Set,
            key: &marker,
            value: b"",
            flags: 0,
            exptime: DELETE_MARKER_TTL_SECS,
        };
        if let Err(e) = self.call(key, &op).await {
            tracing::debug!(key, error = %e, "delete marker not written");
        }
    }

    /// The server a multi-get sends `key` to now: its home under `Fail`,
    /// the first available candidate under `Rehash`.
    fn pick_for_many(&self, key: &str) -> Result<usize> {
        let inner = &*self.inner;
        match inner.config.failure {
            FailurePolicy::Fail => Ok(inner.router.server_for(key)),
            FailurePolicy::Rehash => inner
                .router
                .candidates(key)
                .find(|&i| inner.servers[i].is_available())
                .ok_or_else(|| Error::NoLiveServer {
                    key: key.chars().take(80).collect(),
                    tries: crate::router::PERL_REHASH_TRIES,
                }),
        }
    }

    async fn get_many_inner(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        let mut results: Vec<Option<Entry>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        // Each round sends every pending key to its server, one pipelined
        // request per server, all servers at once. Under `Rehash`, keys of
        // a server that refused the connect (now marked down) go round
        // again to their next candidate; a server can fail only once per
        // round, so the number of rounds is bounded by the server count.
        for _round in 0..=self.inner.servers.len() {
            if pending.is_empty() {
                break;
            }
            let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.inner.servers.len()];
            for &i in &pending {
                groups[self.pick_for_many(keys[i])?].push(i);
            }
            pending.clear();
            let mut tasks = tokio::task::JoinSet::new();
            for (server, idxs) in groups.into_iter().enumerate() {
                if idxs.is_empty() {
                    continue;
                }
                let inner = Arc::clone(&self.inner);
                let owned: Vec<String> = idxs.iter().map(|&i| keys[i].to_owned()).collect();
                // Dropping the JoinSet (caller cancelled) aborts these tasks,
                // and an aborted task drops its connection, never pools it.
                tasks.spawn(async move {
                    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
                    let result = inner.servers[server].call(&Op::GetMany(&refs)).await;
                    (idxs, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let (idxs, result) = joined.map_err(|e| Error::Protocol {
                    server: "(local task)".into(),
                    message: format!("multi-get task failed: {e}"),
                })?;
                match result {
                    Ok(Reply::Entries(entries)) if entries.len() == idxs.len() => {
                        for (i, e) in idxs.into_iter().zip(entries) {
                            results[i] = e;
                        }
                    }
                    Ok(_) => return Err(mismatch()),
                    // A multi-get only reads, so any transport failure
                    // may move on to the next candidate.
                    Err(e)
                        if self.inner.config.failure == FailurePolicy::Rehash
                            && e.is_transport_failure() =>
                    {
                        pending.extend(idxs);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(&i) = pending.first() {
            return Err(Error::NoLiveServer {
                key: keys[i].chars().take(80).collect(),
                tries: self.inner.servers.len(),
            });
        }
        Ok(results)
    }

    async fn write(
        &self,
        mode: StoreMode,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
    ) -> Result<StoreReply> {
        check_write(key, value, self.inner.config.max_value_size)?;
        let op = Op::Store {
            mode,
            key,
            value,
            flags,
            exptime: protocol::exptime(ttl),
        };
        match self.call(key, &op).await? {
            Reply::Stored(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }
}

impl MemcachedStore {
    /// Each server's own counters (memcached's `stats`: uptime, items,
    /// hits, evictions, ...), one server after the other, in configuration
    /// order; a server that fails has its error in its place. What
    /// `sessionctl stats` prints.
    pub async fn server_stats(&self) -> Vec<(String, Result<Vec<(String, String)>>)> {
        let mut all = Vec::with_capacity(self.inner.servers.len());
        for server in &self.inner.servers {
            let answer = match server.call(&Op::Stats).await {
                Ok(Reply::Stats(stats)) => Ok(stats),
                Ok(_) => Err(mismatch()),
                Err(e) => Err(e),
            };
            all.push((server.addr().to_owned(), answer));
        }
        all
    }

    /// One page of [`Store::scan`]: see [`crate::scan`] for the cursor and
    /// its cost.
    async fn scan_page(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let servers = &self.inner.servers;
        let (server, after) = match cursor {
            None => (0, None),
            Some(c) => crate::scan::decode(c, servers.len())?,
        };
        let op = Op::Scan {
            prefix,
            after: after.as_deref(),
            limit,
        };
        let (keys, more) = match servers[server].call(&op).await? {
            Reply::Keys { keys, more } => (keys, more),
            _ => return Err(mismatch()),
        };
        let next = match keys.last() {
            Some(last) if more => Some(crate::scan::encode(server, Some(last))),
            _ if server + 1 < servers.len() => Some(crate::scan::encode(server + 1, None)),
            _ => None,
        };
        Ok(ScanPage { keys, next })
    }
}

/// A server answered a store command with a reply that command cannot get
/// (e.g. `EXISTS` to an add).
fn unexpected(command: &str, reply: StoreReply) -> Error {
    Error::Protocol {
        server: "(reply)".into(),
        message: format!("{command} answered {reply:?}, which that command cannot get"),
    }
}

/// A dialect module answered an op with the wrong reply variant: a bug here,
/// reported as a protocol error rather than a panic.
fn mismatch() -> Error {
    Error::Protocol {
        server: "(client)".into(),
        message: "internal error: reply does not match request".into(),
    }
}

#[async_trait]
impl Store for MemcachedStore {
    async fn get(&self, key: &str) -> session_core::Result<Option<Entry>> {
        validate_key(key)?;
        match self.call(key, &Op::Get(key)).await? {
            Reply::Entry(e) => Ok(e),
            _ => Err(mismatch().into()),
        }
    }

    async fn add(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
    ) -> session_core::Result<AddOutcome> {
        match self.write(StoreMode::Add, key, value, flags, ttl).await? {
            StoreReply::Stored(v) => Ok(AddOutcome::Stored(v)),
            StoreReply::Exists => Ok(AddOutcome::Exists),
            other => Err(unexpected("add", other).into()),
        }
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
    ) -> session_core::Result<Option<Version>> {
        match self.write(StoreMode::Set, key, value, flags, ttl).await? {
            StoreReply::Stored(v) => Ok(v),
            other => Err(unexpected("set", other).into()),
        }
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> session_core::Result<CasOutcome> {
        match self
            .write(StoreMode::Cas(expected.get()), key, value, flags, ttl)
            .await?
        {
            StoreReply::Stored(v) => Ok(CasOutcome::Stored(v)),
            StoreReply::Conflict => Ok(CasOutcome::Conflict),
            StoreReply::NotFound => Ok(CasOutcome::NotFound),
            other => Err(unexpected("cas", other).into()),
        }
    }

    async fn delete(&self, key: &str) -> session_core::Result<bool> {
        validate_key(key)?;
        match self.call(key, &Op::Delete(key)).await? {
            Reply::Existed(b) => {
                if b {
                    self.leave_delete_marker(key).await;
                }
                Ok(b)
            }
            _ => Err(mismatch().into()),
        }
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> session_core::Result<bool> {
        validate_key(key)?;
        match self
            .call(key, &Op::Touch(key, protocol::exptime(ttl)))
            .await?
        {
            Reply::Existed(b) => Ok(b),
            _ => Err(mismatch().into()),
        }
    }

    fn max_value_size(&self) -> usize {
        self.inner.config.max_value_size
    }

    fn capabilities(&self) -> Capabilities {
        let meta = self.inner.config.protocol == Protocol::Meta;
        let mut caps = Capabilities::NONE;
        caps.get_many = true;
        caps.scan = true;
        caps.get_and_touch = true;
        caps.ttl_read = meta;
        // Classic has no conditional delete.
        caps.conditional_delete = meta;
        caps
    }

    async fn version(&self, key: &str) -> session_core::Result<Option<Version>> {
        validate_key(key)?;
        match self.call(key, &Op::Version(key)).await? {
            Reply::Version(v) => Ok(v),
            _ => Err(mismatch().into()),
        }
    }

    async fn delete_if(&self, key: &str, expected: Version) -> session_core::Result<DeleteOutcome> {
        validate_key(key)?;
        if self.inner.config.protocol != Protocol::Meta {
            return Err(session_core::Error::Unsupported {
                capability: "delete_if",
            });
        }
        match self.call(key, &Op::DeleteIf(key, expected.get())).await? {
            Reply::Deleted(outcome) => {
                if outcome == DeleteOutcome::Deleted {
                    self.leave_delete_marker(key).await;
                }
                Ok(outcome)
            }
            _ => Err(mismatch().into()),
        }
    }

    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> session_core::Result<Option<Entry>> {
        validate_key(key)?;
        match self
            .call(key, &Op::GetAndTouch(key, protocol::exptime(ttl)))
            .await?
        {
            Reply::Entry(e) => Ok(e),
            _ => Err(mismatch().into()),
        }
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> session_core::Result<ScanPage> {
        Ok(self.scan_page(prefix, cursor, limit).await?)
    }

    async fn get_many(&self, keys: &[&str]) -> session_core::Result<Vec<Option<Entry>>> {
        for key in keys {
            validate_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.get_many_inner(keys).await?)
    }
}

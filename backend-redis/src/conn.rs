//! The connections a store sends its requests on, opened on first use and
//! replaced when one breaks, with a fail-fast backoff after failed connects.
//!
//! `connections` (default 1) multiplexed connections (standalone Redis) or
//! cluster connections (each keeps one multiplexed connection per node,
//! follows `MOVED`/`ASK` and refreshes its slot map itself), used in turn.
//! Each pipelines any number of concurrent requests, so more than one is
//! never about waiting for a free connection. One connection sends many
//! requests per write and reads many answers per read, on both sides; more
//! connections spread the client's work over more driver tasks (one per
//! connection) but cut those batches, and the server's one thread pays per
//! read and write. On the two-core bench machine, where the server is the
//! limit at 64 tasks, 2 and 4 connections lowered the session load+save
//! rate (ratio to raw pairs 0.28-0.35 and 0.26-0.31 against 0.38-0.42 with
//! one), hence the default; a client short of CPU with a server to spare
//! may gain from more.
//!
//! A call takes its connection without awaiting anything: a read lock on
//! the open generation and a clone, not an async mutex that every
//! concurrent call would queue on.
//!
//! Why our own reconnect instead of the crate's `ConnectionManager`: its
//! reconnects retry with their own backoff while callers wait on them, so a
//! call could take far longer than the configured timeouts. Here one call
//! at a time connects (all connections of a generation at once), bounded by
//! twice the connect timeout (the client bounds each connect; the outer
//! bound also covers a cluster's slot-map discovery); calls arriving
//! meanwhile wait for that attempt and then use its connections or fail
//! fast while the backoff after a failure runs. A request then waits at
//! most one response timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::config::RedisConfig;
use crate::error::{Error, Result};

/// A connection of either kind, usable wherever the crate wants a
/// [`ConnectionLike`] (commands, pipelines, scripts).
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone server.
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How to open a connection.
enum Opener {
    Single {
        client: redis::Client,
        config: AsyncConnectionConfig,
    },
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
}

/// The connect side's state, behind one async mutex so only one caller
/// connects at a time.
struct Link {
    generation: u64,
    /// After a failed connect: calls fail fast until then.
    down_until: Option<Instant>,
    /// The next fail-fast time.
    backoff: Duration,
}

/// The open connections of one generation.
struct Open {
    generation: u64,
    conns: Vec<Conn>,
}

/// Opens, hands out and replaces the store's connections.
pub(crate) struct Connector {
    server: String,
    opener: Opener,
    /// How many connections one generation opens (round-robin).
    connections: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// The open connections: read by every call without awaiting anything
    /// (a brief read lock, then a clone), written only on connect and on a
    /// broken connection.
    open: RwLock<Option<Open>>,
    /// Round-robin position over `open`'s connections.
    next: AtomicUsize,
    link: Mutex<Link>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

fn connection_info(config: &RedisConfig, i: usize) -> Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let node = &config.nodes[i];
    let addr = if config.tls {
        redis::ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        redis::ConnectionAddr::Tcp(node.host.clone(), node.port)
    };
    let mut settings = redis::RedisConnectionInfo::default().set_db(i64::from(config.db));
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    Ok(addr
        .into_connection_info()
        .map_err(|e| Error::InvalidConfig(format!("{}: {e}", node.addr())))?
        .set_redis_settings(settings))
}

impl Connector {
    /// Prepares the connector; no I/O.
    pub(crate) fn new(config: &RedisConfig) -> Result<Connector> {
        let opener = if config.cluster {
            cluster_opener(config)?
        } else {
            let client = single_client(config, connection_info(config, 0)?)?;
            Opener::Single {
                client,
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout)),
            }
        };
        Ok(Connector {
            server: config.server_name(),
            opener,
            connections: config.connections,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            open: RwLock::new(None),
            next: AtomicUsize::new(0),
            link: Mutex::new(Link {
                generation: 0,
                down_until: None,
                backoff: config.backoff_initial,
            }),
        })
    }

    /// The server (or cluster seed) name used in errors.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// One open connection (the next in turn), connecting first if there
    /// is none; fails fast while a failed connect's backoff runs.
    pub(crate) async fn get(&self) -> Result<(u64, Conn)> {
        if let Some(found) = self.current() {
            return Ok(found);
        }
        let mut link = self.link.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(found) = self.current() {
            return Ok(found);
        }
        let now = Instant::now();
        if let Some(until) = link.down_until
            && until > now
        {
            return Err(Error::MarkedDown {
                server: self.server.clone(),
                retry_in: until - now,
            });
        }
        // The client bounds each connect itself; this outer bound also
        // covers a cluster's slot-map discovery and every connection of
        // the generation.
        let opened = tokio::time::timeout(self.connect_timeout * 2, self.open_all()).await;
        let opened = match opened {
            Ok(Ok(conns)) => Ok(conns),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::ConnectTimeout {
                server: self.server.clone(),
                after: self.connect_timeout,
            }),
        };
        match opened {
            Ok(conns) => {
                if link.down_until.take().is_some() {
                    tracing::info!(server = %self.server, "redis connection is back");
                }
                link.backoff = self.backoff_initial;
                link.generation += 1;
                let generation = link.generation;
                let first = conns[0].clone();
                *self.open.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Open { generation, conns });
                Ok((generation, first))
            }
            Err(e) => {
                let backoff = link.backoff;
                tracing::warn!(server = %self.server, error = %e, ?backoff, "redis connect failed");
                link.down_until = Some(Instant::now() + backoff);
                link.backoff = (backoff * 2).min(self.backoff_max);
                Err(e)
            }
        }
    }

    /// The next open connection in turn, if the current generation is open.
    fn current(&self) -> Option<(u64, Conn)> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        let open = open.as_ref()?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % open.conns.len();
        Some((open.generation, open.conns[i].clone()))
    }

    /// Opens every connection of a new generation, concurrently.
    async fn open_all(&self) -> Result<Vec<Conn>> {
        futures_util::future::join_all((0..self.connections.max(1)).map(|_| self.open()))
            .await
            .into_iter()
            .collect()
    }

    async fn open(&self) -> Result<Conn> {
        match &self.opener {
            Opener::Single { client, config } => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Conn::Single)
                .map_err(|e| self.connect_error(e)),
            #[cfg(feature = "cluster")]
            Opener::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|e| self.connect_error(e)),
        }
    }

    fn connect_error(&self, e: redis::RedisError) -> Error {
        if e.is_timeout() {
            Error::ConnectTimeout {
                server: self.server.clone(),
                after: self.connect_timeout,
            }
        } else {
            Error::from_connect(&self.server, e)
        }
    }

    /// Classifies a failed request and drops the connections of generation
    /// `generation` when the failure broke one, so the next call reconnects
    /// (all of them: a broken one usually means the server went away).
    pub(crate) fn failed(
        &self,
        generation: u64,
        operation: &'static str,
        e: redis::RedisError,
    ) -> Error {
        let error = Error::from_request(operation, &self.server, self.response_timeout, e);
        if error.breaks_connection() {
            let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
            if open.as_ref().is_some_and(|o| o.generation == generation) {
                tracing::warn!(server = %self.server, error = %error, "redis connections dropped");
                *open = None;
            }
        }
        error
    }
}

/// The standalone server's client: with `rediss://`, on rustls (see
/// [`tls`]) trusting `tls_ca_file`'s CAs, or the system's without one.
fn single_client(config: &RedisConfig, info: redis::ConnectionInfo) -> Result<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(certs) = tls::certificates(config)? {
        return redis::Client::build_with_tls(info, certs)
            .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")));
    }
    let _ = config;
    redis::Client::open(info).map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// TLS through rustls with the `ring` crypto provider.
///
/// Why rustls + ring: it builds from crates alone with a C compiler (no
/// OpenSSL headers as native-tls would need, no cmake/NASM as rustls's
/// default aws-lc-rs provider may), and the redis crate supports it.
/// rustls wants one process-wide crypto provider; when the application has
/// not installed one, the store installs ring's as it is made (an
/// application that installed its own keeps it).
#[cfg(feature = "tls")]
mod tls {
    use crate::config::RedisConfig;
    use crate::error::{Error, Result};

    /// With `rediss://`: makes sure rustls has its provider, and reads the
    /// CA file if one is configured (`None`: the system's roots).
    pub(super) fn certificates(config: &RedisConfig) -> Result<Option<redis::TlsCertificates>> {
        if !config.tls {
            return Ok(None);
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread installed one meanwhile: fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let Some(path) = &config.tls_ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            Error::InvalidConfig(format!("reading the CA file {}: {e}", path.display()))
        })?;
        Ok(Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        }))
    }
}

#[cfg(feature = "cluster")]
fn cluster_opener(config: &RedisConfig) -> Result<Opener> {
    let nodes = (0..config.nodes.len())
        .map(|i| connection_info(config, i))
        .collect::<Result<Vec<_>>>()?;
    let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout);
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    #[cfg(feature = "tls")]
    if config.tls {
        builder = builder.tls(redis::TlsMode::Secure);
        if let Some(certs) = tls::certificates(config)? {
            builder = builder.certs(certs);
        }
    }
    let client = builder
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cluster client: {e}")))?;
    Ok(Opener::Cluster(client))
}

#[cfg(not(feature = "cluster"))]
fn cluster_opener(_config: &RedisConfig) -> Result<Opener> {
    Err(Error::InvalidConfig(
        "cluster=true needs backend-redis built with its `cluster` feature".into(),
    ))
}

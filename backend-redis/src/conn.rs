//! The connection a store sends its requests on, opened on first use and
//! replaced when it breaks, with a fail-fast backoff after failed connects.
//!
//! One multiplexed connection per store (standalone Redis) or one cluster
//! connection (which keeps one multiplexed connection per node, follows
//! `MOVED`/`ASK` and refreshes its slot map itself). Both are cheap to
//! clone and pipeline concurrent requests, so there is no pool.
//!
//! Why our own reconnect instead of the crate's `ConnectionManager`: its
//! reconnects retry with their own backoff while callers wait on them, so a
//! call could take far longer than the configured timeouts. Here one call
//! at a time connects, bounded by twice the connect timeout (the client
//! bounds each connect; the outer bound also covers a cluster's slot-map
//! discovery); calls arriving meanwhile wait for that attempt and then use
//! its connection or fail fast while the backoff after a failure runs. A
//! request then waits at most one response timeout.

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

/// The link's state, behind one async mutex so only one caller connects.
struct Link {
    /// The open connection and its generation.
    conn: Option<(u64, Conn)>,
    generation: u64,
    /// After a failed connect: calls fail fast until then.
    down_until: Option<Instant>,
    /// The next fail-fast time.
    backoff: Duration,
}

/// Opens, hands out and replaces the store's connection.
pub(crate) struct Connector {
    server: String,
    opener: Opener,
    connect_timeout: Duration,
    response_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    link: Mutex<Link>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server", &self.server)
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
            let client = redis::Client::open(connection_info(config, 0)?)
                .map_err(|e| Error::InvalidConfig(e.to_string()))?;
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
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            link: Mutex::new(Link {
                conn: None,
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

    /// The open connection, connecting first if there is none; fails fast
    /// while a failed connect's backoff runs.
    pub(crate) async fn get(&self) -> Result<(u64, Conn)> {
        let mut link = self.link.lock().await;
        if let Some((generation, conn)) = &link.conn {
            return Ok((*generation, conn.clone()));
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
        // covers a cluster's slot-map discovery.
        let opened = tokio::time::timeout(self.connect_timeout * 2, self.open()).await;
        let opened = match opened {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::ConnectTimeout {
                server: self.server.clone(),
                after: self.connect_timeout,
            }),
        };
        match opened {
            Ok(conn) => {
                if link.down_until.take().is_some() {
                    tracing::info!(server = %self.server, "redis connection is back");
                }
                link.backoff = self.backoff_initial;
                link.generation += 1;
                let generation = link.generation;
                link.conn = Some((generation, conn.clone()));
                Ok((generation, conn))
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

    /// Classifies a failed request and drops the connection of generation
    /// `generation` when the failure broke it, so the next call reconnects.
    pub(crate) async fn failed(
        &self,
        generation: u64,
        operation: &'static str,
        e: redis::RedisError,
    ) -> Error {
        let error = Error::from_request(operation, &self.server, self.response_timeout, e);
        if error.breaks_connection() {
            let mut link = self.link.lock().await;
            if link.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
                tracing::warn!(server = %self.server, error = %error, "redis connection dropped");
                link.conn = None;
            }
        }
        error
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

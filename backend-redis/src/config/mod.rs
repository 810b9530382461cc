//! [`RedisConfig`]: the knobs of a [`RedisStore`](crate::RedisStore), from
//! code or from a URL usable on a command line.
//!
//! # URL form
//!
//! ```text
//! redis://[USER[:PASSWORD]@]HOST[:PORT][/DB][?timeout_ms=500&prefix=app:]
//! rediss://...?ca_file=/etc/redis/ca.pem         (TLS: cargo feature `tls`)
//! redis://h1:7000,h2:7001,h3:7002?cluster=true   (Redis Cluster: cargo feature `cluster`)
//! ```
//!
//! - The port defaults to 6379 and the database to 0. IPv6 hosts need
//!   brackets (`[::1]:6379`). User and password are percent-decoded
//!   (`%40` for `@`); a password alone is written `:PASSWORD@`.
//! - Several hosts are only allowed with `cluster=true`: they are the seed
//!   nodes the cluster client asks for the slot map. A cluster has only
//!   database 0.
//!
//! | query key | meaning | default |
//! |---|---|---|
//! | `timeout_ms` | response timeout of one request (sent until fully answered) | 1000 |
//! | `connect_timeout_ms` | connect timeout, handshake (AUTH, SELECT) included | 1000 |
//! | `prefix` | prepended to every key (percent-decoded) | empty |
//! | `max_value_size` | largest value in bytes a write accepts | 1048576 |
//! | `cluster` | `true`: the hosts are seeds of a Redis Cluster | `false` |
//! | `backoff_initial_ms` | how long a connect failure fails calls fast before the next attempt | 100 |
//! | `backoff_max_ms` | the fail-fast time doubles per failed attempt up to this | 5000 |
//! | `ca_file` | `rediss://` only: PEM file of the CA certificates to trust (percent-decoded path) | the system's |
//! | `connections` | multiplexed connections used in turn (per node on a cluster) | 1 |
//!
//! Every duration must be more than zero and at most [`MAX_DURATION`] (one
//! hour). An unknown or repeated query key is an error, never ignored: a
//! typo must not silently fall back to a default.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::envelope::HEADER_LEN;
use session_core::url_options::{UrlOption, apply_query, millis};

use crate::error::{Error, Result};

/// The default Redis port.
pub const DEFAULT_PORT: u16 = 6379;

/// The default `max_value_size`: 1 MiB, memcached's default item size, so a
/// session that fits one backend fits the other.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;

/// The largest `max_value_size`: Redis strings hold at most 512 MiB
/// (`proto-max-bulk-len`), and every stored string carries our header.
pub const MAX_VALUE_SIZE_LIMIT: usize = 512 * 1024 * 1024 - HEADER_LEN;

/// The default of [`RedisConfig::connections`]: one, which batches the
/// most requests per server read and write (see `conn.rs`).
pub const DEFAULT_CONNECTIONS: usize = 1;

/// The most connections [`RedisConfig::connections`] may ask for.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest duration `validate()` accepts for a timeout or backoff.
pub const MAX_DURATION: Duration = Duration::from_secs(60 * 60);

/// The longest key prefix `validate()` accepts.
pub const MAX_PREFIX_LEN: usize = 200;

/// One Redis endpoint: a standalone server, or a seed node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl NodeSpec {
    /// A node at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NodeSpec {
            host: host.into(),
            port,
        }
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for NodeSpec {
    type Err = Error;

    /// Parses `host[:port]` or `[v6addr][:port]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidConfig(format!("host {s:?}: {why}"));
        let (host, port) = if let Some(after) = s.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| bad("missing ']' after IPv6 address"))?;
            let rest = &after[end + 1..];
            match rest.strip_prefix(':') {
                Some(p) => (&after[..end], Some(p)),
                None if rest.is_empty() => (&after[..end], None),
                None => return Err(bad("expected ':' after ']'")),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port is not a number 1..65535"))?,
        };
        Ok(NodeSpec::new(host, port))
    }
}

/// The configuration of a [`RedisStore`](crate::RedisStore).
///
/// Build it with [`Default`] and field assignment, or parse it with
/// [`RedisConfig::from_url`]; either way [`RedisConfig::validate`] runs
/// before a store is made. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, or the seed nodes of a cluster.
    pub nodes: Vec<NodeSpec>,
    /// Connect with TLS (`rediss://`; needs the cargo feature `tls`).
    pub tls: bool,
    /// With [`tls`](Self::tls): a PEM file of the CA certificates to trust
    /// instead of the system's (read when the store is made).
    pub tls_ca_file: Option<PathBuf>,
    /// The nodes are seeds of a Redis Cluster (needs the cargo feature `cluster`).
    pub cluster: bool,
    /// ACL user name (`AUTH user password`); `None` for the default user.
    pub username: Option<String>,
    /// Password (`AUTH`), if the server wants one.
    pub password: Option<String>,
    /// Database number (`SELECT`); always 0 on a cluster.
    pub db: u32,
    /// Prepended to every key on the server; [`Store`](session_core::Store)
    /// callers never see it (`scan` strips it).
    pub key_prefix: String,
    /// Connect timeout, the handshake (`AUTH`, `SELECT`) included.
    pub connect_timeout: Duration,
    /// Deadline for one request from sending it to its whole answer.
    pub response_timeout: Duration,
    /// The largest value in bytes a write accepts; larger ones are refused
    /// before any I/O.
    pub max_value_size: usize,
    /// After a failed connect, calls fail fast (without I/O) for this long
    /// before the next connect attempt.
    pub backoff_initial: Duration,
    /// The fail-fast time doubles after each failed attempt, up to this.
    pub backoff_max: Duration,
    /// Multiplexed connections the store opens and uses in turn (per
    /// cluster node, on a cluster); 1 to [`MAX_CONNECTIONS`].
    pub connections: usize,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("nodes", &self.nodes)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("cluster", &self.cluster)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_value_size", &self.max_value_size)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("connections", &self.connections)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            nodes: vec![NodeSpec::new("127.0.0.1", DEFAULT_PORT)],
            tls: false,
            tls_ca_file: None,
            cluster: false,
            username: None,
            password: None,
            db: 0,
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

/// The one list of query keys: parsing, the unknown-key message and the
/// docs' table (checked by a test) all follow it.
const URL_KEYS: &[UrlOption<RedisConfig>] = &[
    UrlOption {
        key: "timeout_ms",
        set: |c, v| {
            c.response_timeout = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "connect_timeout_ms",
        set: |c, v| {
            c.connect_timeout = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "prefix",
        set: |c, v| {
            c.key_prefix = decode(v).map_err(|_| "percent-encoded UTF-8")?;
            Ok(())
        },
    },
    UrlOption {
        key: "max_value_size",
        set: |c, v| {
            c.max_value_size = v.parse().map_err(|_| "a byte count")?;
            Ok(())
        },
    },
    UrlOption {
        key: "cluster",
        set: |c, v| {
            c.cluster = match v {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err("true or false"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "backoff_initial_ms",
        set: |c, v| {
            c.backoff_initial = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "backoff_max_ms",
        set: |c, v| {
            c.backoff_max = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "ca_file",
        set: |c, v| {
            let path = decode(v).map_err(|_| "a percent-encoded UTF-8 path")?;
            c.tls_ca_file = Some(PathBuf::from(path));
            Ok(())
        },
    },
    UrlOption {
        key: "connections",
        set: |c, v| {
            c.connections = v.parse().map_err(|_| "a number of connections")?;
            Ok(())
        },
    },
];

fn decode(s: &str) -> std::result::Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
}

/// The URL schemes [`RedisConfig::from_url`] accepts.
pub const URL_SCHEMES: [&str; 2] = ["redis://", "rediss://"];

impl RedisConfig {
    /// A default configuration for one server.
    pub fn with_node(node: NodeSpec) -> Self {
        RedisConfig {
            nodes: vec![node],
            ..RedisConfig::default()
        }
    }

    /// Parses the URL form described in the [module docs](self) and validates it.
    ///
    /// ```
    /// use backend_redis::RedisConfig;
    /// let c = RedisConfig::from_url("redis://app:s3cret@cache:6380/2?prefix=s:&timeout_ms=250").unwrap();
    /// assert_eq!((c.nodes[0].port, c.db, c.key_prefix.as_str()), (6380, 2, "s:"));
    /// assert!(RedisConfig::from_url("redis://cache?timeuot_ms=5").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("redis://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("rediss://") {
            (true, r)
        } else {
            // Not the URL itself: one that is not a Redis URL may still
            // hold a password (`redis:/u:pw@h`), and errors reach logs.
            return Err(Error::InvalidConfig(
                "a Redis URL starts with redis:// or rediss://".into(),
            ));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        if rest.contains('#') {
            return Err(Error::InvalidConfig(
                "a fragment (#...) means nothing here".into(),
            ));
        }
        // The password may hold '/', so the user part ends at the last '@'.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (hosts, db) = match rest.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (h, Some(d)),
            None => (rest, None),
        };
        let mut config = RedisConfig {
            tls,
            nodes: hosts
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<NodeSpec>>>()?,
            ..RedisConfig::default()
        };
        if let Some(db) = db {
            config.db = db.parse().map_err(|_| {
                Error::InvalidConfig(format!("database {db:?} is not a number (redis://host/2)"))
            })?;
        }
        if let Some(userinfo) = userinfo {
            let bad = |_| {
                Error::InvalidConfig("user or password is not valid percent-encoded UTF-8".into())
            };
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                config.username = Some(decode(user).map_err(bad)?);
            }
            if let Some(p) = password {
                config.password = Some(decode(p).map_err(bad)?);
            }
        }
        apply_query(URL_KEYS, &mut config, query).map_err(Error::InvalidConfig)?;
        config.validate()?;
        Ok(config)
    }

    /// What errors and logs call the store: the first node's address.
    pub(crate) fn server_name(&self) -> String {
        match self.nodes.first() {
            Some(n) if self.cluster => format!("cluster {}", n.addr()),
            Some(n) => n.addr(),
            None => "(no node)".to_owned(),
        }
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.nodes.is_empty() {
            return bad("no host".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.host.is_empty()
                || n.host
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "/@?#,".contains(c))
            {
                return bad(format!("host {i}: invalid host {:?}", n.host));
            }
            if n.port == 0 {
                return bad(format!("host {}: port 0", n.addr()));
            }
            if self.nodes[..i].contains(n) {
                return bad(format!("host {} listed twice", n.addr()));
            }
        }
        if self.nodes.len() > 1 && !self.cluster {
            return bad(format!(
                "{} hosts given: several hosts are the seed nodes of a cluster; add ?cluster=true",
                self.nodes.len()
            ));
        }
        if self.cluster && !cfg!(feature = "cluster") {
            return bad("cluster=true needs backend-redis built with its `cluster` feature".into());
        }
        if self.cluster && self.db != 0 {
            return bad(format!(
                "a Redis Cluster has only database 0 (got {})",
                self.db
            ));
        }
        if self.tls && !cfg!(feature = "tls") {
            return bad(
                "rediss:// (TLS) needs backend-redis built with its `tls` feature (or reach Redis \
                 through a TLS tunnel with redis://)"
                    .into(),
            );
        }
        if self.tls_ca_file.is_some() && !self.tls {
            return bad("ca_file is for TLS only: use rediss://".into());
        }
        if i64::from(self.db) > i64::from(i32::MAX) {
            return bad(format!("database {} is out of range", self.db));
        }
        if self.username.is_some() && self.password.is_none() {
            return bad("a user name needs a password (redis://user:password@host)".into());
        }
        if self.key_prefix.len() > MAX_PREFIX_LEN {
            return bad(format!(
                "key prefix of {} bytes is longer than {MAX_PREFIX_LEN}",
                self.key_prefix.len()
            ));
        }
        if self
            .key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "key prefix {:?} holds whitespace or control characters",
                self.key_prefix
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("backoff_initial", self.backoff_initial),
            ("backoff_max", self.backoff_max),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be more than zero"));
            }
            if d > MAX_DURATION {
                return bad(format!(
                    "{name} of {d:?} is longer than the maximum {MAX_DURATION:?}"
                ));
            }
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad(format!(
                "connections {} is not in 1..={MAX_CONNECTIONS}",
                self.connections
            ));
        }
        if self.backoff_max < self.backoff_initial {
            return bad("backoff_max is shorter than backoff_initial".into());
        }
        if self.max_value_size == 0 || self.max_value_size > MAX_VALUE_SIZE_LIMIT {
            return bad(format!(
                "max_value_size {} is not in 1..={MAX_VALUE_SIZE_LIMIT}",
                self.max_value_size
            ));
        }
        Ok(())
    }
}

impl FromStr for RedisConfig {
    type Err = Error;

    /// Same as [`RedisConfig::from_url`].
    fn from_str(s: &str) -> Result<Self> {
        RedisConfig::from_url(s)
    }
}

#[cfg(test)]
mod tests;

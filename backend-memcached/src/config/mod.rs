//! [`MemcachedConfig`]: the knobs of a [`MemcachedStore`](crate::MemcachedStore),
//! from code or from a URL-ish string usable on a command line.
//!
//! # URL form
//!
//! ```text
//! memcached://host1:11211,host2:11211:2,[::1]:11212?timeout_ms=500&protocol=classic
//! memcacheds://app:s3cret@mc1.example:11211,mc2.example:11211?ca=/etc/memcached/ca.pem
//! ```
//!
//! - Servers are comma separated, each `host[:port[:weight]]`; the port
//!   defaults to 11211 and the weight to 1. IPv6 hosts need brackets. The
//!   weight is a third colon field rather than a `?weight=` query so that a
//!   query key always means the same thing for the whole store.
//! - The order of servers matters: it is the bucket order of Cache::Memcached,
//!   so it must match the Perl side's `servers` list for keys to land on the
//!   same server.
//! - `memcacheds://` speaks TLS to every server (see [`security`] for why a
//!   scheme rather than a query key): certificates verified against `ca=`
//!   (or the system's roots), host names checked, always.
//! - `user:password@` before the servers turns on memcached's ASCII
//!   authentication (`memcached -Y FILE`) for every server; both parts are
//!   percent-decoded (`%40` for an `@`, `%3A` for a `:` in the user). The
//!   password never appears in `Debug` output or errors; print a URL with
//!   [`redact_url`].
//!
//! | query key | meaning | default |
//! |---|---|---|
//! | `timeout_ms` | I/O timeout of one request (write + full answer) | 1000 |
//! | `connect_timeout_ms` | TCP connect timeout | 1000 |
//! | `protocol` | `meta` or `classic` | `meta` |
//! | `routing` | `perl` or `ketama` | `perl` |
//! | `failure` | `fail` or `rehash` | `fail` |
//! | `max_value_size` | largest value in bytes a write accepts | 1048263 |
//! | `pool_size` | most open connections per server | 16 |
//! | `mode` | `adaptive`, `multiplexed` or `pooled` (see [`ConnectionMode`]) | `adaptive` |
//! | `connections` | multiplexed connections per server | 2 |
//! | `backoff_initial_ms` | first retry delay after a server is marked down | 100 |
//! | `backoff_max_ms` | the retry delay doubles up to this | 30000 |
//! | `delete_markers` | `1`: each delete also leaves a short-lived marker the replicator's feed sees (see [`MemcachedConfig::delete_markers`]) | `0` |
//! | `ca` | `memcacheds://` only: PEM file of the CA certificates to trust (percent-decoded path) | the system's roots |
//! | `cert` | `memcacheds://` only: PEM file of a client certificate chain, for memcached's `ssl_verify_mode` | none |
//! | `key` | `memcacheds://` only: PEM file of the client certificate's private key | none |
//! | `server_name` | `memcacheds://` only: the name the servers' certificates must carry | each server's host |
//!
//! Every duration must be more than zero and at most [`MAX_DURATION`] (one
//! hour).
//!
//! An unknown or repeated query key is an error, never ignored: a typo must
//! not silently fall back to a default.

mod security;
mod url;

use std::str::FromStr;
use std::time::Duration;

pub use security::{Credentials, Password, TlsConfig};
pub use url::redact_url;

use crate::error::{Error, Result};

/// The default memcached port.
pub const DEFAULT_PORT: u16 = 11211;

/// The URL scheme [`MemcachedConfig::from_url`] accepts for plain TCP.
pub const URL_SCHEME: &str = url::PLAIN;

/// The URL scheme [`MemcachedConfig::from_url`] accepts for TLS.
pub const TLS_URL_SCHEME: &str = url::TLS;

/// memcached's per-item overhead, measured on 1.6.18 (CAS enabled): an item
/// of key `k` and value `v` fits in `item_size_max` exactly when
/// `ITEM_OVERHEAD + k.len() + v.len() (+ ITEM_FLAGS_OVERHEAD if flags != 0)
/// <= item_size_max`. The 59 bytes are the 48-byte item header, the 8-byte
/// CAS unique, the key's NUL and the value's CRLF.
pub const ITEM_OVERHEAD: usize = 59;

/// The extra bytes memcached 1.6 spends on an item whose client flags are
/// not zero (it stores them only then); measured on 1.6.18 with flags 1 and
/// 16, in both protocols.
pub const ITEM_FLAGS_OVERHEAD: usize = 4;

/// The default `max_value_size`: the largest value a memcached started with
/// the default item size (`-I 1m`) stores under any valid key and any flags:
/// `1 MiB - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 250` always fits, so our
/// limit is exact instead of letting the server refuse the last few hundred
/// bytes. (It used to leave out the 4 bytes of non-zero flags, which every
/// session value has.)
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024 - ITEM_OVERHEAD - ITEM_FLAGS_OVERHEAD - 250;

/// The largest item memcached can be configured for (`-I 1024m`); a larger
/// `max_value_size` can never be stored and is rejected by `validate()`.
pub const MAX_VALUE_SIZE_LIMIT: usize = 1024 * 1024 * 1024;

/// The longest duration `validate()` accepts for a timeout or backoff.
/// Longer ones are typos or sentinels such as `Duration::MAX`, which would
/// overflow `Instant + backoff` (a panic) and make a hung server hold callers
/// practically forever.
pub const MAX_DURATION: Duration = Duration::from_secs(60 * 60);

/// The most buckets the weights may add up to. Cache::Memcached has no limit,
/// but the bucket list is expanded in memory, so a typo such as weight
/// `1000000000` must not allocate gigabytes.
pub const MAX_TOTAL_WEIGHT: u32 = 10_000;

/// Which memcached text protocol dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// The meta protocol (`mg`, `ms`, `md`; memcached 1.6+): every write
    /// returns the new CAS, and reads report the remaining TTL.
    #[default]
    Meta,
    /// Only the classic commands `gets`, `set`, `add`, `cas`, `delete`,
    /// `touch` and `gats`, so the store also works behind proxies such as
    /// mcrouter or twemproxy. Writes report no version, reads no TTL, and
    /// there is no conditional delete (`delete_if` is unsupported).
    Classic,
}

/// How requests share connections to a server.
///
/// Measured on a 2-core machine against one memcached (`cargo xtask
/// bench`): at 64 concurrent tasks the multiplexed connections serve raw
/// `get`s at about 3x the rate of one-request-per-connection pooling, and
/// session loads and updates at 2-4x; a lone caller, on the other hand,
/// waits for two extra task wake-ups per request on a shared connection
/// (a writer and a reader task), which a pooled connection does not
/// have. [`ConnectionMode::Adaptive`] takes each path where it wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConnectionMode {
    /// A call to a server with no other call in flight goes on a pooled
    /// connection (a lone caller is answered soonest there); calls that
    /// overlap share the multiplexed connections, where many requests go
    /// out in one write. Both paths keep every guarantee of their mode.
    #[default]
    Adaptive,
    /// A few connections per server ([`MemcachedConfig::connections`])
    /// shared by every task: requests from many tasks are written together
    /// in one syscall and their answers read together, in order (memcached
    /// answers each connection's requests in order, in both dialects).
    /// Scans, `stats` and a server's first request still use the pool.
    Multiplexed,
    /// One request at a time per connection, from a pool of at most
    /// [`MemcachedConfig::pool_size`] connections per server.
    Pooled,
}

/// How a key picks its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Routing {
    /// Exactly Perl Cache::Memcached 1.30: bucket
    /// `((crc32(key) >> 16) & 0x7fff) % total_weight` over the server list
    /// expanded by weight. Keys land where the Perl original put them.
    #[default]
    Perl,
    /// Consistent hashing, libketama (last.fm) layout: see
    /// [`crate::router`] for the point layout. Adding or removing a server
    /// moves only about 1/n of the keys, but it does not match Perl.
    Ketama,
}

/// What to do with a key whose server is down.
///
/// The default is [`FailurePolicy::Fail`]: for sessions, moving a key to
/// another server while its home is down is worse than an error. The user
/// gets a fresh session on the fallback server, and when the home server
/// comes back the old copy (possibly logged out meanwhile) is visible again.
/// An explicit, retryable error lets the caller decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Return a typed error ([`session_core::Error::Unavailable`] or
    /// [`session_core::Error::Timeout`]) and do not touch other servers.
    #[default]
    Fail,
    /// Cache::Memcached's behaviour: when the key's server is down (marked
    /// down or refusing connects), try the next bucket, up to 20 tries, with
    /// Perl's exact rehash sequence. Only failures before the request was
    /// sent are rehashed; a request that broke mid-flight reports its error,
    /// since it may have been applied.
    Rehash,
}

/// One server of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How many buckets (Perl routing) or what share of the ring (ketama)
    /// the server gets; at least 1.
    pub weight: u32,
}

impl ServerSpec {
    /// A server with weight 1.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ServerSpec {
            host: host.into(),
            port,
            weight: 1,
        }
    }

    /// The same server with another weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// `host:port`, with brackets around an IPv6 host: what we connect to,
    /// print in errors and hash for ketama.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerSpec {
    type Err = Error;

    /// Parses `host[:port[:weight]]` or `[v6addr][:port[:weight]]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidConfig(format!("server {s:?}: {why}"));
        let (host, rest) = if let Some(after) = s.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| bad("missing ']' after IPv6 address"))?;
            let rest = &after[end + 1..];
            let rest = match rest.strip_prefix(':') {
                Some(r) => Some(r),
                None if rest.is_empty() => None,
                None => return Err(bad("expected ':' after ']'")),
            };
            (&after[..end], rest)
        } else {
            match s.split_once(':') {
                Some((h, r)) => (h, Some(r)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        // `host:` (a colon and nothing after it) is a typo, not "the
        // default port": only a missing colon means that.
        let mut fields: Vec<&str> = match rest {
            None => Vec::new(),
            Some(r) => r.split(':').collect(),
        };
        if fields.iter().any(|f| f.is_empty()) {
            return Err(bad("empty port or weight after ':'"));
        }
        if fields.len() > 2 {
            return Err(bad(
                "too many ':' fields (IPv6 addresses need brackets: [::1]:11211)",
            ));
        }
        let weight = match fields.len() {
            2 => fields
                .pop()
                .and_then(|w| w.parse::<u32>().ok())
                .ok_or_else(|| bad("weight is not a whole number"))?,
            _ => 1,
        };
        let port = match fields.pop() {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port is not a number 1..65535"))?,
            None => DEFAULT_PORT,
        };
        Ok(ServerSpec {
            host: host.to_owned(),
            port,
            weight,
        })
    }
}

/// The configuration of a [`MemcachedStore`](crate::MemcachedStore).
///
/// Build it with [`Default`] and field assignment, or parse it with
/// [`MemcachedConfig::from_url`]; either way [`MemcachedConfig::validate`]
/// runs before a store is made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedConfig {
    /// The servers, in bucket order (see [`Routing::Perl`]).
    pub servers: Vec<ServerSpec>,
    /// Protocol dialect.
    pub protocol: Protocol,
    /// Key-to-server routing.
    pub routing: Routing,
    /// What to do when a key's server is down.
    pub failure: FailurePolicy,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Deadline for one request: writing it and reading its whole answer
    /// (also bounds waiting for a free pooled connection).
    pub io_timeout: Duration,
    /// The largest value in bytes a write accepts; larger ones are refused
    /// before any I/O. memcached's own limit (`-I`, 1 MiB by default)
    /// covers the whole item: measured on 1.6.18 with `-I 1m`, the largest
    /// storable value is `1048576 - 59 - key length` bytes (4 fewer with
    /// non-zero flags; see [`ITEM_OVERHEAD`]), hence the default
    /// [`DEFAULT_MAX_VALUE_SIZE`]. Raise it together with the servers' `-I`.
    /// Each server's own `item_size_max` is also read once (`stats
    /// settings`) and a write it would refuse is refused before I/O, as
    /// [`session_core::Error::ValueTooLarge`] (memcached would otherwise
    /// drop the key's old value along with the refused one).
    pub max_value_size: usize,
    /// The most pooled connections open to one server at a time (all
    /// requests in [`ConnectionMode::Pooled`]; scans, `stats`, first
    /// requests and, in [`ConnectionMode::Adaptive`], lone calls otherwise).
    pub pool_size: usize,
    /// How requests share connections.
    pub mode: ConnectionMode,
    /// Multiplexed connections per server (in
    /// [`ConnectionMode::Adaptive`] and [`ConnectionMode::Multiplexed`]),
    /// used in turn. Two keep both of a
    /// small machine's cores busy; memcached serves each connection on
    /// one of its worker threads, so more let a big server use more.
    pub connections: usize,
    /// How long a server stays marked down after its first failure.
    pub backoff_initial: Duration,
    /// The retry delay doubles after each failed retry, up to this (at
    /// most [`MAX_DURATION`], as every duration here).
    pub backoff_max: Duration,
    /// TLS to every server (`memcacheds://`); `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// memcached's ASCII authentication, sent once on every new connection
    /// before any request; `None` for none.
    pub auth: Option<Credentials>,
    /// After each successful `delete` or `delete_if`, also write a
    /// short-lived, empty marker item ([`crate::delete_marker`], 30 s)
    /// on the deleted key's server. memcached 1.6.18's `watch` reports
    /// stores but not deletes; the replicator reads the marker's store line
    /// as "this key was deleted" and carries the delete at once, instead of
    /// at its next key-list comparison. One more write per delete (a
    /// logout); a key too long to be prefixed gets no marker. Off by
    /// default: only worth it where the replicator runs on servers without
    /// `watch deletions`.
    pub delete_markers: bool,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig {
            servers: vec![ServerSpec::new("127.0.0.1", DEFAULT_PORT)],
            protocol: Protocol::Meta,
            routing: Routing::Perl,
            failure: FailurePolicy::Fail,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            pool_size: 16,
            mode: ConnectionMode::Adaptive,
            connections: 2,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            tls: None,
            auth: None,
            delete_markers: false,
        }
    }
}

impl MemcachedConfig {
    /// A default configuration for the given servers.
    pub fn with_servers(servers: Vec<ServerSpec>) -> Self {
        MemcachedConfig {
            servers,
            ..MemcachedConfig::default()
        }
    }

    /// Parses the URL form described in the [module docs](self) and validates it.
    ///
    /// ```
    /// use backend_memcached::{MemcachedConfig, Protocol};
    /// let c = MemcachedConfig::from_url("memcached://a:11211,b:11212:2?protocol=classic").unwrap();
    /// assert_eq!(c.servers[1].weight, 2);
    /// assert_eq!(c.protocol, Protocol::Classic);
    /// assert!(MemcachedConfig::from_url("memcached://a?timeuot_ms=5").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        url::parse(url)
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.servers.is_empty() {
            return bad("no servers".into());
        }
        let mut total: u32 = 0;
        for (i, s) in self.servers.iter().enumerate() {
            if s.host.is_empty() || s.host.chars().any(|c| c.is_whitespace() || c == '/') {
                return bad(format!("server {i}: invalid host {:?}", s.host));
            }
            if s.port == 0 {
                return bad(format!("server {}: port 0", s.addr()));
            }
            if s.weight == 0 {
                return bad(format!("server {}: weight must be at least 1", s.addr()));
            }
            if self.servers[..i].iter().any(|o| o.addr() == s.addr()) {
                return bad(format!(
                    "server {} listed twice (give it a weight instead)",
                    s.addr()
                ));
            }
            total = total.saturating_add(s.weight);
        }
        if total > MAX_TOTAL_WEIGHT {
            return bad(format!(
                "weights add up to {total}, more than {MAX_TOTAL_WEIGHT}"
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("backoff_initial", self.backoff_initial),
            ("backoff_max", self.backoff_max),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be more than zero"));
            }
            // An upper bound keeps `Instant + d` and the backoff doubling
            // far from overflow (`Duration::MAX` used to panic there).
            if d > MAX_DURATION {
                return bad(format!(
                    "{name} of {d:?} is longer than the maximum {MAX_DURATION:?}"
                ));
            }
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
        if self.pool_size == 0 || self.pool_size > 1024 {
            return bad(format!("pool_size {} is not in 1..=1024", self.pool_size));
        }
        if self.connections == 0 || self.connections > 64 {
            return bad(format!("connections {} is not in 1..=64", self.connections));
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        Ok(())
    }
}

impl FromStr for MemcachedConfig {
    type Err = Error;

    /// Same as [`MemcachedConfig::from_url`].
    fn from_str(s: &str) -> Result<Self> {
        MemcachedConfig::from_url(s)
    }
}

#[cfg(test)]
mod tests;

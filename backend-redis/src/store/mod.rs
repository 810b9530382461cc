//! [`RedisStore`]: the [`Store`] impl. Every method validates its input
//! before any I/O, then sends one command, one script or one pipeline.

use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, ErrorKind, FromRedisValue, Script, ServerErrorKind, Value};
use session_core::key::validate_key;
use session_core::store::check_write;
use session_core::{
    AddOutcome, Capabilities, CasOutcome, DeleteOutcome, Entry, Result, ScanCursor, ScanPage,
    Store, Ttl, Version,
};

use crate::config::RedisConfig;
use crate::conn::{Conn, Connector};
use crate::envelope;
use crate::error::Error;
use crate::ifeq::{self, Ifeq};
use crate::scan::{self, Position};
use crate::scripts;

/// Work one `SCAN` call does on the server (its `COUNT`): large enough that
/// a scan through a big database takes few pages, small enough that one
/// call never blocks the server for long.
const SCAN_COUNT: usize = 1000;

/// [`Store`] on Redis or Redis Cluster.
///
/// Cheap to share (`Arc`); one multiplexed connection carries every
/// concurrent call. Nothing connects before the first call.
#[derive(Debug)]
pub struct RedisStore {
    connector: Connector,
    prefix: String,
    max_value_size: usize,
    cluster: bool,
    /// `SET ... IFEQ` support and the strings read for it (`ifeq.rs`).
    ifeq: Ifeq,
}

/// The milliseconds argument of a TTL: `0` for never.
fn ttl_ms(ttl: Ttl) -> u64 {
    u64::from(ttl.as_secs()) * 1000
}

/// A `PTTL` answer as a [`Ttl`]: whole seconds rounded up, `-1` (no
/// expiry) as [`Ttl::NEVER`].
fn ttl_of(pttl: i64) -> Option<Ttl> {
    match pttl {
        -1 => Some(Ttl::NEVER),
        ms if ms >= 0 => Some(Ttl::from_duration(Duration::from_millis(ms.max(1) as u64))),
        _ => None,
    }
}

impl RedisStore {
    /// A store for `config` (validated here); no I/O until the first call.
    pub fn connect(config: RedisConfig) -> crate::Result<RedisStore> {
        config.validate()?;
        Ok(RedisStore {
            connector: Connector::new(&config)?,
            prefix: config.key_prefix.clone(),
            max_value_size: config.max_value_size,
            cluster: config.cluster,
            ifeq: Ifeq::new(),
        })
    }

    /// Whether the server took `SET ... IFEQ`, which lets `cas` after a
    /// read skip the Lua script (Valkey 8.1+, Redis 8.4+): `None` until
    /// the first such `cas` has been answered.
    pub fn server_has_ifeq(&self) -> Option<bool> {
        self.ifeq.known()
    }

    /// [`RedisConfig::from_url`] then [`RedisStore::connect`].
    pub fn from_url(url: &str) -> crate::Result<RedisStore> {
        RedisStore::connect(RedisConfig::from_url(url)?)
    }

    fn full_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    /// Runs `f` on the connection; a failure is classified and, when it
    /// broke the connection, drops it so the next call reconnects.
    async fn run<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (generation, conn) = self.connector.get().await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.connector.failed(generation, operation, e).into()),
        }
    }

    /// Runs a script call made by [`scripts::call`]; a server that does not
    /// know the script yet (restarted, flushed, another cluster node) gets
    /// it with `SCRIPT LOAD` and the call is sent again.
    async fn eval<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &'static Script,
        cmd: Cmd,
    ) -> Result<T> {
        self.run(operation, |mut c| async move {
            match cmd.query_async(&mut c).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut c).await?;
                    cmd.query_async(&mut c).await
                }
                other => other,
            }
        })
        .await
    }

    fn protocol(&self, message: String) -> session_core::Error {
        Error::Protocol {
            server: self.connector.server().to_owned(),
            message,
        }
        .into()
    }

    /// An [`Entry`] from a stored string and its `PTTL`; the string is
    /// kept for a later `cas` when the server may know `IFEQ`.
    fn entry(&self, key: &str, stored: Vec<u8>, pttl: i64) -> Result<Entry> {
        let foreign = || Error::Foreign {
            server: self.connector.server().to_owned(),
            key: self.full_key(key),
        };
        let (value, flags, version) = if self.ifeq.wanted(stored.len()) {
            let (flags, version) = envelope::header(&stored).ok_or_else(foreign)?;
            let value = stored[envelope::HEADER_LEN..].to_vec();
            self.ifeq.keep(self.full_key(key), version, stored);
            (value, flags, version)
        } else {
            envelope::decode(stored).ok_or_else(foreign)?
        };
        Ok(Entry {
            value,
            flags,
            version,
            ttl: ttl_of(pttl),
        })
    }

    /// Parses the `nil | {stored, pttl}` answer of the `GET` and
    /// `GET_AND_TOUCH` scripts.
    fn read_answer(&self, key: &str, answer: Value) -> Result<Option<Entry>> {
        match answer {
            Value::Nil => Ok(None),
            Value::Array(items) => match <[Value; 2]>::try_from(items) {
                Ok([Value::BulkString(stored), Value::Int(pttl)]) => {
                    self.entry(key, stored, pttl).map(Some)
                }
                Ok(other) => Err(self.protocol(format!("read answered {other:?}"))),
                Err(items) => Err(self.protocol(format!("read answered {} items", items.len()))),
            },
            other => Err(self.protocol(format!("read answered {other:?}"))),
        }
    }

    /// `cas` as one `SET ... IFEQ old` writing `stored` (which holds
    /// `version`; see `ifeq.rs`); `None` when the server refused the
    /// option, so the caller runs the script instead. A nil answer is a
    /// conflict or a missing key; an `EXISTS` tells which (a later write
    /// may change that, as it may any answer).
    async fn cas_ifeq(
        &self,
        full: &str,
        stored: &[u8],
        old: &[u8],
        ttl: Ttl,
        version: Version,
    ) -> Result<Option<CasOutcome>> {
        let cmd = ifeq::command(full, stored, old, ttl_ms(ttl));
        let answer: Option<Value> = self
            .run("cas", |mut c| async move {
                match cmd.query_async(&mut c).await {
                    Err(e) if ifeq::refused(&e) => Ok(None),
                    other => other.map(Some),
                }
            })
            .await?;
        match answer {
            None => {
                self.ifeq.unsupported();
                Ok(None)
            }
            Some(Value::Okay) => {
                self.ifeq.supported();
                Ok(Some(CasOutcome::Stored(Some(version))))
            }
            Some(Value::Nil) => {
                self.ifeq.supported();
                let exists: bool = self
                    .run("cas", |mut c| async move {
                        redis::cmd("EXISTS").arg(full).query_async(&mut c).await
                    })
                    .await?;
                Ok(Some(if exists {
                    CasOutcome::Conflict
                } else {
                    CasOutcome::NotFound
                }))
            }
            Some(other) => Err(self.protocol(format!("SET IFEQ answered {other:?}"))),
        }
    }

    fn new_version(&self) -> Result<Version> {
        envelope::new_version().map_err(|e| session_core::Error::Unavailable {
            server: "(OS random source)".to_owned(),
            message: "cannot read it".to_owned(),
            delivery: session_core::Delivery::NotSent,
            source: Some(e.into()),
        })
    }

    /// A standalone server: `GET` then `PTTL`, pipelined (one round trip).
    /// A cluster: one script, a single command, which the cluster client
    /// re-sends on `ASK` during a slot migration (it hands a pipeline's
    /// `ASK` back as an error; the slot-migration test caught that).
    ///
    /// Why not the script everywhere: Redis runs a script several times
    /// slower than the plain commands (`INFO commandstats` on Redis 7.0:
    /// about 4 µs for this one against 0.3 + 0.15 µs for `GET` + `PTTL` of
    /// a 500-byte session), and under many concurrent callers the server's
    /// one thread is what limits a store. Why not `MULTI`/`EXEC` around the
    /// pair: its extra replies cost the client about as much as the script
    /// costs the server (measured, 64 tasks reading: script 6 µs server +
    /// 7 µs client per read, `MULTI` 3 + 7, plain pipeline 2.5 + 5.6), and
    /// the pair needs no isolation: the version travels in the value, and
    /// the TTL is only informative. Redis runs a client's pipelined
    /// commands back to back when they arrive in one read; if another
    /// client's write does slip in between, the TTL read is that write's
    /// (whose version a later `cas` will refuse anyway), or unknown
    /// (`None`) if it deleted the key.
    async fn get_one(&self, key: &str) -> Result<Option<Entry>> {
        if !self.cluster {
            let mut found = self.read_many("get", &[key], None).await?;
            return Ok(found.pop().flatten());
        }
        let cmd = scripts::call(&scripts::GET, &self.full_key(key));
        let answer: Value = self.eval("get", &scripts::GET, cmd).await?;
        self.read_answer(key, answer)
    }

    /// Standalone server only, one round trip: for each key `GET`, the new
    /// expiry if `touch` (`PEXPIRE`, or `PERSIST` for never; its answer
    /// ignored) and `PTTL`. With `touch` the whole is one `MULTI`/`EXEC`
    /// (`get_and_touch` is one atomic call by contract); without, a plain
    /// pipeline (see `get_one`).
    async fn read_many(
        &self,
        operation: &'static str,
        keys: &[&str],
        touch: Option<Ttl>,
    ) -> Result<Vec<Option<Entry>>> {
        let mut pipe = redis::pipe();
        if touch.is_some() {
            pipe.atomic();
        }
        for key in keys {
            let full = self.full_key(key);
            pipe.cmd("GET").arg(&full);
            match touch {
                Some(ttl) if ttl.is_never() => {
                    pipe.cmd("PERSIST").arg(&full).ignore();
                }
                Some(ttl) => {
                    pipe.cmd("PEXPIRE").arg(&full).arg(ttl_ms(ttl)).ignore();
                }
                None => {}
            }
            pipe.cmd("PTTL").arg(full);
        }
        let answer: Vec<Value> = self
            .run(
                operation,
                |mut c| async move { pipe.query_async(&mut c).await },
            )
            .await?;
        self.read_pairs(operation, keys, answer)
    }

    /// Entries from `[stored1, pttl1, stored2, pttl2, ...]`, nil for a
    /// missing key's value.
    fn read_pairs(
        &self,
        operation: &str,
        keys: &[&str],
        answer: Vec<Value>,
    ) -> Result<Vec<Option<Entry>>> {
        if answer.len() != keys.len() * 2 {
            return Err(self.protocol(format!(
                "{operation} of {} keys answered {} items",
                keys.len(),
                answer.len()
            )));
        }
        let mut out = Vec::with_capacity(keys.len());
        let mut items = answer.into_iter();
        for key in keys {
            match (items.next(), items.next()) {
                (Some(Value::Nil), Some(_)) => out.push(None),
                (Some(Value::BulkString(stored)), Some(Value::Int(pttl))) => {
                    out.push(Some(self.entry(key, stored, pttl)?));
                }
                other => return Err(self.protocol(format!("{operation} answered {other:?}"))),
            }
        }
        Ok(out)
    }

    /// The masters of the cluster, sorted by address, for `scan`.
    #[cfg(feature = "cluster")]
    async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let answer: Value = self
            .run("cluster slots", |mut c| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await?;
        let bad = |v: &Value| self.protocol(format!("CLUSTER SLOTS answered {v:?}"));
        let Value::Array(ranges) = &answer else {
            return Err(bad(&answer));
        };
        let mut masters = Vec::new();
        for range in ranges {
            // [start, end, [host, port, id, ...], replicas...]
            let Value::Array(parts) = range else {
                return Err(bad(range));
            };
            let Some(Value::Array(master)) = parts.get(2) else {
                return Err(bad(range));
            };
            let host = match master.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                _ => return Err(bad(range)),
            };
            let port = match master.get(1) {
                Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad(range))?,
                _ => return Err(bad(range)),
            };
            masters.push((host, port));
        }
        masters.sort();
        masters.dedup();
        Ok(masters)
    }

    /// One `SCAN` call on the standalone server, or on master `node` of the cluster.
    async fn scan_call(
        &self,
        node: usize,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>, bool)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        #[cfg(feature = "cluster")]
        if self.cluster {
            use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
            let masters = self.masters().await?;
            let Some((host, port)) = masters.get(node).cloned() else {
                return Err(session_core::Error::InvalidKey {
                    key: format!("{node}:{cursor}"),
                    reason: "scan cursor names a node the cluster does not have",
                });
            };
            let answer: Value = self
                .run("scan", |c| async move {
                    let Conn::Cluster(mut c) = c else {
                        unreachable!("a cluster store holds a cluster connection")
                    };
                    c.route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                    )
                    .await
                })
                .await?;
            let (next, keys) = self.scan_answer(answer)?;
            return Ok((next, keys, node + 1 < masters.len()));
        }
        let _ = node;
        let answer: Value = self
            .run("scan", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        let (next, keys) = self.scan_answer(answer)?;
        Ok((next, keys, false))
    }

    fn scan_answer(&self, answer: Value) -> Result<(u64, Vec<Vec<u8>>)> {
        let bad = |what: String| self.protocol(format!("SCAN answered {what}"));
        let Value::Array(parts) = answer else {
            return Err(bad(format!("{answer:?}")));
        };
        match <[Value; 2]>::try_from(parts) {
            Ok([Value::BulkString(cursor), Value::Array(keys)]) => {
                let cursor = std::str::from_utf8(&cursor)
                    .ok()
                    .and_then(|c| c.parse::<u64>().ok())
                    .ok_or_else(|| bad("a cursor that is not a number".into()))?;
                let keys = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(k) => Some(k),
                        _ => None,
                    })
                    .collect();
                Ok((cursor, keys))
            }
            other => Err(bad(format!("{other:?}"))),
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        self.get_one(key).await
    }

    async fn add(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<AddOutcome> {
        check_write(key, value, self.max_value_size)?;
        let version = self.new_version()?;
        let stored = envelope::encode(value, flags, version);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(key)).arg(stored).arg("NX");
        if !ttl.is_never() {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        let answer: Value = self
            .run("add", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        match answer {
            Value::Nil => Ok(AddOutcome::Exists),
            Value::Okay => Ok(AddOutcome::Stored(Some(version))),
            other => Err(self.protocol(format!("SET NX answered {other:?}"))),
        }
    }

    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        check_write(key, value, self.max_value_size)?;
        let version = self.new_version()?;
        let stored = envelope::encode(value, flags, version);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(key)).arg(stored);
        if !ttl.is_never() {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        let answer: Value = self
            .run("set", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        match answer {
            Value::Okay => Ok(Some(version)),
            other => Err(self.protocol(format!("SET answered {other:?}"))),
        }
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        check_write(key, value, self.max_value_size)?;
        let version = self.new_version()?;
        let stored = envelope::encode(value, flags, version);
        let full = self.full_key(key);
        if let Some(old) = self.ifeq.take(&full, expected)
            && let Some(outcome) = self.cas_ifeq(&full, &stored, &old, ttl, version).await?
        {
            return Ok(outcome);
        }
        let mut cmd = scripts::call(&scripts::CAS, &full);
        cmd.arg(&envelope::version_bytes(expected)[..])
            .arg(stored)
            .arg(ttl_ms(ttl));
        let answer: i64 = self.eval("cas", &scripts::CAS, cmd).await?;
        match answer {
            0 => Ok(CasOutcome::NotFound),
            1 => Ok(CasOutcome::Conflict),
            2 => Ok(CasOutcome::Stored(Some(version))),
            n => Err(self.protocol(format!("cas script answered {n}"))),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let full = self.full_key(key);
        let n: i64 = self
            .run("delete", |mut c| async move {
                redis::cmd("DEL").arg(&full).query_async(&mut c).await
            })
            .await?;
        Ok(n > 0)
    }

    /// `PEXPIRE` (1 if the key exists); for [`Ttl::NEVER`] a script, as
    /// `PERSIST` answers 0 both for a missing key and for one without expiry.
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool> {
        validate_key(key)?;
        if !ttl.is_never() {
            let full = self.full_key(key);
            let n: i64 = self
                .run("touch", |mut c| async move {
                    redis::cmd("PEXPIRE")
                        .arg(&full)
                        .arg(ttl_ms(ttl))
                        .query_async(&mut c)
                        .await
                })
                .await?;
            return Ok(n == 1);
        }
        let mut cmd = scripts::call(&scripts::TOUCH, &self.full_key(key));
        cmd.arg(ttl_ms(ttl));
        let n: i64 = self.eval("touch", &scripts::TOUCH, cmd).await?;
        Ok(n == 1)
    }

    fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    /// Reads the 13 header bytes only (`GETRANGE`), not the value.
    async fn version(&self, key: &str) -> Result<Option<Version>> {
        validate_key(key)?;
        let full = self.full_key(key);
        let head: Vec<u8> = self
            .run("version", |mut c| async move {
                redis::cmd("GETRANGE")
                    .arg(&full)
                    .arg(0)
                    .arg(envelope::HEADER_LEN - 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if head.is_empty() {
            return Ok(None);
        }
        match envelope::header(&head) {
            Some((_, version)) => Ok(Some(version)),
            None => Err(Error::Foreign {
                server: self.connector.server().to_owned(),
                key: self.full_key(key),
            }
            .into()),
        }
    }

    /// One pipeline of `GET` + `PTTL` per key on a standalone server; on a
    /// cluster the keys live on different nodes, so one read per key, all
    /// sent at once.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        for key in keys {
            validate_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.cluster {
            let reads = keys.iter().map(|k| self.get_one(k));
            return futures_util::future::join_all(reads)
                .await
                .into_iter()
                .collect();
        }
        self.read_many("get_many", keys, None).await
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let limit = limit.max(1);
        let mut position = Position::parse(cursor, self.cluster)?;
        let pattern = scan::pattern(&self.full_key(prefix));
        let (next, raw, more_nodes) = self
            .scan_call(
                position.node,
                position.cursor,
                &pattern,
                SCAN_COUNT.max(limit),
            )
            .await?;
        let keys: Vec<String> = raw
            .into_iter()
            .filter_map(|k| String::from_utf8(k).ok())
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|k| k.starts_with(prefix) && validate_key(k).is_ok())
            .collect();
        let (keys, last) = scan::cut(keys, position.after.as_deref(), limit);
        let next = if let Some(last) = last {
            // Cut: the same call again, after the last key delivered.
            position.after = Some(last);
            Some(position.to_cursor(self.cluster))
        } else if next != 0 {
            position.cursor = next;
            position.after = None;
            Some(position.to_cursor(self.cluster))
        } else if more_nodes {
            Some(
                Position {
                    node: position.node + 1,
                    cursor: 0,
                    after: None,
                }
                .to_cursor(self.cluster),
            )
        } else {
            None
        };
        Ok(ScanPage { keys, next })
    }

    async fn delete_if(&self, key: &str, expected: Version) -> Result<DeleteOutcome> {
        validate_key(key)?;
        let mut cmd = scripts::call(&scripts::DELETE_IF, &self.full_key(key));
        cmd.arg(&envelope::version_bytes(expected)[..]);
        let answer: i64 = self.eval("delete_if", &scripts::DELETE_IF, cmd).await?;
        match answer {
            0 => Ok(DeleteOutcome::NotFound),
            1 => Ok(DeleteOutcome::Conflict),
            2 => Ok(DeleteOutcome::Deleted),
            n => Err(self.protocol(format!("delete_if script answered {n}"))),
        }
    }

    async fn get_and_touch(&self, key: &str, ttl: Ttl) -> Result<Option<Entry>> {
        validate_key(key)?;
        if !self.cluster {
            let mut found = self.read_many("get_and_touch", &[key], Some(ttl)).await?;
            return Ok(found.pop().flatten());
        }
        let mut cmd = scripts::call(&scripts::GET_AND_TOUCH, &self.full_key(key));
        cmd.arg(ttl_ms(ttl));
        let answer: Value = self
            .eval("get_and_touch", &scripts::GET_AND_TOUCH, cmd)
            .await?;
        self.read_answer(key, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_convert_both_ways() {
        assert_eq!(ttl_ms(Ttl::NEVER), 0);
        assert_eq!(ttl_ms(Ttl::seconds(3)), 3000);
        assert_eq!(ttl_ms(Ttl::seconds(u32::MAX)), 4_294_967_295_000);
        assert_eq!(ttl_of(-1), Some(Ttl::NEVER));
        assert_eq!(ttl_of(-2), None);
        assert_eq!(ttl_of(2001), Some(Ttl::seconds(3)));
        assert_eq!(ttl_of(0), Some(Ttl::seconds(1)));
    }

    #[test]
    fn bad_input_fails_before_io() {
        // Port 1 refuses connections: any I/O would be an Unavailable error.
        let store = RedisStore::from_url("redis://127.0.0.1:1?max_value_size=4").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let e = store.set("k", b"12345", 0, Ttl::NEVER).await.unwrap_err();
            assert!(
                matches!(e, session_core::Error::ValueTooLarge { size: 5, limit: 4 }),
                "{e:?}"
            );
            let e = store.get("a b").await.unwrap_err();
            assert!(e.is_invalid_input(), "{e:?}");
            let e = store
                .scan("", Some(&ScanCursor::new("nope")), 10)
                .await
                .unwrap_err();
            assert!(e.is_invalid_input(), "{e:?}");
            let e = store.get("k").await.unwrap_err();
            assert!(e.is_retryable() && e.is_io(), "{e:?}");
        });
    }
}

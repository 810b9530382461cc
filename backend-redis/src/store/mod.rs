//! [`RedisStore`]: the [`Store`] impl. Every method validates its input
//! before any I/O, then sends one command, one script or one pipeline.
//!
//! The plumbing behind it, one concern per child module: `read.rs`
//! (reading items and decoding the stored string), `scanning.rs` (the
//! `SCAN` calls behind `scan`) and `topology.rs` (a cluster's masters, from
//! `CLUSTER SLOTS`). Each adds methods to [`RedisStore`]; what they share
//! (the connection, `run`, `eval`, the key prefix) stays here.

mod read;
mod scanning;
#[cfg(feature = "cluster")]
mod topology;

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
use crate::scripts;

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
        self.scan_page(prefix, cursor, limit).await
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
        let full = self.full_key(key);
        let mut cmd = scripts::call(&scripts::GET_AND_TOUCH, &full);
        cmd.arg(ttl_ms(ttl));
        let answer: Value = self
            .eval("get_and_touch", &scripts::GET_AND_TOUCH, cmd)
            .await?;
        self.read_answer(full, answer)
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

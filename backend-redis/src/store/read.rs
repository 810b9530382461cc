//! Reading items: one key or many, with or without a new expiry, on a
//! standalone server (plain `GET` + `PTTL` pipelines) or a cluster (the
//! read scripts), and the stored string decoded into an [`Entry`].

use redis::Value;
use session_core::{Entry, Result, Ttl};

use super::{RedisStore, ttl_ms, ttl_of};
use crate::envelope;
use crate::error::Error;
use crate::scripts;

impl RedisStore {
    /// An [`Entry`] from a stored string and its `PTTL`; the string is
    /// kept for a later `cas` when the server may know `IFEQ`.
    pub(super) fn entry(&self, key: &str, stored: Vec<u8>, pttl: i64) -> Result<Entry> {
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
    pub(super) fn read_answer(&self, key: &str, answer: Value) -> Result<Option<Entry>> {
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
    pub(super) async fn get_one(&self, key: &str) -> Result<Option<Entry>> {
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
    pub(super) async fn read_many(
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
    pub(super) fn read_pairs(
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
}

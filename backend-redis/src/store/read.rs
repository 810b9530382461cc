//! Reading items: one key or many, with or without a new expiry, on a
//! standalone server (plain `GET` + `PTTL` pipelines) or a cluster (the
//! read scripts), and the stored string decoded into an [`Entry`].

use redis::Value;
use redis::aio::ConnectionLike as _;
use session_core::{Entry, Result, Ttl};

use super::{RedisStore, ttl_ms, ttl_of};
use crate::envelope;
use crate::error::Error;
use crate::scripts;

impl RedisStore {
    /// An [`Entry`] from a stored string and its `PTTL`; the string is
    /// kept for a later `cas` when the server may know `IFEQ`. `full` is
    /// the Redis key, made once per read and moved into that cache (it was
    /// formatted a second time here, 0.25k instructions a read).
    pub(super) fn entry(&self, full: String, stored: Vec<u8>, pttl: i64) -> Result<Entry> {
        let (value, flags, version) = if self.ifeq.wanted(stored.len()) {
            let Some((flags, version)) = envelope::header(&stored) else {
                return Err(self.foreign(full));
            };
            let value = stored[envelope::HEADER_LEN..].to_vec();
            self.ifeq.keep(full, version, stored);
            (value, flags, version)
        } else {
            match envelope::decode(stored) {
                Some(decoded) => decoded,
                None => return Err(self.foreign(full)),
            }
        };
        Ok(Entry {
            value,
            flags,
            version,
            ttl: ttl_of(pttl),
        })
    }

    /// A value this crate did not write.
    fn foreign(&self, full: String) -> session_core::Error {
        Error::Foreign {
            server: self.connector.server().to_owned(),
            key: full,
        }
        .into()
    }

    /// Parses the `nil | {stored, pttl}` answer of the `GET` and
    /// `GET_AND_TOUCH` scripts.
    pub(super) fn read_answer(&self, full: String, answer: Value) -> Result<Option<Entry>> {
        match answer {
            Value::Nil => Ok(None),
            Value::Array(items) => match <[Value; 2]>::try_from(items) {
                Ok([Value::BulkString(stored), Value::Int(pttl)]) => {
                    self.entry(full, stored, pttl).map(Some)
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
        let full = self.full_key(key);
        if self.cluster {
            let cmd = scripts::call(&scripts::GET, &full);
            let answer: Value = self.eval("get", &scripts::GET, cmd).await?;
            return self.read_answer(full, answer);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&full).cmd("PTTL").arg(&full);
        // The connection's own call, not `pipe.query_async`: that one
        // copies the answers into a new vector twice over (ignored results
        // filtered, then the conversion to `Vec<Value>`), about 2.9k
        // instructions of a 20k read; here a server error is picked out
        // the same way, without the copies.
        let answer = self
            .run("get", |mut c| async move {
                let answer = c.req_packed_commands(&pipe, 0, 2).await?;
                first_error(answer)
            })
            .await?;
        let mut items = answer.into_iter();
        self.read_pair("get", full, &mut items)
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
        let fulls: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        for full in &fulls {
            pipe.cmd("GET").arg(full);
            match touch {
                Some(ttl) if ttl.is_never() => {
                    pipe.cmd("PERSIST").arg(full).ignore();
                }
                Some(ttl) => {
                    pipe.cmd("PEXPIRE").arg(full).arg(ttl_ms(ttl)).ignore();
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
        if answer.len() != keys.len() * 2 {
            return Err(self.protocol(format!(
                "{operation} of {} keys answered {} items",
                keys.len(),
                answer.len()
            )));
        }
        let mut items = answer.into_iter();
        fulls
            .into_iter()
            .map(|full| self.read_pair(operation, full, &mut items))
            .collect()
    }

    /// One key's entry from the next two answers of `items`: its stored
    /// string (nil for a missing key) and its `PTTL`.
    fn read_pair(
        &self,
        operation: &str,
        full: String,
        items: &mut impl Iterator<Item = Value>,
    ) -> Result<Option<Entry>> {
        match (items.next(), items.next()) {
            (Some(Value::Nil), Some(_)) => Ok(None),
            (Some(Value::BulkString(stored)), Some(Value::Int(pttl))) => {
                self.entry(full, stored, pttl).map(Some)
            }
            other => Err(self.protocol(format!("{operation} answered {other:?}"))),
        }
    }
}

/// `answer` itself, or the first server error in it as an error (what
/// `Pipeline::query_async` does, without its copies).
fn first_error(answer: Vec<Value>) -> redis::RedisResult<Vec<Value>> {
    if let Some(Value::ServerError(e)) = answer.iter().find(|v| matches!(v, Value::ServerError(_)))
    {
        return Err(e.clone().into());
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_in_the_answers_is_the_error() {
        let error = redis::parse_redis_value(b"-WRONGTYPE not a string\r\n").unwrap();
        assert!(matches!(error, Value::ServerError(_)), "{error:?}");
        let e = first_error(vec![error, Value::Int(5)]).unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e:?}");
        let fine = vec![Value::BulkString(b"v".to_vec()), Value::Int(5)];
        assert_eq!(first_error(fine.clone()).unwrap(), fine);
    }
}

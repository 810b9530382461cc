//! The cluster's topology: its masters, from `CLUSTER SLOTS`, which `scan`
//! visits one after the other (cargo feature `cluster`).

use redis::Value;
use session_core::Result;

use super::RedisStore;

impl RedisStore {
    /// The masters of the cluster, sorted by address, for `scan`.
    pub(super) async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let answer: Value = self
            .run("cluster slots", |mut c| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await?;
        masters_of(&answer).map_err(|v| self.protocol(format!("CLUSTER SLOTS answered {v:?}")))
    }
}

/// The distinct masters of a `CLUSTER SLOTS` answer, sorted by address;
/// the part of the answer that is not what Redis sends, if any.
fn masters_of(answer: &Value) -> std::result::Result<Vec<(String, u16)>, &Value> {
    let Value::Array(ranges) = answer else {
        return Err(answer);
    };
    let mut masters = Vec::new();
    for range in ranges {
        // [start, end, [host, port, id, ...], replicas...]
        let Value::Array(parts) = range else {
            return Err(range);
        };
        let Some(Value::Array(master)) = parts.get(2) else {
            return Err(range);
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            _ => return Err(range),
        };
        let port = match master.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| range)?,
            _ => return Err(range),
        };
        masters.push((host, port));
    }
    masters.sort();
    masters.dedup();
    Ok(masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, master: Value, replicas: Vec<Value>) -> Value {
        let mut parts = vec![Value::Int(start), Value::Int(end), master];
        parts.extend(replicas);
        Value::Array(parts)
    }

    #[test]
    fn masters_are_distinct_and_sorted_replicas_left_out() {
        let answer = Value::Array(vec![
            range(
                10923,
                16383,
                node("10.0.0.3", 7002),
                vec![node("10.0.0.9", 7009)],
            ),
            range(0, 5460, node("10.0.0.1", 7000), vec![]),
            // A master that owns two ranges (after a migration) is one master.
            range(5461, 10000, node("10.0.0.2", 7001), vec![]),
            range(10001, 10922, node("10.0.0.2", 7001), vec![]),
        ]);
        assert_eq!(
            masters_of(&answer),
            Ok(vec![
                ("10.0.0.1".to_owned(), 7000),
                ("10.0.0.2".to_owned(), 7001),
                ("10.0.0.3".to_owned(), 7002),
            ])
        );
        assert_eq!(masters_of(&Value::Array(vec![])), Ok(vec![]));
    }

    #[test]
    fn a_malformed_answer_names_the_part_at_fault() {
        assert_eq!(masters_of(&Value::Nil), Err(&Value::Nil));
        let bad_port = range(0, 16383, node("h", 70000), vec![]);
        let answer = Value::Array(vec![range(0, 1, node("ok", 1), vec![]), bad_port.clone()]);
        assert_eq!(masters_of(&answer), Err(&bad_port));
        let no_master = Value::Array(vec![Value::Int(0), Value::Int(1)]);
        assert_eq!(
            masters_of(&Value::Array(vec![no_master.clone()])),
            Err(&no_master)
        );
    }
}

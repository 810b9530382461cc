//! The `SCAN` calls behind [`Store::scan`](session_core::Store::scan): one
//! call per page, on the standalone server or on one master of the cluster
//! after another, cut to the page limit. The cursor's text and the `MATCH`
//! pattern are `crate::scan`'s.

use redis::Value;
use session_core::key::validate_key;
use session_core::{Result, ScanCursor, ScanPage};

use super::RedisStore;
#[cfg(feature = "cluster")]
use crate::conn::Conn;
use crate::scan::{self, Position};

/// Work one `SCAN` call does on the server (its `COUNT`): large enough that
/// a scan through a big database takes few pages, small enough that one
/// call never blocks the server for long.
const SCAN_COUNT: usize = 1000;

impl RedisStore {
    /// [`Store::scan`](session_core::Store::scan): one `SCAN` call, cut to
    /// the page limit, and the cursor to go on with.
    pub(super) async fn scan_page(
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

    /// One `SCAN` call on the standalone server, or on master `node` of the cluster.
    pub(super) async fn scan_call(
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

    pub(super) fn scan_answer(&self, answer: Value) -> Result<(u64, Vec<Vec<u8>>)> {
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

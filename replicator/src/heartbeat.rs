//! The heartbeat of one source: a small write every
//! [`Config::feed_heartbeat`](crate::Config::feed_heartbeat) under
//! [`HEARTBEAT_KEY`], which keeps memcached's logger thread awake.
//!
//! Why: memcached's logger thread (which writes `watch` lines) sleeps
//! between passes, 1 ms while it finds events and 1/8 longer after each
//! pass that finds none, up to 1 s. After an idle spell the first write's
//! feed line therefore waits out that sleep, and the next ones half of it,
//! and so on: measured on 1.6.18 and 1.6.38 alike, a write after 0.5 s
//! idle reached a watcher 20-60 ms late, after 3 s 36-255 ms late. A write
//! every 20 ms keeps the sleep at a few ms. The key is never replicated
//! (`run_marker::replicated`), expires on its own (60 s), and costs one
//! feed line each.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use backend_memcached::raw::RawConnection;
use session_core::Ttl;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::shared::{LinkShared, pause};

/// The key of the heartbeat write on each source; never replicated.
pub const HEARTBEAT_KEY: &str = "memorycached.replicator.heartbeat";

/// Writes the heartbeat on node `node` until asked to stop.
pub(crate) async fn heartbeat(
    shared: Arc<LinkShared>,
    node: usize,
    mut stop: watch::Receiver<bool>,
) {
    let Some(every) = shared.config.feed_heartbeat else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut conn: Option<RawConnection> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if conn.as_ref().is_some_and(RawConnection::is_broken) {
            conn = None;
        }
        let beat = async {
            if conn.is_none() {
                conn = Some(
                    RawConnection::connect(&shared.targets[node], shared.config.io_timeout).await?,
                );
            }
            match conn.as_mut() {
                Some(c) => c
                    .set(HEARTBEAT_KEY, b"1", 0, Ttl::seconds(60))
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        let beat = tokio::select! {
            b = beat => b,
            _ = stop.wait_for(|s| *s) => return,
        };
        match beat {
            Ok(()) => {
                shared.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // The node is away: its monitor and feed say so; try again
                // after a stats poll, not every tick.
                conn = None;
                if pause(shared.config.stats_poll, &mut stop).await {
                    return;
                }
            }
        }
    }
}

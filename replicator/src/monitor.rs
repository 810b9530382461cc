//! The monitor of one node: notices at once when a target comes back, or
//! comes back as a new run (restarted empty, flushed), and has it compared.
//!
//! Without it, a slave is only looked at when a copy is due (its copier
//! then waits out a backoff grown while it was down), and a restarted
//! empty slave got its keys back at the next periodic resync, up to a
//! minute later. Every `stats_poll`, the monitor reads the node's run (its
//! `stats` and the token under [`crate::RUN_MARKER`], one small round
//! trip); when the node answers after a failure, or answers as another
//! run, it wakes whoever waits out a backoff for that node (feed, copiers)
//! and starts the link's comparison now. The copiers also start it when
//! they meet a new run first (`copier.rs`, `forget_node`).

use std::sync::Arc;

use backend_memcached::raw::RawConnection;
use tokio::sync::watch;

use crate::run_marker::{Epoch, server_epoch};
use crate::shared::{LinkShared, pause};

/// Watches node `node` of the link until asked to stop.
pub(crate) async fn monitor(shared: Arc<LinkShared>, node: usize, mut stop: watch::Receiver<bool>) {
    let addr = shared.nodes[node].clone();
    let target = shared.targets[node].clone();
    let mut conn: Option<RawConnection> = None;
    let mut last: Option<Epoch> = None;
    // Whether the last look failed (the node was away).
    let mut away = false;
    // The first look is at once: it is the baseline a restart is told
    // against. Taken one `stats_poll` late, a node restarted within that
    // first spell (a bench restarted its slave 200 ms after the start)
    // was never told from its previous run (issue #23).
    let mut look_now = true;
    loop {
        if !std::mem::take(&mut look_now) && pause(shared.config.stats_poll, &mut stop).await {
            return;
        }
        if conn.as_ref().is_some_and(RawConnection::is_broken) {
            conn = None;
        }
        let had_conn = conn.is_some();
        let looked = async {
            if conn.is_none() {
                conn = Some(RawConnection::connect(&target, shared.config.io_timeout).await?);
            }
            match conn.as_mut() {
                Some(c) => server_epoch(c).await,
                None => Err(crate::Error::InvalidConfig(
                    "internal: no connection".into(),
                )),
            }
        };
        let epoch = tokio::select! {
            e = looked => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        match epoch {
            Ok(epoch) => {
                let new_run = last.as_ref().is_some_and(|l| !l.same_run(&epoch));
                if away || new_run {
                    let why = if new_run {
                        "answers as a new run (restarted or flushed)"
                    } else {
                        "answers again"
                    };
                    tracing::info!(link = %shared.name, server = %addr, why, "comparing now");
                    shared.health[node].came_back();
                    shared.resync_at_once();
                }
                away = false;
                last = Some(epoch);
            }
            Err(e) => {
                if !away {
                    tracing::debug!(link = %shared.name, server = %addr, error = %e, "monitor: no answer");
                }
                // A connection that worked broke: its server most likely
                // restarted and is back already. One more look at once, on
                // a fresh connection, rather than a `stats_poll` later.
                look_now = had_conn && !away;
                conn = None;
                away = true;
            }
        }
    }
}

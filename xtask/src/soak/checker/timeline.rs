//! What the faults mean for the promises: when a write or a delete made at
//! some time has certainly reached the other node, and which memcached
//! restarts could have lost it.

use crate::soak::history::{Fault, Node, Sample};

/// The faults of a run, in the forms the invariants ask about.
pub(crate) struct Timeline {
    /// Merged intervals during which replication may stall: every fault
    /// but a bridge restart (a memcached down, paused, cut or slowed; the
    /// replicator not running).
    stalls: Vec<(f64, f64)>,
    /// memcached restarts: (node, kill time, back time).
    pub(crate) restarts: Vec<(Node, f64, f64)>,
    /// Replicator kill -9 windows (kill, ready again), each with the last
    /// comparison end seen before the kill (history ms), if any.
    pub(crate) replicator_kills: Vec<(f64, f64, Option<f64>)>,
    /// Bridge restart windows: (node, SIGTERM, ready again).
    pub(crate) bridge_down: Vec<(Node, f64, f64)>,
    copy_ms: f64,
    heal_ms: f64,
}

impl Timeline {
    /// The timeline of `faults`; `samples` give the replicator's last
    /// comparison times, `unix_to_ms` converts them.
    pub(crate) fn new(
        faults: &[Fault],
        samples: &[Sample],
        unix_to_ms: impl Fn(f64) -> f64,
        copy_ms: f64,
        heal_ms: f64,
    ) -> Timeline {
        let mut stalls: Vec<(f64, f64)> = faults
            .iter()
            .filter(|f| f.kind != "bridge_restart")
            .map(|f| (f.start_ms, f.end_ms))
            .collect();
        stalls.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::new();
        for (s, e) in stalls {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let restarts = faults
            .iter()
            .filter(|f| f.kind == "memcached_restart")
            .filter_map(|f| Some((f.node?, f.start_ms, f.end_ms)))
            .collect();
        let replicator_kills = faults
            .iter()
            .filter(|f| f.kind == "replicator_kill")
            .map(|f| {
                let saved = samples
                    .iter()
                    .filter(|s| s.daemon == "replicator" && s.at_ms <= f.start_ms)
                    .filter_map(|s| s.last_resync_unix)
                    .map(&unix_to_ms)
                    .reduce(f64::max);
                (f.start_ms, f.end_ms, saved)
            })
            .collect();
        let bridge_down = faults
            .iter()
            .filter(|f| f.kind == "bridge_restart")
            .filter_map(|f| Some((f.node?, f.start_ms, f.end_ms)))
            .collect();
        Timeline {
            stalls: merged,
            restarts,
            replicator_kills,
            bridge_down,
            copy_ms,
            heal_ms,
        }
    }

    /// The time by which a change acknowledged at `t` is promised on the
    /// other node: `t` + the copy delay if no stall begins before then;
    /// otherwise the end of the stall + the heal delay, again as long as
    /// no stall begins within it.
    pub(crate) fn copied_by(&self, t: f64) -> f64 {
        let mut x = t;
        let mut d = self.copy_ms;
        loop {
            match self.stalls.iter().find(|(s, e)| *e > x && *s < x + d) {
                None => return x + d,
                Some((_, e)) => {
                    x = x.max(*e);
                    d = self.heal_ms;
                }
            }
        }
    }

    /// When a change to a session of `home` acknowledged at `end` (sent at
    /// `start`) becomes readable on `node`: at once on its own node, by
    /// [`copied_by`](Self::copied_by) on the other.
    pub(crate) fn visible_on(&self, home: Node, node: Node, end: f64) -> f64 {
        if node == home {
            end
        } else {
            self.copied_by(end)
        }
    }

    /// Whether a memcached restart in `from..=to` (any node) happened.
    pub(crate) fn restart_between(&self, from: f64, to: f64) -> bool {
        self.restarts.iter().any(|(_, k, _)| *k >= from && *k <= to)
    }

    /// Whether a write sent at `start` and acknowledged at `end` on `home`
    /// may have been lost by restarts: following the nodes that hold it
    /// (its own at once, both by `copied_by(end)`; a restarted node empty
    /// until `copied_by` of its return), it is lost when none holds it.
    /// Returns the restart that lost it.
    pub(crate) fn lost_by_restart(&self, home: Node, start: f64, end: f64) -> Option<f64> {
        let mut restarts: Vec<&(Node, f64, f64)> = self
            .restarts
            .iter()
            .filter(|(_, k, _)| *k >= start)
            .collect();
        restarts.sort_by(|a, b| a.1.total_cmp(&b.1));
        // Who holds it, and from when the other holds it too.
        let mut holders = vec![home];
        let mut both_at = self.copied_by(end);
        for (node, kill, back) in restarts {
            if *kill >= both_at && holders.len() == 1 {
                holders = vec!['a', 'b'];
            }
            holders.retain(|n| n != node);
            if holders.is_empty() {
                return Some(*kill);
            }
            both_at = self.copied_by(*back);
        }
        None
    }

    /// Whether a delete of a session of `home` acknowledged at `end` (sent
    /// at `start`) may be undone by a restart: its node restarted empty
    /// before the delete reached the other node, whose copy then comes
    /// back (an absence on a restarted node is no delete).
    pub(crate) fn delete_lost_by_restart(&self, home: Node, start: f64, end: f64) -> Option<f64> {
        let by = self.copied_by(end);
        self.restarts
            .iter()
            .find(|(n, k, _)| *n == home && *k >= start && *k < by)
            .map(|(_, k, _)| *k)
    }

    /// Whether a delete sent at `start`, acknowledged at `end`, of a
    /// session created at `created`, falls in a replicator kill -9 window
    /// with the session newer than the replicator's last saved state: the
    /// restarted replicator has no memory of the key being in sync, so the
    /// other node's copy comes back (the state file's documented limit: a
    /// crash loses what changed since the last comparison). A state older
    /// than the creation by less than the copy delay counts as older.
    pub(crate) fn delete_lost_by_kill(&self, start: f64, end: f64, created: f64) -> Option<f64> {
        self.replicator_kills
            .iter()
            .find(|(kill, back, saved)| {
                start < *back
                    && self.copied_by(end) > *kill
                    && saved.is_none_or(|s| created > s - self.copy_ms)
            })
            .map(|(kill, _, _)| *kill)
    }

    /// The kill of the replicator whose outage (until it was back and had
    /// had the copy delay to compare) covers `at`, if one does.
    pub(crate) fn replicator_down(&self, at: f64) -> Option<f64> {
        self.replicator_kills
            .iter()
            .find(|(kill, back, _)| *kill <= at && at <= *back + self.copy_ms)
            .map(|(kill, _, _)| *kill)
    }

    /// Whether `node`'s bridge was being restarted during `start..=end`.
    pub(crate) fn bridge_down(&self, node: Node, start: f64, end: f64) -> bool {
        self.bridge_down
            .iter()
            .any(|(n, s, e)| *n == node && start <= *e && end >= *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: &str, node: Option<Node>, start: f64, end: f64) -> Fault {
        Fault {
            id: 0,
            kind: kind.into(),
            target: String::new(),
            node,
            start_ms: start,
            end_ms: end,
            error: None,
        }
    }

    #[test]
    fn copies_wait_for_the_heal() {
        let t = Timeline::new(
            &[
                fault("link_cut", Some('a'), 1000.0, 3000.0),
                fault("memcached_restart", Some('b'), 10_000.0, 11_000.0),
                fault("bridge_restart", Some('a'), 20_000.0, 21_000.0),
            ],
            &[],
            |x| x,
            100.0,
            5000.0,
        );
        assert_eq!(t.copied_by(0.0), 100.0);
        // A stall starting within the copy delay postpones it.
        assert_eq!(t.copied_by(950.0), 8000.0);
        assert_eq!(t.copied_by(2000.0), 8000.0);
        // A bridge restart does not stall replication.
        assert_eq!(t.copied_by(20_500.0), 20_600.0);
        // Written on b just before b dies, not yet copied: lost.
        assert_eq!(t.lost_by_restart('b', 9_990.0, 9_995.0), Some(10_000.0));
        // Written on a: a still holds it.
        assert_eq!(t.lost_by_restart('a', 9_990.0, 9_995.0), None);
        // Copied long before: b's copy goes, a's stays.
        assert_eq!(t.lost_by_restart('b', 0.0, 10.0), None);
        assert_eq!(
            t.delete_lost_by_restart('b', 9_990.0, 9_995.0),
            Some(10_000.0)
        );
        assert_eq!(t.delete_lost_by_restart('b', 0.0, 10.0), None);
    }
}

//! Counters of one link and their Prometheus text.
//!
//! Hand-written text format (a few counters do not need a metrics crate),
//! one label `link` per series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Upper bounds of the lag histogram, seconds.
const LAG_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Upper bounds of the delete-delay histogram, seconds: from a few
/// milliseconds (a deletions feed) to minutes (a full comparison).
const DELETE_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

/// Counters of one link (one master->slave pair, or one mesh of peers).
#[derive(Debug, Default)]
pub struct LinkMetrics {
    /// Store events read from the feeds.
    pub events: AtomicU64,
    /// Feed lines that could not be read (logged, then ignored).
    pub malformed: AtomicU64,
    /// Events or keys dropped (full queue, failed copy); each schedules a
    /// resync, which copies them.
    pub skipped: AtomicU64,
    /// Times the feed showed (or the server's stats revealed) missed events.
    pub feed_gaps: AtomicU64,
    /// Items written to a target.
    pub copied: AtomicU64,
    /// Items deleted on a target.
    pub deleted: AtomicU64,
    /// Items whose TTL alone was corrected.
    pub touched: AtomicU64,
    /// Keys checked and found equal (nothing written).
    pub unchanged: AtomicU64,
    /// master↔master: keys changed on two sides since their last in-sync
    /// state (settled by the conflict rule).
    pub conflicts: AtomicU64,
    /// A conditional write lost to a concurrent client write (retried).
    pub retries: AtomicU64,
    /// Request or connection failures.
    pub errors: AtomicU64,
    /// Completed resyncs.
    pub resyncs: AtomicU64,
    /// Failed resyncs (retried with backoff).
    pub resync_failures: AtomicU64,
    /// 1 while a resync runs.
    pub resync_running: AtomicU64,
    /// Keys enqueued by the running (or last) resync.
    pub resync_keys: AtomicU64,
    /// Feeds currently connected.
    pub feeds_connected: AtomicU64,
    /// Keys waiting in the queues (updated by the copiers and the feed).
    pub queue_depth: AtomicU64,
    /// Lag histogram counts (cumulative buckets are computed on render).
    lag_buckets: [AtomicU64; LAG_BUCKETS.len() + 1],
    /// Sum of observed lags, microseconds.
    lag_sum_us: AtomicU64,
    /// Last observed lag, microseconds.
    pub lag_last_us: AtomicU64,
    /// Saves of the state file after a comparison (master↔master with
    /// `state_file`).
    pub state_saves: AtomicU64,
    /// Heartbeat writes to the sources (`Config::feed_heartbeat`).
    pub heartbeats: AtomicU64,
    /// When the last full comparison ended, milliseconds since the Unix
    /// epoch (0: none yet).
    pub resync_last_end_ms: AtomicU64,
    /// How long the last full comparison took, microseconds.
    pub resync_last_duration_us: AtomicU64,
    /// Per source server: whether its feed has `watch deletions` (deletes
    /// arrive at once) or only `mutations` (deletes wait for a resync).
    deletions_feed: Mutex<BTreeMap<String, bool>>,
    /// Delete-delay histogram counts (cumulative buckets on render).
    delete_buckets: [AtomicU64; DELETE_BUCKETS.len() + 1],
    /// Sum of observed delete delays, microseconds.
    delete_sum_us: AtomicU64,
    /// Completed key-list comparisons (servers without `watch deletions`).
    pub key_lists: AtomicU64,
    /// Keys whose lists differed, queued by key-list comparisons.
    pub key_list_differences: AtomicU64,
    /// How long the last key-list comparison took, microseconds.
    pub key_list_last_duration_us: AtomicU64,
    /// Copies a target refused as too large (`SERVER_ERROR object too
    /// large`): counted and skipped until the source's item changes.
    pub too_large: AtomicU64,
}

impl LinkMetrics {
    /// Records the lag of one copy: from the source's event timestamp to
    /// the write on the target.
    pub fn observe_lag(&self, secs: f64) {
        let secs = secs.max(0.0);
        let i = LAG_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LAG_BUCKETS.len());
        self.lag_buckets[i].fetch_add(1, Ordering::Relaxed);
        let us = (secs * 1e6) as u64;
        self.lag_sum_us.fetch_add(us, Ordering::Relaxed);
        self.lag_last_us.store(us, Ordering::Relaxed);
    }

    /// Records the delay of one delete: from when it was seen (the feed's
    /// `deleted` line, or the start of the key-list comparison that found
    /// it) to its delete on a target.
    pub fn observe_delete_delay(&self, secs: f64) {
        let secs = secs.max(0.0);
        let i = DELETE_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DELETE_BUCKETS.len());
        self.delete_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.delete_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Number of delete delays observed.
    pub fn delete_delay_count(&self) -> u64 {
        self.delete_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Number of lags observed.
    pub fn lag_count(&self) -> u64 {
        self.lag_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Records a completed full comparison: how long it took, and when it
    /// ended.
    pub fn record_resync(&self, took: Duration, ended: SystemTime) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.resync_last_duration_us.store(us, Ordering::Relaxed);
        let ms = ended
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.resync_last_end_ms.store(ms, Ordering::Relaxed);
    }

    /// Records whether `server`'s feed reports deletes.
    pub fn set_deletions_feed(&self, server: &str, in_use: bool) {
        self.deletions_feed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(server.to_owned(), in_use);
    }

    /// Per source server seen so far: whether its feed reports deletes.
    pub fn deletions_feed(&self) -> BTreeMap<String, bool> {
        self.deletions_feed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Name, type, help and accessor of one series.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&LinkMetrics) -> &AtomicU64,
);

/// Name, help and reading (in seconds) of one gauge.
type SecondsGauge = (&'static str, &'static str, fn(&LinkMetrics) -> f64);

/// Renders every link's counters in Prometheus text format.
pub fn render(links: &[(String, &LinkMetrics)]) -> String {
    let mut out = String::new();
    let series: [Series; 22] = [
        (
            "replicator_events_total",
            "counter",
            "store events read from the feeds",
            |m| &m.events,
        ),
        (
            "replicator_malformed_lines_total",
            "counter",
            "feed lines that could not be read",
            |m| &m.malformed,
        ),
        (
            "replicator_skipped_total",
            "counter",
            "events or keys dropped and left to a resync",
            |m| &m.skipped,
        ),
        (
            "replicator_feed_gaps_total",
            "counter",
            "times the feed missed events",
            |m| &m.feed_gaps,
        ),
        (
            "replicator_copied_total",
            "counter",
            "items written to a target",
            |m| &m.copied,
        ),
        (
            "replicator_deleted_total",
            "counter",
            "items deleted on a target",
            |m| &m.deleted,
        ),
        (
            "replicator_touched_total",
            "counter",
            "items whose TTL was corrected",
            |m| &m.touched,
        ),
        (
            "replicator_unchanged_total",
            "counter",
            "keys checked and found in sync",
            |m| &m.unchanged,
        ),
        (
            "replicator_conflicts_total",
            "counter",
            "keys changed on two peers at once",
            |m| &m.conflicts,
        ),
        (
            "replicator_retries_total",
            "counter",
            "conditional writes retried after a concurrent write",
            |m| &m.retries,
        ),
        (
            "replicator_errors_total",
            "counter",
            "request or connection failures",
            |m| &m.errors,
        ),
        (
            "replicator_resyncs_total",
            "counter",
            "completed full comparisons",
            |m| &m.resyncs,
        ),
        (
            "replicator_resync_failures_total",
            "counter",
            "failed full comparisons",
            |m| &m.resync_failures,
        ),
        (
            "replicator_resync_running",
            "gauge",
            "1 while a full comparison runs",
            |m| &m.resync_running,
        ),
        (
            "replicator_resync_keys",
            "gauge",
            "keys enqueued by the current or last resync",
            |m| &m.resync_keys,
        ),
        (
            "replicator_feeds_connected",
            "gauge",
            "change feeds connected",
            |m| &m.feeds_connected,
        ),
        (
            "replicator_state_saves_total",
            "counter",
            "saves of the state file after a comparison",
            |m| &m.state_saves,
        ),
        (
            "replicator_heartbeats_total",
            "counter",
            "heartbeat writes that keep the sources' logger threads awake",
            |m| &m.heartbeats,
        ),
        (
            "replicator_key_lists_total",
            "counter",
            "key-list comparisons (servers without watch deletions)",
            |m| &m.key_lists,
        ),
        (
            "replicator_key_list_differences_total",
            "counter",
            "keys whose lists differed, queued for a read",
            |m| &m.key_list_differences,
        ),
        (
            "replicator_too_large_total",
            "counter",
            "copies a target refused as too large (skipped until the item changes)",
            |m| &m.too_large,
        ),
        (
            "replicator_queue_depth",
            "gauge",
            "keys waiting to be copied",
            |m| &m.queue_depth,
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (link, m) in links {
            let _ = writeln!(
                out,
                "{name}{{link=\"{link}\"}} {}",
                get(m).load(Ordering::Relaxed)
            );
        }
    }
    let seconds: [SecondsGauge; 3] = [
        (
            "replicator_resync_last_end_timestamp_seconds",
            "when the last full comparison ended (Unix time; 0 = none yet)",
            |m| m.resync_last_end_ms.load(Ordering::Relaxed) as f64 / 1e3,
        ),
        (
            "replicator_resync_last_duration_seconds",
            "how long the last full comparison took",
            |m| m.resync_last_duration_us.load(Ordering::Relaxed) as f64 / 1e6,
        ),
        (
            "replicator_key_list_last_duration_seconds",
            "how long the last key-list comparison took",
            |m| m.key_list_last_duration_us.load(Ordering::Relaxed) as f64 / 1e6,
        ),
    ];
    for (name, help, get) in seconds {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (link, m) in links {
            let _ = writeln!(out, "{name}{{link=\"{link}\"}} {}", get(m));
        }
    }
    let name = "replicator_deletions_feed";
    let _ = writeln!(
        out,
        "# HELP {name} 1 when the server's feed reports deletes (watch deletions), 0 when deletes wait for a comparison\n# TYPE {name} gauge"
    );
    for (link, m) in links {
        for (server, in_use) in m.deletions_feed() {
            let _ = writeln!(
                out,
                "{name}{{link=\"{link}\",server=\"{server}\"}} {}",
                u8::from(in_use)
            );
        }
    }
    histogram(
        &mut out,
        "replicator_lag_seconds",
        "from a write on the source to its copy on the target",
        &LAG_BUCKETS,
        links,
        |m| (&m.lag_buckets[..], &m.lag_sum_us),
    );
    histogram(
        &mut out,
        "replicator_delete_delay_seconds",
        "from a delete seen (feed line, or the key-list comparison that found it) to its delete on a target",
        &DELETE_BUCKETS,
        links,
        |m| (&m.delete_buckets[..], &m.delete_sum_us),
    );
    out
}

/// One histogram series per link: `counts` has one more slot than
/// `bounds` (above the last bound); the sum is in microseconds.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[f64],
    links: &[(String, &LinkMetrics)],
    get: fn(&LinkMetrics) -> (&[AtomicU64], &AtomicU64),
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (link, m) in links {
        let (counts, sum_us) = get(m);
        let mut cumulative = 0;
        for (bound, count) in bounds.iter().zip(counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{link=\"{link}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let total: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "{name}_bucket{{link=\"{link}\",le=\"+Inf\"}} {total}");
        let sum = sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{link=\"{link}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{link=\"{link}\"}} {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_lag() {
        let m = LinkMetrics::default();
        m.copied.fetch_add(3, Ordering::Relaxed);
        m.observe_lag(0.002);
        m.observe_lag(100.0);
        let text = render(&[("a>b".into(), &m)]);
        assert!(
            text.contains("replicator_copied_total{link=\"a>b\"} 3"),
            "{text}"
        );
        assert!(text.contains("replicator_lag_seconds_bucket{link=\"a>b\",le=\"0.0025\"} 1"));
        assert!(text.contains("replicator_lag_seconds_bucket{link=\"a>b\",le=\"+Inf\"} 2"));
        assert!(text.contains("replicator_lag_seconds_count{link=\"a>b\"} 2"));
    }

    #[test]
    fn renders_comparison_times_and_feeds() {
        let m = LinkMetrics::default();
        m.record_resync(
            Duration::from_millis(1500),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        m.set_deletions_feed("h:1", true);
        m.observe_delete_delay(0.02);
        m.observe_delete_delay(1.5);
        m.set_deletions_feed("h:2", false);
        let text = render(&[("l".into(), &m)]);
        for line in [
            "replicator_resync_last_end_timestamp_seconds{link=\"l\"} 1700000000",
            "replicator_resync_last_duration_seconds{link=\"l\"} 1.5",
            "replicator_deletions_feed{link=\"l\",server=\"h:1\"} 1",
            "replicator_deletions_feed{link=\"l\",server=\"h:2\"} 0",
            "replicator_state_saves_total{link=\"l\"} 0",
            "replicator_delete_delay_seconds_bucket{link=\"l\",le=\"0.025\"} 1",
            "replicator_delete_delay_seconds_bucket{link=\"l\",le=\"2\"} 2",
            "replicator_delete_delay_seconds_count{link=\"l\"} 2",
            "replicator_too_large_total{link=\"l\"} 0",
            "replicator_key_lists_total{link=\"l\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}

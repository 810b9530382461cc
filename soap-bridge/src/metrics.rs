//! [`Metrics`]: request counters and a latency histogram, rendered in the
//! Prometheus text format at `/metrics`.
//!
//! Hand-written rather than `prometheus-client` or
//! `metrics-exporter-prometheus`: three metric families with two labels fit
//! in this file, and either crate would add a dependency tree (and, for the
//! exporter, its own HTTP listener) to a machine where builds are the
//! bottleneck.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One operation's counters.
#[derive(Debug, Default)]
struct Operation {
    /// Requests by outcome.
    outcomes: BTreeMap<String, u64>,
    latency: Histogram,
}

impl Operation {
    /// Counts one request that ended with `status` after `secs`.
    fn record(&mut self, status: &str, secs: f64) {
        match self.outcomes.get_mut(status) {
            Some(n) => *n += 1,
            None => {
                self.outcomes.insert(status.to_owned(), 1);
            }
        }
        let h = &mut self.latency;
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
    }
}

/// Keyed by name, looked up by `&str`: a request allocates nothing once
/// its operation and outcome have been seen (they used to cost three
/// `String`s per request).
#[derive(Debug, Default)]
struct Inner {
    operations: BTreeMap<String, Operation>,
    store_errors: BTreeMap<String, u64>,
}

/// The bridge's counters. Shared by all requests.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one request of `operation` that ended with `status` (an HTTP
    /// status or a fault code) after `elapsed`.
    pub fn observe(&self, operation: &str, status: &str, elapsed: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        match inner.operations.get_mut(operation) {
            Some(op) => op.record(status, secs),
            None => {
                let mut op = Operation::default();
                op.record(status, secs);
                inner.operations.insert(operation.to_owned(), op);
            }
        }
    }

    /// Records a store error of `kind` (session-core's error kind).
    pub fn store_error(&self, kind: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            *inner.store_errors.entry(kind.to_owned()).or_default() += 1;
        }
    }

    /// The Prometheus text exposition of everything recorded, plus
    /// `extra` lines (already formatted).
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP soap_bridge_requests_total Requests by operation and outcome.\n");
        out.push_str("# TYPE soap_bridge_requests_total counter\n");
        for (op, counters) in &inner.operations {
            for (status, n) in &counters.outcomes {
                let _ = writeln!(
                    out,
                    "soap_bridge_requests_total{{operation=\"{}\",status=\"{}\"}} {n}",
                    label(op),
                    label(status)
                );
            }
        }
        out.push_str("# HELP soap_bridge_request_duration_seconds Request latency by operation.\n");
        out.push_str("# TYPE soap_bridge_request_duration_seconds histogram\n");
        for (op, counters) in &inner.operations {
            let (op, h) = (label(op), &counters.latency);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "soap_bridge_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "soap_bridge_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "soap_bridge_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "soap_bridge_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP soap_bridge_store_errors_total Store errors by kind.\n");
        out.push_str("# TYPE soap_bridge_store_errors_total counter\n");
        for (kind, n) in &inner.store_errors {
            let _ = writeln!(
                out,
                "soap_bridge_store_errors_total{{kind=\"{}\"}} {n}",
                label(kind)
            );
        }
        out.push_str(extra);
        out
    }
}

/// A label value, escaped as the text format requires.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.observe("getSession", "200", Duration::from_millis(3));
        m.observe("getSession", "soap:Client", Duration::from_secs(10));
        m.store_error("timeout");
        let text = m.render("");
        assert!(
            text.contains("soap_bridge_requests_total{operation=\"getSession\",status=\"200\"} 1")
        );
        assert!(text.contains(
            "soap_bridge_request_duration_seconds_bucket{operation=\"getSession\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "soap_bridge_request_duration_seconds_bucket{operation=\"getSession\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("soap_bridge_store_errors_total{kind=\"timeout\"} 1"));
    }
}

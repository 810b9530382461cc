//! Samples every daemon's resident memory and open descriptors from
//! `/proc` once a second, and the replicator's last comparison time from
//! its `/metrics` (its state file is saved at the end of each comparison,
//! which tells the checker what a kill -9 can lose).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::fleet::Fleet;
use super::history::{History, Record, Sample};

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open descriptors (entries of `/proc/PID/fd`).
fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The largest `replicator_resync_last_end_timestamp_seconds` in a
/// metrics text (one line per link).
pub(crate) fn last_resync(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("replicator_resync_last_end_timestamp_seconds"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .reduce(f64::max)
}

/// Samples until `until_ms`.
pub(crate) async fn sample(
    fleet: Arc<Mutex<Fleet>>,
    history: History,
    http: reqwest::Client,
    metrics_url: String,
    until_ms: f64,
) {
    while history.now_ms() < until_ms {
        let pids = fleet.lock().await.pids();
        let at_ms = history.now_ms();
        for (daemon, pid) in pids {
            let Some(pid) = pid else { continue };
            let (Some(rss), Some(fds)) = (rss_kib(pid), fds(pid)) else {
                continue;
            };
            let last_resync_unix = if daemon == "replicator" {
                match http
                    .get(&metrics_url)
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.ok().as_deref().and_then(last_resync),
                    Err(_) => None,
                }
            } else {
                None
            };
            history.append(&Record::Sample(Sample {
                daemon,
                pid,
                at_ms,
                rss_kib: rss,
                fds,
                last_resync_unix,
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_resync_is_the_largest_of_the_links() {
        let text = "# TYPE x gauge\nreplicator_resync_last_end_timestamp_seconds{link=\"a\"} 1700000000.5\nreplicator_resync_last_end_timestamp_seconds{link=\"b\"} 1700000003\nreplicator_resync_running 0\n";
        assert_eq!(super::last_resync(text), Some(1_700_000_003.0));
        assert_eq!(super::last_resync("replicator_resync_running 1\n"), None);
    }
}

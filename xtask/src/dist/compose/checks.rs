//! The checks `cargo xtask dist --verify` runs on a started fleet, each
//! printed as pass or FAIL with what it measured.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};

use super::{
    fleet::Fleet,
    http::{Response, request},
};

/// How long a session written in one data centre may take to be readable
/// in the other (issue #25: within 1 s).
pub(crate) const CREATE_DEADLINE: Duration = Duration::from_secs(1);

/// How long a delete may take to reach the other data centre. The
/// replicator promises milliseconds (its tests: p99 under 50 ms) for both
/// ways a delete travels here (memcached 1.6.38+'s deletions feed, or
/// 1.6.18 with the bridges' delete markers); the deadline is generous for
/// a loaded machine and the measured delay is printed.
pub(crate) const DELETE_DEADLINE: Duration = Duration::from_secs(1);

/// Pass/fail lines, and the failures for the final verdict.
#[derive(Default)]
pub(crate) struct Report {
    failures: Vec<String>,
}

impl Report {
    /// Prints `name`'s outcome with the time since `started`; true if it passed.
    pub(crate) fn record(
        &mut self,
        name: &str,
        started: Instant,
        outcome: anyhow::Result<String>,
    ) -> bool {
        let elapsed = started.elapsed();
        match outcome {
            Ok(detail) => {
                println!("  PASS {name} ({elapsed:.1?}): {detail}");
                true
            }
            Err(e) => {
                println!("  FAIL {name} ({elapsed:.1?}): {e:#}");
                self.failures.push(format!("{name}: {e:#}"));
                false
            }
        }
    }

    /// Prints that `name` did not run because an earlier check failed.
    pub(crate) fn skipped(&mut self, name: &str, because: &str) {
        println!("  FAIL {name}: not run ({because})");
        self.failures.push(format!("{name}: not run ({because})"));
    }

    /// Ok when every check passed.
    pub(crate) fn verdict(self) -> anyhow::Result<()> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            bail!(
                "{} compose check(s) failed: {}",
                self.failures.len(),
                self.failures.join("; ")
            )
        }
    }
}

/// What the replicator said about its sources once ready.
pub(crate) struct ReplicatorReady {
    /// Every source has `watch deletions` (memcached 1.6.38+).
    pub(crate) deletions_feed: bool,
}

/// Waits until the replicator's feeds from both memcached are connected and
/// its first full comparison has ended (its `/metrics`), so what the
/// checks write next travels by the feeds.
pub(crate) fn replicator_ready(
    addr: SocketAddr,
    limit: Duration,
) -> anyhow::Result<ReplicatorReady> {
    let started = Instant::now();
    loop {
        let last = match request(addr, "GET", "/metrics", None) {
            Ok(Response { status: 200, body }) => {
                let feeds = metric_sum(&body, "replicator_feeds_connected");
                let resynced = metric_sum(&body, "replicator_resync_last_end_timestamp_seconds");
                if feeds >= 2.0 && resynced > 0.0 {
                    // 1 per source whose feed reports deletes.
                    let deletions = metric_sum(&body, "replicator_deletions_feed");
                    return Ok(ReplicatorReady {
                        deletions_feed: deletions >= 2.0,
                    });
                }
                format!(
                    "{feeds} feeds connected, first comparison ended: {}",
                    resynced > 0.0
                )
            }
            Ok(r) => format!("/metrics answered {}", r.status),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() > limit {
            bail!("the replicator was not ready after {limit:?} (last: {last})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of every sample of `name` (all label sets) in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = match rest.chars().next()? {
                '{' => rest.rsplit_once('}')?.1,
                ' ' => rest,
                _ => return None,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// One session sent across: created through bridge A, then read through
/// bridge B by id and by user.
pub(crate) struct Across {
    /// The session id bridge A answered.
    pub(crate) id: String,
    /// From A's 201 to B's first answer with the session.
    pub(crate) by_id: Duration,
    /// From A's 201 to B's `/principals/{uid}` answering it.
    pub(crate) by_user: Duration,
}

/// Creates a session through bridge A (`POST /sessions`, a `uid` of its
/// own) and polls bridge B until it serves it, by id, then by user.
pub(crate) fn across(a: SocketAddr, b: SocketAddr, round: usize) -> anyhow::Result<Across> {
    let uid = format!("verify-{}-{round}", std::process::id());
    let body = serde_json::json!({ "uid": uid, "from": "bridge-a" }).to_string();
    let r = request(a, "POST", "/sessions", Some(&body))?;
    ensure!(
        r.status == 201,
        "POST /sessions on bridge A answered {}: {}",
        r.status,
        r.body
    );
    let at = Instant::now();
    let answer: serde_json::Value =
        serde_json::from_str(&r.body).with_context(|| format!("reading {:?}", r.body))?;
    let Some(id) = answer.get("id").and_then(|v| v.as_str()) else {
        bail!("POST /sessions answered no id: {}", r.body);
    };
    let by_id = readable(b, &format!("/sessions/{id}"), &uid, at, CREATE_DEADLINE)?;
    let by_user = readable(b, &format!("/principals/{uid}"), &uid, at, CREATE_DEADLINE)?;
    Ok(Across {
        id: id.to_owned(),
        by_id,
        by_user,
    })
}

/// `12.3, 4.5 ms (max 12.3 ms)`.
pub(crate) fn millis(delays: &[Duration]) -> String {
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let list: Vec<String> = delays.iter().map(|d| format!("{:.1}", ms(d))).collect();
    let max = delays.iter().map(ms).fold(0.0, f64::max);
    format!("{} ms (max {max:.1} ms)", list.join(", "))
}

/// Polls `path` on `addr` until it answers 200 with a `uid` of `uid`;
/// the time from `since`.
fn readable(
    addr: SocketAddr,
    path: &str,
    uid: &str,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let last = poll(since, limit, || {
        let r = request(addr, "GET", path, None)?;
        let found = r.status == 200
            && serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("uid").and_then(|u| u.as_str()).map(|u| u == uid))
                .unwrap_or(false);
        Ok((found, format!("{} {}", r.status, r.body.trim())))
    })?;
    last.with_context(|| format!("GET {path} did not find the session"))
}

/// Deletes the session through `b`, then polls `a` until it answers 404;
/// the delay from B's answer to A's 404.
pub(crate) fn delete_travels(b: SocketAddr, a: SocketAddr, id: &str) -> anyhow::Result<Duration> {
    let path = format!("/sessions/{id}");
    let r = request(b, "DELETE", &path, None)?;
    ensure!(
        r.status == 204,
        "DELETE {path} on bridge B answered {}: {}",
        r.status,
        r.body
    );
    let since = Instant::now();
    let last = poll(since, DELETE_DEADLINE, || {
        let r = request(a, "GET", &path, None)?;
        Ok((r.status == 404, format!("{} {}", r.status, r.body.trim())))
    })?;
    last.with_context(|| format!("bridge A still serves {path}"))
}

/// Calls `probe` until it says done or `limit` has passed since `since`:
/// `Ok(Ok(elapsed))` when done, `Ok(Err(..))` naming the last answer when
/// not. A request error is an answer too (the last one is reported).
fn poll(
    since: Instant,
    limit: Duration,
    mut probe: impl FnMut() -> anyhow::Result<(bool, String)>,
) -> anyhow::Result<anyhow::Result<Duration>> {
    loop {
        let last = match probe() {
            Ok((true, _)) => return Ok(Ok(since.elapsed())),
            Ok((false, last)) => last,
            Err(e) => format!("{e:#}"),
        };
        if since.elapsed() > limit {
            return Ok(Err(anyhow::anyhow!(
                "not within {limit:?}; last answer: {last}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where each service logs: our daemons to stdout (the images' `--log-output
/// stdout`), memcached to stderr.
#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

/// What each service logs on a clean stop, and on which stream.
const CLEAN_LINES: &[(&str, &str, Stream)] = &[
    ("bridge-a", "all connections closed", Stream::Stdout),
    ("bridge-b", "all connections closed", Stream::Stdout),
    (
        "replicator",
        "stopped; every queued key was copied",
        Stream::Stdout,
    ),
    ("memcached-a", "Exiting normally", Stream::Stderr),
    ("memcached-b", "Exiting normally", Stream::Stderr),
];

/// `docker-compose stop` (SIGTERM, then each service's grace period), then
/// each container: exit code 0, never restarted, its clean stop logged on
/// its stream, and (our daemons) no colour codes, as its log is no terminal.
pub(crate) fn stop_cleanly(fleet: &Fleet) -> anyhow::Result<String> {
    let started = Instant::now();
    fleet.compose(&["stop"])?;
    let stop_time = started.elapsed();
    let mut problems = Vec::new();
    for &(service, line, stream) in CLEAN_LINES {
        let state = fleet.inspect(service, "{{.State.ExitCode}} {{.RestartCount}}")?;
        let (stdout, stderr) = fleet.logs(service)?;
        let log = if stream == Stream::Stdout {
            &stdout
        } else {
            &stderr
        };
        let logged = log.contains(line);
        let where_ = if stream == Stream::Stdout {
            "stdout"
        } else {
            "stderr"
        };
        println!("    {service}: exit code and restarts {state:?}; {line:?} on {where_}: {logged}");
        if state != "0 0" {
            problems.push(format!("{service} exited/restarted {state:?}"));
        }
        if !logged {
            problems.push(format!("{service} did not log {line:?} on {where_}"));
        }
        if stream == Stream::Stdout && stdout.contains("\x1b[") {
            problems.push(format!("{service} wrote ANSI colour codes to its log"));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join(", "));
    Ok(format!(
        "`docker-compose stop` took {stop_time:.1?}; {} containers exited 0",
        CLEAN_LINES.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_samples_are_summed_across_labels() {
        let text = "# HELP replicator_feeds_connected x\n\
                    replicator_feeds_connected{link=\"mesh\"} 1\n\
                    replicator_feeds_connected{link=\"other\"} 1\n\
                    replicator_feeds_connected_total 9\n\
                    plain 2.5\n";
        assert_eq!(metric_sum(text, "replicator_feeds_connected"), 2.0);
        assert_eq!(metric_sum(text, "plain"), 2.5);
        assert_eq!(metric_sum(text, "absent"), 0.0);
    }
}

//! The compose fleet's checks (`cargo xtask dist --verify`): starts
//! `deploy/compose.yaml` — two memcached, the replicator between them, a
//! bridge on each — on the images `dist` just built, as an operator would
//! with `docker-compose up`, and checks what the fleet is for:
//!
//! 1. every daemon's image `HEALTHCHECK` reports healthy;
//! 2. a session created through bridge A (JSON mirror, `POST /sessions`)
//!    is readable through bridge B within 1 s, and B finds it by its user
//!    (the principal index, replicated like every key);
//! 3. a delete through B is gone on A within the delay the replicator's
//!    docs promise (milliseconds; deadline 1 s, the delay printed);
//! 4. `docker-compose stop` (SIGTERM) drains cleanly: every container exits
//!    0, never restarted, having logged its clean stop.
//!
//! Each check prints pass or FAIL with its time; `down -v` always follows,
//! also after a failure. The fleet runs under a project name of its own
//! and on free ports, so it never touches another fleet.
//!
//! memcached comes from `MEMCACHED_IMAGE` when set, else from the local
//! image test-support builds from the host's memcached (no registry
//! needed; reused when present).
//!
//! Layout, under `compose/`: `fleet.rs` (the project: commands, health,
//! `down -v` on drop), `checks.rs` (the checks), `http.rs` (their HTTP).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use test_support::BuildMethod;

mod checks;
mod fleet;
mod http;

use checks::Report;
use fleet::{Fleet, Ports, local};

/// Sessions sent across (each created, read on the other side, deleted
/// there and checked gone), one at a time: several delays, not one.
const ROUNDS: usize = 5;

/// The checks' names, as printed.
const STARTS: &str = "the fleet starts, every HEALTHCHECK healthy";
const A_TO_B: &str = "A to B: sessions created through bridge A are readable through bridge B";
const DELETE_B_TO_A: &str = "delete B to A: deletes through bridge B are gone on bridge A";
const SIGTERM: &str = "SIGTERM (docker-compose stop) drains cleanly";

/// How long the fleet may take to start and report healthy.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// Starts `deploy/compose.yaml` on the local images and checks it.
pub(crate) fn verify() -> anyhow::Result<()> {
    let root = crate::project_root();
    let file = root.join("deploy/compose.yaml");
    compose_answers()?;
    let bridge = "memorycached/soap-bridge:latest";
    let replicator = "memorycached/replicator:latest";
    for image in [bridge, replicator] {
        image_present(image)?;
    }
    let memcached = memcached_image()?;
    let ports = Ports::free()?;
    let prefix = "memorycached-verify-";
    for stale in fleet::remove_stale(prefix, &file)? {
        println!("compose: removed {stale}, left by an earlier run that died");
    }
    let project = format!("{prefix}{}", std::process::id());
    println!(
        "compose: starting {} as project {project} (memcached: {memcached}; bridges on \
         127.0.0.1:{} and :{}, replicator on :{})",
        file.display(),
        ports.bridge_a,
        ports.bridge_b,
        ports.replicator
    );
    let mut fleet = Fleet::new(
        project,
        file,
        vec![
            ("MEMCACHED_IMAGE", memcached),
            ("BRIDGE_IMAGE", bridge.to_owned()),
            ("REPLICATOR_IMAGE", replicator.to_owned()),
            ("PUBLISH_ADDRESS", "127.0.0.1".to_owned()),
            ("BRIDGE_A_PORT", ports.bridge_a.to_string()),
            ("BRIDGE_B_PORT", ports.bridge_b.to_string()),
            ("REPLICATOR_PORT", ports.replicator.to_string()),
        ],
    );
    let result = run_checks(&mut fleet, &ports);
    if result.is_err() {
        println!(
            "compose: the last log lines of {}:\n{}",
            fleet.project(),
            fleet.tail_logs()
        );
    }
    // `fleet` drops here: `down -v`, whatever happened.
    result
}

fn run_checks(fleet: &mut Fleet, ports: &Ports) -> anyhow::Result<()> {
    let (a, b) = (local(ports.bridge_a), local(ports.bridge_b));
    let mut report = Report::default();

    let started = Instant::now();
    let up = fleet.up().and_then(|()| {
        fleet.wait_healthy(&["bridge-a", "bridge-b", "replicator"], START_DEADLINE)?;
        checks::replicator_ready(local(ports.replicator), START_DEADLINE)
    });
    let ready = match up {
        Ok(ready) => ready,
        Err(e) => {
            report.record(STARTS, started, Err(e));
            for name in [A_TO_B, DELETE_B_TO_A, SIGTERM] {
                report.skipped(name, "the fleet did not start");
            }
            return report.verdict();
        }
    };
    let how_deletes_travel = if ready.deletions_feed {
        "on memcached's deletions feed"
    } else {
        "as the bridges' delete markers (this memcached has no deletions feed)"
    };
    report.record(
        STARTS,
        started,
        Ok(format!(
            "replicator feeds connected; deletes travel {how_deletes_travel}"
        )),
    );

    let started = Instant::now();
    let across = (0..ROUNDS)
        .map(|round| checks::across(a, b, round))
        .collect::<anyhow::Result<Vec<_>>>();
    let ids = match across {
        Ok(rounds) => {
            let by_id: Vec<Duration> = rounds.iter().map(|r| r.by_id).collect();
            let by_user: Vec<Duration> = rounds.iter().map(|r| r.by_user).collect();
            report.record(
                A_TO_B,
                started,
                Ok(format!(
                    "{ROUNDS} sessions, one at a time; on B by id after {}, by user (principal \
                     index) after {}, from A's answer; deadline {:?} each",
                    checks::millis(&by_id),
                    checks::millis(&by_user),
                    checks::CREATE_DEADLINE
                )),
            );
            rounds.into_iter().map(|r| r.id).collect()
        }
        Err(e) => {
            report.record(A_TO_B, started, Err(e));
            Vec::new()
        }
    };

    let started = Instant::now();
    if ids.is_empty() {
        report.skipped(DELETE_B_TO_A, "no session reached bridge B");
    } else {
        let delays = ids
            .iter()
            .map(|id| checks::delete_travels(b, a, id))
            .collect::<anyhow::Result<Vec<_>>>();
        report.record(
            DELETE_B_TO_A,
            started,
            delays.map(|d| {
                format!(
                    "{} deletes; gone on A after {} from B's answer; promised: milliseconds \
                     (the replicator's tests: p99 under 50 ms); deadline {:?} each",
                    d.len(),
                    checks::millis(&d),
                    checks::DELETE_DEADLINE
                )
            }),
        );
    }

    let started = Instant::now();
    let stopped = checks::stop_cleanly(fleet);
    report.record(SIGTERM, started, stopped);
    report.verdict()
}

/// Fails with what to install when `docker-compose` is missing.
fn compose_answers() -> anyhow::Result<()> {
    let out = std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .context("running `docker-compose version`: install Debian's docker-compose package")?;
    if !out.status.success() {
        bail!(
            "`docker-compose version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Fails, saying how to build it, when `image` is not in the daemon.
fn image_present(image: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .context("running docker image inspect")?;
    if !out.status.success() {
        bail!("no image {image}: `cargo xtask dist` builds it");
    }
    Ok(())
}

/// `MEMCACHED_IMAGE`, else test-support's local memcached image (built from
/// the host's memcached if missing; no registry involved).
fn memcached_image() -> anyhow::Result<String> {
    if let Ok(image) = std::env::var("MEMCACHED_IMAGE")
        && !image.is_empty()
    {
        return Ok(image);
    }
    let reports = crate::runtime()?
        .block_on(test_support::build_images(false, BuildMethod::Auto))
        .context("building the local memcached image (cargo xtask images)")?;
    match reports.into_iter().find(|r| r.server == "memcached") {
        Some(report) => Ok(report.image),
        None => bail!("test-support built no memcached image"),
    }
}

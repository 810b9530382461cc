//! One run of `deploy/compose.yaml` under a project name of its own:
//! `docker-compose` and `docker` commands on its containers, and `down -v`
//! when it is dropped, whatever happened before (a failed check, an error,
//! a panic).

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// The published ports of one fleet (free ports of 127.0.0.1, so several
/// runs, or a fleet an operator left up, do not collide).
pub(crate) struct Ports {
    /// bridge-a's 8080.
    pub(crate) bridge_a: u16,
    /// bridge-b's 8080.
    pub(crate) bridge_b: u16,
    /// The replicator's 9150 (/metrics, /healthz).
    pub(crate) replicator: u16,
}

impl Ports {
    /// Three ports free right now on 127.0.0.1.
    pub(crate) fn free() -> anyhow::Result<Ports> {
        // Held together so the kernel hands out three different ones.
        let listeners = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .context("finding free ports on 127.0.0.1")?;
        let port = |i: usize| -> anyhow::Result<u16> { Ok(listeners[i].local_addr()?.port()) };
        Ok(Ports {
            bridge_a: port(0)?,
            bridge_b: port(1)?,
            replicator: port(2)?,
        })
    }
}

/// A `127.0.0.1` address on `port`.
pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A compose project started from `deploy/compose.yaml`; `down -v` on drop.
pub(crate) struct Fleet {
    project: String,
    file: PathBuf,
    env: Vec<(&'static str, String)>,
    up: bool,
}

impl Fleet {
    /// A fleet named `project`, its variables set from `env` (nothing
    /// started yet).
    pub(crate) fn new(project: String, file: PathBuf, env: Vec<(&'static str, String)>) -> Fleet {
        Fleet {
            project,
            file,
            env,
            up: false,
        }
    }

    /// The project name (`docker-compose -p`).
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// `docker-compose up -d`: from here on, drop runs `down -v`.
    pub(crate) fn up(&mut self) -> anyhow::Result<()> {
        self.up = true;
        self.compose(&["up", "-d", "--no-build"]).map(drop)
    }

    /// Runs `docker-compose <args>` on this project; its output, or an
    /// error with its stderr.
    pub(crate) fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(&self.file)
            .args(["--ansi", "never"])
            .args(args);
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        let out = cmd
            .output()
            .with_context(|| format!("running docker-compose {}", args.join(" ")))?;
        checked(&format!("docker-compose {}", args.join(" ")), out)
    }

    /// The container id of `service`.
    pub(crate) fn container(&self, service: &str) -> anyhow::Result<String> {
        let out = self.compose(&["ps", "-q", service])?;
        match out.split_whitespace().next() {
            Some(id) => Ok(id.to_owned()),
            None => bail!("no container for service {service}"),
        }
    }

    /// `docker inspect --format <format>` of `service`'s container.
    pub(crate) fn inspect(&self, service: &str, format: &str) -> anyhow::Result<String> {
        let id = self.container(service)?;
        let out = Command::new("docker")
            .args(["inspect", "--format", format, &id])
            .output()
            .context("running docker inspect")?;
        checked("docker inspect", out).map(|s| s.trim().to_owned())
    }

    /// What `service` logged: (stdout, stderr), as `docker logs` keeps them apart.
    pub(crate) fn logs(&self, service: &str) -> anyhow::Result<(String, String)> {
        let id = self.container(service)?;
        let out = Command::new("docker")
            .args(["logs", &id])
            .output()
            .context("running docker logs")?;
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Polls until every service of `services` reports `healthy` (its
    /// image's HEALTHCHECK), or fails after `limit` naming those that did not.
    pub(crate) fn wait_healthy(&self, services: &[&str], limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let mut waiting = Vec::new();
            for service in services {
                let status = self.inspect(
                    service,
                    "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}no healthcheck{{end}}",
                )?;
                if status != "running/healthy" {
                    waiting.push(format!("{service}: {status}"));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!("not healthy after {limit:?}: {}", waiting.join(", "));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of every service's log, to show with a failure.
    pub(crate) fn tail_logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "30"])
            .unwrap_or_else(|e| format!("(no logs: {e:#})"))
    }
}

/// Takes down the fleets of earlier runs that died before their own
/// `down -v` (killed, or the machine restarted): projects named
/// `<prefix><pid>` whose process is gone. Returns their names.
pub(crate) fn remove_stale(prefix: &str, file: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new("docker")
        .args([
            "ps",
            "--all",
            "--filter",
            "label=com.docker.compose.project",
            "--format",
            "{{.Label \"com.docker.compose.project\"}}",
        ])
        .output()
        .context("running docker ps")?;
    let listed = checked("docker ps", out)?;
    let mut removed = Vec::new();
    for project in listed.lines() {
        let Some(pid) = project.strip_prefix(prefix) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        if alive || removed.iter().any(|p| p == project) {
            continue;
        }
        let mut stale = Fleet::new(project.to_owned(), file.to_path_buf(), Vec::new());
        stale.up = true;
        drop(stale);
        removed.push(project.to_owned());
    }
    Ok(removed)
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !self.up {
            return;
        }
        let started = Instant::now();
        match self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "30"]) {
            Ok(_) => println!(
                "compose: {} down -v in {:.1?}",
                self.project,
                started.elapsed()
            ),
            Err(e) => eprintln!(
                "compose: `down -v` of {} failed ({e:#}); remove it with \
                 `docker-compose -p {} -f {} down -v`",
                self.project,
                self.project,
                self.file.display()
            ),
        }
    }
}

/// The stdout of a command that succeeded, or an error with its stderr.
fn checked(what: &str, out: Output) -> anyhow::Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        // docker-compose writes its progress there too: the error is last.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = lines[lines.len().saturating_sub(5)..].join(" | ");
        bail!("{what} failed ({}): {last}", out.status)
    }
}

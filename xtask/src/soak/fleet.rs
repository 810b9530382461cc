//! The fleet: two memcached 1.6.38 (their `watch deletions` feed carries
//! deletes in milliseconds) each behind test-support's fault proxy, the
//! replicator between them (`--peer A --peer B`, a state file, `/metrics`),
//! a soap-bridge per memcached (Storable, `--principal uid
//! --principal-index`) and the example app on memcached A. Every daemon is
//! a child process of xtask, its output appended to
//! `target/soak/logs/NAME.log`. Every client (the bridges, the app, the
//! replicator) reaches memcached through the proxy, so a proxy fault hits
//! them all.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use test_support::{MemcachedOptions, Provider, ProviderKind, Server};
use tokio::process::{Child, Command};

use super::history::Node;

/// How long a daemon has to answer its readiness URL after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon has to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The store timeouts the bridges and the app are given (`timeout_ms`,
/// `connect_timeout_ms`): the "configured timeout" of the error-time check.
pub(crate) const STORE_TIMEOUT_MS: u64 = 500;
/// The replicator's full-comparison period (`--resync-interval`), short so
/// a kill -9 loses a short stretch of its saved in-sync memory.
pub(crate) const RESYNC_INTERVAL_SECS: u64 = 10;

/// A child process the soak starts, stops and restarts.
pub(crate) struct Daemon {
    /// `bridge-a`, `replicator`, `app`.
    pub(crate) name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    ready_url: String,
    child: Option<Child>,
}

impl Daemon {
    fn new(name: &str, program: &Path, args: Vec<String>, logs: &Path, ready_url: String) -> Self {
        Daemon {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            log: logs.join(format!("{name}.log")),
            ready_url,
            child: None,
        }
    }

    /// Starts it and waits until its readiness URL answers 200.
    pub(crate) async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().context("duplicating the log file")?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited at start ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            let ok = http
                .get(&self.ready_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} did not answer {} within {READY_TIMEOUT:?}; see {}",
                    self.name,
                    self.ready_url,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// kill -9, and reaps it.
    pub(crate) async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .start_kill()
                .with_context(|| format!("killing {}", self.name))?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit (status 0) within
    /// [`STOP_TIMEOUT`]; a daemon that does not stop cleanly is an error.
    pub(crate) async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
            .with_context(|| format!("{} has no pid", self.name))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("SIGTERM to {}", self.name))?;
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.name);
                }
                Ok(())
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!(
                    "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.name
                )
            }
        }
    }
}

/// Where the clients reach the fleet.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    /// `http://127.0.0.1:PORT` of bridge A and B.
    pub(crate) bridges: [String; 2],
    /// The example app's base URL (on node A).
    pub(crate) app: String,
    /// The replicator's `/metrics`.
    pub(crate) replicator_metrics: String,
}

impl Endpoints {
    /// The bridge of `node`.
    pub(crate) fn bridge(&self, node: Node) -> &str {
        &self.bridges[usize::from(node == 'b')]
    }
}

/// The running fleet.
pub(crate) struct Fleet {
    /// Keeps the provider's runtime for the servers.
    _provider: Provider,
    /// memcached A and B (behind their proxies).
    pub(crate) memcached: [Server; 2],
    /// The replicator.
    pub(crate) replicator: Daemon,
    /// Bridge A and B.
    pub(crate) bridges: [Daemon; 2],
    /// The example app (on A).
    pub(crate) app: Daemon,
    /// Where clients reach it.
    pub(crate) endpoints: Endpoints,
}

/// A free loopback port (bound, then released for the daemon to take).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    Ok(listener.local_addr()?.port())
}

fn node_index(node: Node) -> usize {
    usize::from(node == 'b')
}

impl Fleet {
    /// Starts everything; `bins` are the release binaries, `dir` is
    /// `target/soak`.
    pub(crate) async fn start(
        bins: &crate::release::Binaries,
        dir: &Path,
        http: &reqwest::Client,
    ) -> anyhow::Result<Fleet> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let provider = Provider::new(ProviderKind::Process)
            .await
            .context("the process provider of test-support")?;
        let opts = MemcachedOptions::default;
        let a = provider
            .memcached_feed(opts())
            .await
            .context("starting memcached 1.6.38 (bash .ci/memcached-trixie installs it)")?;
        let b = provider
            .memcached_feed(opts())
            .await
            .context("starting memcached 1.6.38 (bash .ci/memcached-trixie installs it)")?;
        let store = |server: &Server| {
            format!(
                "memcached://{}?timeout_ms={STORE_TIMEOUT_MS}&connect_timeout_ms={STORE_TIMEOUT_MS}",
                server.addr()
            )
        };
        let metrics_port = free_port()?;
        let state_file = dir.join("replicator.state");
        // A state file of an earlier soak names other servers' runs: start
        // from none.
        let _ = std::fs::remove_file(&state_file);
        let replicator = Daemon::new(
            "replicator",
            &bins.replicator,
            vec![
                "--peer".into(),
                a.addr(),
                "--peer".into(),
                b.addr(),
                "--state-file".into(),
                state_file.display().to_string(),
                "--metrics".into(),
                format!("127.0.0.1:{metrics_port}"),
                "--resync-interval".into(),
                RESYNC_INTERVAL_SECS.to_string(),
            ],
            &logs,
            format!("http://127.0.0.1:{metrics_port}/metrics"),
        );
        let mut bridges = Vec::new();
        let mut bridge_urls = Vec::new();
        for (name, server) in [("bridge-a", &a), ("bridge-b", &b)] {
            let port = free_port()?;
            let url = format!("http://127.0.0.1:{port}");
            bridges.push(Daemon::new(
                name,
                &bins.soap_bridge,
                vec![
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--store".into(),
                    store(server),
                    "--codec".into(),
                    "storable".into(),
                    "--principal".into(),
                    "uid".into(),
                    "--principal-index".into(),
                    "--timeout".into(),
                    "3600".into(),
                ],
                &logs,
                format!("{url}/healthz"),
            ));
            bridge_urls.push(url);
        }
        let app_port = free_port()?;
        let app_url = format!("http://127.0.0.1:{app_port}");
        let app = Daemon::new(
            "app",
            &bins.example_app,
            vec![
                "--store".into(),
                store(&a),
                "--listen".into(),
                format!("127.0.0.1:{app_port}"),
                "--codec".into(),
                "storable".into(),
            ],
            &logs,
            format!("{app_url}/"),
        );
        let [bridge_a, bridge_b]: [Daemon; 2] = bridges
            .try_into()
            .map_err(|_| anyhow::anyhow!("two bridges"))?;
        let [url_a, url_b]: [String; 2] = bridge_urls
            .try_into()
            .map_err(|_| anyhow::anyhow!("two bridge URLs"))?;
        let mut fleet = Fleet {
            _provider: provider,
            memcached: [a, b],
            replicator,
            bridges: [bridge_a, bridge_b],
            app,
            endpoints: Endpoints {
                bridges: [url_a, url_b],
                app: app_url,
                replicator_metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            },
        };
        fleet.replicator.start(http).await?;
        for bridge in &mut fleet.bridges {
            bridge.start(http).await?;
        }
        fleet.app.start(http).await?;
        Ok(fleet)
    }

    /// memcached of `node`.
    pub(crate) fn memcached(&self, node: Node) -> &Server {
        &self.memcached[node_index(node)]
    }

    /// The bridge of `node`.
    pub(crate) fn bridge_mut(&mut self, node: Node) -> &mut Daemon {
        &mut self.bridges[node_index(node)]
    }

    /// (name, pid) of every process running now.
    pub(crate) fn pids(&self) -> Vec<(String, Option<u32>)> {
        vec![
            ("memcached-a".into(), self.memcached[0].pid()),
            ("memcached-b".into(), self.memcached[1].pid()),
            ("replicator".into(), self.replicator.pid()),
            ("bridge-a".into(), self.bridges[0].pid()),
            ("bridge-b".into(), self.bridges[1].pid()),
            ("app".into(), self.app.pid()),
        ]
    }

    /// Stops every daemon with SIGTERM (a clean stop is part of what the
    /// soak checks); errors are collected, not fatal to the others.
    pub(crate) async fn stop(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let [bridge_a, bridge_b] = &mut self.bridges;
        for daemon in [&mut self.app, bridge_a, bridge_b, &mut self.replicator] {
            if let Err(e) = daemon.terminate().await {
                problems.push(format!("{e:#}"));
            }
        }
        problems
    }
}

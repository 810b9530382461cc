//! The docker provider: testcontainers' async API on a private network, plus
//! the cleanup that makes interrupted runs harmless.
//!
//! Every container and network this crate creates carries two labels:
//! `memorycached.test=1` and `memorycached.test.owner=<pid>-<start time>`,
//! the owner being the test process (its start time from `/proc` guards
//! against pid reuse). Cleanup then has three layers:
//! 1. `Drop` of a [`Server`](crate::Server) removes its container, `Drop` of
//!    the last handle on a provider removes its network;
//! 2. on SIGINT, SIGTERM, SIGHUP or SIGQUIT (Ctrl-C, nextest's timeout), a
//!    watchdog removes everything this process owns, then exits;
//! 3. [`cleanup_stale`] removes whatever is owned by processes that no longer
//!    exist (SIGKILL, a crash, a `Server` kept in a `static`); every docker
//!    provider runs it when it is created, and so does `cargo xtask test`.
//!    It never touches resources of live processes, so parallel test
//!    processes (nextest) do not disturb each other.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use testcontainers::{
    ContainerAsync, CopyTargetOptions, GenericImage, ImageExt,
    bollard::{
        Docker,
        models::{HostConfig, NetworkCreateRequest, PortBinding},
        query_parameters::{
            ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
        },
    },
    core::IntoContainerPort,
    runners::AsyncRunner,
};

use crate::{Error, daemon::connect, images, kind::ServerKind, ready, runtime};

/// Label on every container and network the crate creates.
pub const LABEL: &str = "memorycached.test";
/// Label naming the owning test process, `<pid>-<start time>`.
pub const OWNER_LABEL: &str = "memorycached.test.owner";

/// How long a started container may take to answer its protocol ping.
const READY_BUDGET: Duration = Duration::from_secs(30);
/// How long `Drop` waits for a container or network removal.
const REMOVE_LIMIT: Duration = Duration::from_secs(30);

/// This process as an owner label value.
pub(crate) fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}-{}", start_time(pid).unwrap_or(0))
    })
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // its closing parenthesis; field 3 is then the first one.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process an owner label names is still running.
fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once('-') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// What [`cleanup_stale`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Whether a Docker daemon answered at all (nothing to clean otherwise).
    pub daemon: bool,
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
}

/// Removes the containers and networks left by test processes that no longer
/// exist (interrupted or killed runs). Resources of live processes are kept.
/// Without a Docker daemon there is nothing to clean and this returns a
/// report with `daemon: false`.
pub async fn cleanup_stale() -> Result<CleanupReport, Error> {
    runtime::run(async {
        let Ok(docker) = connect().await else {
            return Ok(CleanupReport::default());
        };
        remove_owned(&docker, |owner| !owner.is_some_and(owner_alive)).await
    })
    .await
}

/// Removes every labelled container, then network, whose owner `doomed` picks.
async fn remove_owned(
    docker: &Docker,
    doomed: impl Fn(Option<&str>) -> bool,
) -> Result<CleanupReport, Error> {
    let filters = HashMap::from([("label", vec![format!("{LABEL}=1")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| Error::docker("listing test containers")(e.to_string()))?;
    let mut removals = tokio::task::JoinSet::new();
    for container in containers {
        let owner = container.labels.as_ref().and_then(|l| l.get(OWNER_LABEL));
        if let (Some(id), true) = (container.id, doomed(owner.map(String::as_str))) {
            let docker = docker.clone();
            removals.spawn(async move { remove_container(&docker, &id).await.is_ok() });
        }
    }
    let mut report = CleanupReport {
        daemon: true,
        ..CleanupReport::default()
    };
    report.containers = removals
        .join_all()
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();

    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| Error::docker("listing test networks")(e.to_string()))?;
    for network in networks {
        let owner = network.labels.as_ref().and_then(|l| l.get(OWNER_LABEL));
        if let (Some(name), true) = (network.name, doomed(owner.map(String::as_str)))
            && docker.remove_network(&name).await.is_ok()
        {
            report.networks += 1;
        }
    }
    Ok(report)
}

async fn remove_container(docker: &Docker, id: &str) -> Result<(), Error> {
    docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
        .map_err(|e| Error::docker(format!("removing container {id}"))(e.to_string()))
}

static SIGNAL_CLEANUP_DISABLED: AtomicBool = AtomicBool::new(false);

/// Stops docker providers from installing their signal watchdog.
///
/// By default the first docker provider of a process installs handlers for
/// SIGINT, SIGTERM, SIGHUP and SIGQUIT that remove this process's containers
/// and networks and then exit with 128 + the signal number. A program with
/// its own signal handling (like `cargo xtask test`, which still has servers
/// to stop and a summary to print) calls this first and drops its servers
/// itself.
pub fn disable_signal_cleanup() {
    SIGNAL_CLEANUP_DISABLED.store(true, Ordering::SeqCst);
}

fn install_watchdog() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if SIGNAL_CLEANUP_DISABLED.load(Ordering::SeqCst) || INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = runtime::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            (SignalKind::interrupt(), 2),
            (SignalKind::terminate(), 15),
            (SignalKind::hangup(), 1),
            (SignalKind::quit(), 3),
        ];
        let mut waits = tokio::task::JoinSet::new();
        for (kind, number) in kinds {
            if let Ok(mut stream) = signal(kind) {
                waits.spawn(async move {
                    stream.recv().await;
                    number
                });
            }
        }
        let Some(Ok(number)) = waits.join_next().await else {
            return;
        };
        eprintln!(
            "test-support: signal {number}: removing the containers and networks of process {}",
            owner()
        );
        if let Ok(docker) = connect().await {
            let mine = owner();
            let _ = tokio::time::timeout(REMOVE_LIMIT, remove_owned(&docker, |o| o == Some(mine)))
                .await;
        }
        std::process::exit(128 + number);
    });
}

/// One docker provider's daemon connection, private network and images.
pub(crate) struct DockerContext {
    docker: Docker,
    network: String,
    images: [tokio::sync::OnceCell<images::ImageRef>; 2],
    containers: AtomicUsize,
}

impl DockerContext {
    /// Connects, cleans up stale resources, creates the private network.
    pub(crate) async fn create() -> Result<Arc<DockerContext>, Error> {
        runtime::run(async {
            let docker = connect().await?;
            install_watchdog();
            let stale = remove_owned(&docker, |owner| !owner.is_some_and(owner_alive)).await?;
            if stale.containers + stale.networks > 0 {
                eprintln!(
                    "test-support: removed {} stale container(s) and {} stale network(s) \
                     left by interrupted runs",
                    stale.containers, stale.networks
                );
            }
            let network = next_network_name();
            docker
                .create_network(NetworkCreateRequest {
                    name: network.clone(),
                    driver: Some("bridge".to_owned()),
                    labels: Some(labels()),
                    ..NetworkCreateRequest::default()
                })
                .await
                .map_err(|e| Error::docker(format!("creating network {network}"))(e.to_string()))?;
            Ok(Arc::new(DockerContext {
                docker,
                network,
                images: Default::default(),
                containers: AtomicUsize::new(0),
            }))
        })
        .await
    }

    pub(crate) fn network(&self) -> &str {
        &self.network
    }

    /// The image for `kind`, resolved once per provider.
    async fn image(&self, kind: ServerKind) -> Result<&images::ImageRef, Error> {
        let slot = match kind {
            ServerKind::Memcached => &self.images[0],
            ServerKind::Redis => &self.images[1],
            ServerKind::Valkey => {
                return Err(Error::docker("choosing an image")(
                    "Valkey runs as a local process only (Provider::valkey)".to_owned(),
                ));
            }
        };
        slot.get_or_try_init(|| images::resolve(&self.docker, kind))
            .await
    }
}

impl Drop for DockerContext {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let network = self.network.clone();
        runtime::block_on(
            async move {
                let _ = docker.remove_network(&network).await;
            },
            REMOVE_LIMIT,
        );
    }
}

fn labels() -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_owned(), "1".to_owned()),
        (OWNER_LABEL.to_owned(), owner().to_owned()),
    ])
}

fn next_network_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "memorycached-test-{}-{}",
        owner(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One server container; empty once removed.
pub(crate) struct DockerServer {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ServerKind,
    port: u16,
    /// Whether the server answers a plaintext ping (not a TLS-only memcached).
    plaintext: bool,
    image: String,
    container: tokio::sync::Mutex<Option<ContainerAsync<GenericImage>>>,
    /// Keeps the network alive until the container is gone.
    ctx: Arc<DockerContext>,
}

impl DockerServer {
    /// Starts a container for `kind` with the provider-independent `args`
    /// and waits until it answers through its published port.
    pub(crate) async fn launch(
        ctx: Arc<DockerContext>,
        kind: ServerKind,
        args: Vec<String>,
    ) -> Result<(DockerServer, SocketAddr), Error> {
        DockerServer::launch_with_files(ctx, kind, args, Vec::new()).await
    }

    /// [`DockerServer::launch`] with `files` (path in the container, bytes)
    /// copied in before the server starts, readable by every user (the
    /// local images run as `nobody`, the official ones as their own user).
    pub(crate) async fn launch_with_files(
        ctx: Arc<DockerContext>,
        kind: ServerKind,
        args: Vec<String>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<(DockerServer, SocketAddr), Error> {
        runtime::run(async move {
            let plaintext = ready::answers_plaintext(kind, &args);
            let image = ctx.image(kind).await?.clone();
            let port = image.port;
            let n = ctx.containers.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{}-{n}", ctx.network, kind.name());
            let started = Instant::now();
            let mut request = GenericImage::new(&image.name, &image.tag)
                .with_exposed_port(port.tcp())
                .with_cmd(image.args(args))
                .with_network(ctx.network.clone())
                .with_container_name(name.clone())
                .with_labels(labels())
                .with_host_config_modifier(move |host: &mut HostConfig| {
                    // Publish on loopback only, on a port the daemon picks.
                    host.publish_all_ports = Some(false);
                    host.port_bindings = Some(HashMap::from([(
                        format!("{port}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                            host_port: Some(String::new()),
                        }]),
                    )]));
                })
                .with_startup_timeout(READY_BUDGET);
            for (target, data) in files {
                request =
                    request.with_copy_to(CopyTargetOptions::new(target).with_mode(0o644), data);
            }
            let container = request.start().await.map_err(|e| {
                Error::docker(format!(
                    "starting container {name} from {}",
                    image.descriptor()
                ))(e.to_string())
            })?;
            let inner = Arc::new(Inner {
                kind,
                port,
                plaintext,
                image: image.describe(),
                container: tokio::sync::Mutex::new(Some(container)),
                ctx,
            });
            let addr = inner.ready().await?;
            if std::env::var_os("MEMORYCACHED_TEST_TIMINGS").is_some() {
                eprintln!(
                    "test-support: container {name} from {} ready in {:?}",
                    image.describe(),
                    started.elapsed()
                );
            }
            Ok((DockerServer { inner }, addr))
        })
        .await
    }

    /// The image, and whether it is official or built from the host binary.
    pub(crate) fn image(&self) -> &str {
        &self.inner.image
    }

    /// `docker stop -t 0`: SIGKILL, the container keeps its identity.
    pub(crate) async fn stop(&self) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        runtime::run(async move {
            let guard = inner.container.lock().await;
            let Some(container) = guard.as_ref() else {
                return Ok(());
            };
            container
                .stop_with_timeout(Some(0))
                .await
                .map_err(|e| Error::docker(format!("stopping {}", container.id()))(e.to_string()))
        })
        .await
    }

    /// `docker start`; the published port changes, so the new one is returned.
    pub(crate) async fn start(&self) -> Result<SocketAddr, Error> {
        let inner = Arc::clone(&self.inner);
        runtime::run(async move {
            {
                let guard = inner.container.lock().await;
                let Some(container) = guard.as_ref() else {
                    return Err(Error::docker("starting")(
                        "the container was removed".to_owned(),
                    ));
                };
                container.start().await.map_err(|e| {
                    Error::docker(format!("starting {}", container.id()))(e.to_string())
                })?;
            }
            inner.ready().await
        })
        .await
    }

    /// `docker pause` / `docker unpause` (the cgroup freezer).
    pub(crate) async fn pause(&self, pause: bool) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        runtime::run(async move {
            let guard = inner.container.lock().await;
            let Some(container) = guard.as_ref() else {
                return Ok(());
            };
            let result = if pause {
                container.pause().await
            } else {
                container.unpause().await
            };
            result.map_err(|e| {
                let what = if pause { "pausing" } else { "unpausing" };
                Error::docker(format!("{what} {}", container.id()))(e.to_string())
            })
        })
        .await
    }
}

impl DockerServer {
    /// The container's address on the provider's private network, where
    /// other containers reach it (a Redis Cluster's bus).
    pub(crate) async fn network_ip(&self) -> Result<std::net::IpAddr, Error> {
        let inner = Arc::clone(&self.inner);
        runtime::run(async move {
            let guard = inner.container.lock().await;
            let Some(container) = guard.as_ref() else {
                return Err(Error::docker("reading the network address")(
                    "the container was removed".to_owned(),
                ));
            };
            container.get_bridge_ip_address().await.map_err(|e| {
                Error::docker(format!("reading the network address of {}", container.id()))(
                    e.to_string(),
                )
            })
        })
        .await
    }
}

impl Drop for DockerServer {
    /// Removes the container (`docker rm -f`), blocking until done.
    fn drop(&mut self) {
        let inner = Arc::clone(&self.inner);
        runtime::block_on(
            async move {
                let container = inner.container.lock().await.take();
                if let Some(container) = container {
                    let id = container.id().to_owned();
                    if container.rm().await.is_err() {
                        let _ = remove_container(&inner.ctx.docker, &id).await;
                    }
                }
            },
            REMOVE_LIMIT,
        );
    }
}

impl Inner {
    /// Waits until the container answers on its published port; returns it.
    async fn ready(&self) -> Result<SocketAddr, Error> {
        let host_port = {
            let guard = self.container.lock().await;
            let Some(container) = guard.as_ref() else {
                return Err(Error::docker("reading ports")(
                    "the container was removed".to_owned(),
                ));
            };
            container.get_host_port_ipv4(self.port).await.map_err(|e| {
                Error::docker(format!("reading the published port of {}", container.id()))(
                    e.to_string(),
                )
            })?
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, host_port));
        ready::wait_ready(self.kind, addr, self.plaintext, READY_BUDGET, || Ok(())).await?;
        Ok(addr)
    }
}

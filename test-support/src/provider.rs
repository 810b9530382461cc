//! [`Provider`]: where servers come from, chosen once per test process.

use std::{fmt, sync::Arc};

use crate::{
    Error, MemcachedOptions, MemcachedSecurity, ProviderKind, Server, ServerKind,
    binary::Binary,
    cluster::{self, BusAddr, CLUSTER_MASTERS, Pending, RedisCluster},
    daemon,
    docker::{DockerContext, DockerServer},
    kind,
    process::ProcessServer,
    runtime,
    server::Backend,
};

/// Where [`Provider::memcached_secured`] puts the host's files in a container.
const CONTAINER_FILES: &str = "/memorycached-files";

/// The environment variable [`Provider::from_env`] reads.
pub const PROVIDER_ENV: &str = "MEMORYCACHED_PROVIDER";

/// A source of real servers: local processes or Docker containers.
///
/// Cheap to clone; every clone shares the same private Docker network, which
/// is removed when the last clone and the last of its servers are dropped.
#[derive(Clone)]
pub struct Provider {
    kind: ProviderKind,
    description: Arc<str>,
    docker: Option<Arc<DockerContext>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .finish()
    }
}

impl Provider {
    /// Resolves `kind` and prepares it: for Docker, connects to the daemon,
    /// removes stale resources of dead test processes and creates a private
    /// network. `Auto` says on stderr which provider it picked and why.
    pub async fn new(kind: ProviderKind) -> Result<Provider, Error> {
        match kind {
            ProviderKind::Process => Ok(Provider::process("process (asked for)".to_owned())),
            ProviderKind::Docker => Provider::docker("docker (asked for)").await,
            ProviderKind::Auto => {
                let probe = runtime::run(async { daemon::connect().await.map(drop) }).await;
                let provider = match probe {
                    Ok(()) => Provider::docker("docker (auto: a Docker daemon answered)").await?,
                    Err(e) => Provider::process(format!("process (auto: {e})")),
                };
                eprintln!("test-support: provider {}", provider.description);
                Ok(provider)
            }
        }
    }

    /// [`Provider::new`] with the kind named by `MEMORYCACHED_PROVIDER`
    /// (`docker`, `process` or `auto`; `auto` when unset).
    pub async fn from_env() -> Result<Provider, Error> {
        let kind = match std::env::var(PROVIDER_ENV) {
            Ok(value) => value.parse()?,
            Err(_) => ProviderKind::Auto,
        };
        Provider::new(kind).await
    }

    fn process(description: String) -> Provider {
        Provider {
            kind: ProviderKind::Process,
            description: description.into(),
            docker: None,
        }
    }

    async fn docker(why: &str) -> Result<Provider, Error> {
        let ctx = DockerContext::create().await?;
        Ok(Provider {
            kind: ProviderKind::Docker,
            description: format!("{why}; network {}", ctx.network()).into(),
            docker: Some(ctx),
        })
    }

    /// The resolved kind: [`ProviderKind::Docker`] or [`ProviderKind::Process`].
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// One line saying which provider this is and why it was picked.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// A memcached with the default options (64 MB, 1 MiB items), started and ready.
    pub async fn memcached(&self) -> Result<Server, Error> {
        self.memcached_with(MemcachedOptions::default()).await
    }

    /// A memcached with `opts`, started and ready.
    pub async fn memcached_with(&self, opts: MemcachedOptions) -> Result<Server, Error> {
        self.launch(ServerKind::Memcached, opts.args()).await
    }

    /// A memcached with `opts` and `security` (TLS with `-Z`,
    /// authentication with `-Y`), started and ready (a TLS-only server is
    /// ready once it accepts connections: it answers no plaintext ping).
    ///
    /// The files are the host's: a process reads them where they are; the
    /// docker provider copies them into the container (readable by the
    /// server's user) before it starts, so they must exist now.
    pub async fn memcached_secured(
        &self,
        opts: MemcachedOptions,
        security: MemcachedSecurity,
    ) -> Result<Server, Error> {
        let mut args = opts.args();
        let files = security.files();
        let (backend, upstream) = match &self.docker {
            Some(ctx) => {
                let mut copies = Vec::with_capacity(files.len());
                let mut placed = Vec::with_capacity(files.len());
                for (i, file) in files.iter().enumerate() {
                    let data = std::fs::read(file)
                        .map_err(Error::io(format!("reading {}", file.display())))?;
                    let name = file
                        .file_name()
                        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
                    let target = format!("{CONTAINER_FILES}/{i}-{name}");
                    placed.push(target.clone());
                    copies.push((target, data));
                }
                args.extend(security.args(&placed));
                let (server, addr) = DockerServer::launch_with_files(
                    Arc::clone(ctx),
                    ServerKind::Memcached,
                    args,
                    copies,
                )
                .await?;
                (Backend::Docker(server), addr)
            }
            None => {
                let placed: Vec<String> = files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect();
                args.extend(security.args(&placed));
                let (server, addr) =
                    runtime::run(ProcessServer::launch(ServerKind::Memcached, args)).await?;
                (Backend::Process(server), addr)
            }
        };
        Server::new(ServerKind::Memcached, backend, upstream)
    }

    /// A Redis without persistence, started and ready.
    pub async fn redis(&self) -> Result<Server, Error> {
        self.launch(ServerKind::Redis, kind::redis_args()).await
    }

    /// A Valkey 8.1+ without persistence, started and ready: always a local
    /// process, whichever the provider (Debian 12 has no Valkey 8.1 to
    /// build an image from; `bash .ci/valkey` installs Debian 13's). For
    /// what Redis 7 lacks, such as `SET ... IFEQ`.
    pub async fn valkey(&self) -> Result<Server, Error> {
        let (server, addr) = runtime::run(ProcessServer::launch(
            ServerKind::Valkey,
            kind::redis_args(),
        ))
        .await?;
        Server::new(ServerKind::Valkey, Backend::Process(server), addr)
    }

    /// A memcached 1.6.38 with `opts` (Debian 13's, installed beside the
    /// system's 1.6.18 by `bash .ci/memcached-trixie`), started and ready:
    /// always a local process, whichever the provider. Its `watch
    /// deletions` reports deletes, which 1.6.18 answers with `ERROR`.
    pub async fn memcached_feed(&self, opts: MemcachedOptions) -> Result<Server, Error> {
        let (server, addr) = runtime::run(ProcessServer::launch_binary(
            ServerKind::Memcached,
            Binary::MEMCACHED_FEED,
            opts.args(),
        ))
        .await?;
        Server::new(ServerKind::Memcached, Backend::Process(server), addr)
    }

    /// A three-master Redis Cluster without persistence, formed and
    /// serving every slot; each node behind its own proxy (see
    /// [`RedisCluster`]).
    pub async fn redis_cluster(&self) -> Result<RedisCluster, Error> {
        let mut started = Vec::with_capacity(CLUSTER_MASTERS);
        let mut files = Vec::new();
        for _ in 0..CLUSTER_MASTERS {
            let pending = Pending::new()?;
            let proxy_port = pending.proxy_port();
            match &self.docker {
                Some(ctx) => {
                    // /dev/shm: writable for any user in every image (the local
                    // images run as nobody with a read-only working directory).
                    let file = format!("/dev/shm/memorycached-nodes-{proxy_port}.conf");
                    let args = cluster::node_args(proxy_port, None, &file);
                    let (server, addr) =
                        DockerServer::launch(Arc::clone(ctx), ServerKind::Redis, args).await?;
                    let ip = server.network_ip().await?;
                    let bus = BusAddr {
                        ip,
                        port: 6379,
                        bus_port: 16379,
                    };
                    started.push((pending, Backend::Docker(server), addr, bus));
                }
                None => {
                    let bus_port = crate::process::free_port()?;
                    let file = std::env::temp_dir().join(format!(
                        "memorycached-test-nodes-{}-{proxy_port}.conf",
                        std::process::id()
                    ));
                    let args =
                        cluster::node_args(proxy_port, Some(bus_port), &file.to_string_lossy());
                    files.push(file);
                    let (server, addr) =
                        runtime::run(ProcessServer::launch(ServerKind::Redis, args)).await?;
                    let bus = BusAddr {
                        ip: cluster::LOOPBACK,
                        port: addr.port(),
                        bus_port,
                    };
                    started.push((pending, Backend::Process(server), addr, bus));
                }
            }
        }
        cluster::form(started, files).await
    }

    async fn launch(&self, kind: ServerKind, args: Vec<String>) -> Result<Server, Error> {
        let (backend, upstream) = match &self.docker {
            Some(ctx) => {
                let (server, addr) = DockerServer::launch(Arc::clone(ctx), kind, args).await?;
                (Backend::Docker(server), addr)
            }
            None => {
                let (server, addr) = runtime::run(ProcessServer::launch(kind, args)).await?;
                (Backend::Process(server), addr)
            }
        };
        Server::new(kind, backend, upstream)
    }
}

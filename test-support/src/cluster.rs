//! [`RedisCluster`]: three Redis masters formed into one Redis Cluster,
//! each behind its own fault-injecting proxy.
//!
//! Clients must reach the nodes through the proxies (so the fault API
//! works per node), while the nodes talk to each other on their cluster
//! bus directly. Redis 7 separates the two: each node announces the
//! *hostname* `127.0.0.1` and its proxy's port for clients
//! (`--cluster-announce-hostname`, `--cluster-preferred-endpoint-type
//! hostname`, `--cluster-announce-port`), so `CLUSTER SLOTS` and `MOVED`
//! name the proxies, while the bus address stays the node's real IP and
//! bus port. That is why the harness forms the cluster itself
//! (`CLUSTER ADDSLOTSRANGE`, then `CLUSTER MEET` with the real addresses)
//! rather than with `redis-cli --cluster create`, which would tell the
//! nodes to meet at the proxies' addresses, where no bus listens.
//!
//! Processes listen on probed loopback ports with a probed bus port
//! (`--cluster-port`); containers use 6379 and bus port 16379 on the
//! provider's private network. Restarting a node (`stop`/`start`) works
//! with processes: the node comes back on a new client port behind the
//! same proxy, with the same bus port and cluster config file, so it
//! rejoins with its slots (and empty memory); backend-redis's
//! `tests/cluster_restart.rs` checks a client through it. Not with
//! containers: a container comes back with another IP and the cluster
//! would have to be re-formed.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{Error, Server, kind::ServerKind, proxy::Proxy, resp, server::Backend};

/// The masters of a test cluster.
pub const CLUSTER_MASTERS: usize = 3;

/// How long the nodes may take to agree that the cluster is up.
const FORM_BUDGET: Duration = Duration::from_secs(20);

/// A three-master Redis Cluster, formed and serving every slot.
///
/// Each node is a [`Server`] with the usual fault methods; clients connect
/// through [`RedisCluster::addrs`] (the nodes' proxies). Dropping it stops
/// every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Server>,
    /// The process nodes' cluster config files, removed on drop.
    files: Vec<PathBuf>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // The nodes first: a running node rewrites its file.
        self.nodes.clear();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl RedisCluster {
    /// The nodes, in slot order (node 0 serves the lowest slots).
    pub fn nodes(&self) -> &[Server] {
        &self.nodes
    }

    /// Every node's client address (its proxy), as the cluster announces it.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Server::addr).collect()
    }
}

/// The arguments that make a node announce its proxy to clients.
pub(crate) fn node_args(proxy_port: u16, bus_port: Option<u16>, config_file: &str) -> Vec<String> {
    let mut args = crate::kind::redis_args();
    for (k, v) in [
        ("--cluster-enabled", "yes".to_owned()),
        ("--cluster-config-file", config_file.to_owned()),
        ("--cluster-node-timeout", "5000".to_owned()),
        ("--cluster-announce-hostname", "127.0.0.1".to_owned()),
        ("--cluster-preferred-endpoint-type", "hostname".to_owned()),
        ("--cluster-announce-port", proxy_port.to_string()),
        // Writes to slots whose master is gone fail fast rather than the
        // whole cluster refusing; reads of live slots keep working.
        ("--cluster-require-full-coverage", "no".to_owned()),
    ] {
        args.extend([k.to_owned(), v]);
    }
    if let Some(bus) = bus_port {
        args.extend(["--cluster-port".to_owned(), bus.to_string()]);
    }
    args
}

/// A node being started: its proxy, bound before the server.
pub(crate) struct Pending {
    pub(crate) proxy: Proxy,
}

impl Pending {
    pub(crate) fn new() -> Result<Pending, Error> {
        Ok(Pending {
            proxy: Proxy::start(None)?,
        })
    }

    pub(crate) fn proxy_port(&self) -> u16 {
        self.proxy.addr().port()
    }
}

/// Where the other nodes reach a node's bus.
pub(crate) struct BusAddr {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) bus_port: u16,
}

/// Forms the cluster from started nodes: slots split evenly in node order,
/// every node met by node 0, then polled until all agree it is up.
pub(crate) async fn form(
    nodes: Vec<(Pending, Backend, SocketAddr, BusAddr)>,
    files: Vec<PathBuf>,
) -> Result<RedisCluster, Error> {
    let fail = |detail: String| Error::NotReady {
        server: "redis cluster",
        addr: "(3 nodes)".to_owned(),
        waited: FORM_BUDGET,
        detail,
    };
    let n = nodes.len();
    let mut servers = Vec::with_capacity(n);
    let mut buses = Vec::with_capacity(n);
    for (pending, backend, upstream, bus) in nodes {
        servers.push(Server::with_proxy(
            ServerKind::Redis,
            backend,
            upstream,
            pending.proxy,
        ));
        buses.push((upstream, bus));
    }
    const SLOTS: usize = 16384;
    for (i, (upstream, _)) in buses.iter().enumerate() {
        let (first, last) = (i * SLOTS / n, (i + 1) * SLOTS / n - 1);
        resp::command(
            *upstream,
            &[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &first.to_string(),
                &last.to_string(),
            ],
        )
        .await
        .map_err(|e| fail(format!("node {i}: CLUSTER ADDSLOTSRANGE: {e}")))?;
    }
    let first = buses[0].0;
    for (i, (_, bus)) in buses.iter().enumerate().skip(1) {
        resp::command(
            first,
            &[
                "CLUSTER",
                "MEET",
                &bus.ip.to_string(),
                &bus.port.to_string(),
                &bus.bus_port.to_string(),
            ],
        )
        .await
        .map_err(|e| fail(format!("node 0: CLUSTER MEET node {i}: {e}")))?;
    }
    let start = Instant::now();
    loop {
        let mut last = String::new();
        let mut all_ok = true;
        for (i, (upstream, _)) in buses.iter().enumerate() {
            let info = resp::command(*upstream, &["CLUSTER", "INFO"])
                .await
                .unwrap_or_else(|e| e);
            let ok = info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{n}"));
            if !ok {
                all_ok = false;
                last = format!("node {i}: {}", info.replace("\r\n", " "));
            }
        }
        if all_ok {
            return Ok(RedisCluster {
                nodes: servers,
                files,
            });
        }
        if start.elapsed() > FORM_BUDGET {
            return Err(fail(format!("the nodes never agreed: {last}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The loopback address, for process nodes.
pub(crate) const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

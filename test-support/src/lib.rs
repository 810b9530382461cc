//! Real memcached and Redis servers for memorycached's tests, with fault injection.
//!
//! Integration tests get servers from a [`Provider`]; `cargo xtask test`
//! starts shared ones and exports their addresses, which tests read with
//! [`shared_servers`]. Both kinds of provider run real servers; neither is a
//! mock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), test_support::Error> {
//! use std::time::Duration;
//! use test_support::Provider;
//!
//! let provider = Provider::from_env().await?; // MEMORYCACHED_PROVIDER=docker|process|auto
//! let memcached = provider.memcached().await?;
//! let addr = memcached.addr(); // "127.0.0.1:PORT", stable for the server's life
//! memcached.pause().await?; // requests now hang
//! memcached.unpause().await?;
//! memcached.stop().await?; // connections reset
//! memcached.start().await?; // same addr, empty memory
//! memcached.set_latency(Duration::from_millis(50)).await?;
//! # let _ = addr; Ok(()) }
//! ```
//!
//! # Layout
//!
//! From the top down; a module uses only modules listed below it, so there
//! are no import circles:
//! - `provider.rs`: [`Provider`] of a [`ProviderKind`]; `Auto` picks Docker when
//!   a daemon answers a ping within 3 s, processes otherwise, and says so.
//! - `cluster.rs`: [`RedisCluster`], three Redis masters formed into one
//!   cluster that announces the nodes' proxies to clients.
//! - `server.rs`: [`Server`] and its faults, over either provider.
//! - `docker.rs`: containers through testcontainers' async API on a private
//!   network per provider; labels, the signal watchdog and [`cleanup_stale`].
//! - `images/`: official images, or local ones built from host binaries.
//! - `process.rs`: local `memcached` / `redis-server` on probed loopback ports.
//! - `proxy.rs`: the fault-injecting TCP proxy in front of every server.
//! - leaves, which use nothing but the error type and each other's
//!   [`ServerKind`]: `kind.rs` ([`ServerKind`], [`MemcachedOptions`],
//!   [`ProviderKind`]),
//!   `ready.rs` (protocol ping and readiness polling), `resp.rs` (one Redis
//!   command in plain RESP, to form a cluster), `binary.rs` (the host
//!   binaries), `daemon.rs` (the Docker connection), `port.rs` ([`dead_port`]),
//!   `runtime.rs` (the background runtime everything long-lived runs on),
//!   `tls.rs` (test certificates made by `openssl`, public as [`tls`]).
//!
//! # Why a proxy in front of every server
//!
//! [`Server::addr`] is the address of an in-process TCP proxy, not of the
//! server itself. That one choice gives:
//! - **a stable address**: a restarted process gets a new port (the old one
//!   may be taken by then) and a restarted container a new published port;
//!   the proxy simply forwards new connections to the new upstream;
//! - **the same faults for both providers**: `cut`, `blackhole` and latency
//!   are proxy modes, so a fault test behaves the same on a laptop without
//!   Docker and in CI. `stop`/`start` and `pause` act on the real server
//!   (kill/restart and SIGSTOP, or `docker stop`/`start` and `docker pause`);
//! - **deterministic cuts**: `docker network disconnect` would also remove
//!   the container's published port, and what a client sees then depends on
//!   docker-proxy versus iptables; the proxy resets connections itself.
//!
//! The proxy and every Docker call run on one background multi-thread
//! runtime that lives as long as the process, so a [`Server`] works from any
//! `#[tokio::test]` flavour (each test has its own short-lived runtime) and
//! its `Drop` needs no async context: it blocks until the process is reaped
//! or the container is removed.
//!
//! # Cleanup
//!
//! Processes are killed on `Drop` and are started with a parent-death signal,
//! so they also die when the test process is killed. Containers are removed
//! on `Drop`, by a signal watchdog on SIGINT/SIGTERM (see
//! [`disable_signal_cleanup`]), and, after a SIGKILL, by [`cleanup_stale`],
//! which every docker provider runs on creation.
//!
//! # Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `MEMORYCACHED_PROVIDER` | `docker`, `process` or `auto` (default) for [`Provider::from_env`] |
//! | `MEMORYCACHED_MEMCACHED`, `MEMORYCACHED_REDIS`, `MEMORYCACHED_REDIS_CLUSTER` | shared server lists, set by `cargo xtask test` |
//! | `MEMORYCACHED_MEMCACHED_BIN`, `MEMORYCACHED_REDIS_BIN` | binaries to use instead of the ones on `PATH` |
//! | `MEMORYCACHED_MEMCACHED_FEED_BIN` | memcached 1.6.38 for [`Provider::memcached_feed`] instead of `memcached-1.6.38` on `PATH` |
//! | `MEMORYCACHED_IMAGES` | `auto` (default): official image if present or pullable, else local; `official`; `local` |
//! | `MEMORYCACHED_PULL_TIMEOUT_SECS` | how long a pull of an official image may take (60) |
//! | `MEMORYCACHED_TEST_TIMINGS` | when set, print how long each container took to be ready |

pub mod bench;
mod binary;
pub mod child;
mod cluster;
mod daemon;
mod docker;
mod error;
mod images;
mod kind;
mod port;
mod process;
mod provider;
mod proxy;
mod ready;
mod resp;
mod runtime;
mod server;
pub mod tls;

pub use cluster::{CLUSTER_MASTERS, RedisCluster};
pub use docker::{CleanupReport, LABEL, OWNER_LABEL, cleanup_stale, disable_signal_cleanup};
pub use error::Error;
pub use images::{BuildMethod, ImageAction, ImageReport, build_image, build_images};
pub use kind::{MemcachedOptions, MemcachedSecurity, MemcachedTls, ProviderKind, ServerKind};
pub use port::{DeadPort, dead_port};
pub use provider::{PROVIDER_ENV, Provider};
pub use server::Server;

/// The variable `cargo xtask test` fills with the shared memcached servers.
pub const MEMCACHED_ENV: &str = "MEMORYCACHED_MEMCACHED";
/// The variable `cargo xtask test` fills with the shared Redis server.
pub const REDIS_ENV: &str = "MEMORYCACHED_REDIS";
/// The variable `cargo xtask test` fills with the shared Redis Cluster's
/// nodes (their proxies), comma separated.
pub const REDIS_CLUSTER_ENV: &str = "MEMORYCACHED_REDIS_CLUSTER";

/// Reads a comma-separated `host:port` list from the environment variable `var`
/// (e.g. [`MEMCACHED_ENV`], set by `cargo xtask test`).
///
/// A missing, empty or malformed variable is an error whose message says how
/// to set it; tests should fail with it rather than skip.
pub fn shared_servers(var: &str) -> Result<Vec<String>, Error> {
    parse_servers(var, std::env::var(var).ok())
}

fn parse_servers(var: &str, value: Option<String>) -> Result<Vec<String>, Error> {
    let problem = |problem: String| Error::SharedServers {
        var: var.to_owned(),
        problem,
    };
    let value = value.ok_or_else(|| problem("is not set".to_owned()))?;
    let servers: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if servers.is_empty() {
        return Err(problem("is empty".to_owned()));
    }
    for server in &servers {
        let valid = server
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(problem(format!("holds `{server}`, which is not host:port")));
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_server_lists_are_parsed_and_errors_say_how_to_fix_them() {
        let parsed = parse_servers("V", Some(" 127.0.0.1:1, localhost:2 ,".to_owned())).unwrap();
        assert_eq!(parsed, ["127.0.0.1:1", "localhost:2"]);
        let missing = parse_servers("MEMORYCACHED_MEMCACHED", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            missing,
            "MEMORYCACHED_MEMCACHED is not set (set by `cargo xtask test`; run that, \
             or export MEMORYCACHED_MEMCACHED=host:port,...)"
        );
        assert!(parse_servers("V", Some(" , ".to_owned())).is_err());
        let bad = parse_servers("V", Some("127.0.0.1".to_owned())).unwrap_err();
        assert!(
            bad.to_string()
                .contains("`127.0.0.1`, which is not host:port"),
            "{bad}"
        );
    }

    #[test]
    fn provider_kinds_parse() {
        assert_eq!(
            "docker".parse::<ProviderKind>().unwrap(),
            ProviderKind::Docker
        );
        assert_eq!(
            " Process".parse::<ProviderKind>().unwrap(),
            ProviderKind::Process
        );
        assert_eq!("".parse::<ProviderKind>().unwrap(), ProviderKind::Auto);
        assert!("podman".parse::<ProviderKind>().is_err());
    }
}

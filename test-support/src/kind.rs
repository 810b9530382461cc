//! What to run: [`ServerKind`] and the server options both providers share,
//! and where to run it: [`ProviderKind`].
//!
//! A leaf module (it uses nothing else of the crate but the error type), so
//! the provider modules, the servers, the images and the readiness check
//! can all name a kind without depending on each other. ([`ProviderKind`]
//! used to live in `provider.rs`, which made `server.rs` -> `provider.rs`
//! -> `cluster.rs` -> `server.rs` a ring.)

use std::{fmt, str::FromStr};

use crate::error::Error;

/// Which server a [`Server`](crate::Server) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// memcached (ASCII/meta protocol).
    Memcached,
    /// Redis (RESP).
    Redis,
    /// Valkey 8.1 or newer (RESP; Redis 7.2's protocol plus `SET ... IFEQ`),
    /// always a local process: Debian 12 has no Valkey 8.1 to build an
    /// image from (see [`Provider::valkey`](crate::Provider::valkey)).
    Valkey,
}

impl ServerKind {
    /// `memcached`, `redis` or `valkey`.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Memcached => "memcached",
            ServerKind::Redis => "redis",
            ServerKind::Valkey => "valkey",
        }
    }
}

/// Options for [`Provider::memcached_with`](crate::Provider::memcached_with).
///
/// Build it with struct-update syntax:
/// `MemcachedOptions { item_size_max: Some(2 << 20), ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedOptions {
    /// Cache memory in megabytes (`-m`); 64 by default.
    pub memory_mb: u32,
    /// Largest item in bytes (`-I`); memcached's default (1 MiB) when `None`.
    /// memcached refuses values above half of `memory_mb`.
    pub item_size_max: Option<u64>,
    /// Further arguments appended verbatim, e.g. `["-o", "modern"]`.
    pub extra_args: Vec<String>,
}

impl Default for MemcachedOptions {
    fn default() -> Self {
        MemcachedOptions {
            memory_mb: 64,
            item_size_max: None,
            extra_args: Vec::new(),
        }
    }
}

impl MemcachedOptions {
    /// The provider-independent arguments (no listen address, port or user).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-U".to_owned(),
            "0".to_owned(),
            "-m".to_owned(),
            self.memory_mb.to_string(),
        ];
        if let Some(size) = self.item_size_max {
            args.extend(["-I".to_owned(), size.to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// The provider-independent Redis arguments: no persistence of any kind.
pub(crate) fn redis_args() -> Vec<String> {
    ["--save", "", "--appendonly", "no"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Which provider to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Docker when a daemon answers, processes otherwise.
    Auto,
    /// Containers through testcontainers.
    Docker,
    /// Local binaries.
    Process,
}

impl ProviderKind {
    /// `auto`, `docker` or `process`, as `MEMORYCACHED_PROVIDER` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Auto => "auto",
            ProviderKind::Docker => "docker",
            ProviderKind::Process => "process",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<ProviderKind, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(ProviderKind::Auto),
            "docker" => Ok(ProviderKind::Docker),
            "process" => Ok(ProviderKind::Process),
            _ => Err(Error::UnknownProvider(s.to_owned())),
        }
    }
}

//! What to run: [`ServerKind`] and the server options both providers share,
//! and where to run it: [`ProviderKind`].
//!
//! A leaf module (it uses nothing else of the crate but the error type), so
//! the provider modules, the servers, the images and the readiness check
//! can all name a kind without depending on each other. ([`ProviderKind`]
//! used to live in `provider.rs`, which made `server.rs` -> `provider.rs`
//! -> `cluster.rs` -> `server.rs` a ring.)

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

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

/// TLS for [`Provider::memcached_secured`](crate::Provider::memcached_secured):
/// memcached's `-Z -o ssl_chain_cert=...,ssl_key=...`, plus
/// `ssl_verify_mode=2,ssl_ca_cert=...` (a client certificate required)
/// when `client_ca` is set. The paths are the host's; the docker provider
/// copies the files into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedTls {
    /// The server's certificate chain (PEM).
    pub chain_cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

/// TLS and ASCII authentication for
/// [`Provider::memcached_secured`](crate::Provider::memcached_secured).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemcachedSecurity {
    /// `-Z` with these certificates; plaintext when `None`.
    pub tls: Option<MemcachedTls>,
    /// `-Y FILE`: the `user:password` lines memcached accepts (host path).
    pub auth_file: Option<PathBuf>,
}

impl MemcachedSecurity {
    /// The host files the server reads, in the order [`MemcachedSecurity::args`]
    /// takes their placed paths.
    pub(crate) fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if let Some(tls) = &self.tls {
            files.extend([tls.chain_cert.as_path(), tls.key.as_path()]);
            files.extend(tls.client_ca.as_deref());
        }
        files.extend(self.auth_file.as_deref());
        files
    }

    /// The arguments, `placed[i]` being where the server finds `files()[i]`
    /// (the host path for a process, a path in the container for Docker).
    pub(crate) fn args(&self, placed: &[String]) -> Vec<String> {
        let mut placed = placed.iter();
        let mut next = || placed.next().cloned().unwrap_or_default();
        let mut args = Vec::new();
        if let Some(tls) = &self.tls {
            let mut options = format!("ssl_chain_cert={},ssl_key={}", next(), next());
            if tls.client_ca.is_some() {
                options.push_str(&format!(",ssl_verify_mode=2,ssl_ca_cert={}", next()));
            }
            args.extend(["-Z".to_owned(), "-o".to_owned(), options]);
        }
        if self.auth_file.is_some() {
            args.extend(["-Y".to_owned(), next()]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_arguments_name_the_placed_files_in_order() {
        let security = MemcachedSecurity {
            tls: Some(MemcachedTls {
                chain_cert: "/h/server.pem".into(),
                key: "/h/server.key".into(),
                client_ca: Some("/h/ca.pem".into()),
            }),
            auth_file: Some("/h/auth".into()),
        };
        let files = security.files();
        assert_eq!(
            files,
            ["/h/server.pem", "/h/server.key", "/h/ca.pem", "/h/auth"].map(Path::new)
        );
        let placed: Vec<String> = (0..files.len()).map(|i| format!("/c/{i}")).collect();
        assert_eq!(
            security.args(&placed),
            [
                "-Z",
                "-o",
                "ssl_chain_cert=/c/0,ssl_key=/c/1,ssl_verify_mode=2,ssl_ca_cert=/c/2",
                "-Y",
                "/c/3"
            ]
        );
        let auth_only = MemcachedSecurity {
            tls: None,
            auth_file: Some("/h/auth".into()),
        };
        assert_eq!(auth_only.args(&["/c/0".to_owned()]), ["-Y", "/c/0"]);
        assert!(MemcachedSecurity::default().args(&[]).is_empty());
    }
}

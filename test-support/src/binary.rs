//! [`Binary`]: the host's `memcached`, `redis-server` and `valkey-server`
//! (and Debian 13's `memcached-1.6.38`),
//! and how to find them.
//!
//! A leaf module: the process provider runs these binaries and the local
//! images are built from them, without either depending on the other.

use std::{env, path::PathBuf};

use crate::{Error, kind::ServerKind};

/// A binary the harness runs, and how to find it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binary {
    pub(crate) name: &'static str,
    pub(crate) install: &'static str,
    pub(crate) env_var: &'static str,
}

impl Binary {
    pub(crate) fn of(kind: ServerKind) -> Binary {
        match kind {
            ServerKind::Memcached => Binary {
                name: "memcached",
                install: "apt-get install memcached",
                env_var: "MEMORYCACHED_MEMCACHED_BIN",
            },
            ServerKind::Redis => Binary {
                name: "redis-server",
                install: "apt-get install redis-server",
                env_var: "MEMORYCACHED_REDIS_BIN",
            },
            // Debian 12 has no Valkey 8.1; the script unpacks Debian 13's
            // beside it and puts a `valkey-server` wrapper on PATH.
            ServerKind::Valkey => Binary {
                name: "valkey-server",
                install: "bash .ci/valkey",
                env_var: "MEMORYCACHED_VALKEY_BIN",
            },
        }
    }

    /// Debian 13's memcached 1.6.38, beside the system's (Debian 12 has
    /// 1.6.18): the first with `watch deletions`. `bash
    /// .ci/memcached-trixie` unpacks it and puts this wrapper on PATH.
    pub(crate) const MEMCACHED_FEED: Binary = Binary {
        name: "memcached-1.6.38",
        install: "bash .ci/memcached-trixie",
        env_var: "MEMORYCACHED_MEMCACHED_FEED_BIN",
    };

    /// `$ENV_VAR`, else the first match on `PATH`, `/usr/bin`, `/usr/sbin`.
    ///
    /// The path is returned as found, not canonicalised: Debian's
    /// `redis-server` is a symlink to `redis-check-rdb`, which picks its role
    /// from the name it was started under.
    pub(crate) fn locate(self) -> Result<PathBuf, Error> {
        if let Some(path) = env::var_os(self.env_var) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(self.not_found(format!("{}={}", self.env_var, path.display())))
            };
        }
        let mut dirs: Vec<PathBuf> = env::var_os("PATH")
            .map(|p| env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
        dirs.iter()
            .map(|dir| dir.join(self.name))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| self.not_found("PATH, /usr/bin, /usr/sbin, /usr/local/bin".to_owned()))
    }

    fn not_found(self, searched: String) -> Error {
        Error::BinaryNotFound {
            binary: self.name,
            install: self.install,
            env_var: self.env_var,
            searched,
        }
    }
}

//! OCI images of the daemons (placeholder: being built by its owner).

use crate::release::Binaries;

/// One image built: its repository name, tags and size.
pub(crate) struct Built {
    /// e.g. `memorycached/soap-bridge`.
    pub(crate) name: String,
    /// Every tag given to it (the version, version-commit, ...).
    pub(crate) tags: Vec<String>,
    /// The image's size as `docker image inspect` reports it.
    pub(crate) size_bytes: u64,
}

/// Builds `memorycached/soap-bridge` and `memorycached/replicator`.
pub(crate) fn build(_bins: &Binaries, _version: &str, _commit: &str) -> anyhow::Result<Vec<Built>> {
    anyhow::bail!("images are not built yet")
}

//! The release binaries, built once and shared by every command that ships
//! or runs them (`dist` for packages and images, `soak` for its fleet), so a
//! CI run compiles them a single time.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// Paths of the release binaries under `target/release`.
pub(crate) struct Binaries {
    /// `soap-bridge`.
    pub(crate) soap_bridge: PathBuf,
    /// `replicator`.
    pub(crate) replicator: PathBuf,
    /// `sessionctl` (crate `session-cli`).
    pub(crate) sessionctl: PathBuf,
    /// The axum example app (`tower-sessions-memorycached`'s example `app`).
    pub(crate) example_app: PathBuf,
}

/// Builds (or finds up to date) the release binaries, in one cargo call.
pub(crate) fn build() -> anyhow::Result<Binaries> {
    let root = crate::project_root();
    // Default features only: soap-bridge and session-cli turn on Redis over
    // TLS and Redis Cluster by default, so what ships is what `cargo run` runs.
    println!("xtask: building the release binaries (cargo build --release)");
    let status = Command::new(crate::cargo())
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "soap-bridge",
            "-p",
            "replicator",
            "-p",
            "session-cli",
            "-p",
            "tower-sessions-memorycached",
            "--bins",
            "--example",
            "app",
        ])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    let dir = root.join("target/release");
    let bins = Binaries {
        soap_bridge: dir.join("soap-bridge"),
        replicator: dir.join("replicator"),
        sessionctl: dir.join("sessionctl"),
        example_app: dir.join("examples/app"),
    };
    for path in [
        &bins.soap_bridge,
        &bins.replicator,
        &bins.sessionctl,
        &bins.example_app,
    ] {
        exists(path)?;
    }
    Ok(bins)
}

fn exists(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        bail!("cargo build --release did not leave {}", path.display())
    }
}

//! `cargo xtask dist`: Debian packages and OCI images from the release
//! binaries. (Being built: see the issue tracker.)

use std::process::ExitCode;

/// Flags of `cargo xtask dist`.
#[derive(clap::Args)]
pub(crate) struct Args {}

/// Builds the packages and images.
pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let _bins = crate::release::build()?;
    anyhow::bail!("cargo xtask dist: packages and images are not built yet")
}

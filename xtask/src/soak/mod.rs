//! `cargo xtask soak`: the whole fleet under load and faults, then a
//! history checker. (Being built: see the issue tracker.)

use std::process::ExitCode;

/// Flags of `cargo xtask soak`.
#[derive(clap::Args)]
pub(crate) struct Args {}

/// Runs the soak.
pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cargo xtask soak is not built yet")
}

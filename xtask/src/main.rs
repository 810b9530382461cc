//! `cargo xtask`: the project's own commands (`setup`, `test`, `bench`,
//! `fuzz`, `images`, `dist`, `soak`).
//!
//! Run through the alias in `.cargo/config.toml`. Each subcommand lives in
//! its own file; this one only parses flags and dispatches. The tidy checks
//! (`tidy.rs`) are a `#[test]`, so every test run enforces them.

mod bench;
mod counts;
mod dist;
mod fuzz;
mod images;
mod prereqs;
mod release;
mod scope;
mod setup;
mod soak;
mod test;
#[cfg(test)]
mod tidy;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "memorycached's project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the tests and benchmarks need on a Debian machine
    /// (apt-get, .ci/valkey, pip, rustup; root), or, when not root, print
    /// the commands.
    Setup(setup::Args),
    /// fmt, clippy, shared servers, then every test against them.
    Test(test::Args),
    /// One report (target/bench/report.md, .json, plots) of every bench
    /// target against the floor and the peers, as ratios measured in the
    /// same run, on servers started for it.
    Bench(bench::Args),
    /// Build the local Docker images of memcached and Redis from the host's binaries.
    Images(images::Args),
    /// Run every cargo-fuzz target of fuzz/ (or the named ones) for a fixed time each.
    Fuzz(fuzz::Args),
    /// Build the release binaries once, then the Debian packages and OCI
    /// images from them (target/dist/).
    Dist(dist::Args),
    /// Run the whole fleet under load while faults are injected, then check
    /// the history against the documented promises (target/soak/).
    Soak(soak::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(args),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::Images(args) => images::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Dist(args) => dist::run(args),
        Command::Soak(args) => soak::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo that runs xtask (`$CARGO`), else the one on `PATH`.
pub(crate) fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A runtime for the async test-support API.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

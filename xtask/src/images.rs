//! `cargo xtask images`: build the local memcached and Redis images.
//!
//! The docker provider builds them on first use anyway; this command does it
//! up front (e.g. while preparing a machine) and says what it did.

use std::process::ExitCode;

use test_support::{BuildMethod, ImageAction};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Rebuild even when the images already exist.
    #[arg(long)]
    force: bool,
    /// How to build: BuildKit with import as fallback, or one of them only.
    #[arg(long, value_enum, default_value = "auto")]
    method: Method,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Method {
    Auto,
    Buildkit,
    Import,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let method = match args.method {
        Method::Auto => BuildMethod::Auto,
        Method::Buildkit => BuildMethod::BuildKit,
        Method::Import => BuildMethod::Import,
    };
    let reports = crate::runtime()?.block_on(test_support::build_images(args.force, method))?;
    for report in reports {
        let what = match &report.action {
            ImageAction::Reused => "already present, reused (--force rebuilds)".to_owned(),
            ImageAction::BuiltWithBuildKit => "built with BuildKit (FROM scratch)".to_owned(),
            ImageAction::Imported => "imported from a root-filesystem tar".to_owned(),
            ImageAction::ImportedAfterBuildKitFailed(why) => {
                format!("imported from a root-filesystem tar (BuildKit failed: {why})")
            }
        };
        println!(
            "{}: {} {what} in {:.2?}",
            report.server, report.image, report.elapsed
        );
        for file in &report.files {
            println!("    {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `cargo xtask dist`: the Debian packages and the OCI images, from the
//! release binaries built once, into `target/dist/`.
//!
//! Steps, each printed with its time: the release build
//! ([`crate::release::build`], shared with `soak`); the three `.deb`
//! ([`deb`]); the images ([`image`], unless `--no-images`); a summary of
//! every artifact with its size. With `--verify`, the packages are then
//! installed and exercised on this machine ([`verify_deb`]) and the compose
//! fleet is started on the images and checked ([`compose`]); every check
//! prints PASS or FAIL, and one FAIL makes the command exit non-zero.
//! Packaging choices and what each package installs: `docs/packaging.md`.

mod compose;
mod deb;
mod image;
#[cfg(test)]
mod tests;
mod tools;
mod verify_deb;
mod verify_run;

use std::{
    fmt::Display,
    path::PathBuf,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::release::Binaries;

/// Flags of `cargo xtask dist`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// After building, check what was built: install the packages on this
    /// machine (needs root; they are purged again at the end), run each
    /// daemon as its user with its packaged config, remove and purge them;
    /// then start the compose fleet on the images and check it. Exits
    /// non-zero if any check fails.
    #[arg(long)]
    verify: bool,
    /// Build (and with --verify, check) the Debian packages only, not the
    /// images: for machines without docker.
    #[arg(long)]
    no_images: bool,
}

/// One check of `--verify`: what it checked, and what it found or why it
/// failed.
pub(crate) struct Outcome {
    name: String,
    result: Result<String, String>,
    took: Duration,
}

impl Outcome {
    /// Runs `check`, timing it.
    pub(crate) fn timed(name: &str, check: impl FnOnce() -> anyhow::Result<String>) -> Outcome {
        let started = Instant::now();
        let result = check().map_err(|e| format!("{e:#}"));
        let outcome = Outcome {
            name: name.to_owned(),
            result,
            took: started.elapsed(),
        };
        outcome.print();
        outcome
    }

    /// A check that failed before it could run.
    pub(crate) fn fail(name: &str, why: impl Display) -> Outcome {
        let outcome = Outcome {
            name: name.to_owned(),
            result: Err(why.to_string()),
            took: Duration::ZERO,
        };
        outcome.print();
        outcome
    }

    /// Whether it passed.
    pub(crate) fn passed(&self) -> bool {
        self.result.is_ok()
    }

    fn print(&self) {
        match &self.result {
            Ok(detail) => println!("  PASS {} ({:.1?}): {detail}", self.name, self.took),
            Err(why) => println!("  FAIL {} ({:.1?}): {why}", self.name, self.took),
        }
    }
}

/// Builds the packages and images, then checks them when asked.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let all = Instant::now();
    let root = crate::project_root();
    let out = root.join("target/dist");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    tools::check(args.verify, !args.no_images)?;
    let t = step("1. release binaries");
    let bins = crate::release::build()?;
    done(t);
    let version = env!("CARGO_PKG_VERSION");
    let commit = built_commit(&bins)?;
    println!("xtask dist: version {version}, commit {commit}");

    let t = step("2. Debian packages");
    let packages = deb::packages(&bins);
    let mut artifacts: Vec<(PathBuf, u64)> = Vec::new();
    let mut debs = Vec::new();
    for package in &packages {
        let built = deb::build(package, version, &out)
            .with_context(|| format!("building {}", package.name))?;
        println!("  {} ({})", built.path.display(), mb(built.size_bytes));
        artifacts.push((built.path.clone(), built.size_bytes));
        debs.push(built.path);
    }
    done(t);

    let mut images = Vec::new();
    if args.no_images {
        println!("xtask dist: 3. images: skipped (--no-images): packages only");
    } else {
        let t = step("3. OCI images");
        images = image::build(&bins, version, &commit)?;
        for built in &images {
            println!(
                "  {} tags {} ({})",
                built.name,
                built.tags.join(", "),
                mb(built.size_bytes)
            );
        }
        done(t);
    }

    println!("xtask dist: built");
    for (path, size) in &artifacts {
        println!("  {:>9}  {}", mb(*size), path.display());
    }
    for built in &images {
        let tag = built.tags.first().map_or("", String::as_str);
        println!("  {:>9}  image {}:{tag}", mb(built.size_bytes), built.name);
    }

    if !args.verify {
        println!(
            "xtask dist: done in {:.1?} (--verify checks them)",
            all.elapsed()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let t = step("4. verify the packages");
    let mut outcomes = verify_deb::verify(&packages, &debs, version, &commit, &out.join("verify"));
    done(t);
    if args.no_images {
        println!("xtask dist: 5. compose fleet: skipped (--no-images)");
    } else {
        let t = step("5. verify the compose fleet");
        outcomes.push(Outcome::timed("compose fleet", || {
            compose::verify().map(|()| "every check passed".to_owned())
        }));
        done(t);
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    println!(
        "xtask dist: {} passed, {} failed ({:.1?} in all)",
        outcomes.len() - failed.len(),
        failed.len(),
        all.elapsed()
    );
    for outcome in &failed {
        println!("  failed: {}", outcome.name);
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The commit the binaries were built from, as their `--version` prints
/// it: the three must agree, and it should be `git rev-parse --short=12
/// HEAD`. When HEAD moved on during the build (a commit made meanwhile in
/// this work tree), the binaries' own commit is the true one, and it is used
/// to tag the images, with a warning; one that is no ancestor of HEAD is
/// an error.
fn built_commit(bins: &Binaries) -> anyhow::Result<String> {
    let mut seen: Vec<String> = Vec::new();
    for bin in [&bins.soap_bridge, &bins.replicator, &bins.sessionctl] {
        let out = deb::output(Command::new(bin).arg("--version"))?;
        let line = String::from_utf8_lossy(&out).trim().to_owned();
        let commit = line
            .strip_suffix(')')
            .and_then(|l| l.rsplit_once("(commit "))
            .map(|(_, c)| c.to_owned())
            .filter(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| {
                format!(
                    "{} --version printed {line:?}, with no 12-hex commit",
                    bin.display()
                )
            })?;
        if !seen.contains(&commit) {
            seen.push(commit);
        }
    }
    let [commit] = seen.as_slice() else {
        bail!("the binaries name different commits: {}", seen.join(", "));
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(crate::project_root())
            .args(args)
            .output()
            .context("running git")
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    if *commit != head {
        if !git(&["merge-base", "--is-ancestor", commit, "HEAD"])?
            .status
            .success()
        {
            bail!("the binaries were built from {commit}, which is not in HEAD's history ({head})");
        }
        println!(
            "xtask dist: warning: HEAD moved on during the build ({commit} -> {head}); \
             the binaries and the images carry {commit}"
        );
    }
    Ok(commit.clone())
}

fn step(what: &str) -> (Instant, String) {
    println!("xtask dist: {what}");
    (Instant::now(), what.to_owned())
}

fn done((started, what): (Instant, String)) {
    println!("xtask dist: {what}: {:.1?}", started.elapsed());
}

/// Bytes as megabytes, one decimal.
fn mb(bytes: u64) -> String {
    // Precision is irrelevant at these sizes.
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1_000_000.0;
    format!("{mb:.1} MB")
}

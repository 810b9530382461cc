//! `cargo xtask setup`: installs what the tests and benchmarks need on a
//! fresh Debian machine, the install half of `.ci/run` (which calls it).
//!
//! Steps, each announced as `==> [n/N] <step>` and timed: the Debian
//! packages (`apt-get`), the system services those packages just started
//! (stopped), the builds of a newer Debian that Debian 12 lacks (Valkey 8.1
//! through `.ci/valkey`, memcached 1.6.38 through `.ci/memcached-trixie`),
//! the Python packages (pip), the rustup components of the lint steps; then the checks
//! `cargo xtask test` makes before it builds, which must all pass. What to
//! install comes from `prereqs/table.rs`. Idempotent: each step looks first
//! and installs only what is missing, so a second run takes a second or two.
//!
//! apt-get and a system-wide pip need root. Run by anyone else (or with
//! `--dry-run`) it installs nothing and prints the exact commands instead.

use std::{
    collections::HashSet,
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{
    prereqs::{
        self, Check, DEBIAN_PACKAGES, PIP_PACKAGES, PREREQUISITES, Plan, Probe, RUST_COMPONENTS,
        SERVICES, Scope, Source,
    },
    project_root,
};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only say what is missing and the commands that would install it.
    #[arg(long)]
    dry_run: bool,
}

/// How many steps a run announces.
const STEPS: usize = 6;

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let root = prereqs::is_root();
    if args.dry_run || !root {
        return print_plan(root);
    }

    let started_step = begin(1, "Debian packages (apt-get)");
    let installed = install_debian()?;
    done(started_step);

    let started_step = begin(2, "stop the system services of the packages just installed");
    stop_services(&installed);
    done(started_step);

    let started_step = begin(
        3,
        "builds of a newer Debian, beside Debian 12's (.ci scripts)",
    );
    run_scripts()?;
    done(started_step);

    let started_step = begin(4, "Python packages (pip)");
    install_pip()?;
    done(started_step);

    let started_step = begin(5, "Rust components (rustup)");
    install_rust_components()?;
    done(started_step);

    let started_step = begin(6, "check what `cargo xtask test` checks before it builds");
    let everything = Scope {
        lints: true,
        packages: &[],
    };
    if let Err(report) = prereqs::check_machine(&everything) {
        println!("{report}");
        bail!("setup finished, yet something is still missing (above)");
    }
    println!("    every prerequisite is present");
    done(started_step);
    println!("setup: done in {:.1?}", started.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn begin(n: usize, name: &str) -> Instant {
    println!("==> [{n}/{STEPS}] {name}");
    Instant::now()
}

fn done(started: Instant) {
    println!("    ok ({:.1?})", started.elapsed());
}

/// Installs nothing: prints what is missing and the commands that install
/// it; fails when something is missing and this is not a dry run (not root).
fn print_plan(root: bool) -> anyhow::Result<ExitCode> {
    if !root {
        println!(
            "setup: not root, so nothing is installed; what is missing and how to install it:"
        );
    }
    let probe = Probe::system();
    let mut plan = Plan::default();
    let debian = debian_missing()?;
    if !debian.is_empty() {
        println!("Debian packages missing:");
        print_packages(&debian);
    }
    for package in debian {
        plan.add(Source::Debian(package));
    }
    for prerequisite in scripted() {
        if probe.check(prerequisite).is_err() {
            plan.add(prerequisite.source);
        }
    }
    for (package, module) in PIP_PACKAGES {
        if pip_version(module).is_none() {
            plan.add(Source::Pip(package));
        }
    }
    for component in rust_components_missing(&probe) {
        plan.add(Source::Rustup(component));
    }
    if plan.is_empty() {
        println!("setup: everything is installed already");
        return Ok(ExitCode::SUCCESS);
    }
    println!("setup: to install, from the workspace root:");
    for command in plan.commands(root, &probe.pip_flags(root)) {
        println!("    {command}");
    }
    Ok(if root {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The packages of [`DEBIAN_PACKAGES`] that dpkg does not list as installed.
fn debian_missing() -> anyhow::Result<Vec<&'static str>> {
    let mut cmd = Command::new("dpkg-query");
    cmd.arg("-W")
        .arg("-f=${Package} ${Status}\n")
        .args(DEBIAN_PACKAGES.iter().map(|p| p.name));
    // Unknown packages make dpkg-query exit non-zero; its stdout still
    // lists the others.
    let out = prereqs::run(cmd).context(
        "running dpkg-query (setup installs Debian packages; on another system, install the \
         equivalents of the list in xtask/src/prereqs/table.rs)",
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let installed: HashSet<&str> = stdout
        .lines()
        .filter(|line| line.ends_with("install ok installed"))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    Ok(DEBIAN_PACKAGES
        .iter()
        .map(|p| p.name)
        .filter(|name| !installed.contains(name))
        .collect())
}

/// One line per package: its name and what it is for.
fn print_packages(names: &[&str]) {
    for package in DEBIAN_PACKAGES.iter().filter(|p| names.contains(&p.name)) {
        println!("      {}: {}", package.name, package.why);
    }
}

/// Installs the missing Debian packages; returns those it installed.
fn install_debian() -> anyhow::Result<Vec<&'static str>> {
    let missing = debian_missing()?;
    if missing.is_empty() {
        println!(
            "    all {} packages present, nothing to install",
            DEBIAN_PACKAGES.len()
        );
        return Ok(missing);
    }
    println!(
        "    installing {} package(s) (chromium takes minutes):",
        missing.len()
    );
    print_packages(&missing);
    apt_get(&["update", "-qq"])?;
    apt_get(
        &[
            &["install", "-y", "-qq", "--no-install-recommends"][..],
            &missing,
        ]
        .concat(),
    )?;
    Ok(missing)
}

/// Runs `apt-get args`, non-interactively; its errors go to stderr.
fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Stops the servers the packages in `installed` started: the tests use
/// their own ports, and a quiet machine keeps the default ports free. A
/// server that was installed before is the machine owner's, and left alone.
fn stop_services(installed: &[&str]) {
    let mut stopped = 0;
    for (package, service) in SERVICES {
        if !installed.contains(package) {
            continue;
        }
        let status = Command::new("service")
            .args([service, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // A package whose policy kept it from starting has nothing to stop.
        match status {
            Ok(s) if s.success() => println!("    stopped {service}"),
            _ => println!("    {service}: not running"),
        }
        stopped += 1;
    }
    if stopped == 0 {
        println!("    no server package installed now, nothing to stop");
    }
}

/// The prerequisites a `.ci` script installs.
fn scripted() -> impl Iterator<Item = &'static prereqs::Prerequisite> {
    PREREQUISITES
        .iter()
        .filter(|p| matches!(p.source, Source::Script(_)))
}

/// Runs the script of each scripted prerequisite that is missing.
fn run_scripts() -> anyhow::Result<()> {
    let probe = Probe::system();
    for prerequisite in scripted() {
        let Source::Script(script) = prerequisite.source else {
            continue;
        };
        if probe.check(prerequisite).is_ok() {
            let shown = match prerequisite.check {
                Check::Program {
                    name,
                    version: Some(version),
                    ..
                } => probe
                    .find(name, true)
                    .map(|bin| version_line(Command::new(bin).arg(version.flag))),
                _ => None,
            };
            println!(
                "    present: {}",
                shown.unwrap_or_else(|| prerequisite.what.to_owned())
            );
            continue;
        }
        println!("    installing {} (bash {script})", prerequisite.what);
        let status = Command::new("bash")
            .arg(script)
            .current_dir(project_root())
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running bash {script}"))?;
        if !status.success() {
            bail!("bash {script} failed ({status})");
        }
    }
    Ok(())
}

fn install_pip() -> anyhow::Result<()> {
    let probe = Probe::system();
    let missing: Vec<&str> = PIP_PACKAGES
        .iter()
        .filter(|(_, module)| pip_version(module).is_none())
        .map(|(package, _)| *package)
        .collect();
    if !missing.is_empty() {
        println!("    installing {}", missing.join(" "));
        let status = Command::new("python3")
            .args(["-m", "pip", "install"])
            .args(probe.pip_flags(true))
            .args(&missing)
            .stdin(Stdio::null())
            .status()
            .context("running python3 -m pip")?;
        if !status.success() {
            bail!("pip install {} failed ({status})", missing.join(" "));
        }
    }
    let versions: Vec<String> = PIP_PACKAGES
        .iter()
        .map(|(package, module)| {
            let version = pip_version(module).unwrap_or_else(|| "?".to_owned());
            format!("{package} {version}")
        })
        .collect();
    let verb = if missing.is_empty() { "present" } else { "now" };
    println!("    {verb}: {}", versions.join(", "));
    Ok(())
}

/// The version of Python module `module`, if python3 imports it (one
/// import serves as check and report: zeep takes a while to import).
fn pip_version(module: &str) -> Option<String> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        &format!("import {module}; print({module}.__version__)"),
    ]);
    let out = prereqs::run(cmd).ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| stdout.lines().next().unwrap_or("?").to_owned())
}

/// The components of [`RUST_COMPONENTS`] whose cargo subcommand fails.
fn rust_components_missing(probe: &Probe) -> Vec<&'static str> {
    PREREQUISITES
        .iter()
        .filter(|p| matches!(p.check, Check::CargoSubcommand(_)))
        .filter(|p| probe.check(p).is_err())
        .filter_map(|p| match p.source {
            Source::Rustup(component) => Some(component),
            _ => None,
        })
        .filter(|component| RUST_COMPONENTS.contains(component))
        .collect()
}

fn install_rust_components() -> anyhow::Result<()> {
    let missing = rust_components_missing(&Probe::system());
    if missing.is_empty() {
        println!("    present: {}", RUST_COMPONENTS.join(", "));
        return Ok(());
    }
    println!("    adding {}", missing.join(" "));
    let status = Command::new("rustup")
        .args(["component", "add"])
        .args(&missing)
        .stdin(Stdio::null())
        .status()
        .context(
            "running rustup (without rustup, install rustfmt and clippy with your toolchain)",
        )?;
    if !status.success() {
        bail!(
            "rustup component add {} failed ({status})",
            missing.join(" ")
        );
    }
    Ok(())
}

/// The first line `cmd` prints, or `?`.
fn version_line(cmd: &mut Command) -> String {
    cmd.stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

//! The prerequisites of `cargo xtask test`, checked before anything is
//! built, and reported all at once with the commands that install them.
//!
//! Without this a fresh machine builds for minutes, then fails one test per
//! missing thing, each with its own message. The list is in `table.rs`;
//! `cargo xtask setup` (`setup.rs`) installs from the same list. Each check
//! looks the way its test looks (the same binary lookup as test-support,
//! the same Perl/Python import, the same absolute path), so what passes here
//! is found there.

mod table;

use std::{
    collections::BTreeMap,
    env,
    ffi::OsString,
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

pub(crate) use table::{
    Check, DEBIAN_PACKAGES, Needed, PIP_PACKAGES, PREREQUISITES, Prerequisite, RUST_COMPONENTS,
    SERVICES, Source, Version,
};

/// Where the checks look: the machine's `PATH` and files, or (in tests) a
/// made-up one.
pub(crate) struct Probe {
    /// `PATH`, split.
    path: Vec<PathBuf>,
    /// Where test-support also looks for server binaries.
    fallback: Vec<PathBuf>,
    /// Prefix of the absolute paths of [`Check::File`] (`/` on the machine).
    root: PathBuf,
    /// The `MEMORYCACHED_*_BIN` overrides that are set.
    vars: BTreeMap<&'static str, OsString>,
    /// The cargo whose subcommands are checked.
    cargo: OsString,
}

impl Probe {
    /// The machine as the tests will see it.
    pub(crate) fn system() -> Probe {
        let vars = PREREQUISITES
            .iter()
            .filter_map(|p| match p.check {
                Check::Program {
                    env_var: Some(var), ..
                } => env::var_os(var).map(|value| (var, value)),
                _ => None,
            })
            .collect();
        Probe {
            path: env::var_os("PATH")
                .map(|p| env::split_paths(&p).collect())
                .unwrap_or_default(),
            fallback: ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
                .map(PathBuf::from)
                .into(),
            root: PathBuf::from("/"),
            vars,
            cargo: crate::cargo(),
        }
    }

    /// The first executable `name` on `PATH` (then in the fallback
    /// directories, when asked).
    pub(crate) fn find(&self, name: &str, fallback: bool) -> Option<PathBuf> {
        let extra: &[PathBuf] = if fallback { &self.fallback } else { &[] };
        self.path
            .iter()
            .chain(extra)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    /// `Ok` when `prerequisite` is there, else why it is not.
    pub(crate) fn check(&self, prerequisite: &Prerequisite) -> Result<(), String> {
        match prerequisite.check {
            Check::Program {
                name,
                env_var,
                fallback_dirs,
                version,
            } => {
                let binary = match env_var.and_then(|var| Some((var, self.vars.get(var)?))) {
                    // Set: test-support uses it or fails, whatever PATH holds.
                    Some((var, value)) => {
                        let path = PathBuf::from(value);
                        if !path.is_file() {
                            return Err(format!("{var}={} is not a file", path.display()));
                        }
                        path
                    }
                    None => self.find(name, fallback_dirs).ok_or_else(|| {
                        let also = if fallback_dirs {
                            ", /usr/bin, /usr/sbin or /usr/local/bin"
                        } else {
                            ""
                        };
                        format!("`{name}` is not on PATH{also}")
                    })?,
                };
                match version {
                    Some(version) => check_version(&binary, &version),
                    None => Ok(()),
                }
            }
            Check::File(path) => {
                let at = self.root.join(path.trim_start_matches('/'));
                if at.is_file() {
                    Ok(())
                } else {
                    Err(format!("no {path}"))
                }
            }
            Check::PerlModule(module) => self.interpreter(
                "perl",
                &[&format!("-M{module}"), "-e1"],
                &format!("perl cannot load {module}"),
            ),
            Check::PythonModule(module) => self.interpreter(
                "python3",
                &["-c", &format!("import {module}")],
                &format!("python3 cannot import {module}"),
            ),
            Check::CargoSubcommand(subcommand) => {
                let mut cmd = Command::new(&self.cargo);
                cmd.args([subcommand, "--version"]);
                match run(cmd) {
                    Ok(out) if out.status.success() => Ok(()),
                    _ => Err(format!("`cargo {subcommand} --version` fails")),
                }
            }
        }
    }

    /// Runs `interpreter args` from `PATH`; `Err(fails)` when it is absent
    /// or exits non-zero.
    fn interpreter(&self, interpreter: &str, args: &[&str], fails: &str) -> Result<(), String> {
        let Some(binary) = self.find(interpreter, false) else {
            return Err(format!("`{interpreter}` is not on PATH"));
        };
        let mut cmd = Command::new(binary);
        cmd.args(args);
        match run(cmd) {
            Ok(out) if out.status.success() => Ok(()),
            _ => Err(fails.to_owned()),
        }
    }

    /// Whether `python3 -m pip` answers.
    fn has_pip(&self) -> bool {
        self.pip_help().is_some()
    }

    /// `python3 -m pip install --help`, if pip answers.
    fn pip_help(&self) -> Option<String> {
        let mut cmd = Command::new(self.find("python3", false)?);
        cmd.args(["-m", "pip", "install", "--help"]);
        let out = run(cmd).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The flags of `pip install` for this machine: Debian marks its Python
    /// as externally managed (PEP 668), and CI machines are throwaway, so
    /// root installs into it anyway rather than managing a venv; anyone
    /// else installs for their own user.
    pub(crate) fn pip_flags(&self, root: bool) -> Vec<&'static str> {
        let mut flags = vec!["--quiet", "--disable-pip-version-check"];
        match self.pip_help() {
            Some(help) => {
                if help.contains("--break-system-packages") {
                    flags.push("--break-system-packages");
                }
                if root && help.contains("--root-user-action") {
                    flags.push("--root-user-action=ignore");
                }
            }
            // Not installed yet: the pip Debian 12 installs knows it.
            None => flags.push("--break-system-packages"),
        }
        if !root {
            flags.push("--user");
        }
        flags
    }
}

/// Which prerequisites a run needs.
pub(crate) struct Scope<'a> {
    /// The run has the fmt and clippy steps.
    pub(crate) lints: bool,
    /// The packages it tests (`--backend`); empty for the whole workspace.
    pub(crate) packages: &'a [String],
}

impl Scope<'_> {
    /// Whether this run needs what `needed` describes.
    fn needs(&self, needed: &Needed) -> bool {
        match needed {
            Needed::Always => true,
            Needed::Lints => self.lints,
            Needed::By(packages) => {
                self.packages.is_empty()
                    || self
                        .packages
                        .iter()
                        .any(|wanted| packages.contains(&wanted.as_str()))
            }
        }
    }
}

/// A prerequisite that is not there, and why.
pub(crate) struct Missing {
    /// What is missing.
    pub(crate) prerequisite: &'static Prerequisite,
    /// How the check failed.
    pub(crate) why: String,
}

/// Every prerequisite of `scope` that `probe` does not find.
pub(crate) fn missing(probe: &Probe, scope: &Scope<'_>) -> Vec<Missing> {
    PREREQUISITES
        .iter()
        .filter(|p| scope.needs(&p.needed))
        .filter_map(|prerequisite| {
            let why = probe.check(prerequisite).err()?;
            Some(Missing { prerequisite, why })
        })
        .collect()
}

/// What to install, grouped by the tool that installs it.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Debian packages, for one `apt-get install`.
    pub(crate) debian: Vec<&'static str>,
    /// Scripts to run with bash (`.ci/valkey`, ...).
    pub(crate) scripts: Vec<&'static str>,
    /// pip packages.
    pub(crate) pip: Vec<&'static str>,
    /// rustup components.
    pub(crate) rustup: Vec<&'static str>,
}

impl Plan {
    /// What installs `missing`; with pip itself when it is absent.
    pub(crate) fn of(missing: &[Missing], probe: &Probe) -> Plan {
        let mut plan = Plan::default();
        for m in missing {
            plan.add(m.prerequisite.source);
        }
        if !plan.pip.is_empty() && !probe.has_pip() {
            plan.add(Source::Debian("python3"));
            plan.add(Source::Debian("python3-pip"));
        }
        plan
    }

    /// Adds `source` once.
    pub(crate) fn add(&mut self, source: Source) {
        let (list, name) = match source {
            Source::Debian(name) => (&mut self.debian, name),
            Source::Pip(name) => (&mut self.pip, name),
            Source::Rustup(name) => (&mut self.rustup, name),
            Source::Script(path) => (&mut self.scripts, path),
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }

    /// Whether there is nothing to install.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Plan::default()
    }

    /// The shell commands that carry the plan out, from the workspace root;
    /// `sudo` before those that need root when `root` is false.
    pub(crate) fn commands(&self, root: bool, pip_flags: &[&str]) -> Vec<String> {
        let sudo = if root { "" } else { "sudo " };
        let mut commands = Vec::new();
        if !self.debian.is_empty() {
            commands.push(format!(
                "{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {}",
                self.debian.join(" ")
            ));
        }
        for script in &self.scripts {
            commands.push(format!("{sudo}bash {script}"));
        }
        if !self.pip.is_empty() {
            commands.push(format!(
                "python3 -m pip install {} {}",
                pip_flags.join(" "),
                self.pip.join(" ")
            ));
        }
        if !self.rustup.is_empty() {
            commands.push(format!("rustup component add {}", self.rustup.join(" ")));
        }
        commands
    }
}

/// The one message `cargo xtask test` prints when something is missing.
pub(crate) fn report(missing: &[Missing], commands: &[String]) -> String {
    let mut text = format!(
        "xtask: this machine lacks {} thing(s) the tests need; nothing was built or run:\n",
        missing.len()
    );
    for m in missing {
        let source = match m.prerequisite.source {
            Source::Debian(package) => format!("Debian package {package}"),
            Source::Pip(package) => format!("pip package {package}"),
            Source::Script(path) => format!("bash {path}"),
            Source::Rustup(component) => format!("rustup component {component}"),
        };
        let by = match m.prerequisite.needed {
            Needed::Always => "the shared servers".to_owned(),
            Needed::Lints => "the fmt and clippy steps (not with --quick)".to_owned(),
            Needed::By(packages) => format!("tests of {}", packages.join(", ")),
        };
        text.push_str(&format!(
            "  - {} ({}; from {source}), for {by}\n",
            m.prerequisite.what, m.why
        ));
    }
    text.push_str("Install them, from the workspace root, with:\n");
    for command in commands {
        text.push_str(&format!("    {command}\n"));
    }
    text.push_str(
        "or run `cargo xtask setup` as root, which installs everything the tests and benchmarks use.",
    );
    text
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Checks `scope` on this machine; the message to print when something is
/// missing.
pub(crate) fn check_machine(scope: &Scope<'_>) -> Result<(), String> {
    let probe = Probe::system();
    let missing = missing(&probe, scope);
    if missing.is_empty() {
        return Ok(());
    }
    let root = is_root();
    let commands = Plan::of(&missing, &probe).commands(root, &probe.pip_flags(root));
    Err(report(&missing, &commands))
}

/// The first `X.Y` or `X.Y.Z` in `text`, as `(X, Y, Z)` (`Z` 0 when
/// absent): `redis-server --version` prints `Redis server v=7.0.15 ...`,
/// `memcached -V` prints `memcached 1.6.38`.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .find_map(|i| {
            let mut parts = text[i..]
                .split(|c: char| !c.is_ascii_digit() && c != '.')
                .next()?
                .split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
            Some((major, minor, patch))
        })
}

/// `Ok` when `binary <flag>` prints at least `version.min`.
fn check_version(binary: &Path, version: &Version) -> Result<(), String> {
    let mut cmd = Command::new(binary);
    cmd.arg(version.flag);
    let shown = format!("{} {}", binary.display(), version.flag);
    let out = run(cmd).map_err(|e| format!("{shown}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (a, b, c) = version.min;
    match parse_version(&text) {
        Some(found) if found >= version.min => Ok(()),
        Some((x, y, z)) => Err(format!(
            "{} is {x}.{y}.{z}, older than {a}.{b}.{c}",
            binary.display()
        )),
        None => Err(format!("{shown} printed no version: {}", text.trim())),
    }
}

/// A regular file with an execute bit (what a `PATH` lookup takes).
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd` to the end with no input, its output captured.
pub(crate) fn run(mut cmd: Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null());
    // A script written a moment ago (the tests' fake binaries) can be
    // briefly "text file busy" while another thread's fork still holds it
    // open for writing; that passes within milliseconds.
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                    && tries < 50 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests;

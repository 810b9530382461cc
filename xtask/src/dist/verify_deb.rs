//! `cargo xtask dist --verify`, the packages' half: what an operator does
//! with them, on this machine (as root).
//!
//! Install the three with `dpkg -i`; check each installed the files it
//! should and made its user; `systemd-analyze verify` each unit (it reads
//! unit files without systemd as PID 1, so it works in a container, and it
//! also checks that `ExecStart=`'s binary and the `Documentation=` man page
//! are there); start each daemon as its user with its packaged config (and
//! memcached on the loopback ports that config names), poll `/healthz`,
//! stop it with SIGTERM and expect exit 0; `--version` of all three; then
//! `dpkg -r`, which must leave nothing but the conffiles (and the
//! replicator's state directory, which Debian keeps until a purge), and
//! `dpkg --purge`, which must leave nothing. "Nothing" is measured, not
//! assumed: the file trees dpkg and the maintainer scripts could touch are
//! listed before the install and compared after each removal.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    Outcome,
    deb::{Package, output},
    verify_run,
};

/// Where the file-tree snapshot looks: everything dpkg or our maintainer
/// scripts could write to.
const WATCHED: &[&str] = &["/etc", "/usr", "/var/lib", "/opt", "/srv"];

/// Inside [`WATCHED`], what other programs change on their own (docker's
/// and apt's state, dpkg's own database, man-db's index, `/usr/local` with
/// the toolchains), and the backups `useradd` leaves of the account files.
const UNWATCHED: &[&str] = &[
    "/usr/local",
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/man-db",
    "/var/lib/PackageKit",
    "/var/lib/systemd",
    "/etc/passwd-",
    "/etc/group-",
    "/etc/shadow-",
    "/etc/gshadow-",
];

/// Runs every package check; never stops at the first failure, and purges
/// the packages at the end whatever happened.
pub(crate) fn verify(
    packages: &[Package],
    debs: &[PathBuf],
    version: &str,
    commit: &str,
    work: &Path,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    if !rustix::process::geteuid().is_root() {
        outcomes.push(Outcome::fail(
            "deb: install",
            "installing the packages needs root (run cargo xtask dist --verify as root)",
        ));
        return outcomes;
    }
    let names: Vec<&str> = packages.iter().map(|p| p.name).collect();
    // A run that died half-way may have left them installed.
    if let Err(e) = purge(&names) {
        outcomes.push(Outcome::fail("deb: purge of an earlier install", e));
        return outcomes;
    }
    let before = match snapshot() {
        Ok(s) => s,
        Err(e) => {
            outcomes.push(Outcome::fail(
                "deb: list files before install",
                format!("{e:#}"),
            ));
            return outcomes;
        }
    };

    outcomes.push(Outcome::timed("deb: dpkg -i of the three packages", || {
        let mut cmd = Command::new("dpkg");
        cmd.arg("-i").args(debs);
        output(&mut cmd)?;
        Ok(format!("{} installed", names.join(", ")))
    }));
    if !outcomes.last().is_some_and(Outcome::passed) {
        let _ = purge(&names);
        return outcomes;
    }

    for package in packages {
        outcomes.push(Outcome::timed(
            &format!("deb: {} installed its files", package.name),
            || installed_files(package),
        ));
        if let Some(unit) = package.unit_path() {
            outcomes.push(Outcome::timed(
                &format!("deb: systemd-analyze verify {unit}"),
                || analyze(&unit),
            ));
        }
        outcomes.push(Outcome::timed(
            &format!("deb: {} --version", package.bin),
            || version_line(package, version, commit),
        ));
        if package.daemon.is_some() {
            outcomes.push(Outcome::timed(
                &format!(
                    "deb: {} runs as its user with the packaged config, /healthz, SIGTERM",
                    package.bin
                ),
                || verify_run::serve(package, work),
            ));
            outcomes.push(Outcome::timed(
                &format!(
                    "deb: {} refuses an unreadable config and an unknown key, one line each",
                    package.bin
                ),
                || verify_run::refuses_bad_config(package, work),
            ));
        }
        if package.bash_completion {
            outcomes.push(Outcome::timed(
                &format!("deb: bash completion of {}", package.bin),
                || completion(package),
            ));
        }
    }

    outcomes.push(Outcome::timed(
        "deb: dpkg -i again keeps the users and an edited config",
        || reinstall(packages, debs),
    ));

    // dpkg -r: what is left must be the conffiles (with /etc/memorycached,
    // if the install made it) and the replicator's state directory.
    let conffiles: Vec<PathBuf> = packages
        .iter()
        .filter_map(Package::conffile)
        .map(PathBuf::from)
        .collect();
    let state_dirs: Vec<PathBuf> = packages
        .iter()
        .filter_map(|p| p.daemon.as_ref()?.state_dir)
        .map(|dir| Path::new("/var/lib").join(dir))
        .collect();
    outcomes.push(Outcome::timed(
        "deb: dpkg -r leaves only the conffiles",
        || {
            let mut cmd = Command::new("dpkg");
            cmd.arg("-r").args(&names);
            output(&mut cmd)?;
            let left = new_paths(&before)?;
            let allowed = |path: &PathBuf| {
                conffiles
                    .iter()
                    .any(|c| c == path || c.parent() == Some(path.as_path()))
                    || state_dirs.iter().any(|dir| path.starts_with(dir))
            };
            let stray: Vec<&PathBuf> = left.iter().filter(|p| !allowed(p)).collect();
            if !stray.is_empty() {
                bail!("left besides the conffiles: {}", list(stray.into_iter()));
            }
            let gone: Vec<&PathBuf> = conffiles.iter().filter(|c| !c.is_file()).collect();
            if !gone.is_empty() {
                bail!("removed conffiles: {}", list(gone.into_iter()));
            }
            Ok(format!("left: {}", list(left.iter())))
        },
    ));
    outcomes.push(Outcome::timed("deb: dpkg --purge leaves nothing", || {
        purge(&names)?;
        let left = new_paths(&before)?;
        if !left.is_empty() {
            bail!("left: {}", list(left.iter()));
        }
        let users: Vec<&str> = packages
            .iter()
            .filter_map(|p| p.daemon.as_ref().map(|d| d.user))
            .collect();
        Ok(format!(
            "no file left; the users {} stay, by design (docs/packaging.md)",
            users.join(", ")
        ))
    }));
    outcomes
}

/// The files each package must have installed, its user, and the modes
/// the postinst set.
fn installed_files(package: &Package) -> anyhow::Result<String> {
    let listed = String::from_utf8_lossy(&output(Command::new("dpkg").args(["-L", package.name]))?)
        .into_owned();
    let mut wanted = vec![
        format!("/usr/bin/{}", package.bin),
        format!("/usr/share/man/man1/{}.1.gz", package.bin),
        format!("/usr/share/doc/{}/copyright", package.name),
    ];
    wanted.extend(package.conffile());
    wanted.extend(package.unit_path());
    if package.bash_completion {
        wanted.push(format!(
            "/usr/share/bash-completion/completions/{}",
            package.bin
        ));
    }
    for path in &wanted {
        if !listed.lines().any(|l| l == path) {
            bail!("dpkg -L {} does not list {path}", package.name);
        }
        if !Path::new(path).is_file() {
            bail!("{path} is not there");
        }
    }
    let man =
        output(Command::new("zcat").arg(format!("/usr/share/man/man1/{}.1.gz", package.bin)))?;
    if !String::from_utf8_lossy(&man).contains(".TH") {
        bail!("the man page of {} has no .TH header", package.bin);
    }
    let mut what = format!("{} files", wanted.len());
    if let Some(daemon) = &package.daemon {
        let passwd = output(Command::new("getent").args(["passwd", daemon.user]))
            .with_context(|| format!("no user {}", daemon.user))?;
        let passwd = String::from_utf8_lossy(&passwd).trim().to_owned();
        if !passwd.ends_with(":/usr/sbin/nologin") {
            bail!("user {} should have no login shell: {passwd}", daemon.user);
        }
        let conffile = package.conffile().unwrap_or_default();
        let stat = output(Command::new("stat").args(["-c", "%U:%G %a", &conffile]))?;
        let stat = String::from_utf8_lossy(&stat).trim().to_owned();
        let want = format!("root:{} 640", daemon.user);
        if stat != want {
            bail!("{conffile} is {stat}, not {want}");
        }
        if let Some(dir) = daemon.state_dir {
            let dir = format!("/var/lib/{dir}");
            let stat = output(Command::new("stat").args(["-c", "%U:%G %a", &dir]))?;
            let stat = String::from_utf8_lossy(&stat).trim().to_owned();
            let want = format!("{0}:{0} 750", daemon.user);
            if stat != want {
                bail!("{dir} is {stat}, not {want}");
            }
        }
        what.push_str(&format!(", user {} ({passwd}), config {stat}", daemon.user));
    }
    Ok(what)
}

/// Installs the same packages again over an operator's edit of each
/// config: the postinst finds its user (same uid), and dpkg keeps the
/// edited conffile (the packaged one did not change, so it does not ask).
fn reinstall(packages: &[Package], debs: &[PathBuf]) -> anyhow::Result<String> {
    const EDIT: &str = "\n# edited by cargo xtask dist --verify\n";
    let mut uids = Vec::new();
    for package in packages {
        if let Some(daemon) = &package.daemon {
            let uid = output(Command::new("id").args(["-u", daemon.user]))?;
            uids.push((daemon.user, String::from_utf8_lossy(&uid).trim().to_owned()));
        }
        if let Some(conffile) = package.conffile() {
            let mut text = fs::read_to_string(&conffile)?;
            text.push_str(EDIT);
            fs::write(&conffile, text)?;
        }
    }
    let mut cmd = Command::new("dpkg");
    cmd.arg("-i").args(debs);
    output(&mut cmd)?;
    for (user, before) in &uids {
        let now = output(Command::new("id").args(["-u", user]))?;
        let now = String::from_utf8_lossy(&now).trim().to_owned();
        if now != *before {
            bail!("user {user} had uid {before}, now {now}");
        }
    }
    for conffile in packages.iter().filter_map(Package::conffile) {
        if !fs::read_to_string(&conffile)?.ends_with(EDIT) {
            bail!("{conffile}: the edit is gone after the reinstall");
        }
    }
    Ok(format!(
        "uids kept ({}), edited configs kept",
        uids.iter()
            .map(|(user, uid)| format!("{user} {uid}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `systemd-analyze verify`: exit 0 and not one line of warning (a bad
/// value is only a warning there, "ignoring", and still exits 0).
fn analyze(unit: &str) -> anyhow::Result<String> {
    let out = Command::new("systemd-analyze")
        .args(["verify", unit])
        .stdin(Stdio::null())
        .output()
        .context("running systemd-analyze (package systemd)")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!("{} said: {}", out.status, said.trim());
    }
    Ok("no warning".to_owned())
}

/// `<bin> --version` of the installed binary: `<bin> <version> (commit
/// <12 hex>)`, the commit being the one built.
fn version_line(package: &Package, version: &str, commit: &str) -> anyhow::Result<String> {
    let out = output(Command::new(format!("/usr/bin/{}", package.bin)).arg("--version"))?;
    let line = String::from_utf8_lossy(&out).trim().to_owned();
    let want = format!("{} {version} (commit {commit})", package.bin);
    if line != want {
        bail!("printed {line:?}, expected {want:?}");
    }
    Ok(line)
}

/// The completion script registers a completion for the command in bash.
fn completion(package: &Package) -> anyhow::Result<String> {
    let script = format!(
        "source /usr/share/bash-completion/completions/{0} && complete -p {0}",
        package.bin
    );
    let out = output(Command::new("bash").args(["--norc", "-c", &script]))?;
    let line = String::from_utf8_lossy(&out).trim().to_owned();
    if !line.ends_with(package.bin) {
        bail!("complete -p printed {line:?}");
    }
    Ok(line)
}

/// `dpkg --purge` of those of `names` that dpkg knows.
fn purge(names: &[&str]) -> anyhow::Result<()> {
    let known: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${db:Status-Abbrev}", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if known.is_empty() {
        return Ok(());
    }
    output(Command::new("dpkg").arg("--purge").args(&known))?;
    Ok(())
}

/// Every path under [`WATCHED`] but [`UNWATCHED`].
fn snapshot() -> anyhow::Result<BTreeSet<PathBuf>> {
    let started = Instant::now();
    let mut found = BTreeSet::new();
    let mut todo: Vec<PathBuf> = WATCHED.iter().map(PathBuf::from).collect();
    while let Some(dir) = todo.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if UNWATCHED.iter().any(|u| path == Path::new(u)) {
                continue;
            }
            // Not followed: a symlink is listed, its target is not walked.
            if entry.file_type()?.is_dir() {
                todo.push(path.clone());
            }
            found.insert(path);
        }
    }
    // A slow walk would make the test slow without saying why.
    if started.elapsed() > Duration::from_secs(60) {
        eprintln!(
            "xtask dist: listing {} files took {:.1?}",
            found.len(),
            started.elapsed()
        );
    }
    Ok(found)
}

/// Paths there now that were not in `before`.
fn new_paths(before: &BTreeSet<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    Ok(snapshot()?.difference(before).cloned().collect())
}

fn list<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> String {
    let all: Vec<String> = paths.map(|p| p.display().to_string()).collect();
    if all.is_empty() {
        "nothing".to_owned()
    } else {
        all.join(", ")
    }
}

//! The Debian packages: a staging tree per package, then `dpkg-deb
//! --root-owner-group --build`.
//!
//! Why our own small builder and not `cargo-deb`: `dpkg-deb` is on every
//! Debian machine (it is part of `dpkg`), while cargo-deb would be one more
//! tool to install and compile on every CI run; and the packages need their
//! own maintainer scripts anyway (the service user, the state directory,
//! systemctl only where systemd runs), which is most of what cargo-deb's
//! metadata would have described. What a package holds is the table in
//! [`packages`]; the unit files and maintainer script templates are plain
//! files under `deploy/` that an operator can read as they are installed.
//!
//! The binaries are the release build ([`crate::release::build`]), stripped
//! of their debug info (`strip`, binutils). The man pages come from each
//! binary's own clap definition (`--print-man-page`), gzipped with `gzip
//! -9n` (no name or time stamp, so two builds give the same bytes), and
//! `Depends:` from `dpkg-shlibdeps` on the binary, as Debian's own
//! packages get it.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::release::Binaries;

/// A daemon's part of a package: unit, config, user, state.
pub(crate) struct Daemon {
    /// The system user and group the service runs as (also the unit's name).
    pub(crate) user: &'static str,
    /// The unit file under `deploy/systemd/`.
    pub(crate) unit: &'static str,
    /// The default config: `deploy/config/<config>`, installed as
    /// `/etc/memorycached/<config>` (a conffile).
    pub(crate) config: &'static str,
    /// The state directory under `/var/lib` it writes, if any.
    pub(crate) state_dir: Option<&'static str>,
}

/// One Debian package.
pub(crate) struct Package {
    /// The package name.
    pub(crate) name: &'static str,
    /// The binary's file name, installed in `/usr/bin`.
    pub(crate) bin: &'static str,
    /// The release binary it ships.
    pub(crate) source: PathBuf,
    /// Debian section.
    pub(crate) section: &'static str,
    /// The one-line description.
    pub(crate) summary: &'static str,
    /// The long description, one paragraph.
    pub(crate) description: &'static str,
    /// The daemon's unit, config and user; `None` for the CLI.
    pub(crate) daemon: Option<Daemon>,
    /// Ships `<bin> completions bash` as its bash completion.
    pub(crate) bash_completion: bool,
}

impl Package {
    /// The installed path of its conffile, if it has one.
    pub(crate) fn conffile(&self) -> Option<String> {
        self.daemon
            .as_ref()
            .map(|d| format!("/etc/memorycached/{}", d.config))
    }

    /// The installed path of its unit file, if it has one.
    pub(crate) fn unit_path(&self) -> Option<String> {
        self.daemon
            .as_ref()
            .map(|d| format!("/usr/lib/systemd/system/{}", d.unit))
    }
}

/// The three packages, from the release binaries.
pub(crate) fn packages(bins: &Binaries) -> Vec<Package> {
    vec![
        Package {
            name: "memorycached-soap-bridge",
            bin: "soap-bridge",
            source: bins.soap_bridge.clone(),
            section: "net",
            summary: "SOAP and JSON session service over memcached or Redis",
            description: "soap-bridge serves the sessions of an Apache::Session::Memorycached \
                          store over the original MemcachedSOAPClass SOAP protocol, \
                          LemonLDAP::NG's REST protocol and a JSON mirror, with /metrics \
                          and /healthz. It runs as the system user memorycached-soap-bridge \
                          with the config /etc/memorycached/bridge.toml.",
            daemon: Some(Daemon {
                user: "memorycached-soap-bridge",
                unit: "memorycached-soap-bridge.service",
                config: "bridge.toml",
                state_dir: None,
            }),
            bash_completion: false,
        },
        Package {
            name: "memorycached-replicator",
            bin: "replicator",
            source: bins.replicator.clone(),
            section: "net",
            summary: "copies writes and deletes between memcached servers",
            description: "replicator keeps memcached servers in step, master to slave or \
                          master to master, as Apache::Session::Memorycached's replication \
                          did, with /metrics and /healthz. It runs as the system user \
                          memorycached-replicator with the config \
                          /etc/memorycached/replicator.toml and keeps its state under \
                          /var/lib/memorycached-replicator.",
            daemon: Some(Daemon {
                user: "memorycached-replicator",
                unit: "memorycached-replicator.service",
                config: "replicator.toml",
                state_dir: Some("memorycached-replicator"),
            }),
            bash_completion: false,
        },
        Package {
            name: "memorycached-sessionctl",
            bin: "sessionctl",
            source: bins.sessionctl.clone(),
            section: "admin",
            summary: "read, write, delete and find sessions on a memorycached store",
            description: "sessionctl is the command line of memorycached (the successor of \
                          memd.pl): it reads, writes, deletes and finds sessions on any \
                          store the other tools use, memcached or Redis, in the formats \
                          Perl's Apache::Session::Memorycached reads.",
            daemon: None,
            bash_completion: true,
        },
    ]
}

/// A package built.
pub(crate) struct Built {
    /// The `.deb` file.
    pub(crate) path: PathBuf,
    /// Its size in bytes.
    pub(crate) size_bytes: u64,
}

/// Builds `package` into `out` (`<name>_<version>_<arch>.deb`).
pub(crate) fn build(package: &Package, version: &str, out: &Path) -> anyhow::Result<Built> {
    let root = crate::project_root();
    let staging = out.join("staging").join(package.name);
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the old {}", staging.display()))?;
    }

    // The binary, without its debug info (the release profile keeps line
    // tables for the benches' profiles; a package need not carry them).
    let bin = staging.join("usr/bin").join(package.bin);
    mkdir(bin.parent())?;
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&bin)
        .arg(&package.source))
    .context("strip (binutils)")?;
    mode(&bin, 0o755)?;

    // The man page, from the binary's own clap definition.
    let roff = output(Command::new(&package.source).arg("--print-man-page"))
        .with_context(|| format!("{} --print-man-page", package.bin))?;
    let gz = gzip(&roff)?;
    write(
        &staging.join(format!("usr/share/man/man1/{}.1.gz", package.bin)),
        &gz,
        0o644,
    )?;

    let doc = staging.join("usr/share/doc").join(package.name);
    write(&doc.join("copyright"), copyright(&root)?.as_bytes(), 0o644)?;

    if package.bash_completion {
        let script = output(Command::new(&package.source).args(["completions", "bash"]))
            .with_context(|| format!("{} completions bash", package.bin))?;
        write(
            &staging
                .join("usr/share/bash-completion/completions")
                .join(package.bin),
            &script,
            0o644,
        )?;
    }

    let debian = staging.join("DEBIAN");
    mkdir(Some(&debian))?;
    if let Some(daemon) = &package.daemon {
        let config = read(&root.join("deploy/config").join(daemon.config))?;
        write(
            &staging.join("etc/memorycached").join(daemon.config),
            &config,
            0o644,
        )?;
        let unit = read(&root.join("deploy/systemd").join(daemon.unit))?;
        write(
            &staging.join("usr/lib/systemd/system").join(daemon.unit),
            &unit,
            0o644,
        )?;
        write(
            &debian.join("conffiles"),
            format!("/etc/memorycached/{}\n", daemon.config).as_bytes(),
            0o644,
        )?;
        for script in ["postinst", "prerm", "postrm"] {
            let text = maintainer_script(script, package, daemon)?;
            write(&debian.join(script), text.as_bytes(), 0o755)?;
        }
    }

    let depends = shlibdeps(&bin, out)?;
    let installed_kib = installed_size(&staging)?;
    let arch = String::from_utf8_lossy(&output(Command::new("dpkg").arg("--print-architecture"))?)
        .trim()
        .to_owned();
    let control = control(package, version, &arch, &depends, installed_kib);
    write(&debian.join("control"), control.as_bytes(), 0o644)?;
    write(
        &debian.join("md5sums"),
        md5sums(&staging, package.conffile().as_deref())?.as_bytes(),
        0o644,
    )?;

    let path = out.join(format!("{}_{version}_{arch}.deb", package.name));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&staging)
        .arg(&path)
        .stdout(Stdio::null()))
    .context("dpkg-deb --build")?;
    let size_bytes = fs::metadata(&path)?.len();
    Ok(Built { path, size_bytes })
}

/// The `DEBIAN/control` file.
fn control(
    package: &Package,
    version: &str,
    arch: &str,
    depends: &str,
    installed_kib: u64,
) -> String {
    let mut text = format!(
        "Package: {}\nVersion: {version}\nArchitecture: {arch}\n\
         Maintainer: memorycached maintainers <maintainers@example.invalid>\n\
         Installed-Size: {installed_kib}\nSection: {}\nPriority: optional\n",
        package.name, package.section
    );
    if !depends.is_empty() {
        text.push_str(&format!("Depends: {depends}\n"));
    }
    text.push_str(&format!("Description: {}\n", package.summary));
    // Long description lines start with a space; wrap at ~72 columns.
    let mut line = String::new();
    for word in package.description.split_whitespace() {
        if !line.is_empty() && line.len() + word.len() > 72 {
            text.push_str(&format!(" {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        text.push_str(&format!(" {line}\n"));
    }
    text
}

/// The maintainer script `name` (`postinst`, `prerm`, `postrm`) of a
/// daemon's package: its template under `deploy/debian/`, filled in.
pub(crate) fn maintainer_script(
    name: &str,
    package: &Package,
    daemon: &Daemon,
) -> anyhow::Result<String> {
    let template = read(&crate::project_root().join("deploy/debian").join(name))?;
    fill(&String::from_utf8_lossy(&template), package, daemon)
}

/// The template's `@NAMES@` filled in for `package`.
fn fill(template: &str, package: &Package, daemon: &Daemon) -> anyhow::Result<String> {
    let (home, setup, purge) = match daemon.state_dir {
        Some(dir) => (
            format!("/var/lib/{dir}"),
            format!(
                "# Its state directory (systemd's StateDirectory= makes it too, but\n    \
                 # the binary may also be run by hand).\n    \
                 install -d -o {user} -g {user} -m 0750 /var/lib/{dir}",
                user = daemon.user
            ),
            format!("rm -rf /var/lib/{dir}"),
        ),
        None => (
            "/nonexistent".to_owned(),
            "# (no state directory: it keeps nothing on disk)".to_owned(),
            ": # (no state directory)".to_owned(),
        ),
    };
    let unit = daemon.unit.trim_end_matches(".service");
    let text = template
        .replace("@PACKAGE@", package.name)
        .replace("@USER@", daemon.user)
        .replace("@HOME@", &home)
        .replace("@UNIT@", unit)
        .replace("@CONFIG@", daemon.config)
        .replace("@STATEDIR_SETUP@", &setup)
        .replace("@STATEDIR_PURGE@", &purge)
        .replace(
            "(a template: cargo xtask dist fills in the @NAMES@)",
            "(made by cargo xtask dist from deploy/debian/)",
        );
    if let Some(at) = text.find('@') {
        let rest: String = text[at..].chars().take(30).collect();
        bail!("a maintainer script template has an unknown placeholder at {rest:?}");
    }
    Ok(text)
}

/// `Depends:` of the binary, from `dpkg-shlibdeps` (dpkg-dev). It insists
/// on a `debian/control` in its working directory, so it runs in a scratch
/// one that has a minimal one.
fn shlibdeps(bin: &Path, out: &Path) -> anyhow::Result<String> {
    let scratch = out.join("shlibdeps");
    write(
        &scratch.join("debian/control"),
        b"Source: memorycached\n\nPackage: memorycached\nArchitecture: any\n",
        0o644,
    )?;
    let bin = fs::canonicalize(bin)?;
    let text = output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&scratch)
            .args(["-O", "-e"])
            .arg(&bin),
    )
    .context("dpkg-shlibdeps (dpkg-dev)")?;
    let text = String::from_utf8_lossy(&text);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// `Installed-Size`: the files' sizes in KiB, each rounded up, as dpkg
/// counts them.
fn installed_size(staging: &Path) -> anyhow::Result<u64> {
    Ok(files(staging)?
        .iter()
        .map(|(_, meta)| meta.len().div_ceil(1024))
        .sum())
}

/// `DEBIAN/md5sums`: every file but the conffiles, as `dh_md5sums` makes
/// it (`dpkg --verify` reads it; dpkg keeps the conffiles' sums itself).
fn md5sums(staging: &Path, conffile: Option<&str>) -> anyhow::Result<String> {
    let conffile = conffile.map(|c| PathBuf::from(c.trim_start_matches('/')));
    let list: Vec<PathBuf> = files(staging)?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| Some(p) != conffile.as_ref())
        .collect();
    let mut cmd = Command::new("md5sum");
    cmd.current_dir(staging).args(&list);
    Ok(String::from_utf8_lossy(&output(&mut cmd).context("md5sum")?).into_owned())
}

/// The files of the staging tree outside `DEBIAN/`, relative, sorted.
fn files(staging: &Path) -> anyhow::Result<Vec<(PathBuf, fs::Metadata)>> {
    let mut found = Vec::new();
    let mut todo = vec![staging.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                if path != staging.join("DEBIAN") {
                    todo.push(path);
                }
            } else if let Ok(rel) = path.strip_prefix(staging) {
                found.push((rel.to_path_buf(), meta));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// `/usr/share/doc/<package>/copyright`: the licence (MIT or Apache-2.0,
/// at the user's choice) and both texts, in plain text (Debian's
/// machine-readable format would add nothing a person needs here).
fn copyright(root: &Path) -> anyhow::Result<String> {
    let mut text = String::from(
        "memorycached\n\nCopyright: the memorycached authors\n\
         License: MIT or Apache-2.0, at your option; both texts follow.\n",
    );
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        text.push_str(&format!("\n==> {file} <==\n\n"));
        text.push_str(&String::from_utf8_lossy(&read(&root.join(file))?));
    }
    Ok(text)
}

/// `gzip -9n` of `data`.
fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    // Written from a thread: a large page could fill the pipe both ways.
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the gzip writer panicked"))??;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    Ok(out.stdout)
}

fn mkdir(dir: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `data` to `path` (making its directories) with `mode`.
fn write(path: &Path, data: &[u8], mode_bits: u32) -> anyhow::Result<()> {
    mkdir(path.parent())?;
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    mode(path, mode_bits)
}

fn mode(path: &Path, bits: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(bits))
        .with_context(|| format!("chmod {bits:o} {}", path.display()))
}

/// Runs `cmd`; its stderr goes to ours, a failure is an error.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd.get_program());
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; a failure is an error with its stderr.
pub(crate) fn output(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

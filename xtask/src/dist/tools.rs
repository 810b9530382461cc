//! The programs `cargo xtask dist` runs, checked before the release build so
//! a machine that lacks some is told all of them at once, with the Debian
//! package of each (all in `cargo xtask setup`'s list but `passwd`,
//! `util-linux`, `coreutils` and `dpkg`, which every Debian has).

use anyhow::bail;

use crate::prereqs::Probe;

/// When a program is needed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    /// Building the packages.
    Packages,
    /// `--verify` of the packages.
    VerifyPackages,
    /// Building the images.
    Images,
    /// `--verify` of the compose fleet.
    VerifyImages,
}

/// (program, Debian package, when).
const TOOLS: &[(&str, &str, When)] = &[
    ("git", "git", When::Packages),
    ("dpkg-deb", "dpkg", When::Packages),
    ("dpkg-shlibdeps", "dpkg-dev", When::Packages),
    ("strip", "binutils", When::Packages),
    ("gzip", "gzip", When::Packages),
    ("md5sum", "coreutils", When::Packages),
    ("systemd-analyze", "systemd", When::VerifyPackages),
    ("setpriv", "util-linux", When::VerifyPackages),
    ("memcached", "memcached", When::VerifyPackages),
    ("useradd", "passwd", When::VerifyPackages),
    ("zcat", "gzip", When::VerifyPackages),
    ("docker", "docker.io", When::Images),
    ("docker-compose", "docker-compose", When::VerifyImages),
];

/// Fails, naming every missing program and its package, unless all that
/// this run needs are there.
pub(crate) fn check(verify: bool, images: bool) -> anyhow::Result<()> {
    let probe = Probe::system();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(_, _, when)| match when {
            When::Packages => true,
            When::VerifyPackages => verify,
            When::Images => images,
            When::VerifyImages => verify && images,
        })
        .filter(|(program, _, _)| probe.find(program, true).is_none())
        .map(|(program, package, _)| format!("{program} (package {package})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = Vec::new();
    for (program, package, _) in TOOLS {
        let is_missing = missing
            .iter()
            .any(|m| m.starts_with(&format!("{program} ")));
        if is_missing && !packages.contains(package) {
            packages.push(package);
        }
    }
    bail!(
        "missing: {}; install with `apt-get install {}` or `cargo xtask setup`{}",
        missing.join(", "),
        packages.join(" "),
        if images {
            " (or build packages only with --no-images)"
        } else {
            ""
        }
    )
}

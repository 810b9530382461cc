//! Tests of the prerequisite checks on made-up machines: a `PATH` of
//! directories holding real (small, scripted) executables, and a root for
//! the absolute paths, so every check runs the way it does on a machine.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::*;

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("xtask-prereqs-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes an executable shell script `name` with `body` into `dir`.
fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A probe that sees only `bin` (as `PATH`) and files under `root`.
fn probe(bin: &Path, root: &Path) -> Probe {
    Probe {
        path: vec![bin.to_owned()],
        fallback: Vec::new(),
        root: root.to_owned(),
        vars: BTreeMap::new(),
        cargo: bin.join("cargo").into(),
    }
}

const EVERYTHING: Scope<'static> = Scope {
    lints: true,
    packages: &[],
};

/// A machine with every prerequisite, as scripts: `perl` loads every module
/// but those in `perl_lacks`, `valkey-server` says it is `valkey`.
fn full_machine(dir: &TempDir, perl_lacks: &[&str], valkey: &str) -> Probe {
    let bin = dir.0.join("bin");
    let root = dir.0.join("root");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    for name in [
        "memcached",
        "redis-server",
        "nutcracker",
        "openssl",
        "cargo",
    ] {
        script(&bin, name, "exit 0");
    }
    script(&bin, "memcached-1.6.38", "echo 'memcached 1.6.38'");
    script(
        &bin,
        "valkey-server",
        &format!("echo 'Valkey server v={valkey} sha=00000000:0 malloc=jemalloc'"),
    );
    let lacks: String = perl_lacks
        .iter()
        .map(|module| format!("  -M{module}) echo \"Can't locate {module}\" >&2; exit 2;;\n"))
        .collect();
    script(
        &bin,
        "perl",
        &format!("case \"$1\" in\n{lacks}esac\nexit 0"),
    );
    script(
        &bin,
        "python3",
        "[ \"$2\" = pip ] && echo '  --break-system-packages  --root-user-action'\nexit 0",
    );
    for file in ["usr/bin/chromium", "usr/bin/chromedriver"] {
        fs::write(root.join(file), "").unwrap();
    }
    probe(&bin, &root)
}

fn whats(missing: &[Missing]) -> Vec<&str> {
    missing.iter().map(|m| m.prerequisite.what).collect()
}

#[test]
fn a_bare_path_misses_everything_and_the_report_says_how_to_install_it() {
    let dir = TempDir::new("bare");
    let probe = probe(&dir.0, &dir.0);
    let missing = missing(&probe, &EVERYTHING);
    assert_eq!(missing.len(), PREREQUISITES.len(), "{:?}", whats(&missing));

    let plan = Plan::of(&missing, &probe);
    for package in [
        "memcached",
        "redis-server",
        "nutcracker",
        "openssl",
        "perl",
        "libcache-memcached-perl",
        "libapache-session-perl",
        "libsoap-lite-perl",
        "liblemonldap-ng-handler-perl",
        "chromium",
        "chromium-driver",
        // No pip on this PATH: the plan brings it.
        "python3",
        "python3-pip",
    ] {
        assert!(plan.debian.contains(&package), "{package}: {plan:?}");
    }
    assert_eq!(plan.scripts, [".ci/valkey", ".ci/memcached-trixie"]);
    assert_eq!(plan.pip, ["zeep", "selenium"]);
    assert_eq!(plan.rustup, ["rustfmt", "clippy"]);

    let commands = plan.commands(true, &probe.pip_flags(true));
    let report = report(&missing, &commands);
    assert!(
        report.starts_with("xtask: this machine lacks 18 thing(s)"),
        "{report}"
    );
    assert!(
        report.contains("  - nutcracker (twemproxy) (`nutcracker` is not on PATH; from Debian package nutcracker), for tests of backend-memcached\n"),
        "{report}"
    );
    assert!(
        report.contains("  - Valkey 8.1 or later (`valkey-server` is not on PATH, /usr/bin, /usr/sbin or /usr/local/bin; from bash .ci/valkey)"),
        "{report}"
    );
    assert!(
        report.contains(
            "  - chromedriver (no /usr/bin/chromedriver; from Debian package chromium-driver)"
        ),
        "{report}"
    );
    assert!(
        report.contains("    apt-get update && apt-get install -y --no-install-recommends memcached redis-server "),
        "{report}"
    );
    assert!(report.contains("\n    bash .ci/valkey\n"), "{report}");
    assert!(
        report.contains(
            "\n    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages zeep selenium\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("\n    rustup component add rustfmt clippy\n"),
        "{report}"
    );
    assert!(
        report.ends_with(
            "`cargo xtask setup` as root, which installs everything the tests and benchmarks use."
        ),
        "{report}"
    );
}

#[test]
fn without_root_the_commands_use_sudo_and_pip_installs_for_the_user() {
    let dir = TempDir::new("user");
    let probe = full_machine(&dir, &[], "8.1.1");
    let mut plan = Plan::default();
    plan.add(Source::Debian("nutcracker"));
    plan.add(Source::Debian("nutcracker"));
    plan.add(Source::Script(".ci/valkey"));
    plan.add(Source::Pip("zeep"));
    let flags = probe.pip_flags(false);
    assert_eq!(
        plan.commands(false, &flags),
        [
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends nutcracker",
            "sudo bash .ci/valkey",
            "python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
             --user zeep",
        ]
    );
    assert!(probe.pip_flags(true).contains(&"--root-user-action=ignore"));
}

#[test]
fn a_complete_machine_misses_nothing() {
    let dir = TempDir::new("complete");
    let probe = full_machine(&dir, &[], "8.1.1");
    let missing = missing(&probe, &EVERYTHING);
    assert!(missing.is_empty(), "{:?}", whats(&missing));
    assert!(Plan::of(&missing, &probe).is_empty());
}

#[test]
fn the_backends_asked_for_decide_what_is_needed() {
    let dir = TempDir::new("scope");
    let probe = full_machine(&dir, &["SOAP::Lite"], "8.1.1");
    let only = |packages: &[String], lints| {
        let scope = Scope { lints, packages };
        whats(&missing(&probe, &scope))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(only(&["session-cli".to_owned()], true).is_empty());
    assert_eq!(
        only(&["soap-bridge".to_owned()], true),
        ["Perl's SOAP::Lite"]
    );
    assert_eq!(only(&[], false), ["Perl's SOAP::Lite"]);

    // Without cargo fmt/clippy, only a run with the lint steps misses them.
    fs::remove_file(dir.0.join("bin/cargo")).unwrap();
    assert!(only(&["session-cli".to_owned()], false).is_empty());
    assert_eq!(
        only(&["session-cli".to_owned()], true),
        ["rustfmt (cargo fmt)", "clippy (cargo clippy)"]
    );
}

#[test]
fn an_old_valkey_and_an_override_to_nothing_are_reported() {
    let dir = TempDir::new("old");
    let mut probe = full_machine(&dir, &[], "7.2.4");
    // memcached is on PATH, but the override is what test-support uses.
    probe
        .vars
        .insert("MEMORYCACHED_MEMCACHED_BIN", dir.0.join("nowhere").into());
    let missing = missing(&probe, &EVERYTHING);
    assert_eq!(whats(&missing), ["memcached", "Valkey 8.1 or later"]);
    assert!(
        missing[0].why.starts_with("MEMORYCACHED_MEMCACHED_BIN=")
            && missing[0].why.ends_with("/nowhere is not a file"),
        "{}",
        missing[0].why
    );
    assert!(
        missing[1]
            .why
            .ends_with("valkey-server is 7.2.4, older than 8.1.0"),
        "{}",
        missing[1].why
    );
}

#[test]
fn versions_are_read_from_the_servers_version_line() {
    assert_eq!(
        parse_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"),
        Some((7, 0, 15))
    );
    assert_eq!(
        parse_version("Valkey server v=8.1.1 sha=00000000:0"),
        Some((8, 1, 1))
    );
    assert_eq!(parse_version("memcached 1.6.18"), Some((1, 6, 18)));
    assert_eq!(parse_version("tool 2.4"), Some((2, 4, 0)));
    assert_eq!(parse_version("v=8"), None);
}

#[test]
fn every_source_is_in_the_lists_setup_installs() {
    for p in PREREQUISITES {
        match p.source {
            Source::Debian(name) => assert!(
                DEBIAN_PACKAGES.iter().any(|d| d.name == name),
                "{}: Debian package {name} is not in DEBIAN_PACKAGES",
                p.what
            ),
            Source::Pip(name) => assert!(
                PIP_PACKAGES.iter().any(|(pip, _)| *pip == name),
                "{}: {name} is not in PIP_PACKAGES",
                p.what
            ),
            Source::Rustup(name) => assert!(RUST_COMPONENTS.contains(&name), "{name}"),
            Source::Script(path) => assert!(
                crate::project_root().join(path).is_file(),
                "{}: no {path}",
                p.what
            ),
        }
        if let Needed::By(packages) = p.needed {
            for package in packages {
                assert!(
                    crate::project_root()
                        .join(package)
                        .join("Cargo.toml")
                        .is_file(),
                    "{}: no package {package}",
                    p.what
                );
            }
        }
    }
    for (package, _) in SERVICES {
        assert!(
            DEBIAN_PACKAGES.iter().any(|d| d.name == *package),
            "{package}"
        );
    }
}

//! What the tests and benchmarks need from the machine, and where each thing
//! comes from: the one list that `cargo xtask setup` installs and that
//! `cargo xtask test` checks before it builds anything.
//!
//! A new Debian package goes in [`DEBIAN_PACKAGES`] (setup installs it); if a
//! test fails without it, also add a [`Prerequisite`] that says how to tell
//! it is there, so the test command names it up front.

/// A Debian package `cargo xtask setup` installs, and what it is for.
pub(crate) struct DebianPackage {
    /// The package name, as `apt-get install` takes it.
    pub(crate) name: &'static str,
    /// What uses it.
    pub(crate) why: &'static str,
}

/// Every Debian package of a test or bench machine.
pub(crate) const DEBIAN_PACKAGES: &[DebianPackage] = &[
    DebianPackage {
        name: "memcached",
        why: "the real server: the process provider runs it, the local images are built from it",
    },
    DebianPackage {
        name: "redis-server",
        why: "the same for Redis; also the own server of backend-redis's TLS test",
    },
    DebianPackage {
        name: "perl",
        why: "Storable and JSON::PP, for session-core's Storable vectors and the Perl nodes",
    },
    DebianPackage {
        name: "libcache-memcached-perl",
        why: "real Perl Cache::Memcached for the interop tests and the bench's Perl peer",
    },
    DebianPackage {
        name: "libsoap-lite-perl",
        why: "the Perl SOAP client of the bridge's interop tests",
    },
    DebianPackage {
        name: "liblemonldap-ng-common-perl",
        why: "LemonLDAP::NG's session client modules, which the bridge's LL::NG tests drive unchanged",
    },
    DebianPackage {
        name: "liblemonldap-ng-handler-perl",
        why: "Lemonldap::NG::Handler::Main, whose cipher the LL::NG REST client takes its __secret from",
    },
    DebianPackage {
        name: "libapache-session-perl",
        why: "the original Apache::Session, for backend-memcached's Perl node",
    },
    DebianPackage {
        name: "nutcracker",
        why: "twemproxy, a classic-protocol proxy backend-memcached is tested through",
    },
    DebianPackage {
        name: "libmemcached-tools",
        why: "memcp, memstat, ...; memcslap is `cargo xtask bench`'s outside floor",
    },
    DebianPackage {
        name: "wrk",
        why: "load generation for the bridge's benchmarks",
    },
    DebianPackage {
        name: "python3",
        why: "runs zeep and Selenium",
    },
    DebianPackage {
        name: "python3-pip",
        why: "installs zeep and Selenium (PIP_PACKAGES)",
    },
    DebianPackage {
        name: "chromium",
        why: "the headless browser the bridge's /admin pages are tested in",
    },
    DebianPackage {
        name: "chromium-driver",
        why: "its WebDriver, which Selenium drives (no browser is downloaded)",
    },
    DebianPackage {
        name: "fonts-dejavu-core",
        why: "a font for the /admin pages and their screenshots",
    },
    DebianPackage {
        name: "openssl",
        why: "makes the CA and certificate of backend-redis's TLS test",
    },
    DebianPackage {
        name: "dpkg-dev",
        why: "dpkg-shlibdeps: the Depends: of cargo xtask dist's packages",
    },
    DebianPackage {
        name: "binutils",
        why: "strip: cargo xtask dist's packages ship the binaries without debug info",
    },
    DebianPackage {
        name: "systemd",
        why: "systemd-analyze verify of the packages' units (cargo xtask dist --verify)",
    },
    DebianPackage {
        name: "docker-compose",
        why: "runs deploy/compose.yaml, the fleet cargo xtask dist --verify checks",
    },
];

/// Packages that start a system-wide server when installed, and its
/// service name. The tests use their own ports; setup stops these so the
/// machine stays quiet and the default ports free.
pub(crate) const SERVICES: &[(&str, &str)] = &[
    ("memcached", "memcached"),
    ("redis-server", "redis-server"),
    ("nutcracker", "nutcracker"),
];

/// Python packages installed with pip, as (pip name, module to import).
pub(crate) const PIP_PACKAGES: &[(&str, &str)] = &[
    // The WSDL-driven SOAP client of the bridge's tests.
    ("zeep", "zeep"),
    // Drives Debian's chromium for the /admin browser test.
    ("selenium", "selenium"),
];

/// The rustup components the lint steps of `cargo xtask test` run.
pub(crate) const RUST_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// One thing a test needs, how to tell it is there, and where it comes from.
pub(crate) struct Prerequisite {
    /// What it is, for people: "memcached", "Perl's SOAP::Lite".
    pub(crate) what: &'static str,
    /// How to tell it is there.
    pub(crate) check: Check,
    /// What installs it.
    pub(crate) source: Source,
    /// Which runs need it.
    pub(crate) needed: Needed,
}

/// How to tell a prerequisite is there: the same way its test looks for it.
pub(crate) enum Check {
    /// An executable on `PATH`.
    Program {
        /// Its file name.
        name: &'static str,
        /// A variable that, when set, names the binary instead (test-support's
        /// `MEMORYCACHED_*_BIN`).
        env_var: Option<&'static str>,
        /// Also look in `/usr/bin`, `/usr/sbin`, `/usr/local/bin`, as
        /// test-support's binary lookup does.
        fallback_dirs: bool,
        /// The lowest version it may print.
        version: Option<Version>,
    },
    /// A file at this absolute path (the bridge's browser test names
    /// Debian's paths exactly).
    File(&'static str),
    /// `perl -M<module> -e1` succeeds.
    PerlModule(&'static str),
    /// `python3 -c 'import <module>'` succeeds.
    PythonModule(&'static str),
    /// `cargo <subcommand> --version` succeeds.
    CargoSubcommand(&'static str),
}

/// How a program tells its version, and the lowest one the tests take.
#[derive(Clone, Copy)]
pub(crate) struct Version {
    /// The flag that prints it (`--version`, `-V`).
    pub(crate) flag: &'static str,
    /// The lowest `major.minor.patch` accepted.
    pub(crate) min: (u32, u32, u32),
}

/// What installs a prerequisite.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
    /// A package of [`DEBIAN_PACKAGES`].
    Debian(&'static str),
    /// A package of [`PIP_PACKAGES`].
    Pip(&'static str),
    /// `bash <script>` from the workspace root: a newer Debian's build
    /// unpacked beside Debian 12, which has none (`.ci/valkey`,
    /// `.ci/memcached-trixie`).
    Script(&'static str),
    /// A rustup component of [`RUST_COMPONENTS`].
    Rustup(&'static str),
}

/// Which runs of `cargo xtask test` need a prerequisite.
pub(crate) enum Needed {
    /// Every run: the shared servers.
    Always,
    /// Runs with the fmt and clippy steps (without `--quick`).
    Lints,
    /// Runs that test one of these packages.
    By(&'static [&'static str]),
}

/// Every prerequisite of `cargo xtask test`.
pub(crate) const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite {
        what: "memcached",
        check: Check::Program {
            name: "memcached",
            env_var: Some("MEMORYCACHED_MEMCACHED_BIN"),
            fallback_dirs: true,
            version: None,
        },
        source: Source::Debian("memcached"),
        needed: Needed::Always,
    },
    Prerequisite {
        what: "redis-server",
        check: Check::Program {
            name: "redis-server",
            env_var: Some("MEMORYCACHED_REDIS_BIN"),
            fallback_dirs: true,
            version: None,
        },
        source: Source::Debian("redis-server"),
        needed: Needed::Always,
    },
    Prerequisite {
        what: "Valkey 8.1 or later",
        check: Check::Program {
            name: "valkey-server",
            env_var: Some("MEMORYCACHED_VALKEY_BIN"),
            fallback_dirs: true,
            version: Some(Version {
                flag: "--version",
                min: (8, 1, 0),
            }),
        },
        source: Source::Script(".ci/valkey"),
        needed: Needed::By(&["backend-redis"]),
    },
    // Debian 12's memcached 1.6.18 has no `watch deletions`: the
    // replicator's deletions-feed tests run Debian 13's beside it.
    Prerequisite {
        what: "memcached 1.6.38 (with `watch deletions`)",
        check: Check::Program {
            name: "memcached-1.6.38",
            env_var: Some("MEMORYCACHED_MEMCACHED_FEED_BIN"),
            fallback_dirs: true,
            version: Some(Version {
                flag: "-V",
                min: (1, 6, 38),
            }),
        },
        source: Source::Script(".ci/memcached-trixie"),
        needed: Needed::By(&["replicator"]),
    },
    Prerequisite {
        what: "nutcracker (twemproxy)",
        check: Check::Program {
            name: "nutcracker",
            env_var: None,
            fallback_dirs: false,
            version: None,
        },
        source: Source::Debian("nutcracker"),
        needed: Needed::By(&["backend-memcached"]),
    },
    Prerequisite {
        what: "openssl",
        check: Check::Program {
            name: "openssl",
            env_var: None,
            fallback_dirs: false,
            version: None,
        },
        source: Source::Debian("openssl"),
        needed: Needed::By(&["backend-redis"]),
    },
    Prerequisite {
        what: "Perl's Storable",
        check: Check::PerlModule("Storable"),
        source: Source::Debian("perl"),
        needed: Needed::By(&["session-core"]),
    },
    Prerequisite {
        what: "Perl's JSON::PP",
        check: Check::PerlModule("JSON::PP"),
        source: Source::Debian("perl"),
        needed: Needed::By(&["session-core", "backend-memcached", "session-cli"]),
    },
    Prerequisite {
        what: "Perl's Cache::Memcached",
        check: Check::PerlModule("Cache::Memcached"),
        source: Source::Debian("libcache-memcached-perl"),
        needed: Needed::By(&["backend-memcached", "session-cli", "soap-bridge"]),
    },
    Prerequisite {
        what: "Perl's Apache::Session",
        check: Check::PerlModule("Apache::Session"),
        source: Source::Debian("libapache-session-perl"),
        needed: Needed::By(&["backend-memcached"]),
    },
    Prerequisite {
        what: "Perl's SOAP::Lite",
        check: Check::PerlModule("SOAP::Lite"),
        source: Source::Debian("libsoap-lite-perl"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "LemonLDAP::NG's Perl modules",
        // Loads the handler (the REST client's cipher) and, through it,
        // liblemonldap-ng-common-perl's session modules.
        check: Check::PerlModule("Lemonldap::NG::Handler::Main"),
        source: Source::Debian("liblemonldap-ng-handler-perl"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "Python's zeep",
        check: Check::PythonModule("zeep"),
        source: Source::Pip("zeep"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "Python's Selenium",
        check: Check::PythonModule("selenium"),
        source: Source::Pip("selenium"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "chromium",
        check: Check::File("/usr/bin/chromium"),
        source: Source::Debian("chromium"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "chromedriver",
        check: Check::File("/usr/bin/chromedriver"),
        source: Source::Debian("chromium-driver"),
        needed: Needed::By(&["soap-bridge"]),
    },
    Prerequisite {
        what: "rustfmt (cargo fmt)",
        check: Check::CargoSubcommand("fmt"),
        source: Source::Rustup("rustfmt"),
        needed: Needed::Lints,
    },
    Prerequisite {
        what: "clippy (cargo clippy)",
        check: Check::CargoSubcommand("clippy"),
        source: Source::Rustup("clippy"),
        needed: Needed::Lints,
    },
];

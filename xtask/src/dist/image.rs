//! OCI images of the two daemons, `memorycached/soap-bridge` and
//! `memorycached/replicator`, from the release binaries `dist` already built.
//!
//! Each image is `FROM scratch`: the binary (its debug info stripped, as in
//! the packages), exactly the shared libraries `ldd` lists for it (the
//! dynamic loader included, at the paths the binary asks for), an `/etc/passwd` and `/etc/group` naming one non-root user
//! ([`UID`]), and the daemon's default config under `/etc/memorycached/`.
//! No base image is pulled (there is no registry to pull from), and the
//! binary is the one the `.deb` packages ship: one release build for both.
//! `docs/containers.md` says why not a static glibc build, and the sizes.
//!
//! The build context is written under `target/dist/image/<name>/` and given
//! to `docker build` (the legacy builder or BuildKit, whichever the CLI
//! has: the Dockerfile needs nothing but `COPY`), because only a Dockerfile
//! build carries `HEALTHCHECK` (`docker import --change` refuses it).
//! Each image is then checked: under [`MAX_BYTES`], and its binary starts
//! inside it (`--version` answers with the version this build is).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail, ensure};

use crate::release::Binaries;

/// One image built: its repository name, tags and size.
pub(crate) struct Built {
    /// e.g. `memorycached/soap-bridge`.
    pub(crate) name: String,
    /// Every tag given to it (the version, version-commit, ...).
    pub(crate) tags: Vec<String>,
    /// The image's size as `docker image inspect` reports it.
    pub(crate) size_bytes: u64,
}

/// The uid and gid the daemons run as in the images (not root; high enough
/// to collide with no system account of a host sharing volumes).
pub(crate) const UID: u32 = 10001;

/// The largest image accepted (issue #25: each image under 30 MB).
const MAX_BYTES: u64 = 30 * 1000 * 1000;

/// What differs between the two images.
struct Spec<'a> {
    /// Repository name, `memorycached/<binary>`.
    name: &'static str,
    /// The release binary on the host.
    binary: &'a Path,
    /// Its file name, also its name under `/usr/bin` in the image.
    bin_name: &'static str,
    /// The packaged default config (`deploy/config/...`), relative to the
    /// project root, baked in as `/etc/memorycached/<config_name>`.
    config_source: &'static str,
    config_name: &'static str,
    /// The config key holding the listen address, and its value in the
    /// image: every interface of the container, so a published port
    /// reaches it. The packaged file listens on loopback, right for a host.
    listen_key: &'static str,
    listen_value: &'static str,
    /// The port `HEALTHCHECK` probes (`/healthz`), the one `listen_value` names.
    port: u16,
    /// A directory the daemon writes, owned by [`UID`] (the replicator's
    /// state file); a named volume mounted there starts with that owner.
    state_dir: Option<&'static str>,
}

/// Builds `memorycached/soap-bridge` and `memorycached/replicator`, tagged
/// `<version>`, `<version>-<commit>` and `latest` (what `deploy/compose.yaml`
/// runs unless told otherwise).
pub(crate) fn build(bins: &Binaries, version: &str, commit: &str) -> anyhow::Result<Vec<Built>> {
    docker_answers()?;
    let specs = [
        Spec {
            name: "memorycached/soap-bridge",
            binary: &bins.soap_bridge,
            bin_name: "soap-bridge",
            config_source: "deploy/config/bridge.toml",
            config_name: "bridge.toml",
            listen_key: "listen",
            listen_value: "0.0.0.0:8080",
            port: 8080,
            state_dir: None,
        },
        Spec {
            name: "memorycached/replicator",
            binary: &bins.replicator,
            bin_name: "replicator",
            config_source: "deploy/config/replicator.toml",
            config_name: "replicator.toml",
            listen_key: "metrics",
            listen_value: "0.0.0.0:9150",
            port: 9150,
            state_dir: Some("/var/lib/memorycached-replicator"),
        },
    ];
    specs
        .iter()
        .map(|spec| build_one(spec, version, commit))
        .collect()
}

/// Fails with what to do when no Docker daemon answers the CLI.
fn docker_answers() -> anyhow::Result<()> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .context("running `docker version`: the images need the docker CLI (or use --no-images)")?;
    if !out.status.success() {
        bail!(
            "no Docker daemon answers (`docker version`: {}); start one, or use --no-images",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn build_one(spec: &Spec<'_>, version: &str, commit: &str) -> anyhow::Result<Built> {
    let root = crate::project_root();
    let short = spec.name.rsplit('/').next().unwrap_or(spec.name);
    let context = root.join("target/dist/image").join(short);
    let libraries = libraries(spec.binary)?;
    stage(spec, &root, &context, &libraries)?;
    let tags = vec![
        version.to_owned(),
        format!("{version}-{commit}"),
        "latest".to_owned(),
    ];
    fs::write(
        context.join("Dockerfile"),
        dockerfile(spec, version, commit),
    )
    .context("writing the Dockerfile")?;
    let mut cmd = Command::new("docker");
    cmd.arg("build").arg("--quiet");
    for tag in &tags {
        cmd.arg("--tag").arg(format!("{}:{tag}", spec.name));
    }
    cmd.arg(&context);
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "docker build of {} failed ({}): {}",
            spec.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let image = format!("{}:{version}", spec.name);
    let size_bytes = image_size(&image)?;
    ensure!(
        size_bytes < MAX_BYTES,
        "{image} is {:.1} MB, over the {} MB limit",
        mb(size_bytes),
        MAX_BYTES / 1_000_000
    );
    starts_inside(&image, spec.bin_name, version)?;
    println!(
        "xtask: image {image}: {:.1} MB, {} plus {} shared libraries, user {UID}, \
         HEALTHCHECK on 127.0.0.1:{}",
        mb(size_bytes),
        spec.bin_name,
        libraries.len(),
        spec.port
    );
    Ok(Built {
        name: spec.name.to_owned(),
        tags,
        size_bytes,
    })
}

/// Megabytes (10^6 bytes, as `docker images` counts them).
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The Dockerfile of an image whose root filesystem is staged in `rootfs/`.
fn dockerfile(spec: &Spec<'_>, version: &str, commit: &str) -> String {
    let bin = format!("/usr/bin/{}", spec.bin_name);
    let config = format!("/etc/memorycached/{}", spec.config_name);
    let state = spec.state_dir.map_or(String::new(), |dir| {
        format!("COPY --chown={UID}:{UID} state/ {dir}/\n")
    });
    let workdir = spec.state_dir.unwrap_or("/");
    format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         {state}\
         USER {UID}:{UID}\n\
         WORKDIR {workdir}\n\
         EXPOSE {port}/tcp\n\
         LABEL org.opencontainers.image.title=\"{name}\" \\\n      \
               org.opencontainers.image.version=\"{version}\" \\\n      \
               org.opencontainers.image.revision=\"{commit}\" \\\n      \
               org.opencontainers.image.licenses=\"MIT OR Apache-2.0\"\n\
         HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
         CMD [\"{bin}\", \"--health-probe\", \"127.0.0.1:{port}\"]\n\
         STOPSIGNAL SIGTERM\n\
         ENTRYPOINT [\"{bin}\"]\n\
         CMD [\"--config\", \"{config}\", \"--log-output\", \"stdout\"]\n",
        port = spec.port,
        name = spec.name,
    )
}

/// Writes the build context: `rootfs/` (binary, libraries, passwd, group,
/// config) and an empty `state/`.
fn stage(
    spec: &Spec<'_>,
    root: &Path,
    context: &Path,
    libraries: &[PathBuf],
) -> anyhow::Result<()> {
    if context.exists() {
        fs::remove_dir_all(context)
            .with_context(|| format!("removing the old {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    fs::create_dir_all(rootfs.join("etc/memorycached"))
        .with_context(|| format!("creating {}", rootfs.display()))?;
    fs::create_dir_all(context.join("state")).context("creating state/")?;
    let binary = rootfs.join("usr/bin").join(spec.bin_name);
    copy(spec.binary, &binary)?;
    strip_debug(&binary)?;
    for lib in libraries {
        // The same absolute path inside: the binary's interpreter path and
        // the loader's default search path are those of the host.
        let relative = lib.strip_prefix("/").unwrap_or(lib);
        copy(lib, &rootfs.join(relative))?;
    }
    fs::write(
        rootfs.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             memorycached:x:{UID}:{UID}:memorycached:/nonexistent:/usr/sbin/nologin\n"
        ),
    )
    .context("writing etc/passwd")?;
    fs::write(
        rootfs.join("etc/group"),
        format!("root:x:0:\nmemorycached:x:{UID}:\n"),
    )
    .context("writing etc/group")?;
    let source = root.join(spec.config_source);
    let packaged = fs::read_to_string(&source)
        .with_context(|| format!("reading the packaged config {}", source.display()))?;
    let config = container_config(&packaged, spec.listen_key, spec.listen_value)
        .with_context(|| format!("adapting {} for the image", spec.config_source))?;
    fs::write(
        rootfs.join("etc/memorycached").join(spec.config_name),
        config,
    )
    .context("writing the image's config")?;
    Ok(())
}

/// Copies `from` (following symlinks: the library itself) to `to`, keeping
/// its mode (the loader, like the binary, must stay executable).
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// Drops the debug info from the staged copy of the binary (the release
/// profile keeps line tables: 53 MB for the replicator, 7 MB without),
/// keeping its symbols for backtraces, as the `.deb` packages do.
fn strip_debug(binary: &Path) -> anyhow::Result<()> {
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg(binary)
        .status()
        .context("running strip (package binutils)")?;
    ensure!(
        status.success(),
        "strip --strip-debug {} failed ({status})",
        binary.display()
    );
    Ok(())
}

/// The packaged config with `key` set to `value` (a top-level key): the
/// line setting it is replaced, or, where the file leaves it commented
/// out, the setting goes first (top-level keys must precede any table).
fn container_config(packaged: &str, key: &str, value: &str) -> anyhow::Result<String> {
    let setting = format!("{key} = \"{value}\"");
    let header = format!(
        "# In the container image: as the Debian package's file, but `{key}`\n\
         # is on every interface of the container (publish the port to reach it;\n\
         # the image's HEALTHCHECK probes it on 127.0.0.1). Mount your own file\n\
         # here to configure the daemon.\n"
    );
    let mut replaced = 0;
    let mut in_table = false;
    let mut body = String::with_capacity(packaged.len() + 64);
    for line in packaged.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_table = true;
        }
        let sets_key = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if sets_key && !in_table {
            body.push_str(&setting);
            replaced += 1;
        } else {
            body.push_str(line);
        }
        body.push('\n');
    }
    match replaced {
        0 => Ok(format!("{header}{setting}\n\n{body}")),
        1 => Ok(format!("{header}\n{body}")),
        n => bail!("`{key}` is set {n} times at the top level"),
    }
}

/// Every shared library `ldd` lists for `binary`, the loader included, in
/// the order listed; none for a static binary. A library `ldd` cannot find
/// is an error naming it.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": a static binary needs nothing.
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", binary.display(), err.trim());
    }
    parse_ldd(&text)
}

/// The absolute paths in `ldd` output (libraries and the loader), in order.
fn parse_ldd(output: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in output.lines() {
        if line.contains("not found") {
            bail!("a shared library is missing: {}", line.trim());
        }
        let candidate = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = candidate.filter(|p| p.starts_with('/')) {
            let path = PathBuf::from(path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

/// The image's size in bytes, as `docker image inspect` reports it.
fn image_size(image: &str) -> anyhow::Result<u64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .output()
        .context("running docker image inspect")?;
    ensure!(
        out.status.success(),
        "docker image inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("reading the size of {image} from {text:?}"))
}

/// Runs `<bin> --version` in the image: the binary and its libraries load
/// there, as the non-root user, and it is the build's version.
fn starts_inside(image: &str, bin_name: &str, version: &str) -> anyhow::Result<()> {
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", image, "--version"])
        .output()
        .context("running docker run")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.starts_with(&format!("{bin_name} {version}")),
        "`{bin_name} --version` in {image} did not answer `{bin_name} {version} ...` \
         ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f33)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f33)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f33)\n";
        let paths = parse_ldd(out).unwrap();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn container_config_replaces_a_top_level_listen() {
        let packaged =
            "# the bridge\nlisten = \"127.0.0.1:8080\"\nstore = \"x\"\n\n[auth]\nlisten = 1\n";
        let config = container_config(packaged, "listen", "0.0.0.0:8080").unwrap();
        assert!(
            config.contains("\nlisten = \"0.0.0.0:8080\"\nstore"),
            "{config}"
        );
        assert!(!config.contains("127.0.0.1:8080"), "{config}");
        // A key of the same name inside a table is left alone.
        assert!(config.ends_with("[auth]\nlisten = 1\n"), "{config}");
    }

    #[test]
    fn container_config_sets_a_commented_out_listen_before_any_table() {
        let packaged = "# listen = \"127.0.0.1:9150\"\npeers = []\n[x]\n";
        let config = container_config(packaged, "metrics", "0.0.0.0:9150").unwrap();
        let setting = config.find("metrics = \"0.0.0.0:9150\"").unwrap();
        assert!(setting < config.find("peers").unwrap(), "{config}");
        assert!(container_config("a = 1\na = 2\n", "a", "b").is_err());
    }
}

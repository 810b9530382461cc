//! Images for the docker provider: the official ones where the daemon has or
//! can pull them, otherwise images built locally from the host's own binaries.
//!
//! A local image is a root filesystem holding only the server binary, every
//! shared library `ldd` lists (the dynamic loader included), a minimal
//! `/etc/passwd` and `/etc/group`, run as `nobody`. It is tagged
//! `memorycached/<server>:host-<version>` so later runs reuse it. Two ways to
//! build it, both through the Engine API (no docker CLI needed):
//! - **BuildKit** (`FROM scratch` + `COPY`), through testcontainers'
//!   `GenericBuildableImage`: the daemon's built-in BuildKit, reached with
//!   bollard's own session, so the `buildx` CLI plugin is not needed;
//! - **import** (what `docker import` does): a tar of the root filesystem
//!   posted to `/images/create?fromSrc=-` with `ENTRYPOINT`/`USER` changes,
//!   for daemons whose BuildKit is unavailable.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use testcontainers::{
    GenericBuildableImage,
    bollard::{
        Docker, body_full,
        query_parameters::{CreateImageOptionsBuilder, RemoveImageOptionsBuilder},
    },
    core::BuildImageOptions,
    runners::AsyncBuilder,
};

use crate::{Error, docker, process::Binary, runtime, server::ServerKind};

/// The image a container is started from.
#[derive(Clone, Debug)]
pub(crate) struct ImageRef {
    pub(crate) name: String,
    pub(crate) tag: String,
    pub(crate) port: u16,
    pub(crate) official: bool,
    kind: ServerKind,
}

impl ImageRef {
    pub(crate) fn descriptor(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The descriptor and where the image came from, for people.
    pub(crate) fn describe(&self) -> String {
        let origin = if self.official {
            "official"
        } else {
            "built from the host binary"
        };
        format!("{} ({origin})", self.descriptor())
    }

    /// The container command for the provider-independent `args`.
    ///
    /// Official images' entrypoints prepend the server when the first
    /// argument is an option; local images have the server as entrypoint.
    /// Either way only options are passed, plus what a container needs:
    /// Redis must accept clients that come through the published port.
    pub(crate) fn args(&self, mut args: Vec<String>) -> Vec<String> {
        if self.kind == ServerKind::Redis {
            args.extend(["--protected-mode".to_owned(), "no".to_owned()]);
        }
        args
    }
}

/// Where the official image is taken from and what a local one is called.
struct Spec {
    official: (&'static str, &'static str),
    local_name: &'static str,
    port: u16,
}

fn spec(kind: ServerKind) -> Spec {
    match kind {
        ServerKind::Memcached => Spec {
            official: ("memcached", "1.6"),
            local_name: "memorycached/memcached",
            port: 11211,
        },
        ServerKind::Redis => Spec {
            official: ("redis", "7"),
            local_name: "memorycached/redis",
            port: 6379,
        },
    }
}

/// Which images the docker provider may use (`MEMORYCACHED_IMAGES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// Official if present or pullable, else local (the default).
    Auto,
    /// Official only.
    Official,
    /// Local only; never contacts a registry.
    Local,
}

fn policy() -> Result<Policy, Error> {
    match std::env::var("MEMORYCACHED_IMAGES").as_deref() {
        Err(_) | Ok("") | Ok("auto") => Ok(Policy::Auto),
        Ok("official") => Ok(Policy::Official),
        Ok("local") => Ok(Policy::Local),
        Ok(other) => Err(Error::docker("MEMORYCACHED_IMAGES")(format!(
            "unknown value `{other}`: expected auto, official or local"
        ))),
    }
}

/// How long a pull of an official image may take (`MEMORYCACHED_PULL_TIMEOUT_SECS`).
fn pull_timeout() -> Duration {
    std::env::var("MEMORYCACHED_PULL_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Picks the image for `kind`: official when present or pullable, else local
/// (reused when present, built otherwise).
pub(crate) async fn resolve(docker: &Docker, kind: ServerKind) -> Result<ImageRef, Error> {
    let spec = spec(kind);
    let policy = policy()?;
    let (name, tag) = spec.official;
    let official = ImageRef {
        name: name.to_owned(),
        tag: tag.to_owned(),
        port: spec.port,
        official: true,
        kind,
    };
    let pull_error = if policy == Policy::Local {
        "skipped: MEMORYCACHED_IMAGES=local".to_owned()
    } else {
        match present_or_pull(docker, &official.descriptor()).await {
            Ok(()) => return Ok(official),
            Err(e) => e,
        }
    };
    let mut local_error = "skipped: MEMORYCACHED_IMAGES=official".to_owned();
    let mut local_descriptor = format!("{}:host-<version>", spec.local_name);
    if policy != Policy::Official {
        match build_local(docker, kind, false, BuildMethod::Auto).await {
            Ok(report) => {
                let (name, tag) = report
                    .image
                    .split_once(':')
                    .unwrap_or((spec.local_name, "latest"));
                return Ok(ImageRef {
                    name: name.to_owned(),
                    tag: tag.to_owned(),
                    port: spec.port,
                    official: false,
                    kind,
                });
            }
            Err((descriptor, e)) => {
                local_error = e.to_string();
                if let Some(d) = descriptor {
                    local_descriptor = d;
                }
            }
        }
    }
    Err(Error::NoImage {
        server: kind.name(),
        official: official.descriptor(),
        pull_error,
        local: local_descriptor,
        build_error: local_error,
    })
}

/// Ok when the daemon has `descriptor` or pulls it within the pull timeout.
async fn present_or_pull(docker: &Docker, descriptor: &str) -> Result<(), String> {
    if docker.inspect_image(descriptor).await.is_ok() {
        return Ok(());
    }
    let limit = pull_timeout();
    let pull = async {
        let mut progress = docker.create_image(
            Some(
                CreateImageOptionsBuilder::new()
                    .from_image(descriptor)
                    .build(),
            ),
            None,
            None,
        );
        while let Some(step) = progress.next().await {
            step.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(limit, pull).await {
        Ok(Ok(())) => docker
            .inspect_image(descriptor)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("pull timed out after {limit:?}")),
    }
}

/// How a local image gets built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildMethod {
    /// BuildKit, falling back to import when BuildKit fails.
    Auto,
    /// `FROM scratch` through the daemon's BuildKit.
    BuildKit,
    /// A root-filesystem tar through `/images/create?fromSrc=-` (`docker import`).
    Import,
}

/// What happened to one local image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageAction {
    /// It was there already and was reused.
    Reused,
    /// Built with BuildKit.
    BuiltWithBuildKit,
    /// Built by importing a root-filesystem tar.
    Imported,
    /// BuildKit failed (the message says why); built by import instead.
    ImportedAfterBuildKitFailed(String),
}

/// One local image: what it is, what was done, from which host files.
#[derive(Clone, Debug)]
pub struct ImageReport {
    /// `memcached` or `redis`.
    pub server: &'static str,
    /// `memorycached/<server>:host-<version>`.
    pub image: String,
    /// What was done.
    pub action: ImageAction,
    /// The host files copied in (binary first, then libraries).
    pub files: Vec<PathBuf>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Builds (or, unless `force`, reuses) the local memcached and Redis images.
///
/// `cargo xtask images` calls this; tests never need to, as the docker
/// provider builds what it lacks on first use.
pub async fn build_images(force: bool, method: BuildMethod) -> Result<Vec<ImageReport>, Error> {
    runtime::run(async move {
        let docker = docker::connect().await?;
        let mut reports = Vec::new();
        for kind in [ServerKind::Memcached, ServerKind::Redis] {
            reports.push(
                build_local(&docker, kind, force, method)
                    .await
                    .map_err(|(_, e)| e)?,
            );
        }
        Ok(reports)
    })
    .await
}

/// The host binary, its version and the files an image of it needs.
struct HostServer {
    binary: PathBuf,
    version: String,
    libraries: Vec<PathBuf>,
}

fn host_server(kind: ServerKind) -> Result<HostServer, Error> {
    let binary = Binary::of(kind).locate()?;
    let version_flag = match kind {
        ServerKind::Memcached => "-V",
        ServerKind::Redis => "--version",
    };
    let version_out = run(Command::new(&binary).arg(version_flag))?;
    // "memcached 1.6.18" / "Redis server v=7.0.15 sha=... malloc=... bits=64 ..."
    let version = version_out
        .split_whitespace()
        .find_map(|w| {
            let w = w.strip_prefix("v=").unwrap_or(w);
            w.starts_with(|c: char| c.is_ascii_digit())
                .then(|| w.to_owned())
        })
        .ok_or_else(|| Error::docker("reading the server version")(version_out.clone()))?;
    let ldd = run(Command::new("ldd").arg(&binary))?;
    Ok(HostServer {
        binary,
        version,
        libraries: parse_ldd(&ldd)?,
    })
}

/// The absolute paths in `ldd` output (libraries and the loader), in order.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, Error> {
    let mut paths = Vec::new();
    for line in output.lines() {
        if line.contains("not found") {
            return Err(Error::docker("resolving shared libraries")(
                line.trim().to_owned(),
            ));
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

fn run(cmd: &mut Command) -> Result<String, Error> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(Error::io(format!("running {shown}")))?;
    if !out.status.success() {
        return Err(Error::Io {
            context: format!("running {shown}"),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Builds or reuses the local image of `kind`. On error, also returns the
/// image name when it was known by then.
async fn build_local(
    docker: &Docker,
    kind: ServerKind,
    force: bool,
    method: BuildMethod,
) -> Result<ImageReport, (Option<String>, Error)> {
    build_local_named(docker, kind, spec(kind).local_name, force, method).await
}

/// [`build_local`] under another repository name (tests build throwaway images).
async fn build_local_named(
    docker: &Docker,
    kind: ServerKind,
    local_name: &str,
    force: bool,
    method: BuildMethod,
) -> Result<ImageReport, (Option<String>, Error)> {
    let started = Instant::now();
    let spec = spec(kind);
    let host = host_server(kind).map_err(|e| (None, e))?;
    let tag = format!("host-{}", host.version);
    let image = format!("{local_name}:{tag}");
    let server_name = Binary::of(kind).name;
    let mut files = vec![host.binary.clone()];
    files.extend(host.libraries.iter().cloned());
    let report = |action| ImageReport {
        server: kind.name(),
        image: image.clone(),
        action,
        files: files.clone(),
        elapsed: started.elapsed(),
    };
    let fail = |e: Error| (Some(image.clone()), e);

    if docker.inspect_image(&image).await.is_ok() {
        if !force {
            return Ok(report(ImageAction::Reused));
        }
        let _ = docker
            .remove_image(
                &image,
                Some(RemoveImageOptionsBuilder::new().force(true).build()),
                None,
            )
            .await;
    }
    let entrypoint = format!("/usr/bin/{server_name}");
    let rootfs = Rootfs {
        files: std::iter::once((host.binary.clone(), entrypoint.clone()))
            .chain(
                host.libraries
                    .iter()
                    .map(|lib| (lib.clone(), lib.display().to_string())),
            )
            .collect(),
        entrypoint,
        port: spec.port,
    };
    let action = match method {
        BuildMethod::BuildKit => {
            build_with_buildkit(local_name, &tag, &rootfs)
                .await
                .map_err(fail)?;
            ImageAction::BuiltWithBuildKit
        }
        BuildMethod::Import => {
            import(docker, local_name, &tag, &rootfs)
                .await
                .map_err(fail)?;
            ImageAction::Imported
        }
        BuildMethod::Auto => match build_with_buildkit(local_name, &tag, &rootfs).await {
            Ok(()) => ImageAction::BuiltWithBuildKit,
            Err(buildkit) => {
                import(docker, local_name, &tag, &rootfs)
                    .await
                    .map_err(fail)?;
                ImageAction::ImportedAfterBuildKitFailed(buildkit.to_string())
            }
        },
    };
    // Both ways must have produced the tag; say so plainly if not.
    docker.inspect_image(&image).await.map_err(|e| {
        fail(Error::docker(format!(
            "inspecting the freshly built {image}"
        ))(e.to_string()))
    })?;
    Ok(report(action))
}

/// The root filesystem of a local image.
struct Rootfs {
    /// (host file, absolute path in the image).
    files: Vec<(PathBuf, String)>,
    entrypoint: String,
    port: u16,
}

async fn build_with_buildkit(name: &str, tag: &str, rootfs: &Rootfs) -> Result<(), Error> {
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         WORKDIR /tmp\n\
         USER 65534:65534\n\
         EXPOSE {port}/tcp\n\
         LABEL memorycached.image=host-binary\n\
         ENTRYPOINT [\"{entrypoint}\"]\n",
        port = rootfs.port,
        entrypoint = rootfs.entrypoint,
    );
    let mut image = GenericBuildableImage::new(name, tag)
        .with_dockerfile_string(dockerfile)
        .with_data(PASSWD, "rootfs/etc/passwd")
        .with_data(GROUP, "rootfs/etc/group");
    for (source, target) in &rootfs.files {
        image = image.with_file(source, format!("rootfs{target}"));
    }
    image
        .build_image_with(BuildImageOptions::new().with_skip_if_exists(false))
        .await
        .map(drop)
        .map_err(|e| Error::docker(format!("building {name}:{tag} with BuildKit"))(e.to_string()))
}

async fn import(docker: &Docker, name: &str, tag: &str, rootfs: &Rootfs) -> Result<(), Error> {
    let mut tar = ustar::Writer::default();
    // The root first: without its own entry the daemon creates it 0700 and
    // `nobody` cannot reach the entrypoint.
    for dir in [".", "etc", "tmp", "usr", "usr/bin"] {
        tar.dir(dir, if dir == "tmp" { 0o1777 } else { 0o755 })?;
    }
    tar.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    tar.file("etc/group", 0o644, GROUP.as_bytes())?;
    for (source, target) in &rootfs.files {
        let relative = target.trim_start_matches('/');
        if let Some(parent) = Path::new(relative).parent() {
            tar.dirs_of(parent)?;
        }
        let data =
            std::fs::read(source).map_err(Error::io(format!("reading {}", source.display())))?;
        // The host's mode, as BuildKit's COPY keeps it: the dynamic loader,
        // like the binary, must be executable.
        let mode = std::fs::metadata(source)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .map_err(Error::io(format!(
                "reading the mode of {}",
                source.display()
            )))?;
        tar.file(relative, mode, &data)?;
    }
    let changes = vec![
        format!("ENTRYPOINT [\"{}\"]", rootfs.entrypoint),
        "USER 65534:65534".to_owned(),
        "WORKDIR /tmp".to_owned(),
        format!("EXPOSE {}/tcp", rootfs.port),
        "LABEL memorycached.image=host-binary".to_owned(),
    ];
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(name)
        .tag(tag)
        .changes(changes)
        .build();
    let mut progress =
        docker.create_image(Some(options), Some(body_full(tar.finish().into())), None);
    while let Some(step) = progress.next().await {
        let step =
            step.map_err(|e| Error::docker(format!("importing {name}:{tag}"))(e.to_string()))?;
        if let Some(e) = step.error_detail.and_then(|d| d.message) {
            return Err(Error::docker(format!("importing {name}:{tag}"))(e));
        }
    }
    Ok(())
}

/// Just enough of a POSIX ustar writer for a root filesystem: regular files
/// and directories, names under 100 bytes, owned by root.
mod ustar {
    use std::path::Path;

    use crate::Error;

    #[derive(Default)]
    pub(super) struct Writer {
        out: Vec<u8>,
        dirs: Vec<String>,
    }

    impl Writer {
        pub(super) fn dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
            let path = format!("{}/", path.trim_end_matches('/'));
            if self.dirs.contains(&path) {
                return Ok(());
            }
            self.header(&path, mode, 0, b'5')?;
            self.dirs.push(path);
            Ok(())
        }

        /// Adds `dir` and each of its ancestors not added yet.
        pub(super) fn dirs_of(&mut self, dir: &Path) -> Result<(), Error> {
            let mut prefix = String::new();
            for part in dir.components() {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(&part.as_os_str().to_string_lossy());
                self.dir(&prefix, 0o755)?;
            }
            Ok(())
        }

        pub(super) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), Error> {
            self.header(path, mode, data.len() as u64, b'0')?;
            self.out.extend_from_slice(data);
            self.pad();
            Ok(())
        }

        pub(super) fn finish(mut self) -> Vec<u8> {
            self.out.resize(self.out.len() + 1024, 0);
            self.out
        }

        fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8) -> Result<(), Error> {
            if path.len() >= 100 {
                return Err(Error::docker("writing the image tar")(format!(
                    "path too long for ustar: {path}"
                )));
            }
            let mut h = [0u8; 512];
            h[..path.len()].copy_from_slice(path.as_bytes());
            octal(&mut h[100..108], u64::from(mode));
            octal(&mut h[108..116], 0);
            octal(&mut h[116..124], 0);
            octal(&mut h[124..136], size);
            octal(&mut h[136..148], 0);
            h[148..156].fill(b' ');
            h[156] = kind;
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
            octal(&mut h[148..155], sum);
            self.out.extend_from_slice(&h);
            Ok(())
        }

        fn pad(&mut self) {
            let rem = self.out.len() % 512;
            if rem != 0 {
                self.out.resize(self.out.len() + 512 - rem, 0);
            }
        }
    }

    /// Zero-padded octal, NUL-terminated, filling `field`.
    fn octal(field: &mut [u8], value: u64) {
        let digits = field.len() - 1;
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
        field[digits] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibevent-2.1.so.7 => /lib/x86_64-linux-gnu/libevent-2.1.so.7 (0x00007f33)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f33)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f33)\n";
        let paths = parse_ldd(out).unwrap();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libevent-2.1.so.7",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn ustar_is_readable_by_tar() {
        let mut w = ustar::Writer::default();
        w.dirs_of(Path::new("usr/bin")).unwrap();
        w.file("usr/bin/hello", 0o755, b"hello\n").unwrap();
        let bytes = w.finish();
        assert_eq!(bytes.len() % 512, 0);
        let dir = std::env::temp_dir().join(format!("ts-ustar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tar_path = dir.join("t.tar");
        std::fs::write(&tar_path, &bytes).unwrap();
        let listing = Command::new("tar")
            .arg("-tvf")
            .arg(&tar_path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.contains("usr/bin/hello"), "{text}");
        assert!(text.contains("-rwxr-xr-x"), "{text}");
    }

    /// Both build methods, for both servers, give an image that starts and
    /// answers. Throwaway names keep the shared images untouched.
    #[tokio::test]
    async fn both_build_methods_produce_working_images() {
        use testcontainers::{
            GenericImage, ImageExt, core::IntoContainerPort, runners::AsyncRunner,
        };

        let outcome = runtime::run(async {
            let docker = docker::connect().await?;
            let mut seen = Vec::new();
            for (method, label) in [
                (BuildMethod::BuildKit, "buildkit"),
                (BuildMethod::Import, "import"),
            ] {
                for kind in [ServerKind::Memcached, ServerKind::Redis] {
                    let name = format!(
                        "memorycached-selftest/{}-{label}-{}",
                        kind.name(),
                        std::process::id()
                    );
                    let report = build_local_named(&docker, kind, &name, true, method)
                        .await
                        .map_err(|(_, e)| e)?;
                    let expected = match method {
                        BuildMethod::Import => ImageAction::Imported,
                        _ => ImageAction::BuiltWithBuildKit,
                    };
                    assert_eq!(report.action, expected);
                    let (image_name, tag) = report.image.split_once(':').unwrap();
                    let port = spec(kind).port;
                    let image = ImageRef {
                        name: image_name.to_owned(),
                        tag: tag.to_owned(),
                        port,
                        official: false,
                        kind,
                    };
                    let args = match kind {
                        ServerKind::Memcached => vec!["-m".to_owned(), "16".to_owned()],
                        ServerKind::Redis => crate::server::redis_args(),
                    };
                    let run = async {
                        let container = GenericImage::new(image_name, tag)
                            .with_exposed_port(port.tcp())
                            .with_cmd(image.args(args))
                            .start()
                            .await
                            .map_err(|e| Error::docker("starting")(e.to_string()))?;
                        let host_port = container
                            .get_host_port_ipv4(port)
                            .await
                            .map_err(|e| Error::docker("reading the port")(e.to_string()));
                        let ready = match host_port {
                            Ok(host_port) => {
                                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host_port));
                                crate::server::wait_ready(
                                    kind,
                                    addr,
                                    Duration::from_secs(10),
                                    || Ok(()),
                                )
                                .await
                            }
                            Err(e) => Err(e),
                        };
                        let _ = container.rm().await;
                        ready
                    };
                    let ready = run.await;
                    // Removed whatever happened, so failed runs leave no images.
                    let _ = docker
                        .remove_image(
                            &report.image,
                            Some(RemoveImageOptionsBuilder::new().force(true).build()),
                            None,
                        )
                        .await;
                    ready?;
                    seen.push(format!(
                        "{} via {label} in {:?}",
                        report.image, report.elapsed
                    ));
                }
            }
            Ok(seen)
        })
        .await;
        let seen = outcome.unwrap();
        eprintln!("{seen:#?}");
        assert_eq!(seen.len(), 4);
    }
}

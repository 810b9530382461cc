//! Building a local image from the host binary, with BuildKit (`FROM
//! scratch` + `COPY`) or by importing a root-filesystem tar, and the public
//! entry points `cargo xtask images` and the image tests use.

use std::{
    path::{Path, PathBuf},
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

use super::{host::host_server, spec::spec, ustar};
use crate::{Error, binary::Binary, daemon, kind::ServerKind, runtime};

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
        let docker = daemon::connect().await?;
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

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Builds or reuses the local image of `kind`. On error, also returns the
/// image name when it was known by then.
pub(super) async fn build_local(
    docker: &Docker,
    kind: ServerKind,
    force: bool,
    method: BuildMethod,
) -> Result<ImageReport, (Option<String>, Error)> {
    build_local_named(docker, kind, spec(kind).local_name, force, method).await
}

/// Builds the local image of `kind` under the repository name `repository`
/// (tagged `host-<version>`), with `method`, replacing an existing one.
///
/// The docker provider and [`build_images`] use `memorycached/<server>`; the
/// image tests build throwaway names with each method and remove them.
pub async fn build_image(
    kind: ServerKind,
    repository: &str,
    method: BuildMethod,
) -> Result<ImageReport, Error> {
    let repository = repository.to_owned();
    runtime::run(async move {
        let docker = daemon::connect().await?;
        build_local_named(&docker, kind, &repository, true, method)
            .await
            .map_err(|(_, e)| e)
    })
    .await
}

/// [`build_local`] under another repository name.
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

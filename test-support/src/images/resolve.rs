//! Which image a docker provider starts a server from: the official one when
//! the daemon has it or can pull it in time, else a local one built from the
//! host binary (`MEMORYCACHED_IMAGES` narrows the choice).

use std::time::Duration;

use futures_util::StreamExt;
use testcontainers::bollard::{Docker, query_parameters::CreateImageOptionsBuilder};

use super::{
    build::{BuildMethod, build_local},
    spec::spec,
};
use crate::{Error, kind::ServerKind};

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

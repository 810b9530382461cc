//! The connection to the Docker daemon, and the ping that tells whether one answers.
//!
//! A leaf module: the docker provider, the image builder and the `Auto`
//! provider's probe all connect here without depending on each other.

use std::time::Duration;

use testcontainers::bollard::Docker;

use crate::Error;

/// How long the daemon may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the daemon (`DOCKER_HOST` or the default socket) and pings it.
pub(crate) async fn connect() -> Result<Docker, Error> {
    let docker =
        Docker::connect_with_defaults().map_err(|e| Error::DockerUnavailable(e.to_string()))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(Error::DockerUnavailable(e.to_string())),
        Err(_) => Err(Error::DockerUnavailable(format!(
            "no answer to a ping within {PING_TIMEOUT:?}"
        ))),
    }
}

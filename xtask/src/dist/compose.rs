//! The compose fleet's checks (placeholder: being built by its owner).

/// Starts `deploy/compose.yaml` on the local images and checks it.
pub(crate) fn verify() -> anyhow::Result<()> {
    anyhow::bail!("the compose checks are not built yet")
}

//! Which tests one `cargo xtask test` pass builds and runs, and which it
//! leaves out and why.
//!
//! Most tests take their servers from the shared ones, whatever the
//! provider. A few test one provider itself (`test-support/provider-tests`:
//! `tests/docker.rs` needs a Docker daemon, `tests/process.rs` the local
//! binaries); they sit behind a package feature named
//! `<provider>-provider-tests` (a `[[test]]` with `required-features`).
//! A pass turns on every feature of the selected packages, like
//! `--all-features`, except the provider gates of the *other* provider, and
//! prints each test target so left out — so a machine without a Docker
//! daemon passes, and nobody is misled into thinking the left-out tests ran.
//! Both runners (nextest and `cargo test`) honour `required-features`, so
//! the rule is the same whichever runs the tests.

use anyhow::Context;
use test_support::ProviderKind;

use crate::project_root;

/// The providers that have gated tests, and the suffix of their features.
const GATED: &[ProviderKind] = &[ProviderKind::Docker, ProviderKind::Process];
const GATE_SUFFIX: &str = "-provider-tests";

/// The arguments that select packages and features for one pass.
pub(crate) struct Scope {
    /// `--workspace` or `-p NAME...`, then `--features pkg/feat,...` if any.
    pub(crate) args: Vec<String>,
    /// One line per test target (or gated package) left out, with the reason.
    pub(crate) left_out: Vec<String>,
}

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> anyhow::Result<serde_json::Value> {
    let output = std::process::Command::new(crate::cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(project_root())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        anyhow::bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing cargo metadata")
}

/// Whether one of `backends` (all workspace members when empty) has a
/// library, hence doc tests: `cargo test --doc` fails outright on binaries
/// alone (`session-cli`).
pub(crate) fn has_library(backends: &[String]) -> anyhow::Result<bool> {
    let metadata = metadata()?;
    Ok(metadata["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|package| {
            let name = package["name"].as_str().unwrap_or_default();
            backends.is_empty() || backends.iter().any(|b| b == name)
        })
        .any(has_lib_target))
}

/// The gate feature of `provider`, e.g. `docker-provider-tests`.
fn gate(provider: ProviderKind) -> String {
    format!("{}{GATE_SUFFIX}", provider.as_str())
}

/// The scope for `backends` (all workspace members when empty) on servers
/// from `provider` (resolved: `Docker` or `Process`).
pub(crate) fn scope(backends: &[String], provider: ProviderKind) -> anyhow::Result<Scope> {
    let metadata = metadata()?;
    let root = metadata["workspace_root"].as_str().unwrap_or_default();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();

    let excluded: Vec<(ProviderKind, String)> = GATED
        .iter()
        .filter(|gated| **gated != provider)
        .map(|gated| (*gated, gate(*gated)))
        .collect();
    let mut features = Vec::new();
    let mut left_out = Vec::new();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !backends.is_empty() && !backends.iter().any(|b| b == name) {
            continue;
        }
        let Some(own) = package["features"].as_object() else {
            continue;
        };
        // `default` is on anyway; naming it only lengthens the command line.
        for feature in own.keys().filter(|f| *f != "default") {
            match excluded.iter().find(|(_, gate)| gate == feature) {
                None => features.push(format!("{name}/{feature}")),
                Some((gated, gate)) => {
                    let why = format!(
                        "{gated} provider tests, feature {name}/{gate}; run with --provider {gated}"
                    );
                    let targets = gated_targets(package, gate, root);
                    if targets.is_empty() {
                        left_out.push(format!("tests of {name} behind its feature {gate} ({why})"));
                    }
                    left_out.extend(targets.into_iter().map(|t| format!("{t} ({why})")));
                }
            }
        }
    }

    let mut args: Vec<String> = if backends.is_empty() {
        vec!["--workspace".to_owned()]
    } else {
        backends
            .iter()
            .flat_map(|b| ["-p".to_owned(), b.clone()])
            .collect()
    };
    if !features.is_empty() {
        args.extend(["--features".to_owned(), features.join(",")]);
    }
    Ok(Scope { args, left_out })
}

/// Whether `package` has a library target (the only kind with doc tests).
fn has_lib_target(package: &serde_json::Value) -> bool {
    package["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|target| target["kind"].as_array())
        .flatten()
        .any(|kind| matches!(kind.as_str(), Some("lib" | "rlib" | "dylib" | "proc-macro")))
}

/// The source paths (relative to the workspace root) of `package`'s targets
/// that require `feature`.
fn gated_targets(package: &serde_json::Value, feature: &str, root: &str) -> Vec<String> {
    package["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|target| {
            target["required-features"]
                .as_array()
                .is_some_and(|required| required.iter().any(|f| f.as_str() == Some(feature)))
        })
        .filter_map(|target| target["src_path"].as_str())
        .map(|path| {
            path.strip_prefix(root)
                .map_or(path, |p| p.trim_start_matches('/'))
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace's own gates: the process pass leaves out the docker
    /// tests and keeps the process ones, and the reverse.
    #[test]
    fn each_provider_leaves_out_the_other_ones_tests() {
        let process = scope(&[], ProviderKind::Process).unwrap();
        let joined = process.args.join(" ");
        assert!(joined.starts_with("--workspace --features "), "{joined}");
        assert!(
            joined.contains("test-support-provider-tests/process-provider-tests"),
            "{joined}"
        );
        assert!(!joined.contains("docker-provider-tests"), "{joined}");
        assert!(
            joined.contains("session-core/conformance"),
            "other features stay on: {joined}"
        );
        assert_eq!(
            process.left_out,
            [
                "test-support/provider-tests/tests/docker.rs (docker provider tests, feature \
                 test-support-provider-tests/docker-provider-tests; run with --provider docker)"
            ]
        );

        let package = "test-support-provider-tests";
        let docker = scope(&[package.to_owned()], ProviderKind::Docker).unwrap();
        assert_eq!(
            docker.args.join(" "),
            format!("-p {package} --features {package}/docker-provider-tests")
        );
        assert_eq!(docker.left_out.len(), 1, "{:?}", docker.left_out);
        assert!(
            docker.left_out[0].starts_with("test-support/provider-tests/tests/process.rs"),
            "{:?}",
            docker.left_out
        );

        let elsewhere = scope(&["session-core".to_owned()], ProviderKind::Process).unwrap();
        assert!(elsewhere.left_out.is_empty(), "{:?}", elsewhere.left_out);
    }

    /// Doc tests need a library: a pass over binaries alone has none to run.
    #[test]
    fn only_packages_with_a_library_have_doc_tests() {
        let with_library = |packages: &[&str]| {
            let packages: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
            has_library(&packages).unwrap()
        };
        assert!(with_library(&[]));
        assert!(with_library(&["session-core"]));
        assert!(!with_library(&["session-cli"]));
        assert!(with_library(&["session-cli", "session-core"]));
    }
}

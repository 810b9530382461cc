//! The one build script of the three shipped binaries (soap-bridge,
//! replicator, session-cli: their manifests say `build =
//! "../cli-support/build.rs"`): it gives them `MEMORYCACHED_COMMIT_ID`, the
//! commit they were built from, for `--version`
//! (`soap-bridge 0.1.0 (commit 1a2b3c4d5e6f)`).
//!
//! The commit is `git rev-parse HEAD` cut to 12 hex digits; where there is no
//! git checkout (a source tarball, an image build without `.git`), the
//! `MEMORYCACHED_COMMIT` environment variable; else `unknown`. The script
//! reruns only when HEAD, the branch it points at or the packed refs change
//! (or that variable), not on every source edit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Hex digits of the commit shown by `--version`.
const SHORT: usize = 12;

fn main() {
    println!("cargo:rerun-if-env-changed=MEMORYCACHED_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let from_git = git(&dir, &["rev-parse", "HEAD"]).and_then(|c| short(&c));
    if from_git.is_some() {
        watch_git(&dir);
    }
    let commit = from_git
        .or_else(|| {
            std::env::var("MEMORYCACHED_COMMIT")
                .ok()
                .and_then(|c| short(&c))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MEMORYCACHED_COMMIT_ID={commit}");
}

/// The first 12 characters of a commit id, if it is one (hex, long enough).
fn short(commit: &str) -> Option<String> {
    let commit = commit.trim();
    (commit.len() >= SHORT && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| commit[..SHORT].to_ascii_lowercase())
}

/// Asks cargo to rerun this script when the checked-out commit changes:
/// HEAD (a checkout), the directory of the branch's ref (a commit rewrites
/// it; a directory is watched whole, so a ref that is packed now and loose
/// later is still seen) and `packed-refs`. Only existing paths are named: a
/// missing one would make cargo rerun the script on every build.
fn watch_git(dir: &Path) {
    let mut paths = vec![git_path(dir, "HEAD"), git_path(dir, "packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let ref_file = git_path(dir, &branch);
        paths.push(ref_file.and_then(|f| f.parent().map(Path::to_path_buf)));
    }
    for path in paths.into_iter().flatten() {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Where git keeps `name` (`git rev-parse --git-path`, worktrees included).
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p))
}

/// A git command's output in `dir`, trimmed; `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

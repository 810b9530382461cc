//! Tidy checks, run as a `#[test]` so that every test run enforces them.
//!
//! Each failure names `path:line` and says how to fix it. The checks:
//! - every `.rs` file outside `target/` starts with a `//!` module doc;
//! - no debugging leftovers or placeholders (the `dbg`, `todo` and `ignore`
//!   spellings listed in `FORBIDDEN`);
//! - every member's `Cargo.toml` inherits the workspace version and lints;
//! - dependencies point one way: only the binaries, xtask and `store-url`
//!   (the one library that maps store URLs to backends, shared by every
//!   binary) depend on a backend (normal dependencies; tests may use
//!   anything through dev-dependencies), and session-core depends on no
//!   workspace crate;
//! - no import cycle between the files of a crate's `src/` (a child
//!   importing from its own parent is not one; `tidy/module_graph.rs`
//!   states the rule).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use crate::project_root;

mod module_graph;
mod rust_paths;

/// Crates allowed a normal dependency on a backend: the binaries, xtask, and
/// `store-url`, whose whole job is turning a URL into a backend's store (so a
/// new backend reaches every binary through one crate).
const BACKEND_USERS: &[&str] = &[
    "xtask",
    "soap-bridge",
    "replicator",
    "session-cli",
    "store-url",
];
const BACKENDS: &[&str] = &["backend-memcached", "backend-redis"];

/// Forbidden text and the fix to suggest. Spelled in pieces so that this
/// file does not trip its own check.
fn forbidden() -> [(String, &'static str); 3] {
    [
        (
            format!("{}!(", "dbg"),
            "remove the debugging macro (use tracing, or an assertion in a test)",
        ),
        (
            format!("{}!(", "todo"),
            "implement it, or return a typed error saying what is unsupported",
        ),
        (
            format!("#[{}", "ignore"),
            "make the test pass, or assert the current (wrong) behaviour with a FIXME comment",
        ),
    ]
}

#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add(&mut self, path: &Path, line: usize, problem: &str, fix: &str) {
        let root = project_root();
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        self.0
            .push(format!("{shown}:{line}: {problem}\n    fix: {fix}"));
    }

    fn check(self, what: &str) {
        if !self.0.is_empty() {
            let mut message = format!("tidy: {} problem(s) with {what}:\n", self.0.len());
            for failure in &self.0 {
                let _ = writeln!(message, "{failure}");
            }
            panic!("{message}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn rust_files_start_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&project_root(), &mut files);
    assert!(
        !files.is_empty(),
        "tidy found no .rs files under {}",
        project_root().display()
    );
    let mut failures = Failures::default();
    for path in files {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let first = text.lines().position(|l| !l.trim().is_empty());
        let starts_with_doc =
            first.is_some_and(|i| text.lines().nth(i).is_some_and(|l| l.starts_with("//!")));
        if !starts_with_doc {
            failures.add(
                &path,
                first.map_or(1, |i| i + 1),
                "the file does not start with a `//!` module doc",
                "begin the file with `//! <what this module is for>` (tests and examples too)",
            );
        }
    }
    failures.check("module docs");
}

#[test]
fn no_debugging_leftovers() {
    let mut files = Vec::new();
    rust_files(&project_root(), &mut files);
    let forbidden = forbidden();
    let mut failures = Failures::default();
    for path in files {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            for (needle, fix) in &forbidden {
                if line.contains(needle.as_str()) {
                    failures.add(&path, number + 1, &format!("`{needle}` found"), fix);
                }
            }
        }
    }
    failures.check("debugging leftovers");
}

/// One workspace member: its directory, package name and manifest text.
struct Member {
    manifest: PathBuf,
    name: String,
    text: String,
}

fn members() -> Vec<Member> {
    let root = project_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let Some(start) = manifest.find("members") else {
        return Vec::new();
    };
    let list = &manifest[start..];
    let (Some(open), Some(close)) = (list.find('['), list.find(']')) else {
        return Vec::new();
    };
    list[open + 1..close]
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(|m| m.trim().trim_matches(|c| c == '"' || c == '\''))
        .filter(|m| !m.is_empty())
        .map(|dir| {
            let manifest = root.join(dir).join("Cargo.toml");
            let text = fs::read_to_string(&manifest).unwrap_or_default();
            let name = package_name(&text).unwrap_or_else(|| dir.to_owned());
            Member {
                manifest,
                name,
                text,
            }
        })
        .collect()
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

/// (line number, section, key) of every `key = ...` or `[section.key]` line.
fn keys(manifest: &str) -> Vec<(usize, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (number, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .trim_end_matches(']')
                .trim_matches(|c| c == '[' || c == ']');
            // `[dependencies.foo]` is the key `foo` of `dependencies`.
            match header.rsplit_once('.') {
                Some((table, key)) if is_dependency_table(table) => {
                    out.push((
                        number + 1,
                        table.to_owned(),
                        key.trim_matches('"').to_owned(),
                    ));
                    section = format!("{table}.{key}");
                }
                _ => section = header.to_owned(),
            }
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            out.push((
                number + 1,
                section.clone(),
                key.trim().trim_matches('"').to_owned(),
            ));
        }
    }
    out
}

fn is_dependency_table(table: &str) -> bool {
    table == "dependencies"
        || table == "build-dependencies"
        || table == "dev-dependencies"
        || (table.starts_with("target.") && table.ends_with("dependencies"))
}

/// Normal (or build) dependencies: what the crate's library or binary links.
fn is_normal_dependency_table(table: &str) -> bool {
    is_dependency_table(table) && !table.ends_with("dev-dependencies")
}

/// The dependency a key names: `foo.workspace` and `foo` both name `foo`.
fn dependency_name(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

#[test]
fn manifests_inherit_version_and_lints() {
    let mut failures = Failures::default();
    for member in members() {
        let keys = keys(&member.text);
        let has = |section: &str, key: &str| keys.iter().any(|(_, s, k)| s == section && k == key);
        let value_of = |section: &str, key: &str| {
            keys.iter()
                .find(|(_, s, k)| s == section && k == key)
                .map(|(line, ..)| {
                    member
                        .text
                        .lines()
                        .nth(line - 1)
                        .unwrap_or_default()
                        .split_once('=')
                        .map(|(_, v)| v.trim().to_owned())
                        .unwrap_or_default()
                })
        };
        if value_of("package", "version.workspace").as_deref() != Some("true") {
            failures.add(
                &member.manifest,
                1,
                &format!("{} does not inherit the workspace version", member.name),
                "write `version.workspace = true` under [package]",
            );
        }
        if !has("lints", "workspace") || value_of("lints", "workspace").as_deref() != Some("true") {
            failures.add(
                &member.manifest,
                member.text.lines().count().max(1),
                &format!("{} does not inherit the workspace lints", member.name),
                "add `[lints]` with `workspace = true`",
            );
        }
    }
    failures.check("manifests");
}

/// Whether the workspace member `name` may have a normal dependency on a backend.
fn may_use_backend(name: &str) -> bool {
    BACKEND_USERS.contains(&name)
}

#[test]
fn only_binaries_xtask_and_store_url_may_use_backends() {
    for allowed in [
        "soap-bridge",
        "replicator",
        "session-cli",
        "xtask",
        "store-url",
    ] {
        assert!(may_use_backend(allowed), "{allowed}");
    }
    for refused in [
        "session-core",
        "test-support",
        "memorycached-examples",
        "backend-redis",
    ] {
        assert!(!may_use_backend(refused), "{refused}");
    }
}

#[test]
fn dependencies_point_one_way() {
    let members = members();
    let workspace: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut failures = Failures::default();
    for member in &members {
        for (line, table, key) in keys(&member.text) {
            if !is_normal_dependency_table(&table) {
                continue;
            }
            let dependency = dependency_name(&key);
            if BACKENDS.contains(&dependency) && !may_use_backend(&member.name) {
                failures.add(
                    &member.manifest,
                    line,
                    &format!("{} depends on {dependency}", member.name),
                    "depend on session-core's `Store` trait instead; only the binaries \
                     (soap-bridge, replicator, session-cli), xtask and store-url pick a \
                     backend; tests and examples may use one through [dev-dependencies]",
                );
            }
            if member.name == "session-core"
                && dependency != "session-core"
                && workspace.contains(&dependency)
            {
                failures.add(
                    &member.manifest,
                    line,
                    &format!("session-core depends on the workspace crate {dependency}"),
                    "session-core is the root of the dependency graph: move the code that \
                     needs it out of session-core",
                );
            }
        }
    }
    failures.check("dependency direction");
}

#[test]
fn manifest_parsing_finds_dependencies() {
    let manifest = "[package]\nname = \"demo\"\nversion.workspace = true\n\n\
                    [dependencies]\nbackend-redis.workspace = true\n\
                    [dev-dependencies]\nbackend-memcached = { workspace = true }\n\
                    [target.'cfg(unix)'.dependencies]\nsession-core = \"1\"\n\
                    [dependencies.backend-memcached]\nworkspace = true\n\n[lints]\nworkspace = true\n";
    assert_eq!(package_name(manifest).as_deref(), Some("demo"));
    let normal: Vec<String> = keys(manifest)
        .into_iter()
        .filter(|(_, table, _)| is_normal_dependency_table(table))
        .map(|(_, _, key)| dependency_name(&key).to_owned())
        .collect();
    assert_eq!(
        normal,
        ["backend-redis", "session-core", "backend-memcached"]
    );
    assert!(
        keys(manifest)
            .iter()
            .any(|(_, s, k)| s == "lints" && k == "workspace")
    );
}

/// Each member's crate roots: `src/lib.rs`, `src/main.rs`, `src/bin/*.rs`.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for member in members() {
        let Some(dir) = member.manifest.parent() else {
            continue;
        };
        let src = dir.join("src");
        for root in ["lib.rs", "main.rs"] {
            if src.join(root).is_file() {
                roots.push(src.join(root));
            }
        }
        let mut bins = Vec::new();
        rust_files(&src.join("bin"), &mut bins);
        roots.extend(bins.into_iter().filter(|b| {
            b.parent() == Some(&*src.join("bin")) || b.file_name().is_some_and(|n| n == "main.rs")
        }));
    }
    roots
}

#[test]
fn no_import_cycles_between_modules() {
    let root = project_root();
    let shown = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    let prefix = format!("{}/", root.display());
    let name = |module: &str| module.strip_prefix(&prefix).unwrap_or(module).to_owned();
    let roots = crate_roots();
    assert!(
        roots.len() >= 10,
        "tidy found only {} crate roots: {roots:?}",
        roots.len()
    );
    let mut failures = Failures::default();
    for crate_root in roots {
        for ring in module_graph::crate_cycles(&crate_root) {
            let Some(first) = ring.cycle.first() else {
                continue;
            };
            let mut steps: Vec<String> = ring
                .cycle
                .iter()
                .map(|e| {
                    format!(
                        "{}:{} `{}` -> {}",
                        shown(&e.file),
                        e.line,
                        e.written,
                        name(&e.to)
                    )
                })
                .collect();
            if ring.members.len() > ring.cycle.len() {
                let members: Vec<String> = ring.members.iter().map(|m| name(m)).collect();
                steps.push(format!(
                    "(and other cycles: all of {} import each other round)",
                    members.join(", ")
                ));
            }
            failures.add(
                &first.file,
                first.line,
                &format!(
                    "import cycle in {}:\n      {}",
                    shown(&crate_root),
                    steps.join("\n      ")
                ),
                "move what both sides need into a leaf module that imports neither, or into \
                 the module that owns it, so the imports point one way",
            );
        }
    }
    failures.check("module imports");
}

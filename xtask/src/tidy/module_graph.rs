//! The import graph between the modules of one crate, and its cycles.
//!
//! From a crate root (`src/lib.rs`, `src/main.rs`) the `mod` declarations
//! give the module tree and the file of each module. Every path a module
//! names (`use` trees and paths in code, from `rust_paths.rs`) is resolved
//! to the module that defines the item, following `use` bindings, so a
//! name re-exported by a parent (`pub use error::Error` in `lib.rs`) counts
//! as a dependency on the module that defines it. Each resolved path is an
//! edge from the module that names it to that module.
//!
//! The nodes are the files, and the inline modules inside them (`mod
//! tests { .. }`) as nodes of their own: a test module that borrows another
//! file's test helpers (`use crate::codec::tests::arb_data`) is a
//! dependency of that test module, not of the code beside it.
//!
//! **The rule.** An edge from a module to one of its own ancestors (the
//! modules that enclose it: `super`, `super::super`, the crate root) is not
//! counted: a child module reading what its parent holds for all its
//! children (`use super::{Op, parse_num}`) is the usual Rust layout, and
//! the parent declares the child, so counting it would make every such
//! pair a ring. Every other edge counts: between siblings, from a parent
//! to its child, and across the tree. A cycle is then a set of modules that
//! import each other round without one simply being inside another, such
//! as two sibling modules importing each other (`frame.rs` <-> `meta.rs`),
//! or a module importing a child of a module that imports it back
//! (`codec.rs` -> `storable/decode.rs` -> `codec.rs`). Those are what the
//! check fails on: the fix is a leaf module both can depend on, or moving
//! the shared piece to the side that owns it.
//!
//! Paths that only a glob import (`use super::*`) brings into scope are not
//! resolved; globs are for test modules, whose parent is an ancestor anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::rust_paths::{self, FileInfo};

/// A module's path from the crate root (`["protocol", "frame"]`).
type ModPath = Vec<String>;

/// One crate's modules, by path, and what each file names.
#[derive(Debug, Default)]
pub(super) struct Crate {
    /// Each module (file or inline) and the file it is in, with that
    /// file's own module path.
    modules: BTreeMap<ModPath, (PathBuf, ModPath)>,
    /// Each file's own module path (the module the file is).
    files: BTreeMap<PathBuf, (ModPath, FileInfo)>,
    /// Names each module's `use` declarations bind: (scope, segments).
    bindings: HashMap<ModPath, HashMap<String, (ModPath, Vec<String>)>>,
}

/// An import edge between two modules, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Edge {
    /// The importing module: its file, then `::` and the inline modules
    /// it is in, if any (`src/session.rs::tests`).
    pub(super) from: String,
    /// The imported module, named the same way.
    pub(super) to: String,
    /// The file and line the path is written on.
    pub(super) file: PathBuf,
    pub(super) line: usize,
    /// The path as written, for the message.
    pub(super) written: String,
}

/// Whether the file `path` is a "mod-rs" file, whose children live in its
/// own directory (`lib.rs`, `main.rs`, `mod.rs`) rather than in a directory
/// named after it.
fn is_mod_rs(path: &Path, root: &Path) -> bool {
    path == root || path.file_name().is_some_and(|n| n == "mod.rs")
}

impl Crate {
    /// Reads the crate whose root file is `root`, with `read` giving a
    /// file's text (`None` if absent); files that a `mod` names but that
    /// do not exist are skipped (the compiler reports those).
    pub(super) fn load(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Crate {
        let mut krate = Crate::default();
        let mut pending: Vec<(PathBuf, ModPath)> = vec![(root.to_path_buf(), Vec::new())];
        while let Some((file, module)) = pending.pop() {
            if krate.files.contains_key(&file) {
                continue;
            }
            let Some(text) = read(&file) else {
                continue;
            };
            let info = rust_paths::scan(&text);
            krate
                .modules
                .insert(module.clone(), (file.clone(), module.clone()));
            for inline in &info.inline_mods {
                krate.modules.insert(
                    [module.clone(), inline.clone()].concat(),
                    (file.clone(), module.clone()),
                );
            }
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let children_dir = if is_mod_rs(&file, root) {
                dir.clone()
            } else {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                dir.join(stem)
            };
            for decl in &info.mods {
                let child: ModPath =
                    [module.clone(), decl.scope.clone(), vec![decl.name.clone()]].concat();
                let candidates = match &decl.path {
                    Some(p) => vec![dir.join(decl.scope.iter().collect::<PathBuf>()).join(p)],
                    None => {
                        let base = children_dir.join(decl.scope.iter().collect::<PathBuf>());
                        vec![
                            base.join(format!("{}.rs", decl.name)),
                            base.join(&decl.name).join("mod.rs"),
                        ]
                    }
                };
                if let Some(found) = candidates
                    .iter()
                    .map(|c| normalize(c))
                    .find(|c| read(c).is_some())
                {
                    pending.push((found, child));
                }
            }
            for path in info.paths.iter().filter(|p| p.is_use) {
                if let Some(name) = &path.binds {
                    let scope: ModPath = [module.clone(), path.scope.clone()].concat();
                    krate
                        .bindings
                        .entry(scope.clone())
                        .or_default()
                        .insert(name.clone(), (scope, path.segments.clone()));
                }
            }
            krate.files.insert(file, (module, info));
        }
        krate
    }

    /// The module that defines what `segments`, written in module `scope`,
    /// names; `None` for another crate's item or a name we cannot follow.
    fn resolve(&self, scope: &[String], segments: &[String], depth: usize) -> Option<ModPath> {
        if depth > 16 {
            return None;
        }
        let (first, rest) = segments.split_first()?;
        let mut current: ModPath = match first.as_str() {
            "crate" => Vec::new(),
            "self" => scope.to_vec(),
            "super" => scope.get(..scope.len().checked_sub(1)?)?.to_vec(),
            name => {
                let child: ModPath = [scope, &[name.to_owned()][..]].concat();
                if self.modules.contains_key(&child) {
                    child
                } else {
                    let (at, target) = self.bindings.get(scope)?.get(name)?;
                    self.resolve(at, target, depth + 1)?
                }
            }
        };
        let mut rest = rest;
        while let Some((segment, tail)) = rest.split_first() {
            if segment == "super" {
                current.pop();
            } else if segment == "self" {
                // `a::self` is `a`.
            } else {
                let child: ModPath = [current.clone(), vec![segment.clone()]].concat();
                if self.modules.contains_key(&child) {
                    current = child;
                } else if let Some((at, target)) =
                    self.bindings.get(&current).and_then(|b| b.get(segment))
                {
                    current = self.resolve(at, target, depth + 1)?;
                } else {
                    // An item defined in `current` (or a variant, a method).
                    break;
                }
            }
            rest = tail;
        }
        Some(current)
    }

    /// A module's name in messages: its file, and its inline path.
    fn name(&self, module: &[String]) -> String {
        match self.modules.get(module) {
            Some((file, file_module)) if module.len() > file_module.len() => {
                format!(
                    "{}::{}",
                    file.display(),
                    module[file_module.len()..].join("::")
                )
            }
            Some((file, _)) => file.display().to_string(),
            None => module.join("::"),
        }
    }

    /// Every counted edge (see the module docs' rule), deduplicated by
    /// (from, to), keeping the first place it was written.
    pub(super) fn edges(&self) -> Vec<Edge> {
        let mut seen: BTreeMap<(ModPath, ModPath), Edge> = BTreeMap::new();
        for (file, (module, info)) in &self.files {
            for path in &info.paths {
                let from: ModPath = [module.clone(), path.scope.clone()].concat();
                let Some(to) = self.resolve(&from, &path.segments, 0) else {
                    continue;
                };
                // Itself, or one of its ancestors: not counted.
                if from.starts_with(&to) || !self.modules.contains_key(&to) {
                    continue;
                }
                seen.entry((from.clone(), to.clone()))
                    .or_insert_with(|| Edge {
                        from: self.name(&from),
                        to: self.name(&to),
                        file: file.clone(),
                        line: path.line,
                        written: path.segments.join("::"),
                    });
            }
        }
        seen.into_values().collect()
    }
}

/// `a/b/../c.rs` as `a/c.rs`, so one file has one name.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A set of modules that import each other round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ring {
    /// The shortest cycle through the first of them, edge by edge.
    pub(super) cycle: Vec<Edge>,
    /// Every module of the set (a strongly connected component), sorted;
    /// more than the cycle visits when several cycles share modules.
    pub(super) members: Vec<String>,
}

/// The rings of `edges`: each strongly connected set of two or more modules
/// (Tarjan's algorithm).
pub(super) fn cycles(edges: &[Edge]) -> Vec<Ring> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|e| [&e.from, &e.to]).collect();
    let index: HashMap<&String, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let nodes_by_index: Vec<&String> = nodes.iter().copied().collect();
    let mut out_edges: Vec<Vec<&Edge>> = vec![Vec::new(); nodes.len()];
    for e in edges {
        out_edges[index[&e.from]].push(e);
    }
    let components = strongly_connected(&out_edges, &index);
    let mut found = Vec::new();
    for component in components.into_iter().filter(|c| c.len() > 1) {
        let inside: BTreeSet<usize> = component.iter().copied().collect();
        // Walk from the smallest node inside the component, breadth first,
        // back to itself: the shortest cycle through it.
        let Some(&start) = inside.iter().next() else {
            continue;
        };
        let mut previous: HashMap<usize, &Edge> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing: Option<&Edge> = None;
        'search: while let Some(node) = queue.pop_front() {
            for e in &out_edges[node] {
                let to = index[&e.to];
                if !inside.contains(&to) {
                    continue;
                }
                if to == start {
                    closing = Some(e);
                    break 'search;
                }
                if to != start && !previous.contains_key(&to) {
                    previous.insert(to, e);
                    queue.push_back(to);
                }
            }
        }
        let Some(last) = closing else {
            continue;
        };
        let mut cycle = vec![last.clone()];
        let mut node = index[&last.from];
        while node != start {
            let Some(e) = previous.get(&node) else {
                break;
            };
            cycle.push((*e).clone());
            node = index[&e.from];
        }
        cycle.reverse();
        let members = inside.iter().map(|&i| nodes_by_index[i].clone()).collect();
        found.push(Ring { cycle, members });
    }
    found
}

/// Tarjan's strongly connected components over nodes `0..out.len()`.
fn strongly_connected(out: &[Vec<&Edge>], index: &HashMap<&String, usize>) -> Vec<Vec<usize>> {
    struct State {
        next: usize,
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        components: Vec<Vec<usize>>,
    }
    fn visit(v: usize, out: &[Vec<&Edge>], index: &HashMap<&String, usize>, s: &mut State) {
        s.order[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for e in &out[v] {
            let w = index[&e.to];
            match s.order[w] {
                None => {
                    visit(w, out, index, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(order) if s.on_stack[w] => s.low[v] = s.low[v].min(order),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.order[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let n = out.len();
    let mut s = State {
        next: 0,
        order: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        components: Vec::new(),
    };
    for v in 0..n {
        if s.order[v].is_none() {
            visit(v, out, index, &mut s);
        }
    }
    s.components
}

/// The cycles of the crate rooted at `root` on disk.
pub(super) fn crate_cycles(root: &Path) -> Vec<Ring> {
    let read = |p: &Path| fs::read_to_string(p).ok();
    cycles(&Crate::load(root, &read).edges())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cycles of a crate given as (path, text) pairs, as
    /// "a.rs:3 -> b.rs" strings.
    fn cycles_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect();
        let read = |p: &Path| files.get(p).cloned();
        let krate = Crate::load(Path::new("src/lib.rs"), &read);
        cycles(&krate.edges())
            .into_iter()
            .map(|ring| {
                ring.cycle
                    .into_iter()
                    .map(|e| format!("{}:{} -> {}", e.file.display(), e.line, e.to))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn siblings_importing_each_other_are_a_cycle() {
        let found = cycles_of(&[
            ("src/lib.rs", "mod protocol;\n"),
            (
                "src/protocol/mod.rs",
                "mod frame;\nmod meta;\npub(crate) fn parse_num() {}\n",
            ),
            (
                "src/protocol/frame.rs",
                "use super::parse_num;\nuse super::meta::Status;\n",
            ),
            ("src/protocol/meta.rs", "\nuse super::frame::Frame;\n"),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "src/protocol/frame.rs:2 -> src/protocol/meta.rs".to_owned(),
                "src/protocol/meta.rs:2 -> src/protocol/frame.rs".to_owned(),
            ]]
        );
    }

    #[test]
    fn a_parent_and_its_children_are_no_cycle() {
        let found = cycles_of(&[
            (
                "src/lib.rs",
                "mod protocol;\npub use protocol::Op;\nmod store;\n",
            ),
            (
                "src/protocol/mod.rs",
                "mod meta;\npub struct Op;\nfn f() { meta::encode(); }\n",
            ),
            (
                "src/protocol/meta.rs",
                "use super::Op;\nuse crate::Op as O;\nfn encode() {}\n",
            ),
            (
                "src/store.rs",
                "use crate::protocol::Op;\n#[cfg(test)]\nmod tests { use super::*; }\n",
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_name_re_exported_by_an_ancestor_counts_for_its_own_file() {
        // codec uses crate::Storable (lib.rs re-exports storable::decode's),
        // and storable/decode.rs uses a constant of codec: a ring.
        let found = cycles_of(&[
            (
                "src/lib.rs",
                "mod codec;\nmod storable;\npub use storable::Storable;\n",
            ),
            (
                "src/codec.rs",
                "pub const FLAG: u32 = 1;\nfn f() { let _ = crate::Storable::new(); }\n",
            ),
            (
                "src/storable/mod.rs",
                "mod decode;\npub use decode::Storable;\n",
            ),
            (
                "src/storable/decode.rs",
                "use crate::codec::FLAG;\npub struct Storable;\n",
            ),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "src/codec.rs:2 -> src/storable/decode.rs".to_owned(),
                "src/storable/decode.rs:1 -> src/codec.rs".to_owned(),
            ]]
        );
    }

    #[test]
    fn path_attributes_and_mod_rs_layouts_are_followed() {
        let found = cycles_of(&[
            (
                "src/lib.rs",
                "mod a;\n#[path = \"../tests/common/fake.rs\"]\nmod fake;\n",
            ),
            ("src/a.rs", "mod b;\nfn f() { crate::fake::g(); }\n"),
            ("src/a/b.rs", "use crate::fake;\n"),
            ("tests/common/fake.rs", "fn g() { crate::a::h(); }\n"),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "src/a.rs:2 -> tests/common/fake.rs".to_owned(),
                "tests/common/fake.rs:1 -> src/a.rs".to_owned(),
            ]]
        );
    }

    #[test]
    fn a_test_module_borrowing_test_helpers_is_its_own_node() {
        let found = cycles_of(&[
            ("src/lib.rs", "mod codec;\nmod session;\n"),
            (
                "src/codec.rs",
                "use crate::session::Data;\n#[cfg(test)]\npub(crate) mod tests { pub fn arb() {} }\n",
            ),
            (
                "src/session.rs",
                "pub struct Data;\n#[cfg(test)]\nmod tests {\n    use crate::codec::tests::arb;\n}\n",
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
        // While a test module that the code itself imports back is a ring.
        let found = cycles_of(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            (
                "src/a.rs",
                "mod inner {\n    use crate::b::B;\n}\npub struct A;\n",
            ),
            (
                "src/b.rs",
                "pub struct B;\nfn f() { crate::a::inner::g(); }\n",
            ),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "src/a.rs:2 -> src/b.rs".to_owned(),
                "src/b.rs:2 -> src/a.rs::inner".to_owned(),
            ]]
        );
    }
}

//! What the module-cycle check needs from one Rust source file: its `mod`
//! declarations, its `use` declarations (trees expanded) and the other
//! paths it names (`crate::a::b`, `super::x`, `child::f`), each with the
//! inline module it sits in and its line.
//!
//! A small lexer, not a Rust parser: comments, strings and char literals
//! are skipped so that a path in a doc comment or a message is not counted;
//! the rest is identifiers, `::` and single punctuation characters. That is
//! enough for paths, whose grammar is simple, and keeps xtask free of a
//! parsing dependency (built before every test run).

/// One token: an identifier, `::`, a string literal (kept for
/// `#[path = "..."]`) or any other single character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Str(String),
    Punct(char),
}

/// A `mod name;` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModDecl {
    /// The inline modules it is declared in, outermost first.
    pub(super) scope: Vec<String>,
    pub(super) name: String,
    /// The `#[path = "..."]` attribute's value, if any.
    pub(super) path: Option<String>,
}

/// A path the file names: in a `use` (with the name it binds, `None` for a
/// glob or `as _`) or anywhere else in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PathRef {
    /// The inline modules it is written in, outermost first.
    pub(super) scope: Vec<String>,
    /// The segments as written (`crate`, `super`, `self` included).
    pub(super) segments: Vec<String>,
    /// For a `use`: the name it brings into scope.
    pub(super) binds: Option<String>,
    /// Whether it comes from a `use` declaration.
    pub(super) is_use: bool,
    pub(super) line: usize,
}

/// Everything the check reads from one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct FileInfo {
    pub(super) mods: Vec<ModDecl>,
    /// Inline modules (`mod tests { ... }`), each as its full scope.
    pub(super) inline_mods: Vec<Vec<String>>,
    pub(super) paths: Vec<PathRef>,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Skips a (raw or plain) string literal whose opening quote is at
/// `chars[i]`, with `hashes` `#` of a raw string before it; returns the
/// index after the closing quote and the contents.
fn skip_string(
    chars: &[char],
    mut i: usize,
    raw: bool,
    hashes: usize,
    line: &mut usize,
) -> (usize, String) {
    let mut content = String::new();
    i += 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            *line += 1;
        }
        if !raw && c == '\\' {
            i += 2;
            continue;
        }
        if c == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return (i + 1 + hashes, content);
        }
        content.push(c);
        i += 1;
    }
    (i, content)
}

/// The tokens of `src`, each with its 1-based line.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0usize;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                let start = line;
                let (end, content) = skip_string(&chars, i, false, 0, &mut line);
                out.push((Tok::Str(content), start));
                i = end;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
                if next == Some('\\') {
                    // The quote, the backslash and the escaped character.
                    i += 3;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                    while i < chars.len() && is_ident_char(chars[i]) {
                        i += 1;
                    }
                }
            }
            ':' if next == Some(':') => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // String and char literals with a prefix: b"..", br#".."#,
                // r".." and c".." (but r#ident is a raw identifier), b'x'.
                let hashes = chars[i..].iter().take_while(|&&h| h == '#').count();
                let raw = matches!(word.as_str(), "r" | "br" | "cr");
                if raw && chars.get(i + hashes) == Some(&'"') {
                    let first = line;
                    let (end, content) = skip_string(&chars, i + hashes, true, hashes, &mut line);
                    out.push((Tok::Str(content), first));
                    i = end;
                } else if matches!(word.as_str(), "b" | "c") && chars.get(i) == Some(&'"') {
                    let first = line;
                    let (end, content) = skip_string(&chars, i, false, 0, &mut line);
                    out.push((Tok::Str(content), first));
                    i = end;
                } else if word == "b" && chars.get(i) == Some(&'\'') {
                    i += if chars.get(i + 1) == Some(&'\\') {
                        3
                    } else {
                        2
                    };
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if word == "r"
                    && hashes == 1
                    && chars.get(i + 1).is_some_and(|&c| is_ident_start(c))
                {
                    // A raw identifier: r#type is the identifier `type`.
                    let start = i + 1;
                    i = start;
                    while i < chars.len() && is_ident_char(chars[i]) {
                        i += 1;
                    }
                    out.push((Tok::Ident(chars[start..i].iter().collect()), line));
                } else {
                    out.push((Tok::Ident(word), line));
                }
            }
            c => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
        }
    }
    out
}

/// Expands the use tree starting at `toks[*i]` (after `use`), up to and
/// including its `;`, into (segments, bound name) pairs.
fn use_tree(
    toks: &[(Tok, usize)],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut segments = prefix.to_vec();
    loop {
        match toks.get(*i).map(|(t, _)| t) {
            Some(Tok::Ident(word)) if word == "as" => {
                *i += 1;
                let alias = match toks.get(*i).map(|(t, _)| t) {
                    Some(Tok::Ident(a)) if a != "_" => Some(a.clone()),
                    _ => None,
                };
                *i += 1;
                out.push((segments.clone(), alias));
                return;
            }
            Some(Tok::Ident(word)) => {
                if word == "self" && !segments.is_empty() {
                    // `a::b::{self}` is `a::b`.
                } else {
                    segments.push(word.clone());
                }
                *i += 1;
            }
            Some(Tok::PathSep) => *i += 1,
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push((segments.clone(), None));
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i).map(|(t, _)| t) {
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, &segments, out),
                    }
                }
            }
            // `,`, `}` or `;` end this branch.
            _ => {
                if let Some(binds) = segments.last().cloned() {
                    out.push((segments, Some(binds)));
                }
                return;
            }
        }
    }
}

/// Reads one file's declarations and paths.
pub(super) fn scan(src: &str) -> FileInfo {
    let toks = lex(src);
    let mut info = FileInfo::default();
    let mut depth = 0usize;
    // Inline modules open: (name, the brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut path_attr: Option<String> = None;
    let scope_of =
        |inline: &[(String, usize)]| inline.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        let line = *line;
        let ident = |k: usize| match toks.get(k).map(|(t, _)| t) {
            Some(Tok::Ident(w)) => Some(w.as_str()),
            _ => None,
        };
        match tok {
            Tok::Punct('#') => {
                // #[path = "x.rs"]
                if matches!(toks.get(i + 1).map(|(t, _)| t), Some(Tok::Punct('[')))
                    && ident(i + 2) == Some("path")
                    && matches!(toks.get(i + 3).map(|(t, _)| t), Some(Tok::Punct('=')))
                    && let Some((Tok::Str(p), _)) = toks.get(i + 4)
                {
                    path_attr = Some(p.clone());
                }
                i += 1;
            }
            Tok::Ident(word) if word == "mod" => {
                let Some(name) = ident(i + 1) else {
                    i += 1;
                    continue;
                };
                match toks.get(i + 2).map(|(t, _)| t) {
                    Some(Tok::Punct(';')) => {
                        info.mods.push(ModDecl {
                            scope: scope_of(&inline),
                            name: name.to_owned(),
                            path: path_attr.take(),
                        });
                        i += 3;
                    }
                    Some(Tok::Punct('{')) => {
                        depth += 1;
                        inline.push((name.to_owned(), depth));
                        info.inline_mods.push(scope_of(&inline));
                        path_attr = None;
                        i += 3;
                    }
                    _ => i += 1,
                }
            }
            Tok::Ident(word) if word == "use" => {
                i += 1;
                let mut trees = Vec::new();
                use_tree(&toks, &mut i, &[], &mut trees);
                for (segments, binds) in trees {
                    info.paths.push(PathRef {
                        scope: scope_of(&inline),
                        segments,
                        binds,
                        is_use: true,
                        line,
                    });
                }
            }
            Tok::Ident(first) if matches!(toks.get(i + 1).map(|(t, _)| t), Some(Tok::PathSep)) => {
                let after_sep_or_dollar =
                    i > 0 && matches!(toks[i - 1].0, Tok::PathSep | Tok::Punct('$'));
                let mut segments = vec![first.clone()];
                let mut k = i + 1;
                while matches!(toks.get(k).map(|(t, _)| t), Some(Tok::PathSep)) {
                    match ident(k + 1) {
                        Some(w) => {
                            segments.push(w.to_owned());
                            k += 2;
                        }
                        None => break,
                    }
                }
                if !after_sep_or_dollar {
                    info.paths.push(PathRef {
                        scope: scope_of(&inline),
                        segments,
                        binds: None,
                        is_use: false,
                        line,
                    });
                }
                i = k;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Punct(';') => {
                // An item ended: a pending #[path] belonged to something else.
                path_attr = None;
                i += 1;
            }
            _ => i += 1,
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn comments_strings_and_chars_hide_paths() {
        let src = "//! crate::a::b in a doc\n\
                   /* crate::c /* nested */ crate::d */\n\
                   let s = \"crate::e\"; let r = r#\"crate::f\"#; let b = b\"crate::g\";\n\
                   let c = '\"'; let q = '\\''; fn f<'a>(x: &'a str) {}\n\
                   let x = crate::real::path;\n";
        let info = scan(src);
        let found: Vec<Vec<String>> = info.paths.iter().map(|p| p.segments.clone()).collect();
        assert_eq!(found, vec![strings(&["crate", "real", "path"])]);
        assert_eq!(info.paths[0].line, 5);
    }

    #[test]
    fn use_trees_are_expanded_with_their_bindings() {
        let src = "use super::{Op, frame::{self, Frame as F}, meta::*};\nuse crate::x::_y as _;\n";
        let uses: Vec<(Vec<String>, Option<String>)> = scan(src)
            .paths
            .into_iter()
            .map(|p| (p.segments, p.binds))
            .collect();
        assert_eq!(
            uses,
            vec![
                (strings(&["super", "Op"]), Some("Op".into())),
                (strings(&["super", "frame"]), Some("frame".into())),
                (strings(&["super", "frame", "Frame"]), Some("F".into())),
                (strings(&["super", "meta"]), None),
                (strings(&["crate", "x", "_y"]), None),
            ]
        );
    }

    #[test]
    fn modules_inline_scopes_and_path_attributes() {
        let src = "mod a;\n#[path = \"../x/fake.rs\"]\npub(crate) mod fake;\n\
                   #[cfg(test)]\nmod tests {\n    use super::*;\n    mod deeper { fn f() { super::g(); } }\n    fn h() {}\n}\n\
                   fn after() { crate::z::w(); }\n";
        let info = scan(src);
        assert_eq!(
            info.mods,
            vec![
                ModDecl {
                    scope: vec![],
                    name: "a".into(),
                    path: None
                },
                ModDecl {
                    scope: vec![],
                    name: "fake".into(),
                    path: Some("../x/fake.rs".into())
                },
            ]
        );
        assert_eq!(
            info.inline_mods,
            vec![strings(&["tests"]), strings(&["tests", "deeper"])]
        );
        let scopes: Vec<(Vec<String>, Vec<String>)> = info
            .paths
            .iter()
            .map(|p| (p.scope.clone(), p.segments.clone()))
            .collect();
        assert_eq!(
            scopes,
            vec![
                (strings(&["tests"]), strings(&["super"])),
                (strings(&["tests", "deeper"]), strings(&["super", "g"])),
                (vec![], strings(&["crate", "z", "w"])),
            ]
        );
    }

    #[test]
    fn paths_inside_paths_and_macro_crate_are_not_counted_twice() {
        let info =
            scan("let v = ::std::mem::take(x); let m = $crate::a::b; let t = Vec::<u8>::new();");
        let found: Vec<Vec<String>> = info.paths.iter().map(|p| p.segments.clone()).collect();
        assert_eq!(found, vec![strings(&["Vec"])]);
    }
}

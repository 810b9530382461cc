//! What a mesh knew of its keys, kept across restarts of the replicator.
//!
//! Between masters, "this key was in sync, and now one peer lacks it" is
//! what tells a delete from a peer that was never filled (crate docs, the
//! rule). That memory lives in the copiers; without this file it dies with
//! the process, and a delete made while the replicator is stopped (a
//! logout during an upgrade) is undone at the next start.
//!
//! A clean stop writes, per link: its nodes, each node's run token (the
//! value of [`crate::RUN_MARKER`] on it) and, per key, the CAS unique each
//! node held when the key was last in sync, with when that item expires
//! (so that its absence after a restart is still told from a delete;
//! entries without it, from older files, count as never expiring). A start reads it back and the
//! copiers use an entry only for nodes whose run token is still the same:
//! a CAS unique means something only within one run of one server, and
//! within one run memcached never hands out the same one twice, so an
//! entry may be old without being wrong ("in sync at that CAS, and since
//! then gone" is a delete however long ago it was saved).
//!
//! Anything unusable (no file, another format, other nodes, unreadable
//! JSON) leaves the link without memory, as without a file: present items
//! are copied to where they are missing. The file is written to a
//! temporary name and renamed, so a crash while saving leaves the old one.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::reconcile::{self, Prev};

/// The file's format; another number is ignored.
const FORMAT: u32 = 1;

/// What one copier knew when it stopped.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Each node's run token when the copier last read it.
    pub(crate) tokens: Vec<Option<Vec<u8>>>,
    /// Per key, each node's item when last in sync.
    pub(crate) keys: HashMap<String, Vec<Prev>>,
}

/// One node's item in the file: present at a CAS unique (never expiring,
/// or saved by a version that did not keep expiries), present at a CAS
/// unique until a Unix time in milliseconds, or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Held {
    #[serde(rename = "c")]
    Cas(u64),
    #[serde(rename = "e")]
    CasUntil(u64, u64),
    #[serde(rename = "a")]
    Absent,
}

#[derive(Serialize, Deserialize)]
struct SavedLink {
    nodes: Vec<String>,
    /// Hex of each node's run token.
    tokens: Vec<Option<String>>,
    /// `null` for a node whose item was not known in sync.
    keys: HashMap<String, Vec<Option<Held>>>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    links: HashMap<String, SavedLink>,
}

/// The saved state of link `name` over `nodes`, or `None` (logged) when
/// there is none that fits.
pub(crate) fn load(path: &Path, name: &str, nodes: &[String]) -> Option<Known> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no state file yet: keys are compared afresh");
            return None;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "state file unreadable; ignored");
            return None;
        }
    };
    let file: File = match serde_json::from_slice(&text) {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "state file is not valid; ignored");
            return None;
        }
    };
    if file.format != FORMAT {
        tracing::warn!(path = %path.display(), format = file.format, "state file of another format; ignored");
        return None;
    }
    let mut links = file.links;
    let link = links.remove(name)?;
    if link.nodes != nodes || link.tokens.len() != nodes.len() {
        tracing::warn!(path = %path.display(), link = name, "state file names other nodes; ignored");
        return None;
    }
    let tokens = link
        .tokens
        .iter()
        .map(|t| t.as_deref().and_then(from_hex))
        .collect();
    let keys = link
        .keys
        .into_iter()
        .filter(|(_, held)| held.len() == nodes.len())
        .map(|(key, held)| {
            let prev = held
                .into_iter()
                .map(|h| match h? {
                    Held::Cas(cas) => Some(Some(reconcile::Held {
                        cas,
                        expires_ms: None,
                    })),
                    Held::CasUntil(cas, until) => Some(Some(reconcile::Held {
                        cas,
                        expires_ms: Some(until),
                    })),
                    Held::Absent => Some(None),
                })
                .collect();
            (key, prev)
        })
        .collect::<HashMap<_, _>>();
    tracing::info!(path = %path.display(), link = name, keys = keys.len(), "in-sync state read back");
    Some(Known { tokens, keys })
}

/// Saves, for each link `(name, nodes, what its copiers knew)`, the keys
/// every copier knew in sync. A node two copiers saw in different runs is
/// saved as unknown for the copiers whose token is not the one kept.
pub(crate) fn save(
    path: &Path,
    links: Vec<(String, Vec<String>, Vec<Known>)>,
) -> std::io::Result<()> {
    let mut file = File {
        format: FORMAT,
        links: HashMap::new(),
    };
    for (name, nodes, copiers) in links {
        let tokens: Vec<Option<Vec<u8>>> = (0..nodes.len())
            .map(|n| {
                copiers
                    .iter()
                    .find_map(|c| c.tokens.get(n).cloned().flatten())
            })
            .collect();
        let mut keys = HashMap::new();
        for copier in copiers {
            let valid: Vec<bool> = (0..nodes.len())
                .map(|n| tokens[n].is_some() && copier.tokens.get(n) == Some(&tokens[n]))
                .collect();
            for (key, prev) in copier.keys {
                let held: Vec<Option<Held>> = prev
                    .iter()
                    .zip(&valid)
                    .map(|(p, &ok)| match (ok, p) {
                        (true, Some(Some(h))) => Some(match h.expires_ms {
                            Some(until) => Held::CasUntil(h.cas, until),
                            None => Held::Cas(h.cas),
                        }),
                        (true, Some(None)) => Some(Held::Absent),
                        _ => None,
                    })
                    .collect();
                if held.iter().any(Option::is_some) {
                    keys.insert(key, held);
                }
            }
        }
        let tokens = tokens.iter().map(|t| t.as_deref().map(to_hex)).collect();
        file.links.insert(
            name,
            SavedLink {
                nodes,
                tokens,
                keys,
            },
        );
    }
    let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cas: u64) -> Prev {
        Some(Some(reconcile::Held {
            cas,
            expires_ms: None,
        }))
    }

    fn until(cas: u64, expires_ms: u64) -> Prev {
        Some(Some(reconcile::Held {
            cas,
            expires_ms: Some(expires_ms),
        }))
    }

    fn nodes() -> Vec<String> {
        vec!["a:1".into(), "b:2".into()]
    }

    #[test]
    fn saved_state_reads_back_and_mismatched_tokens_become_unknown() {
        let dir = std::env::temp_dir().join(format!("replicator-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let first = Known {
            tokens: vec![Some(b"ta".to_vec()), Some(b"tb".to_vec())],
            keys: HashMap::from([("k".to_owned(), vec![at(7), until(9, 1_700_000_000_123)])]),
        };
        // A second copier saw node b in another run: its b entries are void.
        let second = Known {
            tokens: vec![Some(b"ta".to_vec()), Some(b"other".to_vec())],
            keys: HashMap::from([
                ("j".to_owned(), vec![at(1), at(2)]),
                ("gone".to_owned(), vec![None, at(3)]),
            ]),
        };
        save(
            &path,
            vec![("a:1<>b:2".into(), nodes(), vec![first, second])],
        )
        .unwrap();
        let known = load(&path, "a:1<>b:2", &nodes()).unwrap();
        assert_eq!(
            known.tokens,
            vec![Some(b"ta".to_vec()), Some(b"tb".to_vec())]
        );
        assert_eq!(known.keys["k"], vec![at(7), until(9, 1_700_000_000_123)]);
        assert_eq!(known.keys["j"], vec![at(1), None]);
        // Nothing valid is left of "gone": not saved at all.
        assert!(!known.keys.contains_key("gone"));
        // Another link name, other nodes, garbage: no state.
        assert!(load(&path, "x", &nodes()).is_none());
        assert!(load(&path, "a:1<>b:2", &["a:1".into(), "c:3".into()]).is_none());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path, "a:1<>b:2", &nodes()).is_none());
        assert!(load(&dir.join("missing.json"), "a:1<>b:2", &nodes()).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}

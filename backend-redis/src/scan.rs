//! `scan` on `SCAN MATCH`: the pattern, and a cursor that keeps the page
//! limit even though `SCAN`'s `COUNT` is only a hint.
//!
//! One `SCAN` call may return more keys than the page limit. The page then
//! holds the smallest `limit` of them (sorted) and the cursor becomes
//! `"<scan cursor> <last key>"`: the next page repeats the same `SCAN` call
//! and keeps only keys after the last one delivered. A key live for the
//! whole scan is in the repeated batch again, so none is lost; keys are
//! valid store keys, which hold no space, so the separator is unambiguous.
//! On a cluster every token is prefixed with the node's index in the
//! sorted list of masters: `"<node>:<scan cursor>[ <last key>]"`.

use session_core::{Error, Result, ScanCursor};

/// A parsed resume point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Position {
    /// The node's index (always 0 on a standalone server).
    pub(crate) node: usize,
    /// Redis's `SCAN` cursor to call with.
    pub(crate) cursor: u64,
    /// Keys up to this one (inclusive) of that call were delivered already.
    pub(crate) after: Option<String>,
}

impl Position {
    /// Parses a cursor this module made; anything else is invalid input.
    pub(crate) fn parse(cursor: Option<&ScanCursor>, cluster: bool) -> Result<Position> {
        let Some(cursor) = cursor else {
            return Ok(Position::default());
        };
        let bad = || Error::InvalidKey {
            key: cursor.as_str().chars().take(80).collect(),
            reason: "not a scan cursor of this store",
        };
        let text = cursor.as_str();
        let (node, rest) = if cluster {
            let (n, rest) = text.split_once(':').ok_or_else(bad)?;
            (n.parse().map_err(|_| bad())?, rest)
        } else {
            (0, text)
        };
        let (scan, after) = match rest.split_once(' ') {
            Some((c, k)) if !k.is_empty() => (c, Some(k.to_owned())),
            Some(_) => return Err(bad()),
            None => (rest, None),
        };
        Ok(Position {
            node,
            cursor: scan.parse().map_err(|_| bad())?,
            after,
        })
    }

    /// The cursor text for this position.
    pub(crate) fn to_cursor(&self, cluster: bool) -> ScanCursor {
        let mut s = String::new();
        if cluster {
            s.push_str(&format!("{}:", self.node));
        }
        s.push_str(&self.cursor.to_string());
        if let Some(after) = &self.after {
            s.push(' ');
            s.push_str(after);
        }
        ScanCursor::new(s)
    }
}

/// The `MATCH` pattern for keys starting with `prefix`: glob characters
/// escaped, then `*`.
pub(crate) fn pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

/// Cuts one `SCAN` batch (keys without the store's prefix) down to a page.
/// Returns the page's keys and, when the batch was cut, the last key kept.
pub(crate) fn cut(
    mut keys: Vec<String>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<String>, Option<String>) {
    if let Some(after) = after {
        keys.retain(|k| k.as_str() > after);
    }
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > limit {
        keys.truncate(limit);
        let last = keys.last().cloned();
        (keys, last)
    } else {
        (keys, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_typed() {
        for cluster in [false, true] {
            let p = Position {
                node: usize::from(cluster) * 2,
                cursor: 1234,
                after: Some("k:9".into()),
            };
            assert_eq!(
                Position::parse(Some(&p.to_cursor(cluster)), cluster).unwrap(),
                p
            );
        }
        assert_eq!(Position::parse(None, false).unwrap(), Position::default());
        for bad in ["", "x", "1 ", "-1", "1:2"] {
            let e = Position::parse(Some(&ScanCursor::new(bad)), false);
            assert!(e.is_err(), "{bad:?}");
        }
        assert!(Position::parse(Some(&ScanCursor::new("12")), true).is_err());
    }

    #[test]
    fn patterns_escape_globs() {
        assert_eq!(pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(pattern(""), "*");
    }

    #[test]
    fn batches_are_cut_to_the_limit() {
        let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (page, last) = cut(keys(&["c", "a", "b", "d"]), None, 2);
        assert_eq!((page, last.as_deref()), (keys(&["a", "b"]), Some("b")));
        let (page, last) = cut(keys(&["c", "a", "b", "d"]), Some("b"), 2);
        assert_eq!((page, last), (keys(&["c", "d"]), None));
    }
}

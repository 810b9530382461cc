//! The writes a copier sends for its decisions: [`Plan`] (one key's
//! actions) and the [`RawWrite`] each action stands for. A leaf under the
//! copier (`copier.rs`), which sends them, a batch's per node in one round
//! trip.

use backend_memcached::raw::{RawItem, RawWrite};

use crate::reconcile::{Action, Expect};

/// What one key needs written (`Copier::decide`).
pub(crate) struct Plan {
    /// At most one per node.
    pub(crate) actions: Vec<Action>,
    /// A copy was left out: the node refused it as too large before.
    pub(crate) skipped_too_large: bool,
}

/// The write `action` stands for, for key number `k` of a batch read as
/// `per_node` (`None`: a copy whose source is gone, nothing to write).
pub(crate) fn write_of<'a>(
    key: &'a str,
    per_node: &'a [Vec<Option<RawItem>>],
    k: usize,
    action: &Action,
) -> Option<RawWrite<'a>> {
    let source = |from: usize| per_node[from][k].as_ref();
    write_with(key, source, action)
}

/// [`write_of`] for one key read as `items` (one per node).
pub(crate) fn write_of_one<'a>(
    key: &'a str,
    items: &'a [Option<RawItem>],
    action: &Action,
) -> Option<RawWrite<'a>> {
    write_with(key, |from| items[from].as_ref(), action)
}

fn write_with<'a>(
    key: &'a str,
    source: impl Fn(usize) -> Option<&'a RawItem>,
    action: &Action,
) -> Option<RawWrite<'a>> {
    Some(match *action {
        Action::Copy {
            from,
            flags,
            expect,
            ..
        } => {
            let src = source(from)?;
            let (value, ttl) = (&src.value[..], src.ttl);
            match expect {
                Expect::Any => RawWrite::Set {
                    key,
                    value,
                    flags,
                    ttl,
                },
                Expect::Absent => RawWrite::Add {
                    key,
                    value,
                    flags,
                    ttl,
                },
                Expect::Cas(cas) => RawWrite::Cas {
                    key,
                    value,
                    flags,
                    ttl,
                    cas,
                },
            }
        }
        Action::Delete { expect, .. } => match expect {
            Expect::Cas(cas) => RawWrite::DeleteIf(key, cas),
            Expect::Any | Expect::Absent => RawWrite::Delete(key),
        },
        Action::Touch { ttl, .. } => RawWrite::Touch(key, ttl),
    })
}

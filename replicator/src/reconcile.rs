//! The decisions, as pure functions of what each server holds for one key
//! (and, between masters, what they held when last in sync). The copier
//! (`copier.rs`) reads the items, asks here what to write, and writes.

use backend_memcached::raw::RawItem;
use session_core::Ttl;

/// What a node held for a key when the key was last in sync.
/// `None` = unknown (never seen in sync, or the server restarted since).
pub(crate) type Prev = Option<Option<u64>>;

/// The condition a write is sent under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Whatever is there (a slave: only the replicator writes it).
    Any,
    /// Only if the key is absent (meta `ms ... ME`).
    Absent,
    /// Only while the item's CAS unique is this.
    Cas(u64),
}

/// One write to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write `winner`'s value to `node`, with these flags and TTL.
    Copy {
        node: usize,
        from: usize,
        flags: u32,
        expect: Expect,
    },
    /// Delete the key on `node`.
    Delete { node: usize, expect: Expect },
    /// Set the remaining TTL on `node` (the CAS stays).
    Touch { node: usize, ttl: Ttl },
}

impl Action {
    /// The node written.
    pub(crate) fn node(&self) -> usize {
        match *self {
            Action::Copy { node, .. }
            | Action::Delete { node, .. }
            | Action::Touch { node, .. } => node,
        }
    }
}

/// Value and flags equal, the replication marker bit `marker` aside.
pub(crate) fn same_content(a: &RawItem, b: &RawItem, marker: u32) -> bool {
    a.value == b.value && (a.flags & !marker) == (b.flags & !marker)
}

fn same(a: &Option<RawItem>, b: &Option<RawItem>, marker: u32) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_content(a, b, marker),
        _ => false,
    }
}

/// Remaining TTLs within `slack` seconds of each other (never = never).
pub(crate) fn ttl_close(a: Ttl, b: Ttl, slack: u32) -> bool {
    match (a.is_never(), b.is_never()) {
        (true, true) => true,
        (false, false) => a.as_secs().abs_diff(b.as_secs()) <= slack,
        _ => false,
    }
}

/// master->slave: node 0 is the master, node 1 the slave, which must end
/// equal to it (deletes included), with the master's exact flags.
pub(crate) fn master_slave(
    master: &Option<RawItem>,
    slave: &Option<RawItem>,
    slack: u32,
) -> Option<Action> {
    match (master, slave) {
        (None, None) => None,
        (None, Some(_)) => Some(Action::Delete {
            node: 1,
            expect: Expect::Any,
        }),
        (Some(m), Some(s)) if m.value == s.value && m.flags == s.flags => {
            (!ttl_close(m.ttl, s.ttl, slack)).then_some(Action::Touch {
                node: 1,
                ttl: m.ttl,
            })
        }
        (Some(m), _) => Some(Action::Copy {
            node: 1,
            from: 0,
            flags: m.flags,
            expect: Expect::Any,
        }),
    }
}

/// The plan for one key between masters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeshPlan {
    /// The writes, at most one per node.
    pub(crate) actions: Vec<Action>,
    /// True when two or more nodes changed the key since it was last in
    /// sync and disagree (settled by the rule).
    pub(crate) conflict: bool,
}

/// master↔master: see the crate docs for the rule. `items[i]` is what node
/// `i` holds now, `prev[i]` what it held when the key was last in sync;
/// `marker` is the flags bit copies carry (`Config::marker_flag`).
pub(crate) fn mesh(items: &[Option<RawItem>], prev: &[Prev], slack: u32, marker: u32) -> MeshPlan {
    let n = items.len();
    if items.iter().all(|i| same(i, &items[0], marker)) {
        return MeshPlan {
            actions: ttl_touches(items, slack),
            conflict: false,
        };
    }
    let known = |i: usize| prev.get(i).copied().flatten();
    // Changed since the last in-sync state: a different CAS, or appeared /
    // vanished. A node with no known state counts as changed only if it
    // holds the key (an absence we know nothing about is not a delete).
    let changed: Vec<usize> = (0..n)
        .filter(|&i| match (known(i), &items[i]) {
            (Some(p), item) => p != item.as_ref().map(|it| it.cas),
            (None, item) => item.is_some(),
        })
        .collect();
    let candidates: Vec<usize> = if changed.is_empty() {
        (0..n).collect()
    } else {
        changed
    };
    let deleted = candidates
        .iter()
        .any(|&i| items[i].is_none() && known(i).is_some());
    let distinct_changes = {
        let mut firsts: Vec<&Option<RawItem>> = Vec::new();
        for &i in &candidates {
            if !firsts.iter().any(|f| same(f, &items[i], marker)) {
                firsts.push(&items[i]);
            }
        }
        firsts.len()
    };
    let conflict = distinct_changes > 1;
    let mut actions = Vec::new();
    if deleted {
        // A delete (known in sync, now gone) wins over a concurrent write:
        // a logout must stick.
        for (node, item) in items.iter().enumerate() {
            if let Some(it) = item {
                actions.push(Action::Delete {
                    node,
                    expect: Expect::Cas(it.cas),
                });
            }
        }
        return MeshPlan { actions, conflict };
    }
    // A client's write (no marker) beats a copy; then the first peer in
    // configuration order.
    let present = |i: &&usize| items[**i].is_some();
    let unmarked = |i: &&usize| items[**i].as_ref().is_some_and(|it| it.flags & marker == 0);
    let winner = candidates
        .iter()
        .find(unmarked)
        .or_else(|| candidates.iter().find(present))
        .copied()
        .or_else(|| (0..n).find(|&i| items[i].is_some()));
    let Some(w) = winner else {
        return MeshPlan { actions, conflict };
    };
    let Some(win) = &items[w] else {
        return MeshPlan { actions, conflict };
    };
    for (node, item) in items.iter().enumerate() {
        if node == w {
            continue;
        }
        match item {
            Some(it) if same_content(it, win, marker) => {
                if !ttl_close(it.ttl, win.ttl, slack) {
                    actions.push(Action::Touch { node, ttl: win.ttl });
                }
            }
            Some(it) => actions.push(Action::Copy {
                node,
                from: w,
                flags: win.flags | marker,
                expect: Expect::Cas(it.cas),
            }),
            None => actions.push(Action::Copy {
                node,
                from: w,
                flags: win.flags | marker,
                expect: Expect::Absent,
            }),
        }
    }
    MeshPlan { actions, conflict }
}

/// Equal items whose TTLs drifted apart (a touch on one side): the longest
/// remaining TTL wins, so the result is the same whichever side touched.
fn ttl_touches(items: &[Option<RawItem>], slack: u32) -> Vec<Action> {
    let longest = items.iter().flatten().map(|it| it.ttl).max_by_key(|t| {
        if t.is_never() {
            u64::MAX
        } else {
            u64::from(t.as_secs())
        }
    });
    let Some(longest) = longest else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(node, it)| {
            let it = it.as_ref()?;
            (!ttl_close(it.ttl, longest, slack)).then_some(Action::Touch { node, ttl: longest })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::codec::FLAGS_REPLICATED;

    fn mesh(items: &[Option<RawItem>], prev: &[Prev], slack: u32) -> MeshPlan {
        super::mesh(items, prev, slack, FLAGS_REPLICATED)
    }

    fn item(v: &str, flags: u32, cas: u64) -> Option<RawItem> {
        Some(RawItem {
            value: v.as_bytes().to_vec(),
            flags,
            ttl: Ttl::NEVER,
            cas,
        })
    }

    #[test]
    fn master_slave_mirrors() {
        assert_eq!(master_slave(&None, &None, 2), None);
        assert!(matches!(
            master_slave(&None, &item("a", 0, 1), 2),
            Some(Action::Delete { node: 1, .. })
        ));
        assert!(matches!(
            master_slave(&item("a", 7, 1), &None, 2),
            Some(Action::Copy { flags: 7, .. })
        ));
        assert!(matches!(
            master_slave(&item("a", 7, 1), &item("a", 0, 1), 2),
            Some(Action::Copy { flags: 7, .. })
        ));
        assert_eq!(master_slave(&item("a", 7, 1), &item("a", 7, 9), 2), None);
        let mut m = item("a", 7, 1);
        if let Some(m) = &mut m {
            m.ttl = Ttl::seconds(100);
        }
        assert!(matches!(
            master_slave(&m, &item("a", 7, 9), 2),
            Some(Action::Touch { .. })
        ));
    }

    #[test]
    fn mesh_new_key_is_copied_and_equal_is_left() {
        let plan = mesh(&[item("a", 1, 5), None], &[None, None], 2);
        assert_eq!(
            plan.actions,
            vec![Action::Copy {
                node: 1,
                from: 0,
                flags: 1 | FLAGS_REPLICATED,
                expect: Expect::Absent
            }]
        );
        assert!(
            mesh(
                &[item("a", 1, 5), item("a", 1 | FLAGS_REPLICATED, 9)],
                &[None, None],
                2
            )
            .actions
            .is_empty()
        );
    }

    #[test]
    fn mesh_one_side_changed_wins_even_if_second() {
        // In sync at cas 5 / 9; node 1 changed (cas 10), node 0 did not.
        let prev = [Some(Some(5)), Some(Some(9))];
        let plan = mesh(&[item("old", 0, 5), item("new", 0, 10)], &prev, 2);
        assert_eq!(
            plan.actions,
            vec![Action::Copy {
                node: 0,
                from: 1,
                flags: FLAGS_REPLICATED,
                expect: Expect::Cas(5)
            }]
        );
        assert!(!plan.conflict);
    }

    #[test]
    fn mesh_concurrent_writes_first_peer_wins_on_both() {
        let prev = [Some(Some(5)), Some(Some(9))];
        let plan = mesh(&[item("x", 0, 6), item("y", 0, 10)], &prev, 2);
        assert!(plan.conflict);
        assert_eq!(
            plan.actions,
            vec![Action::Copy {
                node: 1,
                from: 0,
                flags: FLAGS_REPLICATED,
                expect: Expect::Cas(10)
            }]
        );
    }

    #[test]
    fn mesh_delete_of_synced_key_propagates_and_unknown_absence_does_not() {
        let prev = [Some(Some(5)), Some(Some(9))];
        let plan = mesh(&[None, item("v", 0, 9)], &prev, 2);
        assert_eq!(
            plan.actions,
            vec![Action::Delete {
                node: 1,
                expect: Expect::Cas(9)
            }]
        );
        // Unknown state (restart): the present copy is restored.
        let plan = mesh(&[None, item("v", 0, 9)], &[None, None], 2);
        assert!(matches!(plan.actions[..], [Action::Copy { node: 0, .. }]));
        // Delete wins over a concurrent write.
        let plan = mesh(&[None, item("w", 0, 10)], &prev, 2);
        assert!(matches!(plan.actions[..], [Action::Delete { node: 1, .. }]));
    }

    #[test]
    fn another_marker_bit_is_the_one_written_and_ignored() {
        const BIT: u32 = 0x0100_0000;
        let plan = super::mesh(&[item("a", 1, 5), None], &[None, None], 2, BIT);
        assert!(matches!(plan.actions[..], [Action::Copy { flags, .. }] if flags == 1 | BIT));
        assert!(
            super::mesh(
                &[item("a", 1, 5), item("a", 1 | BIT, 9)],
                &[None, None],
                2,
                BIT
            )
            .actions
            .is_empty()
        );
    }

    #[test]
    fn mesh_client_write_beats_a_copy_without_state() {
        let plan = mesh(
            &[item("copy", FLAGS_REPLICATED, 3), item("client", 0, 4)],
            &[None, None],
            2,
        );
        assert!(matches!(
            plan.actions[..],
            [Action::Copy {
                node: 0,
                from: 1,
                ..
            }]
        ));
    }
}

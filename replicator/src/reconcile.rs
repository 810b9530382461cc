//! The decisions, as pure functions of what each server holds for one key
//! (and, between masters, what they held when last in sync). The copier
//! (`copier.rs`) reads the items, asks here what to write, and writes.
//!
//! **Expiry is not a delete.** Between masters, each node's in-sync item
//! is remembered with its CAS *and* when it expires (the remaining TTL
//! added to the time it was seen, [`Held`]). A node that lacks the key
//! once that time is (nearly, [`EXPIRY_SLACK_MS`]) reached lost it to its
//! TTL: it changed nothing, so a newer write on another node (a different
//! CAS) is copied to it, never deleted. Memcached counts TTLs in whole
//! seconds of its own clock, so a copy may expire up to a second before
//! its original: a login landing on the original's side in that second
//! used to be deleted as if the expired copy had been a logout (the
//! soak's finding, with session-core's 2 s emptied index records). With
//! no newer write anywhere, what is left of the item elsewhere is at its
//! end too and is deleted at its CAS (a delete made in its last seconds
//! sticks), unless a touch has since lengthened it: then it is copied
//! back. An absence well before the remembered expiry is a delete, and
//! still wins over a concurrent write (a logout sticks).

use backend_memcached::raw::RawItem;
use session_core::Ttl;

/// What a node held for a key when the key was last in sync.
/// `None` = unknown (never seen in sync, or the server restarted since);
/// `Some(None)` = absent.
pub(crate) type Prev = Option<Option<Held>>;

/// An item a node held when the key was last in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// Its CAS unique.
    pub(crate) cas: u64,
    /// When it expires at the latest, Unix milliseconds (its remaining TTL
    /// added to the time it was seen); `None` = never (or not known: a
    /// state file saved without it).
    pub(crate) expires_ms: Option<u64>,
}

/// How long before its remembered expiry an item's absence is already
/// taken for its expiry: memcached counts TTLs in whole seconds of its
/// own clock (an item may go up to a second before `seen + TTL`), a copy's
/// TTL is the source's remaining one read a round trip earlier, and a
/// loaded server's clock ticks late.
pub(crate) const EXPIRY_SLACK_MS: u64 = 2_000;

impl Held {
    /// An item at `cas` whose remaining TTL was `ttl` at `now_ms`.
    pub(crate) fn new(cas: u64, ttl: Ttl, now_ms: u64) -> Held {
        Held {
            cas,
            expires_ms: expiry_ms(ttl, now_ms),
        }
    }

    /// Whether, at `now_ms`, this item is (or may be) past its expiry.
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms
            .is_some_and(|e| now_ms.saturating_add(EXPIRY_SLACK_MS) >= e)
    }
}

/// When an item with remaining TTL `ttl` at `now_ms` expires; `None` =
/// never.
pub(crate) fn expiry_ms(ttl: Ttl, now_ms: u64) -> Option<u64> {
    (!ttl.is_never()).then(|| now_ms.saturating_add(u64::from(ttl.as_secs()) * 1000))
}

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
/// `marker` is the flags bit copies carry (`Config::marker_flag`); `now_ms`
/// the Unix time in milliseconds (to tell an expiry from a delete).
pub(crate) fn mesh(
    items: &[Option<RawItem>],
    prev: &[Prev],
    slack: u32,
    marker: u32,
    now_ms: u64,
) -> MeshPlan {
    let n = items.len();
    if items.iter().all(|i| same(i, &items[0], marker)) {
        return MeshPlan {
            actions: ttl_touches(items, slack),
            conflict: false,
        };
    }
    let known = |i: usize| prev.get(i).copied().flatten();
    // Gone where the item held in sync has outlived its TTL: an expiry,
    // not a delete. It decides nothing: a newer write elsewhere must win.
    let expired =
        |i: usize| items[i].is_none() && known(i).flatten().is_some_and(|h| h.expired(now_ms));
    // Changed since the last in-sync state: a different CAS, or appeared /
    // vanished (expiries aside). A node with no known state counts as
    // changed only if it holds the key (an absence we know nothing about
    // is not a delete).
    let changed: Vec<usize> = (0..n)
        .filter(|&i| {
            !expired(i)
                && match (known(i), &items[i]) {
                    (Some(p), item) => p.map(|h| h.cas) != item.as_ref().map(|it| it.cas),
                    (None, item) => item.is_some(),
                }
        })
        .collect();
    let candidates: Vec<usize> = if !changed.is_empty() {
        changed
    } else if (0..n).any(expired) {
        // Only expiries: what is left elsewhere is that same item, at its
        // end too, unless a touch has lengthened it since (then it lives
        // on and is copied back).
        let live: Vec<usize> = (0..n)
            .filter(|&i| {
                items[i].as_ref().is_some_and(|it| {
                    match known(i).flatten().and_then(|h| h.expires_ms) {
                        Some(e) => expiry_ms(it.ttl, now_ms)
                            .is_none_or(|now_e| now_e > e.saturating_add(EXPIRY_SLACK_MS)),
                        None => true,
                    }
                })
            })
            .collect();
        if live.is_empty() {
            // Expired there, expiring here: gone everywhere now, so a
            // delete made in its last seconds sticks too.
            let actions = items
                .iter()
                .enumerate()
                .filter_map(|(node, item)| {
                    item.as_ref().map(|it| Action::Delete {
                        node,
                        expect: Expect::Cas(it.cas),
                    })
                })
                .collect();
            return MeshPlan {
                actions,
                conflict: false,
            };
        }
        live
    } else {
        (0..n).collect()
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

    /// "Now" in the tests, Unix milliseconds.
    const NOW: u64 = 1_000_000_000_000;

    fn mesh(items: &[Option<RawItem>], prev: &[Prev], slack: u32) -> MeshPlan {
        super::mesh(items, prev, slack, FLAGS_REPLICATED, NOW)
    }

    /// In sync at `cas`, never expiring.
    fn at(cas: u64) -> Prev {
        Some(Some(Held {
            cas,
            expires_ms: None,
        }))
    }

    /// In sync at `cas`, expiring at `expires_ms`.
    fn until(cas: u64, expires_ms: u64) -> Prev {
        Some(Some(Held {
            cas,
            expires_ms: Some(expires_ms),
        }))
    }

    fn with_ttl(mut item: Option<RawItem>, secs: u32) -> Option<RawItem> {
        if let Some(it) = &mut item {
            it.ttl = Ttl::seconds(secs);
        }
        item
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
        let prev = [at(5), at(9)];
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
        let prev = [at(5), at(9)];
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
        let prev = [at(5), at(9)];
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
        let plan = super::mesh(&[item("a", 1, 5), None], &[None, None], 2, BIT, NOW);
        assert!(matches!(plan.actions[..], [Action::Copy { flags, .. }] if flags == 1 | BIT));
        assert!(
            super::mesh(
                &[item("a", 1, 5), item("a", 1 | BIT, 9)],
                &[None, None],
                2,
                BIT,
                NOW
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

    #[test]
    fn an_expiry_never_deletes_a_newer_write_elsewhere() {
        // In sync with a 2 s TTL; node 1's copy expired (its time is up),
        // then a client rewrote node 0 with a long TTL: copied, not deleted.
        let prev = [until(5, NOW - 100), until(9, NOW - 100)];
        let plan = mesh(&[with_ttl(item("new", 0, 6), 3600), None], &prev, 2);
        assert_eq!(
            plan.actions,
            vec![Action::Copy {
                node: 1,
                from: 0,
                flags: FLAGS_REPLICATED,
                expect: Expect::Absent
            }]
        );
        // The same within the slack before the remembered expiry.
        let prev = [until(5, NOW + 1_500), until(9, NOW + 1_500)];
        let plan = mesh(&[with_ttl(item("new", 0, 6), 3600), None], &prev, 2);
        assert!(matches!(plan.actions[..], [Action::Copy { node: 1, .. }]));
        // Expired on node 0, rewritten on node 1 (another value): copied.
        let plan = mesh(&[None, with_ttl(item("b", 0, 10), 3600)], &prev, 2);
        assert!(matches!(
            plan.actions[..],
            [Action::Copy {
                node: 0,
                from: 1,
                expect: Expect::Absent,
                ..
            }]
        ));
    }

    #[test]
    fn a_delete_well_before_the_expiry_still_wins() {
        let prev = [until(5, NOW + 60_000), until(9, NOW + 60_000)];
        let plan = mesh(&[with_ttl(item("new", 0, 6), 3600), None], &prev, 2);
        assert_eq!(
            plan.actions,
            vec![Action::Delete {
                node: 0,
                expect: Expect::Cas(6)
            }]
        );
    }

    #[test]
    fn an_expired_copy_takes_the_unchanged_rest_with_it_unless_touched_longer() {
        let prev = [until(5, NOW + 1_000), until(9, NOW + 1_000)];
        // Node 0 still holds the in-sync item, one second left: it goes too.
        let plan = mesh(&[with_ttl(item("v", 0, 5), 1), None], &prev, 2);
        assert_eq!(
            plan.actions,
            vec![Action::Delete {
                node: 0,
                expect: Expect::Cas(5)
            }]
        );
        // Node 0's item was touched to an hour: it lives on, copied back.
        let plan = mesh(&[with_ttl(item("v", 0, 5), 3600), None], &prev, 2);
        assert!(matches!(
            plan.actions[..],
            [Action::Copy {
                node: 1,
                from: 0,
                expect: Expect::Absent,
                ..
            }]
        ));
    }
}

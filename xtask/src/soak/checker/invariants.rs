//! One function per invariant of `docs/soak.md`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::Verdict;
use super::sessions::{Facts, Write};
use super::timeline::Timeline;
use crate::soak::history::{Fault, Op, Outcome, Sample};

/// The fields whose every write the soak can tell apart (unique values).
fn tracked(field: &str) -> bool {
    field == "uid" || (field.starts_with('f') && field[1..].parse::<u8>().is_ok())
}

/// How one read fares against the writes of one field.
enum Judged {
    /// Nothing to require yet (no acknowledged write visible there).
    Nothing,
    /// A restart may explain anything: not judged.
    Skipped,
    /// The acknowledged write was lost with a restarted memcached.
    Excused,
    /// The read shows the write or a later one.
    Held,
    /// It does not: the write that should show.
    Broken(u64, Option<Value>),
}

fn judge_field(read: &Op, field: &str, writes: &[Write], facts: &Facts, t: &Timeline) -> Judged {
    let visible: Vec<&Write> = writes
        .iter()
        .filter(|w| w.acked && t.visible_on(facts.home, read.node, w.end) <= read.start_ms)
        .collect();
    let Some(latest) = visible
        .iter()
        .max_by(|a, b| a.start.total_cmp(&b.start))
        .copied()
    else {
        return Judged::Nothing;
    };
    if read.client == "sweep" {
        if t.lost_by_restart(facts.home, latest.start, latest.end)
            .is_some()
        {
            return Judged::Excused;
        }
    } else if t.restart_between(latest.start, read.end_ms) {
        return Judged::Skipped;
    }
    let seen = read.read.as_ref().and_then(|r| r.get(field)).cloned();
    let allowed = writes
        .iter()
        .filter(|w| w.op == latest.op || (w.end >= latest.start && w.start <= read.end_ms))
        .any(|w| Some(&w.value) == seen.as_ref());
    if allowed {
        Judged::Held
    } else {
        Judged::Broken(latest.op, seen)
    }
}

/// Reads that may judge a session's writes: answered, before any logout.
fn judged_reads<'a>(
    ops: &'a [Op],
    sessions: &'a HashMap<String, Facts>,
) -> impl Iterator<Item = (&'a Op, &'a Facts)> {
    ops.iter()
        .filter(|o| o.op == "read" && o.outcome != Outcome::Error)
        .filter_map(|o| Some((o, sessions.get(o.session.as_ref()?)?)))
        .filter(|(o, f)| f.first_logout().is_none_or(|l| l > o.end_ms))
}

/// Acknowledged writes are not lost, and reach the other node in time.
pub(super) fn writes(ops: &[Op], sessions: &HashMap<String, Facts>, t: &Timeline) -> Verdict {
    let mut v = Verdict::new(
        "acknowledged writes",
        "A read on a session's own node after a write's answer, or on the other node after the promised copy delay (after the heal when a fault intervened), shows that write's value or a later one, until a logout; losses to a memcached restarted empty before the copy are counted apart.",
    );
    let mut excused_writes = HashSet::new();
    for (read, facts) in judged_reads(ops, sessions) {
        for (field, writes) in &facts.writes {
            if !tracked(field) {
                continue;
            }
            match judge_field(read, field, writes, facts, t) {
                Judged::Nothing | Judged::Skipped => {}
                Judged::Excused => {
                    v.checked += 1;
                    excused_writes.insert((read.session.clone(), field.clone()));
                }
                Judged::Held => v.checked += 1,
                Judged::Broken(w, seen) => {
                    v.checked += 1;
                    v.fail(format!(
                        "read {} ({} on {}, {:.0} ms) of {} shows {field} = {} but write {w} was acknowledged{}",
                        read.id,
                        read.client,
                        read.node,
                        read.start_ms,
                        read.session.as_deref().unwrap_or("?"),
                        seen.map_or("nothing".into(), |s| s.to_string()),
                        if read.outcome == Outcome::NotFound { " (session not found)" } else { "" },
                    ));
                }
            }
        }
    }
    v.excused = excused_writes.len() as u64;
    if v.excused > 0 {
        v.notes.push(format!(
            "{} fields of sessions lost with a memcached restarted empty before the replicator copied them (counted, not failures)",
            v.excused
        ));
    }
    v
}

/// Acknowledged logouts stick.
pub(super) fn logouts(ops: &[Op], sessions: &HashMap<String, Facts>, t: &Timeline) -> Verdict {
    let mut v = Verdict::new(
        "acknowledged logouts",
        "After a logout's answer (a delete, an app logout or id rotation, a \"log out everywhere\" of the user) the session is unreadable on its own node at once and on the other after the promised copy delay, and never comes back (the final sweep reads every session on both nodes); undone by a documented limit (a memcached restarted empty, or a replicator killed, before the delete was copied) is counted apart.",
    );
    // Sessions whose logout a documented limit undid, with when: later
    // "log out everywhere" requests cannot find them (the user's index
    // entry went with the first logout), a consequence counted apart too.
    let mut undone: HashMap<&str, f64> = HashMap::new();
    let mut excused = HashSet::new();
    let mut cascades = HashSet::new();
    // Sessions made while the replicator was down: their user's index
    // record may have been changed on both masters meanwhile (a login on
    // one, a "log out everywhere" on the other), and the replicator's
    // conflict rule lets the delete win over the concurrent change, so the
    // record can lose them; a later "log out everywhere" then cannot find
    // them. Counted apart, like the cascades above; a logout by id is
    // still checked.
    let mut partitioned = HashSet::new();
    for read in ops
        .iter()
        .filter(|o| o.op == "read" && o.outcome != Outcome::Error)
    {
        let Some((id, facts)) = read
            .session
            .as_deref()
            .and_then(|id| Some((id, sessions.get(id)?)))
        else {
            continue;
        };
        let mut logouts: Vec<_> = facts.logouts.iter().filter(|l| l.acked).collect();
        logouts.sort_by(|a, b| a.start.total_cmp(&b.start));
        for l in logouts {
            if t.visible_on(facts.home, read.node, l.end) > read.start_ms {
                continue;
            }
            v.checked += 1;
            if read.outcome == Outcome::NotFound {
                continue;
            }
            let why = t
                .delete_lost_by_restart(facts.home, l.start, l.end)
                .map(|k| format!("memcached-{} restarted empty at {k:.0} ms before the delete was copied", facts.home))
                .or_else(|| {
                    t.delete_lost_by_kill(l.start, l.end, facts.created).map(|k| {
                        format!("the replicator was killed at {k:.0} ms, its saved state older than the session")
                    })
                });
            if let Some(why) = why {
                undone.entry(id).or_insert(l.start);
                if excused.insert(l.op) && v.notes.len() < 5 {
                    v.notes
                        .push(format!("logout {} of {id} undone: {why}", l.op));
                }
            } else if l.by_user && undone.get(id).is_some_and(|u| *u < l.start) {
                cascades.insert((id, l.op));
            } else if l.by_user && t.replicator_down(facts.created).is_some() {
                partitioned.insert(id);
            } else {
                v.fail(format!(
                    "read {} ({} on {}, {:.0} ms) found {id} after logout {} was acknowledged at {:.0} ms",
                    read.id, read.client, read.node, read.start_ms, l.op, l.end
                ));
            }
        }
    }
    v.excused = excused.len() as u64;
    if !partitioned.is_empty() {
        v.excused += partitioned.len() as u64;
        v.notes.push(format!(
            "{} sessions made while the replicator was down were not ended by a later \"log out everywhere\": their user's index record changed on both masters during the outage, and the replicator's conflict rule (a delete wins over a concurrent write) dropped them from it",
            partitioned.len()
        ));
    }
    if !undone.is_empty() {
        v.notes.push(format!(
            "{} sessions came back after a logout a documented limit undid; {} later \"log out everywhere\" requests of their users did not end them (the user index lost them with the first logout)",
            undone.len(),
            cascades.len()
        ));
    }
    v
}

/// Whether a failed increment may have been applied.
fn maybe_applied(op: &Op) -> bool {
    let refused = op.delivery.as_deref() == Some("not_sent")
        || op.class.as_deref() == Some("transport:connect")
        || op.status.is_some_and(|s| (400..500).contains(&s));
    op.outcome == Outcome::Error && !refused
}

/// Increments are applied exactly once, except those of unknown fate.
pub(super) fn counters(ops: &[Op], sessions: &HashMap<String, Facts>, t: &Timeline) -> Verdict {
    let mut v = Verdict::new(
        "counter increments",
        "Per session, the answers of acknowledged increments are distinct, and the final value n lies within [acked, acked + unknown], where unknown counts the failed increments that may have been applied (delivery unknown, no answer); the lower bound is waived when a memcached restart may have lost increments.",
    );
    let by_id: HashMap<u64, &Op> = ops.iter().map(|o| (o.id, o)).collect();
    let sweep: HashMap<(&str, char), &Op> = ops
        .iter()
        .filter(|o| o.client == "sweep")
        .filter_map(|o| Some(((o.session.as_deref()?, o.node), o)))
        .collect();
    let (mut acked_total, mut unknown_total) = (0u64, 0u64);
    for (id, facts) in sessions {
        if facts.increments.is_empty() || facts.first_logout().is_some() {
            continue;
        }
        let incs: Vec<&Op> = facts
            .increments
            .iter()
            .filter_map(|i| by_id.get(i).copied())
            .collect();
        let acked: Vec<&Op> = incs
            .iter()
            .copied()
            .filter(|o| o.outcome == Outcome::Ok)
            .collect();
        let unknown = incs.iter().filter(|o| maybe_applied(o)).count() as i64;
        acked_total += acked.len() as u64;
        unknown_total += unknown as u64;
        let first = incs
            .iter()
            .map(|o| o.start_ms)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let last = incs
            .iter()
            .map(|o| o.end_ms)
            .reduce(f64::max)
            .unwrap_or(0.0);
        let restarted = t.restart_between(first, last);
        let mut answers: Vec<i64> = acked.iter().filter_map(|o| o.value).collect();
        answers.sort_unstable();
        let before = answers.len();
        answers.dedup();
        if !restarted && answers.len() != before {
            v.fail(format!(
                "session {id}: two acknowledged increments answered the same value"
            ));
        }
        let Some(read) = sweep.get(&(id.as_str(), facts.home)) else {
            continue;
        };
        v.checked += 1;
        let lost = t.lost_by_restart(facts.home, first, last).is_some();
        let n = match (read.outcome, read.read.as_ref().and_then(|r| r.get("n"))) {
            (Outcome::Ok, Some(Value::Number(n))) => n.as_i64(),
            (Outcome::Ok, None) => Some(0),
            (Outcome::Ok, Some(Value::String(s))) => s.parse().ok(),
            _ => None,
        };
        let acked_n = acked.len() as i64;
        match n {
            None if lost => v.excused += 1,
            None => v.fail(format!(
                "session {id}: final read {} found no counter ({:?}) after {acked_n} acknowledged increments",
                read.id, read.outcome
            )),
            Some(n) if n > acked_n + unknown => v.fail(format!(
                "session {id}: n = {n} > {acked_n} acknowledged + {unknown} unknown (read {}): an increment counted twice",
                read.id
            )),
            Some(n) if n < acked_n && lost => {
                let _ = n;
                v.excused += 1;
            }
            Some(n) if n < acked_n => v.fail(format!(
                "session {id}: n = {n} < {acked_n} acknowledged increments (read {}, last increment {})",
                read.id,
                acked.last().map_or(0, |o| o.id)
            )),
            Some(_) => {}
        }
    }
    v.notes.push(format!(
        "{acked_total} increments acknowledged, {unknown_total} of unknown fate, over {} sessions judged",
        v.checked
    ));
    v
}

/// Two concurrent PATCHes of different fields both survive.
pub(super) fn pairs(ops: &[Op], sessions: &HashMap<String, Facts>, t: &Timeline) -> Verdict {
    let mut v = Verdict::new(
        "concurrent PATCHes",
        "When two PATCHes of different fields of one session, sent at once (JSON and SOAP, same node), are both acknowledged, the next read on that node shows both values (or later ones).",
    );
    let mut pairs: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.op == "patch") {
        if let Some(p) = op.pair {
            pairs.entry(p).or_default().push(op);
        }
    }
    let mut both_acked = 0;
    for (pair, members) in pairs {
        if members.len() != 2 || members.iter().any(|o| o.outcome != Outcome::Ok) {
            continue;
        }
        both_acked += 1;
        let Some(facts) = members[0].session.as_ref().and_then(|id| sessions.get(id)) else {
            continue;
        };
        let done = members[0].end_ms.max(members[1].end_ms);
        let next = judged_reads(ops, sessions).find(|(r, _)| {
            r.session == members[0].session && r.node == facts.home && r.start_ms >= done
        });
        let Some((read, _)) = next else { continue };
        let mut judged = false;
        for m in &members {
            for field in m.wrote.keys() {
                let writes = facts.writes.get(field).map(Vec::as_slice).unwrap_or(&[]);
                match judge_field(read, field, writes, facts, t) {
                    Judged::Held => judged = true,
                    Judged::Broken(w, seen) => {
                        judged = true;
                        v.fail(format!(
                            "pair {pair} (requests {} and {}): read {} shows {field} = {} instead of write {w}",
                            members[0].id,
                            members[1].id,
                            read.id,
                            seen.map_or("nothing".into(), |s| s.to_string())
                        ));
                    }
                    Judged::Excused => v.excused += 1,
                    Judged::Nothing | Judged::Skipped => {}
                }
            }
        }
        if judged {
            v.checked += 1;
        }
    }
    v.notes
        .push(format!("{both_acked} pairs had both PATCHes acknowledged"));
    v
}

/// Every error is typed and timely.
pub(super) fn errors(ops: &[Op], t: &Timeline, bound_ms: f64) -> Verdict {
    let mut v = Verdict::new(
        "typed, timely errors",
        "Every failed request gets a documented error (a JSON error with its code, a SOAP fault, the app's error page; a refused connection only while that bridge restarts) within the bound (the store timeout times the store calls of one operation, plus margin).",
    );
    let mut slowest: f64 = 0.0;
    for op in ops.iter().filter(|o| o.outcome == Outcome::Error) {
        v.checked += 1;
        let took = op.end_ms - op.start_ms;
        slowest = slowest.max(took);
        let class = op.class.as_deref().unwrap_or("none");
        let bridge = !op.client.starts_with("app");
        let typed = !class.starts_with("untyped")
            && (!class.starts_with("transport")
                || (bridge
                    && class == "transport:connect"
                    && t.bridge_down(op.node, op.start_ms, op.end_ms)));
        if !typed {
            v.fail(format!(
                "request {} ({} {} on {}, {:.0} ms): untyped error {class}",
                op.id, op.client, op.op, op.node, op.start_ms
            ));
        } else if took > bound_ms {
            v.fail(format!(
                "request {} ({} {} on {}, {:.0} ms): {class} after {took:.0} ms > {bound_ms:.0} ms",
                op.id, op.client, op.op, op.node, op.start_ms
            ));
        }
    }
    v.notes
        .push(format!("slowest error answer: {slowest:.0} ms"));
    v
}

fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

/// RSS growth tolerated in the last half, KiB, when 10% is less: the
/// allocator of a 20 MiB bridge moves by 2-3 MiB with a fault's burst of
/// requests in flight (measured), while a leak of 1 KiB a request adds
/// 4 MiB within 45 s at 100 requests/s.
const RSS_SLACK_KIB: u64 = 4096;

/// Daemons' memory and descriptors stay bounded.
pub(super) fn resources(samples: &[Sample], duration_ms: f64) -> Verdict {
    let mut v = Verdict::new(
        "bounded resources",
        "For each of our daemons (bridges, replicator, app), the process running at the end, over its own samples (from its restart if restarted; not judged with fewer than 20): its RSS level at the end (median of the last 10 s, which are quiet) exceeds its level at the middle of its samples (median of the 10 s around it) by less than 10% or 4 MiB, whichever is larger; and the median of its open descriptors over the last 10 s is at most the median over the first half of its samples + 10% + 16. Peaks are reported. memcached's are reported, not judged (its cache fills by design).",
    );
    let _ = duration_ms;
    let mut names: Vec<&str> = samples.iter().map(|s| s.daemon.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let Some(last_pid) = samples
            .iter()
            .rev()
            .find(|s| s.daemon == name)
            .map(|s| s.pid)
        else {
            continue;
        };
        let mine: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.daemon == name && s.pid == last_pid)
            .collect();
        let (Some(first), Some(end)) = (mine.first(), mine.last()) else {
            continue;
        };
        let mid_at = mine[mine.len() / 2].at_ms;
        let level = |from: f64, to: f64| {
            median(
                mine.iter()
                    .filter(|s| s.at_ms >= from && s.at_ms <= to)
                    .map(|s| s.rss_kib)
                    .collect(),
            )
        };
        let rss_mid = level(mid_at - 5_000.0, mid_at + 5_000.0);
        let rss_end = level(end.at_ms - 10_000.0, end.at_ms);
        let peak = mine[mine.len() / 2..]
            .iter()
            .map(|s| s.rss_kib)
            .max()
            .unwrap_or(0);
        let minutes = ((end.at_ms - mid_at) / 60_000.0).max(1.0 / 60.0);
        let rate = (rss_end as f64 - rss_mid as f64) / minutes;
        let fds_first = median(
            mine[..mine.len().div_ceil(2)]
                .iter()
                .map(|s| s.fds)
                .collect(),
        );
        let fds_end = median(
            mine.iter()
                .filter(|s| s.at_ms >= end.at_ms - 10_000.0)
                .map(|s| s.fds)
                .collect(),
        );
        let line = format!(
            "{name} (pid {last_pid}, {} samples from {:.0} s): RSS {} KiB at its start, {rss_mid} KiB at the middle, {rss_end} KiB at the end ({rate:+.0} KiB/min), peak {peak} KiB in the last half; descriptors median {fds_first} first half, {fds_end} last 10 s",
            mine.len(),
            first.at_ms / 1000.0,
            first.rss_kib,
        );
        v.notes.push(line.clone());
        if name.starts_with("memcached") {
            continue;
        }
        if mine.len() < 20 {
            v.notes.push(format!("{name}: restarted too late to judge"));
            continue;
        }
        v.checked += 1;
        let allowed = (rss_mid as f64 * 0.10).max(RSS_SLACK_KIB as f64);
        if rss_end as f64 - rss_mid as f64 >= allowed {
            v.fail(format!(
                "{line}: RSS grew by {} KiB, over {allowed:.0} KiB",
                rss_end.saturating_sub(rss_mid)
            ));
        }
        if fds_end as f64 > fds_first as f64 * 1.10 + 16.0 {
            v.fail(format!("{line}: descriptors grew"));
        }
    }
    v
}

/// Faults were injected and healed; daemons stopped cleanly.
pub(super) fn faults(faults: &[Fault], stop_problems: &[String]) -> Verdict {
    let mut v = Verdict::new(
        "faults healed, clean stops",
        "Every fault of the schedule was injected and healed (the server answers again, the daemon is ready again), and every SIGTERM (the faults' and the final one) ended a daemon cleanly within 15 s.",
    );
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for f in faults {
        v.checked += 1;
        *kinds.entry(f.kind.as_str()).or_default() += 1;
        if let Some(e) = &f.error {
            v.fail(format!("fault {} ({} on {}): {e}", f.id, f.kind, f.target));
        }
    }
    for p in stop_problems {
        v.checked += 1;
        v.fail(format!("final stop: {p}"));
    }
    v.notes.push(format!("injected: {kinds:?}"));
    v
}

//! Change tracking and the merge, checked on random sessions and edits.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::codec::tests::{arb_data, arb_value};

fn stored(data: SessionData) -> Session {
    let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let mut data = data;
    data.insert(ID_FIELD.into(), Value::String(id.to_string()));
    Session::new(id, data, Some(Version::new(1)), State::Stored)
}

#[test]
fn session_id_field_is_read_only() {
    let mut s = stored(SessionData::new());
    assert!(matches!(s.insert(ID_FIELD, "x"), Err(Error::Field { .. })));
    assert!(s.remove(ID_FIELD).is_none());
    assert!(s.get_mut(ID_FIELD).is_none());
    assert_eq!(s.get::<String>(ID_FIELD).unwrap().unwrap(), s.id().as_str());
    assert!(!s.is_modified());
}

#[test]
fn typed_reads_report_the_field() {
    let mut s = stored(SessionData::new());
    s.insert("n", "not a number").unwrap();
    let err = s.get::<u32>("n").unwrap_err();
    assert!(
        matches!(err, Error::Field { ref field, .. } if field == "n"),
        "{err}"
    );
    assert_eq!(s.get::<u32>("absent").unwrap(), None);
}

proptest! {
    /// Any edit, however deep, is seen; undoing it is not a change.
    #[test]
    fn changes_are_seen_at_any_depth(data in arb_data(), field in "[a-z]{1,6}", value in arb_value()) {
        let mut s = stored(data);
        let before = s.data().clone();
        let old = s.insert(field.clone(), value.clone()).unwrap();
        let changed = old.as_ref() != Some(&value);
        prop_assert_eq!(s.is_modified(), changed);
        prop_assert_eq!(s.changes().set.contains(&field), changed);
        match old {
            Some(v) => { s.insert(field.clone(), v).unwrap(); }
            None => { s.remove(&field); }
        }
        prop_assert!(!s.is_modified());
        prop_assert_eq!(s.data(), &before);
    }

    /// After any edits, the handle still knows exactly what the store
    /// holds, and `changes()` is the full comparison of the two maps.
    #[test]
    fn the_stored_view_survives_any_edits(
        data in arb_data(),
        edits in prop::collection::vec(("[a-e]", prop::option::of(arb_value()), any::<bool>()), 0..12),
    ) {
        let mut s = stored(data);
        let before = s.data().clone();
        for (field, value, in_place) in edits {
            match (value, in_place) {
                (Some(v), true) => {
                    if let Some(slot) = s.get_mut(&field) { *slot = v; }
                }
                (Some(v), false) => { s.insert(field, v).unwrap(); }
                (None, _) => { s.remove(&field); }
            }
        }
        prop_assert_eq!(&s.stored_map(), &before);
        let mut want = Changes::default();
        for (k, v) in s.data() {
            if before.get(k) != Some(v) { want.set.push(k.clone()); }
        }
        for k in before.keys() {
            if !s.data().contains_key(k) { want.removed.push(k.clone()); }
        }
        prop_assert_eq!(s.is_modified(), !want.is_empty());
        prop_assert_eq!(s.changes(), want);
    }

    #[test]
    fn nested_edits_are_changes(data in arb_data()) {
        let mut s = stored(data);
        s.insert("deep", json!({"a": {"b": [1, 2]}})).unwrap();
        s.mark_synced(None);
        prop_assert!(!s.is_modified());
        if let Some(list) = s.get_mut("deep").and_then(|v| v.pointer_mut("/a/b")).and_then(Value::as_array_mut) {
            list.push(json!(3));
        }
        prop_assert!(s.is_modified());
        prop_assert_eq!(s.changes().set, vec!["deep".to_owned()]);
    }

    /// A rebase keeps exactly our own changes on top of the other writer's data.
    #[test]
    fn rebase_keeps_own_changes_and_theirs(
        base in arb_data(),
        ours in prop::collection::btree_map("[a-z]{1,4}", arb_value(), 0..4),
        removed in prop::collection::vec("[a-z]{1,4}", 0..3),
        theirs in arb_data(),
    ) {
        let mut s = stored(base);
        for (k, v) in &ours { s.insert(k.clone(), v.clone()).unwrap(); }
        for k in &removed { s.remove(k); }
        let own = s.changes();
        let mine = s.data().clone();
        let mut fresh = theirs.clone();
        fresh.insert(ID_FIELD.into(), Value::String(s.id().to_string()));
        s.rebase(fresh.clone(), Some(Version::new(2)));
        for k in &own.set { prop_assert_eq!(s.data().get(k), mine.get(k)); }
        for k in &own.removed { prop_assert!(!s.data().contains_key(k)); }
        for (k, v) in &fresh {
            if !own.set.contains(k) && !own.removed.contains(k) {
                prop_assert_eq!(s.data().get(k), Some(v));
            }
        }
        prop_assert_eq!(s.version(), Some(Version::new(2)));
    }

    /// A field conflict is exactly a field both sides changed to
    /// different values; the policy picks the side, nothing else moves.
    #[test]
    fn merge3_reports_exactly_the_fields_both_changed(
        base in prop::collection::btree_map("[a-d]", 0..3i64, 0..4),
        mine in prop::collection::btree_map("[a-d]", 0..3i64, 0..4),
        theirs in prop::collection::btree_map("[a-d]", 0..3i64, 0..4),
        prefer_mine in any::<bool>(),
    ) {
        let to_data = |m: &std::collections::BTreeMap<String, i64>| {
            let mut d: SessionData = m.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            d.insert(ID_FIELD.into(), json!("0123456789abcdef0123456789abcdef"));
            d
        };
        let mut s = stored(to_data(&base));
        s.replace_data(to_data(&mine));
        let (merged, conflicts) = s.merge3(&to_data(&theirs), prefer_mine);
        for f in ["a", "b", "c", "d"] {
            let (b, m, t) = (base.get(f), mine.get(f), theirs.get(f));
            let both = m != b && t != b && m != t;
            prop_assert_eq!(conflicts.contains(&f.to_owned()), both);
            let want = if both { if prefer_mine { m } else { t } } else if m != b { m } else { t };
            let want = want.map(|v| json!(v));
            prop_assert_eq!(merged.get(f), want.as_ref());
        }
    }
}

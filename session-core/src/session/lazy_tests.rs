//! A loaded session that keeps its stored bytes (`raw.rs`) must answer
//! every call exactly as one decoded in full on load: the same values,
//! changes, merges and saved data, for random sessions and random edits.

use proptest::prelude::*;

use super::*;
use crate::codec::tests::{arb_data, arb_value};

const ID: &str = "0123456789abcdef0123456789abcdef";

/// The stored map of a session: `data` with its own id.
fn with_id(mut data: SessionData) -> SessionData {
    data.insert(ID_FIELD.into(), Value::String(ID.into()));
    data
}

fn id() -> SessionId {
    SessionId::parse(ID).unwrap()
}

fn eager(stored: &SessionData) -> Session {
    Session::new(id(), stored.clone(), Some(Version::new(1)), State::Stored)
}

/// `stored` written by `codec` and loaded as a load does; it must come
/// back scanned, not decoded (the codecs' own output is always scanned).
fn lazy(stored: &SessionData, codec: Codec) -> Session {
    let bytes = codec.encode(stored).unwrap();
    let body = Loaded::read(codec, bytes, "k", None).unwrap();
    assert!(
        matches!(body, Loaded::Raw(_)),
        "{codec:?} output was not scanned"
    );
    Session::loaded(id(), body, Some(Version::new(1)), State::Stored)
}

/// One step of a random edit sequence.
#[derive(Debug, Clone)]
enum Step {
    Insert(String, Value),
    InPlace(String, Value),
    Remove(String),
    /// Reads the whole map (builds it on a lazy handle).
    ReadAll,
    /// Reads one field (decodes only it on a lazy handle).
    Read(String),
}

fn arb_step() -> impl Strategy<Value = Step> {
    let field = prop_oneof!["[a-e]", "\\PC{1,10}", Just(ID_FIELD.to_owned())];
    prop_oneof![
        (field.clone(), arb_value()).prop_map(|(f, v)| Step::Insert(f, v)),
        (field.clone(), arb_value()).prop_map(|(f, v)| Step::InPlace(f, v)),
        field.clone().prop_map(Step::Remove),
        Just(Step::ReadAll),
        field.prop_map(Step::Read),
    ]
}

fn apply(s: &mut Session, step: &Step) -> String {
    match step {
        Step::Insert(f, v) => format!("{:?}", s.insert(f.clone(), v.clone()).ok()),
        Step::InPlace(f, v) => match s.get_mut(f) {
            Some(slot) => format!("{:?}", std::mem::replace(slot, v.clone())),
            None => "absent".into(),
        },
        Step::Remove(f) => format!("{:?}", s.remove(f)),
        Step::ReadAll => format!("{:?}", s.iter().collect::<Vec<_>>()),
        Step::Read(f) => format!("{:?} {}", s.get_value(f), s.contains(f)),
    }
}

/// Everything a caller or a save can observe of a handle.
fn same(a: &Session, b: &Session, fields: &[&str]) -> Result<(), TestCaseError> {
    for f in fields {
        prop_assert_eq!(a.get_value(f), b.get_value(f), "field {:?}", f);
        prop_assert_eq!(a.contains(f), b.contains(f));
        prop_assert_eq!(a.stored_field(f), b.stored_field(f));
    }
    prop_assert_eq!(a.len(), b.len());
    prop_assert_eq!(a.is_modified(), b.is_modified());
    prop_assert_eq!(a.changes(), b.changes());
    prop_assert_eq!(a.data(), b.data());
    prop_assert_eq!(a.stored_map(), b.stored_map());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Lazy and eager agree after every step of any edit sequence, in
    /// both codecs that are read lazily, and what each would save decodes
    /// to the same map.
    #[test]
    fn lazy_and_eager_agree_on_any_edits(
        data in arb_data(),
        steps in prop::collection::vec(arb_step(), 0..10),
        codec in prop_oneof![Just(Codec::Json), Just(Codec::MessagePack)],
    ) {
        let stored = with_id(data);
        let (mut want, mut got) = (eager(&stored), lazy(&stored, codec));
        let mut fields: Vec<String> = stored.keys().cloned().collect();
        fields.extend(["a", "b", "c", "d", "e"].map(String::from));
        for step in &steps {
            prop_assert_eq!(apply(&mut got, step), apply(&mut want, step), "{:?}", step);
            if let Step::Insert(f, _) | Step::InPlace(f, _) | Step::Remove(f) | Step::Read(f) = step {
                fields.push(f.clone());
            }
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            same(&got, &want, &names)?;
        }
        let saved = |s: &Session| {
            let bytes = s.encode(codec).unwrap();
            codec.decode(&bytes, "k").unwrap()
        };
        prop_assert_eq!(saved(&got), saved(&want));
        prop_assert_eq!(&saved(&got), want.data());
        prop_assert_eq!(got.into_data(), want.into_data());
    }

    /// What a save's splice says of its output (`encode_scanned`) is what
    /// a scan of that output finds, and a load through it reads what the
    /// full decode reads.
    #[test]
    fn a_splice_knows_what_a_scan_of_its_output_finds(
        data in arb_data(),
        steps in prop::collection::vec(arb_step(), 0..10),
        codec in prop_oneof![Just(Codec::Json), Just(Codec::MessagePack)],
    ) {
        let stored = with_id(data);
        let mut got = lazy(&stored, codec);
        for step in &steps {
            apply(&mut got, step);
        }
        let (bytes, spans) = got.encode_scanned(codec).unwrap();
        prop_assert_eq!(&bytes, &got.encode(codec).unwrap());
        let whole = codec.decode(&bytes, "k").unwrap();
        let Some(spans) = spans else {
            // Only a handle decoded in full, or a name with an escape.
            return Ok(());
        };
        let scanned = match codec {
            Codec::Json => crate::scan::json::scan(&bytes),
            _ => crate::scan::msgpack::scan(&bytes),
        };
        if let Some(scanned) = scanned {
            let packed = ScanMemo::pack(codec, bytes.len(), &scanned).unwrap();
            prop_assert_eq!(spans.fields().collect::<Vec<_>>(), packed.fields().collect::<Vec<_>>());
        }
        let memo = crate::store::ItemMemo::of_scan(bytes.len() * 4, spans).unwrap();
        let body = Loaded::read(codec, bytes, "k", Some(&memo)).unwrap();
        let through = Session::loaded(id(), body, Some(Version::new(2)), State::Stored);
        prop_assert_eq!(through.data(), &whole);
    }

    /// A conflict's three-way merge and a rebase give the same result on a
    /// lazy handle; so does a save in the other codec (a codec change
    /// re-encodes everything).
    #[test]
    fn merges_and_codec_changes_agree(
        data in arb_data(),
        steps in prop::collection::vec(arb_step(), 0..6),
        theirs in arb_data(),
        prefer_mine in any::<bool>(),
    ) {
        let stored = with_id(data);
        let theirs = with_id(theirs);
        let (mut want, mut got) = (eager(&stored), lazy(&stored, Codec::Json));
        for step in &steps {
            apply(&mut got, step);
            apply(&mut want, step);
        }
        prop_assert_eq!(got.merge3(&theirs, prefer_mine), want.merge3(&theirs, prefer_mine));
        let other = Codec::MessagePack;
        prop_assert_eq!(other.decode(&got.encode(other).unwrap(), "k").unwrap(), want.data().clone());
        got.rebase(theirs.clone(), Some(Version::new(2)));
        want.rebase(theirs, Some(Version::new(2)));
        prop_assert_eq!(got.data(), want.data());
        prop_assert_eq!(got.changes(), want.changes());
    }
}

/// A stored `_session_id` that names another session is replaced by the
/// key's id, as the eager decode does, and is not a change.
#[test]
fn a_wrong_stored_id_is_replaced_not_changed() {
    let mut stored = with_id(SessionData::new());
    stored.insert(ID_FIELD.into(), Value::String("someone else".into()));
    stored.insert("uid".into(), Value::String("jdoe".into()));
    for codec in [Codec::Json, Codec::MessagePack] {
        let s = lazy(&stored, codec);
        assert_eq!(s.get_value(ID_FIELD), Some(&Value::String(ID.into())));
        assert!(!s.is_modified());
        let saved = codec.decode(&s.encode(codec).unwrap(), "k").unwrap();
        assert_eq!(saved.get(ID_FIELD), Some(&Value::String(ID.into())));
        assert_eq!(saved.len(), 2);
    }
}

/// Only the field read is decoded: the others stay bytes until needed,
/// and a save of an untouched field copies its stored bytes exactly.
#[test]
fn untouched_fields_are_copied_byte_for_byte() {
    // A float written with more digits than a re-encode would print.
    let bytes = br#"{"_session_id":"0123456789abcdef0123456789abcdef","f":1.50,"uid":"jdoe"}"#;
    let body = Loaded::read(Codec::Json, bytes.to_vec(), "k", None).unwrap();
    let mut s = Session::loaded(id(), body, Some(Version::new(1)), State::Stored);
    s.insert("uid", "other").unwrap();
    let saved = String::from_utf8(s.encode(Codec::Json).unwrap()).unwrap();
    assert!(saved.contains(r#""f":1.50"#), "{saved}");
    assert!(saved.contains(r#""uid":"other""#), "{saved}");
}

/// A load compares the stored `_session_id` with the key's id on its bytes
/// when they are spelled as our encoders spell them; any other spelling of
/// the same id is still the same id (not replaced, so the entry is copied
/// as stored), and any other id is replaced.
#[test]
fn the_stored_id_is_compared_whatever_its_spelling() {
    let json = |id_json: &str| format!(r#"{{"_session_id":{id_json},"uid":"jdoe"}}"#).into_bytes();
    // MessagePack: a 2-entry map, then the id (32 bytes) as a str8 (its
    // shortest header) or a str16.
    let msgpack = |header: &[u8], id: &str| {
        let mut b = vec![0x82, 0xab];
        b.extend_from_slice(ID_FIELD.as_bytes());
        b.extend_from_slice(header);
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&[0xa3, b'u', b'i', b'd', 0xa4, b'j', b'd', b'o', b'e']);
        b
    };
    let escaped = format!(r#""\u0030{}""#, &ID[1..]);
    let cases: Vec<(Codec, Vec<u8>, bool)> = vec![
        (Codec::Json, json(&format!("\"{ID}\"")), true),
        (Codec::Json, json(&escaped), true),
        (Codec::Json, json(&format!("\"{}\"", &ID[1..])), false),
        (Codec::Json, json(&format!("\"{ID}0\"")), false),
        (Codec::Json, json("32"), false),
        (Codec::MessagePack, msgpack(&[0xd9, 32], ID), true),
        (Codec::MessagePack, msgpack(&[0xda, 0, 32], ID), true),
        (Codec::MessagePack, msgpack(&[0xa0 | 31], &ID[1..]), false),
    ];
    for (codec, bytes, same) in cases {
        let body = Loaded::read(codec, bytes.clone(), "k", None).unwrap();
        assert!(
            matches!(body, Loaded::Raw(_)),
            "{codec:?} {bytes:?} not scanned"
        );
        let s = Session::loaded(id(), body, Some(Version::new(1)), State::Stored);
        assert_eq!(s.get_value(ID_FIELD), Some(&Value::String(ID.into())));
        assert!(!s.is_modified());
        let saved = s.encode(codec).unwrap();
        // The same id's entry is copied as stored; another id's is rewritten.
        assert_eq!(
            saved == bytes,
            same,
            "{codec:?}: {:?} -> {:?}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&saved)
        );
        let decoded = codec.decode(&saved, "k").unwrap();
        assert_eq!(decoded.get(ID_FIELD), Some(&Value::String(ID.into())));
        assert_eq!(decoded.get("uid"), Some(&Value::String("jdoe".into())));
    }
}

/// The quick compare on bytes never says "equal" for a string that only
/// looks equal: `"a\b"` in JSON is `a` and a backspace.
#[test]
fn a_quick_compare_on_bytes_is_never_fooled_by_an_escape() {
    let bytes = br#"{"k":"a\b","plain":"x"}"#.to_vec();
    let Loaded::Raw(raw) = Loaded::read(Codec::Json, bytes, "k", None).unwrap() else {
        panic!("not scanned");
    };
    assert!(!raw.holds_str("k", r"a\b"));
    assert!(
        !raw.holds_str("k", "a\u{8}"),
        "an escape is left to the decode"
    );
    assert_eq!(raw.get("k"), Some(&Value::String("a\u{8}".into())));
    assert!(raw.holds_str("plain", "x"));
    assert!(!raw.holds_str("plain", "y"));
    assert!(!raw.holds_str("absent", "x"));
}

/// A save copies untouched entries that lie side by side in one run, and
/// only those: entries apart by more than a comma (a writer's spaces) or
/// with a dropped duplicate between them are copied one by one, so the
/// duplicate never comes back and the spans still match the output.
#[test]
fn only_entries_side_by_side_are_copied_as_one_run() {
    let stored = concat!(
        r#"{ "_session_id":"0123456789abcdef0123456789abcdef" ,"a":1,"b":2,"a":3,"#,
        r#""c":[1, 2],"d":"x","e":true}"#
    );
    let body = Loaded::read(Codec::Json, stored.as_bytes().to_vec(), "k", None).unwrap();
    assert!(
        matches!(body, Loaded::Raw(_)),
        "a noisy writer's bytes are still scanned"
    );
    let mut s = Session::loaded(id(), body, Some(Version::new(1)), State::Stored);
    s.insert("d", "y").unwrap();
    let (bytes, spans) = s.encode_scanned(Codec::Json).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text.matches(r#""a":"#).count(), 1, "{text}");
    assert!(text.contains(r#""c":[1, 2],"e":true"#), "{text}");
    let mut want = Codec::Json.decode(stored.as_bytes(), "k").unwrap();
    want.insert("d".into(), Value::from("y"));
    assert_eq!(Codec::Json.decode(&bytes, "k").unwrap(), want);
    let scanned = crate::scan::json::scan(&bytes).unwrap();
    let packed = ScanMemo::pack(Codec::Json, bytes.len(), &scanned).unwrap();
    assert_eq!(
        spans.unwrap().fields().collect::<Vec<_>>(),
        packed.fields().collect::<Vec<_>>()
    );
}

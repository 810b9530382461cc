//! The MessagePack scanner against the full decode: every `Some` must agree
//! with it field by field, on encoder output, hand-built bytes and
//! mutations of both.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::scan;
use crate::codec::Codec;
use crate::codec::tests::{arb_data, arb_value};
use crate::scan::RawName;
use crate::session::{MAX_DEPTH, SessionData};

/// The full decode of one value, exactly as `Codec::decode` runs it, but
/// without asking for a map.
fn decode(bytes: &[u8]) -> Result<Value, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH + 1);
    serde::Deserialize::deserialize(&mut de)
}

/// A map header for `len` entries, as small as it goes.
fn map_header(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// A map of these entries, in this order, repeats included.
fn map_of(entries: &[(&str, &Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    map_header(&mut out, entries.len());
    for (name, value) in entries {
        rmp_serde::encode::write_named(&mut out, name).unwrap();
        rmp_serde::encode::write_named(&mut out, value).unwrap();
    }
    out
}

/// The proof for one input: when the scan answers, the full decode
/// accepts the bytes as a map, and the scanned fields are that map: the
/// same names, each once, each value span decoding by itself (and exactly,
/// no byte more) to the map's value, each entry the name's str followed by
/// the value, and a map rebuilt from the entries decoding to the same map.
/// Returns whether the scan answered.
fn check(bytes: &[u8]) -> bool {
    let Some(fields) = scan(bytes) else {
        return false;
    };
    let map = match Codec::MessagePack.decode(bytes, "k") {
        Ok(map) => map,
        Err(e) => panic!("scan accepted what the decode refuses ({e}): {bytes:02x?}"),
    };
    assert_eq!(fields.len(), map.len(), "{bytes:02x?}");
    let mut rebuilt = Vec::new();
    map_header(&mut rebuilt, fields.len());
    for f in &fields {
        assert!(matches!(f.name, RawName::Span(_)));
        let name = f.name.as_str(bytes);
        assert!(f.name.is(bytes, name));
        assert_eq!(
            fields.iter().filter(|g| g.name.is(bytes, name)).count(),
            1,
            "{name:?} twice"
        );
        let span = &bytes[f.value.clone()];
        let value = decode(span).unwrap();
        assert_eq!(Some(&value), map.get(name), "field {name:?}: {bytes:02x?}");
        assert!(decode(&span[..span.len() - 1]).is_err(), "span too long");
        assert_eq!(f.entry.end, f.value.end);
        let name_bytes = &bytes[f.entry.start..f.value.start];
        assert_eq!(decode(name_bytes).unwrap(), Value::String(name.into()));
        rebuilt.extend_from_slice(&bytes[f.entry.clone()]);
    }
    assert_eq!(Codec::MessagePack.decode(&rebuilt, "k").unwrap(), map);
    assert_eq!(scan(&rebuilt).map(|f| f.len()), Some(fields.len()));
    true
}

/// A field nesting `depth` containers (lists and maps by turns), the
/// innermost holding `inner` or empty.
fn nested(depth: usize, inner: Option<Value>) -> Vec<u8> {
    let mut out = Vec::new();
    map_header(&mut out, 1);
    rmp_serde::encode::write_named(&mut out, "deep").unwrap();
    for level in 0..depth {
        let last = level + 1 == depth;
        let len = u8::from(!last || inner.is_some());
        if level % 2 == 0 {
            out.push(0x90 | len);
        } else {
            out.push(0x80 | len);
            if len == 1 {
                rmp_serde::encode::write_named(&mut out, "k").unwrap();
            }
        }
    }
    if let Some(v) = inner {
        rmp_serde::encode::write_named(&mut out, &v).unwrap();
    }
    out
}

#[test]
fn the_bench_session_is_scanned() {
    let data = super::super::bench_session();
    let bytes = Codec::MessagePack.encode(&data).unwrap();
    assert!(check(&bytes));
    let fields = scan(&bytes).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str(&bytes)).collect();
    let mut keys: Vec<_> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(names, keys);
}

#[test]
fn every_int_width_and_both_float_widths() {
    let cases: &[(&[u8], Value)] = &[
        (&[0x05], json!(5)),
        (&[0x7f], json!(127)),
        (&[0xcc, 0xff], json!(255)),
        (&[0xcd, 0x12, 0x34], json!(0x1234)),
        (&[0xce, 0x12, 0x34, 0x56, 0x78], json!(0x1234_5678)),
        (
            &[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1],
            json!(0xff00_0000_0000_0001u64),
        ),
        (&[0xe0], json!(-32)),
        (&[0xff], json!(-1)),
        (&[0xd0, 0x80], json!(-128)),
        (&[0xd0, 0x05], json!(5)),
        (&[0xd1, 0x80, 0x00], json!(-32768)),
        (&[0xd2, 0x80, 0, 0, 0], json!(i32::MIN)),
        (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], json!(i64::MIN)),
        (&[0xd3, 0, 0, 0, 0, 0, 0, 0, 7], json!(7)),
        (&[0xc0], Value::Null),
        (&[0xc2], json!(false)),
        (&[0xc3], json!(true)),
    ];
    let mut floats: Vec<(Vec<u8>, Value)> = Vec::new();
    for f in [0.1f32, -1.5, f32::MAX, f32::MIN_POSITIVE, 0.0] {
        let mut b = vec![0xca];
        b.extend_from_slice(&f.to_be_bytes());
        // The decode widens an f32 to f64; so does decoding the span alone.
        floats.push((b, json!(f64::from(f))));
    }
    for f in [0.1f64, -1e300, f64::MIN_POSITIVE, -0.0] {
        let mut b = vec![0xcb];
        b.extend_from_slice(&f.to_be_bytes());
        floats.push((b, json!(f)));
    }
    let all = cases
        .iter()
        .map(|(b, v)| (b.to_vec(), v.clone()))
        .chain(floats);
    for (i, (value_bytes, expected)) in all.enumerate() {
        let mut bytes = vec![0x82, 0xa1, b'a', 0x01, 0xa1, b'v'];
        bytes.extend_from_slice(&value_bytes);
        assert!(check(&bytes), "case {i}: {bytes:02x?}");
        let fields = scan(&bytes).unwrap();
        assert_eq!(decode(&bytes[fields[1].value.clone()]).unwrap(), expected);
        assert_eq!(&bytes[fields[1].value.clone()], &value_bytes[..]);
    }
}

#[test]
fn nan_and_infinity_are_left_to_the_decode() {
    let mut values: Vec<Vec<u8>> = Vec::new();
    for f in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        values.push([&[0xca][..], &f.to_be_bytes()].concat());
    }
    for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        values.push([&[0xcb][..], &f.to_be_bytes()].concat());
    }
    for v in values {
        let bytes = [&[0x81, 0xa1, b'x'][..], &v].concat();
        assert_eq!(scan(&bytes), None);
        // Why: the decode reads them as null, which would not re-encode
        // to the stored bytes.
        let map = Codec::MessagePack.decode(&bytes, "k").unwrap();
        assert_eq!(map["x"], Value::Null);
        // Inside a list too.
        let bytes = [&[0x81, 0xa1, b'x', 0x92, 0x01][..], &v].concat();
        assert_eq!(scan(&bytes), None);
    }
}

#[test]
fn every_str_width_as_name_and_value_and_wide_containers() {
    let long = "é".repeat(40); // 80 bytes: str8
    let longer = "n".repeat(300); // str16
    let mut bytes = vec![0xde, 0x00, 0x05];
    // fixstr name, str8 value.
    bytes.extend_from_slice(&[0xa1, b'a', 0xd9, 80]);
    bytes.extend_from_slice(long.as_bytes());
    // str8 name, str16 value.
    bytes.extend_from_slice(&[0xd9, 1, b'b', 0xda, 0x01, 0x2c]);
    bytes.extend_from_slice(longer.as_bytes());
    // str16 name, str32 value.
    bytes.extend_from_slice(&[0xda, 0, 1, b'c', 0xdb, 0, 0, 0, 2, b'h', b'i']);
    // str32 name, array16 of a fixstr and an array32 of one map16.
    bytes.extend_from_slice(&[0xdb, 0, 0, 0, 1, b'd', 0xdc, 0, 2, 0xa0]);
    bytes.extend_from_slice(&[0xdd, 0, 0, 0, 1, 0xde, 0, 1, 0xa1, b'k', 0xc3]);
    // An empty name, a map32 of one entry with a str8 key.
    bytes.extend_from_slice(&[0xa0, 0xdf, 0, 0, 0, 1, 0xd9, 1, b'z', 0x00]);
    assert!(check(&bytes));
    let map = Codec::MessagePack.decode(&bytes, "k").unwrap();
    assert_eq!(map["a"], json!(long));
    assert_eq!(map["b"], json!(longer));
    assert_eq!(map["c"], json!("hi"));
    assert_eq!(map["d"], json!(["", [{"k": true}]]));
    assert_eq!(map[""], json!({"z": 0}));
    // The top level as a map32 too.
    let mut wide = vec![0xdf, 0, 0, 0, 5];
    wide.extend_from_slice(&bytes[3..]);
    assert!(check(&wide));
}

#[test]
fn what_the_decode_refuses_or_changes_is_none() {
    let refused: &[(&str, &[u8])] = &[
        ("empty input", &[]),
        ("a list at the top", &[0x91, 0x01]),
        ("a str at the top", &[0xa1, b'x']),
        ("a bin value", &[0x81, 0xa1, b'x', 0xc4, 0x01, 0x00]),
        ("a bin16 value", &[0x81, 0xa1, b'x', 0xc5, 0x00, 0x01, 0x00]),
        ("a bin32 value", &[0x81, 0xa1, b'x', 0xc6, 0, 0, 0, 1, 0x00]),
        ("a fixext1", &[0x81, 0xa1, b'x', 0xd4, 0x01, 0x00]),
        ("an ext8", &[0x81, 0xa1, b'x', 0xc7, 0x01, 0x05, 0x00]),
        ("the reserved marker", &[0x81, 0xa1, b'x', 0xc1]),
        ("an int name", &[0x81, 0x01, 0x02]),
        ("a nil name", &[0x81, 0xc0, 0x02]),
        ("a nested int key", &[0x81, 0xa1, b'x', 0x81, 0x01, 0x02]),
        (
            "a nested bin key",
            &[0x81, 0xa1, b'x', 0x81, 0xc4, 0x01, b'k', 0x02],
        ),
        (
            "a deeper int key",
            &[0x81, 0xa1, b'x', 0x91, 0x81, 0x01, 0x02],
        ),
        ("a name not UTF-8", &[0x81, 0xa1, 0xff, 0x01]),
        ("a value not UTF-8", &[0x81, 0xa1, b'x', 0xa2, 0xc3, 0x28]),
        (
            "a nested key not UTF-8",
            &[0x81, 0xa1, b'x', 0x81, 0xa1, 0x80, 0x01],
        ),
        (
            "a list item not UTF-8",
            &[0x81, 0xa1, b'x', 0x91, 0xa1, 0xfe],
        ),
        (
            "a surrogate in UTF-8",
            &[0x81, 0xa1, b'x', 0xa3, 0xed, 0xa0, 0x80],
        ),
        ("a truncated str", &[0x81, 0xa1, b'x', 0xa5, b'a']),
        ("a truncated u32", &[0x81, 0xa1, b'x', 0xce, 0x01]),
        ("a missing value", &[0x81, 0xa1, b'x']),
        ("a missing entry", &[0x82, 0xa1, b'x', 0x01]),
        ("a short list", &[0x81, 0xa1, b'x', 0x92, 0x01]),
    ];
    for (what, bytes) in refused {
        assert_eq!(scan(bytes), None, "{what}");
        // Each of these is an error of the decode or not a map, so `None`
        // is the only right answer.
        assert!(Codec::MessagePack.decode(bytes, "k").is_err(), "{what}");
    }
    // Accepted by the decode, but refused: trailing bytes (a save could not
    // re-emit them), and serde_json's reserved key prefix (with its
    // `raw_value` feature, such a first key makes the map a JSON text).
    let mut trailing = Codec::MessagePack
        .encode(&super::super::bench_session())
        .unwrap();
    trailing.push(0xc0);
    assert_eq!(scan(&trailing), None);
    assert!(Codec::MessagePack.decode(&trailing, "k").is_ok());
    let raw = map_of(&[("$serde_json::private::RawValue", &json!("[1]"))]);
    assert_eq!(scan(&raw), None);
    let nested_raw = map_of(&[("x", &json!({"$serde_json::private::Number": "1"}))]);
    assert_eq!(scan(&nested_raw), None);
    // A near miss of the prefix is an ordinary name.
    assert!(check(&map_of(&[("$serde_json::privat", &json!(1))])));
}

#[test]
fn hostile_lengths_are_refused_without_work() {
    let cases: &[&[u8]] = &[
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'x', 0x01],
        &[0xde, 0xff, 0xff, 0xa1, b'x', 0x01],
        &[0x81, 0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[
            0x81, 0xa1, b'x', 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k', 0x01,
        ],
        &[0x81, 0xa1, b'x', 0xdc, 0xff, 0xff, 0x01],
        &[0x81, 0xa1, b'x', 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        &[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        // A map of two entries in three bytes: each needs two.
        &[0x81, 0xa1, b'x', 0x82, 0x01, 0x02, 0x03],
    ];
    for bytes in cases {
        assert_eq!(scan(bytes), None, "{bytes:02x?}");
        assert!(Codec::MessagePack.decode(bytes, "k").is_err());
    }
}

#[test]
fn a_repeated_name_keeps_its_last_entry_in_its_place() {
    let bytes = map_of(&[
        ("a", &json!(1)),
        ("b", &json!(2)),
        ("a", &json!([3])),
        ("c", &json!(4)),
        ("b", &json!(5)),
    ]);
    assert!(check(&bytes));
    let fields = scan(&bytes).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str(&bytes)).collect();
    assert_eq!(names, ["a", "c", "b"]);
    assert_eq!(decode(&bytes[fields[0].value.clone()]).unwrap(), json!([3]));
    // Out of order without repeats: every field stays, in stored order.
    let bytes = map_of(&[("z", &json!(1)), ("a", &json!(2)), ("m", &json!(3))]);
    assert!(check(&bytes));
    let fields = scan(&bytes).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str(&bytes)).collect();
    assert_eq!(names, ["z", "a", "m"]);
    // More fields than the pairwise check takes, repeated and unordered.
    let values: Vec<Value> = (0..200).map(|i| json!(i)).collect();
    let names: Vec<String> = (0..200).map(|i| format!("f{}", (i * 7) % 90)).collect();
    let entries: Vec<(&str, &Value)> = names.iter().map(String::as_str).zip(&values).collect();
    let bytes = map_of(&entries);
    assert!(check(&bytes));
    assert_eq!(scan(&bytes).unwrap().len(), 90);
    // The empty map.
    assert_eq!(scan(&[0x80]), Some(vec![]));
}

#[test]
fn nesting_is_refused_where_the_decode_refuses_it() {
    for depth in 95..=104 {
        let full = nested(depth, Some(json!(1)));
        let empty = nested(depth, None);
        // The decode counts every container, the top-level map included,
        // and refuses the MAX_DEPTH + 1-th level.
        assert_eq!(
            Codec::MessagePack.decode(&full, "k").is_ok(),
            depth < MAX_DEPTH,
            "{depth}"
        );
        assert_eq!(
            Codec::MessagePack.decode(&empty, "k").is_ok(),
            depth < MAX_DEPTH,
            "{depth}"
        );
        assert_eq!(check(&full), depth < MAX_DEPTH, "{depth}");
        assert_eq!(check(&empty), depth < MAX_DEPTH, "{depth}");
    }
}

/// One change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Add to the byte (a length or count one off).
    Nudge(usize, i8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), -2..=2i8).prop_map(|(i, d)| Mutation::Nudge(i, d)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    if len == 0 {
        return;
    }
    match *m {
        Mutation::Set(i, b) => bytes[i % len] = b,
        Mutation::Flip(i, bit) => bytes[i % len] ^= 1 << bit,
        Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
        Mutation::Delete(i) => {
            bytes.remove(i % len);
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Nudge(i, d) => bytes[i % len] = bytes[i % len].wrapping_add_signed(d),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, most of them opening a map: a `Some` is always right.
    #[test]
    fn arbitrary_bytes_never_give_a_wrong_answer(
        head in prop::sample::select(vec![
            vec![], vec![0x81], vec![0x82], vec![0x83, 0xa1, b'a'], vec![0xde, 0, 1],
            vec![0xdf, 0, 0, 0, 2], vec![0x81, 0xa1, b'x'],
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        check(&[head, tail].concat());
    }

    /// Valid encodings with a few bytes changed, inserted, removed or cut.
    #[test]
    fn mutated_encodings_never_give_a_wrong_answer(
        data in arb_data(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = Codec::MessagePack.encode(&data).unwrap();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check(&bytes);
    }

    /// Nestings around the limit, then changed.
    #[test]
    fn mutated_deep_nestings_never_give_a_wrong_answer(
        depth in (MAX_DEPTH - 3)..=(MAX_DEPTH + 3),
        inner in prop::option::of(arb_value()),
        mutations in prop::collection::vec(arb_mutation(), 0..3),
    ) {
        let mut bytes = nested(depth, inner);
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check(&bytes);
    }
}

proptest! {
    // Fewer cases than the mutations: valid input is the common case the
    // other tests cover too, and each case builds many nested values (the
    // unit test above covers more fields than the pairwise check takes).
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the encoder writes is scanned, and agrees with the decode.
    #[test]
    fn encoded_sessions_are_scanned(data in arb_data()) {
        let bytes = Codec::MessagePack.encode(&data).unwrap();
        prop_assert!(check(&bytes));
        prop_assert_eq!(scan(&bytes).unwrap().len(), data.len());
    }

    /// Maps written entry by entry, unordered and with repeated names (as
    /// after a save that spliced fields, or by another writer).
    #[test]
    fn hand_built_maps_with_repeats_are_scanned(
        entries in prop::collection::vec(("[a-e]{0,2}|\\PC{0,6}", arb_value()), 0..24)
    ) {
        let refs: Vec<(&str, &Value)> = entries.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let bytes = map_of(&refs);
        prop_assert!(check(&bytes));
        // The last occurrence of each name, in stored order.
        let fields = scan(&bytes).unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str(&bytes)).collect();
        let expected: Vec<&str> = refs
            .iter()
            .enumerate()
            .filter(|(i, (n, _))| !refs[i + 1..].iter().any(|(m, _)| m == n))
            .map(|(_, (n, _))| *n)
            .collect();
        prop_assert_eq!(names, expected);
    }
}

/// Every single-byte change of a small session, checked exhaustively:
/// many of them still scan (a changed digit, letter or length that still
/// fits), and every one that does agrees with the decode.
#[test]
fn every_single_byte_change_of_a_small_session() {
    let data: SessionData = json!({
        "uid": "jd", "n": 7, "f": 1.5, "l": [1, "a", {"k": null}], "m": {"x": -3}
    })
    .as_object()
    .unwrap()
    .clone();
    let bytes = Codec::MessagePack.encode(&data).unwrap();
    let (mut some, mut none) = (0, 0);
    for i in 0..bytes.len() {
        for b in 0..=255u8 {
            let mut changed = bytes.clone();
            changed[i] = b;
            if check(&changed) {
                some += 1;
            } else {
                none += 1;
            }
        }
    }
    assert!(some > 1000 && none > 1000, "some {some}, none {none}");
}

/// The ASCII shortcut of the UTF-8 check agrees with `str::from_utf8` for
/// every length around its word size and every place of a non-ASCII byte.
#[test]
fn the_utf8_check_agrees_with_std() {
    for len in 0..=26 {
        let ascii = vec![b'a'; len];
        assert!(super::is_utf8(&ascii));
        for at in 0..len {
            for odd in [0x80, 0xc3, 0xff, 0x7f] {
                let mut b = ascii.clone();
                b[at] = odd;
                assert_eq!(super::is_utf8(&b), std::str::from_utf8(&b).is_ok());
            }
            if at + 1 < len {
                let mut b = ascii.clone();
                b[at..at + 2].copy_from_slice("é".as_bytes());
                assert!(super::is_utf8(&b));
            }
        }
    }
}

//! Unit tests of the Storable codec: hand-made images, every refusal,
//! hostile lengths, truncation and random input, and round trips.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::ops::*;
use super::*;
use crate::session::SessionData;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn reads_the_image_perl_wrote_for_a_minimal_session() {
    // nfreeze({_session_id => "abc"}) from Storable 3.26.
    let bytes = hex("050b03000000010a036162630000000b5f73657373696f6e5f6964");
    assert_eq!(decode(&bytes).unwrap(), json!({"_session_id": "abc"}));
    // We write the same bytes for the same map.
    let data: SessionData = json!({"_session_id": "abc"}).as_object().unwrap().clone();
    assert_eq!(encode_map(&data).unwrap(), bytes);
}

#[test]
fn any_minor_version_and_the_file_magic_are_accepted() {
    for minor in [0u8, 4, 7, 10, 11, 12, 200] {
        let bytes = [5, minor, SX_BYTE, 128 + 5];
        assert_eq!(decode(&bytes).unwrap(), json!(5));
    }
    assert_eq!(decode(b"pst0\x05\x0b\x05").unwrap(), Value::Null);
}

#[test]
fn bad_headers_are_typed_errors() {
    for bytes in [
        &b""[..],
        b"\x05",
        b"\x04\x0b\x05",
        b"\x07\x0b\x05",
        b"\x03\x0b\x05",
    ] {
        let err = decode(bytes).unwrap_err();
        assert!(
            matches!(
                err.problem,
                Problem::BadHeader(_) | Problem::Truncated { .. }
            ),
            "{bytes:?}: {err}"
        );
    }
}

#[test]
fn unsupported_values_name_opcode_and_offset() {
    let cases: &[(&[u8], u8, usize)] = &[
        // {a => bless({}, "Foo")}: value at offset 7 is SX_BLESS
        (
            b"\x05\x0b\x03\x00\x00\x00\x01\x11\x03Foo\x03\x00\x00\x00\x00",
            SX_BLESS,
            7,
        ),
        (b"\x05\x0b\x02\x00\x00\x00\x01\x1a\x0a\x02{}", SX_CODE, 7),
        (b"\x05\x0b\x0c\x03\x00\x00\x00\x00", SX_TIED_HASH, 2),
        (
            b"\x05\x0b\x02\x00\x00\x00\x02\x04\x02\x00\x00\x00\x00\x00\x00\x00\x00\x02",
            SX_OBJECT,
            13,
        ),
        (b"\x05\x0b\x04\x0a\x01x", SX_REF, 2),
        (b"\x05\x0b\x1b\x02\x00\x00\x00\x00", SX_WEAKREF, 2),
        (b"\x05\x0b\x1d\x03v1.\x0a\x03v1.", SX_VSTRING, 2),
        (b"\x05\x0b\x20\x00\x01x\x00", SX_REGEXP, 2),
        (b"\x05\x0b\x13\x00", SX_HOOK, 2),
        (b"\x05\x0b\x21\x01", SX_LOBJECT, 2),
    ];
    for (bytes, op, offset) in cases {
        let err = decode(bytes).unwrap_err();
        assert_eq!((err.opcode, err.offset), (Some(*op), *offset), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(ops::name(*op)) && text.contains(&format!("offset {offset}")),
            "{text}"
        );
    }
    let err = decode(b"\x05\x0b\x63").unwrap_err();
    assert_eq!(err.problem, Problem::UnknownOpcode);
}

#[test]
fn huge_lengths_in_small_inputs_are_errors_not_allocations() {
    // 4 GiB - 1, 2^31 (negative as Perl's signed length), 2 GiB - 1 element
    // counts / string lengths in tiny inputs. The fuzz target
    // storable_decode asserts the memory side on these (its seeds).
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for op in [SX_ARRAY, SX_HASH, SX_LSCALAR, SX_LUTF8STR] {
        for len in [0xffff_ffffu32, 0x8000_0000, 0x7fff_ffff, 0x0100_0000] {
            let mut b = vec![5, 11, op];
            b.extend_from_slice(&len.to_be_bytes());
            b.resize(100, SX_UNDEF);
            cases.push(b);
        }
    }
    let mut flag = vec![5, 11, SX_FLAG_HASH, 0];
    flag.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    flag.resize(100, 5);
    cases.push(flag);
    // A key length of 4 GiB inside a valid hash entry.
    let mut key = vec![5, 11, SX_HASH, 0, 0, 0, 1, SX_UNDEF];
    key.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
    key.resize(100, b'k');
    cases.push(key);
    for b in cases {
        let err = decode(&b).unwrap_err();
        assert!(
            matches!(
                err.problem,
                Problem::BadLength { .. } | Problem::Truncated { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn depth_is_limited_on_read_and_write() {
    let mut bytes = vec![5, 11];
    for _ in 0..10_000 {
        bytes.extend_from_slice(&[SX_REF, SX_ARRAY, 0, 0, 0, 1]);
    }
    bytes.push(SX_UNDEF);
    let err = decode(&bytes).unwrap_err();
    assert_eq!(
        err.problem,
        Problem::TooDeep {
            limit: crate::session::MAX_DEPTH
        }
    );
    assert_eq!(err.opcode, Some(SX_ARRAY));
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    assert!(matches!(
        encode(&deep).unwrap_err().problem,
        Problem::TooDeep { .. }
    ));
}

#[test]
fn latin1_and_utf8_strings_map_to_the_same_characters() {
    // "caf\xe9" as a byte string and as a UTF-8 string: the same text.
    let bytes_form = b"\x05\x0b\x0a\x04caf\xe9";
    let utf8_form = b"\x05\x0b\x17\x05caf\xc3\xa9";
    assert_eq!(decode(bytes_form).unwrap(), json!("café"));
    assert_eq!(decode(utf8_form).unwrap(), json!("café"));
    // We write the byte form (every char <= U+00FF) ...
    assert_eq!(encode(&json!("café")).unwrap(), bytes_form);
    // ... and UTF-8 beyond Latin-1.
    assert_eq!(
        encode(&json!("€")).unwrap(),
        b"\x05\x0b\x17\x03\xe2\x82\xac"
    );
    // Invalid UTF-8 under the flag is an error, not a lossy string.
    let err = decode(b"\x05\x0b\x17\x01\xff").unwrap_err();
    assert_eq!(
        (err.problem, err.opcode),
        (Problem::InvalidUtf8, Some(SX_UTF8STR))
    );
}

#[test]
fn flagged_hashes_read_utf8_wasutf8_and_skip_placeholders() {
    let mut b = vec![5, 11, SX_FLAG_HASH, SHV_RESTRICTED, 0, 0, 0, 3];
    b.extend_from_slice(&[SX_BYTE, 129, SHV_K_UTF8, 0, 0, 0, 2, 0xc3, 0xa9]); // é => 1
    b.extend_from_slice(&[SX_BYTE, 130, SHV_K_WASUTF8, 0, 0, 0, 1, 0xe8]); // è => 2
    b.extend_from_slice(&[SX_SV_UNDEF, SHV_K_PLACEHOLDER, 0, 0, 0, 1, b'x']);
    assert_eq!(decode(&b).unwrap(), json!({"é": 1, "è": 2}));
    // A key beyond Latin-1 makes us write the flagged form.
    let back = encode(&json!({"€": 1, "a": 2})).unwrap();
    assert_eq!(back[2], SX_FLAG_HASH);
    assert_eq!(decode(&back).unwrap(), json!({"€": 1, "a": 2}));
}

#[test]
fn numbers_keep_their_type() {
    for (n, op) in [
        (json!(0), SX_BYTE),
        (json!(-128), SX_BYTE),
        (json!(127), SX_BYTE),
        (json!(128), SX_NETINT),
        (json!(-129), SX_NETINT),
        (json!(i32::MAX), SX_NETINT),
        (json!(i32::MIN), SX_NETINT),
        (json!(5_000_000_000i64), SX_INTEGER),
        (json!(i64::MIN), SX_INTEGER),
        (json!(1.5), SX_DOUBLE),
        (json!(u64::MAX), SX_SCALAR),
    ] {
        let bytes = encode(&n).unwrap();
        assert_eq!(bytes[2], op, "{n}");
        let back = decode(&bytes).unwrap();
        if op == SX_SCALAR {
            assert_eq!(back, json!(u64::MAX.to_string()));
        } else {
            assert_eq!(back, n);
        }
    }
    // Numeric-looking strings stay strings.
    assert_eq!(
        decode(b"\x05\x0b\x0a\x0a5000000000").unwrap(),
        json!("5000000000")
    );
    assert_eq!(encode(&json!("42")).unwrap()[2], SX_SCALAR);
    // Booleans become Perl's 1 and 0; Perl's immortals read as booleans.
    assert_eq!(decode(&encode(&json!(true)).unwrap()).unwrap(), json!(1));
    assert_eq!(decode(b"\x05\x0b\x0f").unwrap(), json!(true));
    assert_eq!(decode(b"\x05\x0b\x22").unwrap(), json!(true));
    assert_eq!(decode(b"\x05\x0b\x10").unwrap(), json!(false));
    // A NaN double (never written by us) is refused.
    let mut nan = vec![5, 11, SX_DOUBLE];
    nan.extend_from_slice(&f64::NAN.to_le_bytes());
    assert_eq!(decode(&nan).unwrap_err().problem, Problem::NonFinite);
}

#[test]
fn long_strings_use_the_long_opcodes() {
    let s = "x".repeat(256);
    let bytes = encode(&json!(s)).unwrap();
    assert_eq!(&bytes[2..7], &[SX_LSCALAR, 0, 0, 1, 0]);
    assert_eq!(decode(&bytes).unwrap(), json!(s));
    let s = "€".repeat(100);
    let bytes = encode(&json!(s)).unwrap();
    assert_eq!(bytes[2], SX_LUTF8STR);
    assert_eq!(decode(&bytes).unwrap(), json!(s));
}

#[test]
fn the_last_of_duplicate_keys_wins_as_in_perl() {
    // {a => 1, b => 2, a => 3} as Perl could write it: hv_store keeps 3.
    let mut b = vec![5, 11, SX_HASH, 0, 0, 0, 3];
    for (value, key) in [(1u8, b'a'), (2, b'b'), (3, b'a')] {
        b.extend_from_slice(&[SX_BYTE, 128 + value, 0, 0, 0, 1, key]);
    }
    assert_eq!(decode(&b).unwrap(), json!({"a": 3, "b": 2}));
}

#[test]
fn only_the_top_level_reserves_what_it_declares() {
    use super::decode::{NESTED_RESERVE, reserve};
    // Lengths are bounded by the input left before this is asked.
    assert_eq!(reserve(1_000, 0), 1_000);
    assert_eq!(reserve(1_000, 1), NESTED_RESERVE);
    assert_eq!(reserve(1_000, 100), NESTED_RESERVE);
    assert_eq!(reserve(3, 5), 3);
    // A chain of nested lists each declaring as many items as there are
    // bytes after its count (the most the bound lets through) is read to
    // its end and refused there, as before.
    let mut bytes = vec![5, 11, SX_ARRAY, 0, 0, 0, 0];
    let mut counts = vec![3];
    for _ in 0..50 {
        bytes.extend_from_slice(&[SX_REF, SX_ARRAY, 0, 0, 0, 0]);
        counts.push(bytes.len() - 4);
    }
    let total = bytes.len();
    for at in counts {
        let left = u32::try_from(total - at - 4).unwrap();
        bytes[at..at + 4].copy_from_slice(&left.to_be_bytes());
    }
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err.problem, Problem::Truncated { needed: 1 }, "{err}");
}

#[test]
fn trailing_bytes_are_refused() {
    let err = decode(b"\x05\x0b\x05\x05").unwrap_err();
    assert_eq!(
        (err.problem, err.offset),
        (Problem::TrailingBytes { count: 1 }, 3)
    );
}

#[test]
fn every_truncation_of_a_rich_image_is_an_error() {
    let value = json!({
        "s": "x".repeat(300), "u": "ü€", "n": [1, -200, 70000, 5_000_000_000i64, 1.25, null],
        "h": {"€": {"deep": [[{}]]}}, "t": 1
    });
    let bytes = encode(&value).unwrap();
    assert_eq!(decode(&bytes).unwrap(), value);
    for end in 0..bytes.len() {
        assert!(decode(&bytes[..end]).is_err(), "prefix of {end} bytes");
    }
}

/// Values our encoder keeps exactly: every JSON value except integers
/// above `i64::MAX` (written as their decimal string, as Perl does).
fn arb_storable_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        (-300i64..300).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        "[\\x00-\\xff]{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn round_trips(data in prop::collection::btree_map("\\PC{0,10}", arb_storable_value(), 0..8)) {
        let data: SessionData = data.into_iter().collect();
        let bytes = encode_map(&data).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), Value::Object(data));
    }

    #[test]
    fn random_input_is_an_error_or_a_value_never_a_panic(
        body in prop::collection::vec(any::<u8>(), 0..200),
        header in prop::sample::select(vec![vec![], vec![5u8, 11], b"pst0\x05\x0b".to_vec()]),
    ) {
        let mut bytes = header;
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_images_never_panic(
        value in arb_storable_value(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&value).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let _ = decode(&bytes);
    }
}

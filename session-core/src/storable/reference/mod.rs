//! The codec as it was before issue #27's rewrite, for the tests only:
//! the new encoder must write the same bytes and the new decoder must
//! accept and refuse exactly what these did (same value, same error with
//! the same offset), which the property tests below check.

pub(super) mod decode;
pub(super) mod encode;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::ops::*;

/// Strings of every kind the encoder tells apart: ASCII, Latin-1 beyond
/// ASCII, beyond Latin-1, and long enough for the 4-byte length forms.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,12}",
        "[\\x00-\\xff]{0,20}",
        "\\PC{0,20}",
        "[a-zé€]{250,300}",
    ]
}

/// Every JSON value, including what the encoder changes (booleans, u64
/// above `i64::MAX`), nested a few levels.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-300i64..70_000).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_session() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(arb_text(), arb_value(), 0..12)
        .prop_map(|m| m.into_iter().collect())
}

/// A hash entry as Perl may write it: any key bytes, any key flags (in a
/// flagged hash), a value image of ours.
fn arb_entry() -> impl Strategy<Value = (Vec<u8>, u8, Vec<u8>)> {
    let key = prop_oneof![
        "[a-z]{0,6}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..6),
    ];
    let flags = prop::sample::select(vec![
        0,
        SHV_K_UTF8,
        SHV_K_WASUTF8,
        SHV_K_LOCKED,
        SHV_K_ISSV,
        SHV_K_PLACEHOLDER,
    ]);
    // The value's image without its 2-byte header.
    let value = arb_value().prop_filter_map("encodable", |v| {
        super::encode(&v).ok().map(|image| image[2..].to_vec())
    });
    (key, flags, value)
}

/// A hash image with the entries in the given order, duplicates and all
/// (Perl writes its hash order, not ours).
fn hash_image(flagged: bool, entries: &[(Vec<u8>, u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![5, 11];
    if flagged {
        out.extend_from_slice(&[SX_FLAG_HASH, 0]);
    } else {
        out.push(SX_HASH);
    }
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (key, flags, value) in entries {
        out.extend_from_slice(value);
        if flagged {
            out.push(*flags);
        }
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

proptest! {
    #[test]
    fn encode_writes_the_bytes_the_old_encoder_wrote(data in arb_session()) {
        prop_assert_eq!(super::encode_map(&data), encode::encode_map(&data));
        let value = Value::Object(data);
        prop_assert_eq!(super::encode(&value), encode::encode(&value));
    }

    #[test]
    fn encode_of_any_value_is_the_old_one(value in arb_value()) {
        prop_assert_eq!(super::encode(&value), encode::encode(&value));
    }

    #[test]
    fn decode_of_our_images_is_the_old_one(data in arb_session()) {
        let bytes = super::encode_map(&data).unwrap();
        let new = super::decode(&bytes);
        prop_assert_eq!(&new, &decode::decode(&bytes));
        prop_assert!(new.is_ok());
    }

    #[test]
    fn decode_of_perl_ordered_hashes_is_the_old_one(
        entries in prop::collection::vec(arb_entry(), 0..10),
        flagged in any::<bool>(),
        repeat in any::<prop::sample::Index>(),
    ) {
        let mut entries = entries;
        // A duplicate key now and then, with another value: the last wins.
        if let Some(first) = entries.first().cloned() {
            let at = repeat.index(entries.len() + 1);
            entries.insert(at, (first.0, first.1, vec![SX_BYTE, 200]));
        }
        let bytes = hash_image(flagged, &entries);
        prop_assert_eq!(super::decode(&bytes), decode::decode(&bytes));
    }

    #[test]
    fn decode_of_damaged_images_is_the_old_one(
        value in arb_value(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = super::encode(&value).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        prop_assert_eq!(super::decode(&bytes), decode::decode(&bytes));
        let end = cut.index(bytes.len() + 1);
        prop_assert_eq!(super::decode(&bytes[..end]), decode::decode(&bytes[..end]));
    }

    #[test]
    fn decode_of_random_bytes_is_the_old_one(
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![5, 11];
        bytes.extend_from_slice(&body);
        prop_assert_eq!(super::decode(&bytes), decode::decode(&bytes));
    }
}

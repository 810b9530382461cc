//! Round trips through real Perl: Perl -> Rust -> Perl keeps every string
//! `eq` (Latin-1 bytes and UTF-8 text alike) and every scalar's kind, and
//! what Rust writes, Perl's `thaw` reads as the same data.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use session_core::storable;

use super::golden::vectors;
use super::run_perl_script;

/// Runs `perl_compare.pl` on the cases and fails on any "not ok".
fn perl_compare(cases: &[(String, &str, Vec<u8>, Vec<u8>)]) {
    let input: String = cases
        .iter()
        .map(|(name, mode, image, expected)| {
            format!(
                "{name}\t{mode}\t{}\t{}\n",
                hex::encode(image),
                hex::encode(expected)
            )
        })
        .collect();
    let out = run_perl_script("perl_compare.pl", &input);
    let failures: Vec<&str> = out.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        failures.is_empty(),
        "Perl disagrees:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        out.lines().count(),
        cases.len(),
        "one answer per case:\n{out}"
    );
}

#[test]
fn perl_to_rust_to_perl_keeps_every_string_eq() {
    // Every value vector Perl wrote: we decode it, encode it again, and
    // Perl compares its thaw of our bytes with its thaw of its own.
    let mut cases = Vec::new();
    for v in vectors() {
        let Ok(_) = v.expected else { continue };
        let mut image = v.image();
        let value = storable::decode(&image).unwrap();
        let ours = storable::encode(&value).unwrap();
        if image.starts_with(b"pst0") {
            image.drain(..4); // thaw takes images, not nstore files
        }
        cases.push((v.name.clone(), "storable", ours, image));
    }
    // The cases the mapping is about must be among them.
    for name in [
        "latin1_bytes",
        "utf8_strings",
        "utf8_keys",
        "undecoded_utf8_bytes",
    ] {
        assert!(cases.iter().any(|c| c.0 == name), "{name}");
    }
    perl_compare(&cases);
}

/// Rust values Perl must thaw as the same data (JSON::PP reads the
/// expectation; true/false are expected as 1/0).
fn handpicked() -> Vec<(&'static str, Value)> {
    vec![
        (
            "latin1_text",
            json!({"cafe": "café", "naive": "naïve", "city": "São Paulo", "all": (0u8..=255).map(char::from).collect::<String>()}),
        ),
        (
            "utf8_text",
            json!({"euro": "12 €", "cjk": "日本語", "emoji": "😀", "mixed": "é€"}),
        ),
        ("keys", json!({"clé": 1, "€": 2, "日本": "語", "": 3})),
        (
            "integers",
            json!({"a": 0, "b": -128, "c": 127, "d": 128, "e": -129, "f": 2147483647, "g": -2147483648,
                   "h": 2147483648i64, "i": 5000000000i64, "j": i64::MAX, "k": i64::MIN}),
        ),
        (
            "floats",
            json!({"a": 1.5, "b": -0.25, "c": 1e100, "d": 0.1, "e": 2.0}),
        ),
        (
            "strings_that_look_like_numbers",
            json!({"a": "42", "b": "007", "c": "1.50", "d": "5000000000"}),
        ),
        (
            "structure",
            json!({"_session_id": "d4528a1f3b7e2c9d0e1f2a3b4c5d427a", "list": [1, [2, [3, {}]], null],
                   "prefs": {"lang": "fr", "n": null}, "flag": true, "off": false, "empty": []}),
        ),
        (
            "long",
            json!({"bytes": "x".repeat(300), "latin": "é".repeat(300), "utf8": "€".repeat(300), "big": "q".repeat(70_000)}),
        ),
    ]
}

/// Random session maps: no integers above i64::MAX (Perl would see a
/// string, as it writes them) and no booleans (they become 1/0).
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        (-200i64..200).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\xff]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn rust_writes_perl_thaws_the_same_data() {
    let mut cases = Vec::new();
    for (name, value) in handpicked() {
        let image = storable::encode(&value).unwrap();
        cases.push((
            name.to_owned(),
            "json",
            image,
            value.to_string().into_bytes(),
        ));
    }
    let strategy = prop::collection::btree_map("\\PC{0,8}", arb_value(), 0..6);
    let mut runner = TestRunner::deterministic();
    for i in 0..300 {
        let data: serde_json::Map<String, Value> = strategy
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .into_iter()
            .collect();
        let image = storable::encode_map(&data).unwrap();
        let text = Value::Object(data).to_string().into_bytes();
        cases.push((format!("random{i}"), "json", image, text));
    }
    perl_compare(&cases);
}

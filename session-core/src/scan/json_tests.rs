//! The JSON scanner against the full decode: whenever the scan answers, the
//! full decode must agree field by field; encodings we write must always
//! scan; the edge cases serde_json decides are asked of it.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::codec::tests::{arb_data, arb_value};
use crate::codec::{Codec, depth};
use crate::session::SessionData;

/// Checks a scan against the full decode: when the scan answers, the full
/// decode succeeds, gives an object, and every field's value span decodes
/// alone to that object's value; the names are the object's keys, each
/// once, in the order of their last entries; each entry is `"name":value`
/// on its own. Returns whether the scan answered.
fn agrees(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let Some(fields) = scan(bytes) else {
        return Ok(false);
    };
    let eager = serde_json::from_slice::<Value>(bytes);
    prop_assert!(
        eager.is_ok(),
        "scanned, but the full decode fails: {eager:?}"
    );
    let Ok(Value::Object(map)) = eager else {
        return Err(TestCaseError::fail("scanned, but the top level is no map"));
    };
    prop_assert_eq!(fields.len(), map.len(), "one field per name");
    let mut previous_end = 0;
    for f in &fields {
        let name = f.name.as_str(bytes);
        prop_assert!(f.name.is(bytes, name));
        if let RawName::Span(r) = &f.name {
            prop_assert!(std::str::from_utf8(&bytes[r.clone()]).is_ok());
        }
        let value: Value = serde_json::from_slice(&bytes[f.value.clone()])
            .map_err(|e| TestCaseError::fail(format!("value span of {name:?}: {e}")))?;
        prop_assert_eq!(Some(&value), map.get(name), "field {:?}", name);
        // The entry is the field alone: wrapped in braces it is a map of it.
        prop_assert_eq!(f.entry.end, f.value.end);
        prop_assert!(f.entry.start >= previous_end, "fields out of order");
        previous_end = f.entry.end;
        let mut one = b"{".to_vec();
        one.extend_from_slice(&bytes[f.entry.clone()]);
        one.push(b'}');
        let one: Value = serde_json::from_slice(&one)
            .map_err(|e| TestCaseError::fail(format!("entry of {name:?}: {e}")))?;
        prop_assert_eq!(one, json!({ name: value }));
    }
    Ok(true)
}

/// [`agrees`] for unit tests: panics on disagreement.
fn check(bytes: &[u8]) -> bool {
    agrees(bytes).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(bytes)))
}

/// The map rebuilt from a scan's spans, decoding each value alone.
fn rebuilt(bytes: &[u8], fields: &RawFields) -> SessionData {
    fields
        .iter()
        .map(|f| {
            let value = serde_json::from_slice(&bytes[f.value.clone()]).unwrap();
            (f.name.as_str(bytes).to_owned(), value)
        })
        .collect()
}

/// A JSON writer that puts random whitespace wherever JSON allows it and
/// writes characters of strings (names included) raw or escaped at random
/// (short escapes, `\u` in either case, surrogate pairs).
struct Noisy(u64);

impl Noisy {
    fn roll(&mut self, n: u64) -> u64 {
        // xorshift64: deterministic from the proptest-given seed.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn ws(&mut self, out: &mut String) {
        for _ in 0..self.roll(4) {
            out.push([' ', '\t', '\n', '\r'][self.roll(4) as usize]);
        }
    }

    fn hex(&mut self, out: &mut String, unit: u32) {
        if self.roll(2) == 0 {
            out.push_str(&format!("\\u{unit:04x}"));
        } else {
            out.push_str(&format!("\\u{unit:04X}"));
        }
    }

    fn string(&mut self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            let must_escape = matches!(c, '"' | '\\') || c < ' ';
            match self.roll(3) {
                0 if !must_escape => out.push(c),
                1 if short.is_some() => out.push_str(short.unwrap_or_default()),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        self.hex(out, u32::from(*unit));
                    }
                }
            }
        }
        out.push('"');
    }

    fn value(&mut self, v: &Value, out: &mut String) {
        match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&v.to_string()),
            Value::String(s) => self.string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.ws(out);
                    if i > 0 {
                        out.push(',');
                        self.ws(out);
                    }
                    self.value(item, out);
                }
                self.ws(out);
                out.push(']');
            }
            Value::Object(map) => self.map(map, out),
        }
    }

    fn map(&mut self, map: &serde_json::Map<String, Value>, out: &mut String) {
        out.push('{');
        for (i, (k, item)) in map.iter().enumerate() {
            self.ws(out);
            if i > 0 {
                out.push(',');
                self.ws(out);
            }
            self.string(k, out);
            self.ws(out);
            out.push(':');
            self.ws(out);
            self.value(item, out);
        }
        self.ws(out);
        out.push('}');
    }

    fn document(&mut self, map: &SessionData) -> String {
        let mut out = String::new();
        self.ws(&mut out);
        self.map(map, &mut out);
        self.ws(&mut out);
        out
    }
}

/// Numbers whose verdict is serde_json's: valid, out of range or malformed.
const NUMBERS: &str = "0 -0 1.0 -0.0 1e400 -1e400 1e-400 1E308 1.7976931348623157e308 \
    1.7976931348623159e308 2.2250738585072014e-308 5e-324 999999999999999999 \
    9999999999999999999 18446744073709551615 18446744073709551616 -9223372036854775808 \
    -9223372036854775809 123456789012345678901234567890 0.1e+2 1E-2 01 -01 1. .5 - --1 +1 \
    1e 1e+ 1.e3 0x10 1_000 NaN Infinity";

fn numbers() -> Vec<&'static str> {
    NUMBERS.split_whitespace().collect()
}

/// One change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// A copy of field `.0`'s entry, with its own value or `0`, first or last.
    Duplicate(usize, bool, bool),
    /// A field whose value is one of [`numbers`].
    Number(usize),
    /// A field `n` levels deep: lists or maps, the innermost empty or not.
    Deep(usize, bool, bool),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let deep = prop::sample::select(vec![1usize, 98, 99, 100, 101, 126, 127, 128, 129]);
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, same, first)| Mutation::Duplicate(i, same, first)),
        (0..numbers().len()).prop_map(Mutation::Number),
        (deep, any::<bool>(), any::<bool>())
            .prop_map(|(n, maps, empty)| Mutation::Deep(n, maps, empty)),
    ]
}

/// `n` nested lists (or maps, under the key "k") around `1`, or with the
/// innermost of them empty when `empty` (`n` >= 1).
fn nested(n: usize, maps: bool, empty: bool) -> String {
    let (open, close, none) = if maps {
        ("{\"k\":", "}", "{}")
    } else {
        ("[", "]", "[]")
    };
    if empty {
        format!("{}{none}{}", open.repeat(n - 1), close.repeat(n - 1))
    } else {
        format!("{}1{}", open.repeat(n), close.repeat(n))
    }
}

/// Puts a new entry into a map's encoding, first or last.
fn with_entry(bytes: &[u8], entry: &[u8], first: bool) -> Vec<u8> {
    let empty = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.is_empty()))
        .unwrap_or(false);
    let sep: &[u8] = if empty { b"" } else { b"," };
    if first {
        let at = bytes.iter().position(|&b| b == b'{').map_or(0, |p| p + 1);
        [&bytes[..at], entry, sep, &bytes[at..]].concat()
    } else {
        let at = bytes
            .iter()
            .rposition(|&b| b == b'}')
            .unwrap_or(bytes.len());
        [&bytes[..at], sep, entry, &bytes[at..]].concat()
    }
}

fn mutate(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let len = bytes.len();
    match *m {
        Mutation::Flip(at, bits) => {
            if len > 0 {
                bytes[at % len] ^= bits;
            }
            bytes
        }
        Mutation::Insert(at, b) => {
            bytes.insert(at % (len + 1), b);
            bytes
        }
        Mutation::Delete(at) => {
            if len > 0 {
                bytes.remove(at % len);
            }
            bytes
        }
        Mutation::Truncate(at) => {
            bytes.truncate(at % (len + 1));
            bytes
        }
        Mutation::Duplicate(i, same, first) => {
            let Some(fields) = scan(&bytes).filter(|f| !f.is_empty()) else {
                return bytes;
            };
            let f = &fields[i % fields.len()];
            let entry = if same {
                bytes[f.entry.clone()].to_vec()
            } else {
                [&bytes[f.entry.start..f.value.start], b"0"].concat()
            };
            with_entry(&bytes, &entry, first)
        }
        Mutation::Number(i) => {
            with_entry(&bytes, format!("\"n\":{}", numbers()[i]).as_bytes(), true)
        }
        Mutation::Deep(n, maps, empty) => with_entry(
            &bytes,
            format!("\"deep\":{}", nested(n, maps, empty)).as_bytes(),
            false,
        ),
    }
}

proptest! {
    /// Whatever we encode scans, and the spans give back the map.
    #[test]
    fn our_encodings_always_scan(data in arb_data()) {
        let bytes = Codec::Json.encode(&data).unwrap();
        prop_assert!(agrees(&bytes)?, "{}", String::from_utf8_lossy(&bytes));
        let fields = scan(&bytes).unwrap();
        prop_assert_eq!(rebuilt(&bytes, &fields), data);
        // serde_json escapes only quotes, backslashes and control bytes.
        for f in &fields {
            let name = f.name.as_str(&bytes);
            let plain = !name.contains(['"', '\\']);
            prop_assert_eq!(matches!(f.name, RawName::Span(_)), plain, "{:?}", name);
        }
    }

    /// Other writers' whitespace and escapes (names included) scan too.
    #[test]
    fn noisy_and_pretty_encodings_scan(data in arb_data(), seed in 1..u64::MAX) {
        let text = Noisy(seed).document(&data);
        prop_assert!(agrees(text.as_bytes())?, "{}", text);
        prop_assert_eq!(rebuilt(text.as_bytes(), &scan(text.as_bytes()).unwrap()), data.clone());
        let pretty = serde_json::to_vec_pretty(&data).unwrap();
        prop_assert!(agrees(&pretty)?);
        prop_assert_eq!(rebuilt(&pretty, &scan(&pretty).unwrap()), data);
    }

    /// A field whose value is any value scans, nested in lists or maps.
    #[test]
    fn any_field_value_scans(value in arb_value(), seed in 1..u64::MAX) {
        let data: SessionData = [("v".to_owned(), json!([value.clone(), {"x": value}]))]
            .into_iter()
            .collect();
        let text = Noisy(seed).document(&data);
        prop_assert!(agrees(text.as_bytes())?, "{}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Broken, duplicated, out-of-range and too deep versions of valid
    /// encodings: whenever the scan answers, it agrees with the full decode.
    #[test]
    fn mutations_never_fool_the_scan(
        data in arb_data(),
        seed in 1..u64::MAX,
        noisy in any::<bool>(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = if noisy {
            Noisy(seed).document(&data).into_bytes()
        } else {
            Codec::Json.encode(&data).unwrap()
        };
        for m in &mutations {
            bytes = mutate(bytes, m);
        }
        agrees(&bytes)?;
    }

    /// Arbitrary bytes: the scan answers only when the full decode agrees.
    #[test]
    fn arbitrary_bytes_never_fool_the_scan(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        agrees(&bytes)?;
    }

    /// Text made of JSON's own characters, more often almost valid.
    #[test]
    fn json_like_text_never_fools_the_scan(
        text in "\\{[ \\t{}\\[\\]\":,0-9eE.+\\-tfnrulsau\\\\]{0,40}",
    ) {
        agrees(text.as_bytes())?;
    }
}

#[test]
fn the_bench_session_scans_with_spans() {
    let data = super::super::bench_session();
    let bytes = Codec::Json.encode(&data).unwrap();
    assert!(check(&bytes));
    let fields = scan(&bytes).unwrap();
    assert_eq!(fields.len(), 10);
    assert_eq!(rebuilt(&bytes, &fields), data);

    let bytes = br#" {"uid" : "x", "n":12}"#;
    let fields = scan(bytes).unwrap();
    assert_eq!(
        fields,
        vec![
            RawField {
                name: RawName::Span(3..6),
                entry: 2..13,
                value: 10..13,
            },
            RawField {
                name: RawName::Span(16..17),
                entry: 15..21,
                value: 19..21,
            },
        ]
    );
}

#[test]
fn empty_maps_and_whitespace() {
    for text in ["{}", " \t\r\n{ \n }\r\n\t ", "{\"a\":1} \n\t\r"] {
        assert!(check(text.as_bytes()), "{text:?}");
    }
    assert_eq!(scan(b"{}"), Some(vec![]));
    // Not JSON's whitespace (form feed, vertical tab, NBSP), or garbage.
    for text in [
        "{}\u{c}", "\u{b}{}", "{\u{a0}}", "{} x", "{}}", "{},", "{}{}",
    ] {
        assert_eq!(scan(text.as_bytes()), None, "{text:?}");
        assert!(serde_json::from_slice::<Value>(text.as_bytes()).is_err());
    }
}

#[test]
fn only_a_map_at_the_top_level() {
    for text in [
        "[1,2]", "[]", "\"a\"", "1", "null", "true", "", " ", "{", "}",
    ] {
        assert_eq!(scan(text.as_bytes()), None, "{text:?}");
    }
    // A byte order mark is no whitespace for serde_json either.
    assert!(!check("\u{feff}{}".as_bytes()));
}

#[test]
fn numbers_get_serde_jsons_verdict() {
    for n in numbers() {
        let text = format!("{{\"n\":{n}}}");
        let eager = serde_json::from_str::<Value>(&text);
        assert_eq!(check(text.as_bytes()), eager.is_ok(), "{n}: {eager:?}");
        // Nested, the same verdict.
        let text = format!("{{\"n\":[{{\"m\":{n}}}]}}");
        assert_eq!(check(text.as_bytes()), eager.is_ok(), "{n}");
    }
    // The named edge cases, pinned: out of range refused, the rest kept.
    assert!(!check(br#"{"n":1e400}"#));
    assert!(!check(br#"{"n":123456789012345678901234567890e300}"#));
    for ok in [
        "1e-400",
        "-0",
        "1.0",
        "999999999999999999",
        "9999999999999999999",
        "99999999999999999999",
        "18446744073709551616",
    ] {
        assert!(check(format!("{{\"n\":{ok}}}").as_bytes()), "{ok}");
    }
    let bytes = br#"{"n":-0}"#;
    let fields = scan(bytes).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes[fields[0].value.clone()]).unwrap(),
        serde_json::from_slice::<Value>(b"-0").unwrap()
    );
}

#[test]
fn strings_and_escapes() {
    // Refused by serde_json, and so by the scan.
    for text in [
        "{\"a\":\"\t\"}",
        "{\"a\":\"\n\"}",
        "{\"a\":\"\u{1f}\"}",
        "{\"a\u{0}\":1}",
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00"}"#,
        r#"{"a":"\ud800x"}"#,
        r#"{"a":"\ud800\n"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"\ud800":1}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\u12g4"}"#,
        r#"{"a":"\"}"#,
        r#"{"a":"abc}"#,
        r#"{a:1}"#,
        r#"{'a':1}"#,
    ] {
        assert_eq!(scan(text.as_bytes()), None, "{text:?}");
        assert!(
            serde_json::from_str::<Value>(text).is_err(),
            "serde_json takes {text:?}"
        );
    }
    // Invalid UTF-8, in a value and in a name.
    for bytes in [
        &b"{\"a\":\"\xff\"}"[..],
        b"{\"\xc3\":1}",
        b"{\"a\":\"\xed\xa0\x80\"}",
    ] {
        assert_eq!(scan(bytes), None);
        assert!(serde_json::from_slice::<Value>(bytes).is_err());
    }
    // Kept, and right: escapes in values and names, a pair, NUL, DEL, UTF-8.
    for text in [
        r#"{"a":"\u0000"}"#,
        r#"{"a":"\ud83d\ude00","b":"\uD83D\uDE00x"}"#,
        r#"{"\ud83d\ude00":1}"#,
        r#"{"\u0000":1}"#,
        r#"{"a":"\"\\\/\b\f\n\r\t\u00e9\uFFFF"}"#,
        "{\"\u{7f}\":\"\u{7f}é漢😀\"}",
        r#"{"":""}"#,
    ] {
        assert!(check(text.as_bytes()), "{text:?}");
    }
    let fields = scan(br#"{"\ud83d\ude00":1,"a\"b":2,"\u0000":3}"#).unwrap();
    let names: Vec<RawName> = fields.into_iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            RawName::Owned("😀".into()),
            RawName::Owned("a\"b".into()),
            RawName::Owned("\0".into()),
        ]
    );
    // Long strings cross the eight-byte words at every offset.
    for pad in 0..17 {
        let p = "p".repeat(pad);
        for tail in ["\\n", "\\u00e9", "é", "\\\"", "\t"] {
            let text = format!("{{\"{p}\":\"{p}{tail}{p}\"}}");
            let eager = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(check(text.as_bytes()), eager, "{text:?}");
        }
    }
}

#[test]
fn duplicate_names_keep_the_last_entry() {
    let bytes = br#"{"a":1,"b":2,"a":3}"#;
    assert!(check(bytes));
    let fields = scan(bytes).unwrap();
    assert_eq!(fields.len(), 2);
    assert!(fields[0].name.is(bytes, "b"));
    assert!(fields[1].name.is(bytes, "a"));
    assert_eq!(&bytes[fields[1].value.clone()], b"3");
    // The same name, escaped or not.
    for text in [
        r#"{"a":1,"\u0061":2}"#,
        r#"{"\u0061":1,"a":2}"#,
        r#"{"\/":1,"/":2}"#,
    ] {
        assert!(check(text.as_bytes()), "{text}");
        let fields = scan(text.as_bytes()).unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(&text.as_bytes()[fields[0].value.clone()], b"2");
    }
    // Many fields (the hashed path), with duplicates spread over them.
    let mut text = String::from("{");
    for i in 0..200 {
        text.push_str(&format!("\"f{}\":{i},", i % 70));
    }
    text.push_str("\"f3\":\"last\"}");
    assert!(check(text.as_bytes()));
    let fields = scan(text.as_bytes()).unwrap();
    assert_eq!(fields.len(), 70);
    let last = fields.last().unwrap();
    assert!(last.name.is(text.as_bytes(), "f3"));
}

#[test]
fn nesting_is_refused_exactly_where_the_encoder_refuses_it() {
    for n in [1, 2, 98, 99, 100, 101, 126, 127, 128, 129] {
        for maps in [false, true] {
            for empty in [false, true] {
                let text = format!("{{\"deep\":{},\"b\":1}}", nested(n, maps, empty));
                let eager = serde_json::from_str::<Value>(&text);
                let expected = match &eager {
                    Ok(v) => depth(&v["deep"]) < MAX_DEPTH,
                    Err(_) => false,
                };
                assert_eq!(check(text.as_bytes()), expected, "{n} {maps} {empty}");
            }
        }
    }
    // The deepest the encoder writes scans; one more level does not.
    let mut deep = json!(1);
    for _ in 0..MAX_DEPTH - 1 {
        deep = json!([deep]);
    }
    let data: SessionData = [("deep".to_owned(), deep.clone())].into_iter().collect();
    assert!(check(&Codec::Json.encode(&data).unwrap()));
    let text = format!("{{\"deep\":[{deep}]}}");
    assert!(!check(text.as_bytes()));
}

#[test]
fn broken_structure_is_refused() {
    let broken = r#"{"a":1,} | {"a":[1,]} | {"a":[1 2]} | {"a":{"b"}} | {"a":{"b":}} | {"a":{1:2}}
        | {"a":[1} | {"a":{"b":1]} | {"a":tru} | {"a":truex} | {"a":nul} | {"a" 1} | {"a":1 "b":2}
        | {,"a":1} | {"a":} | {"a":1 | {"a":[1 | {"a": | {"a""#;
    let broken: Vec<&str> = broken.split(" | ").map(str::trim).collect();
    assert_eq!(broken.len(), 19);
    for text in broken {
        assert_eq!(scan(text.as_bytes()), None, "{text:?}");
        assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
    }
    for text in [
        r#"{"a":[true,false,null,[],{},[[]],{"b":{}},"s",-1.5e-3]}"#,
        r#"{"a" : [ 1 , { "b" : [ ] } ] , "c":{ } }"#,
    ] {
        assert!(check(text.as_bytes()), "{text:?}");
    }
}

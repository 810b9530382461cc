//! Fuzz target: SOAP values, printed and parsed back (parse∘print).
//!
//! An arbitrary session value is written by `soap::encode::response` (what
//! the bridge answers), read back by `soap::parse::parse_tree` and
//! `to_value` (what the bridge reads), and must come back as the encoder's
//! module table promises: an empty map as `''` (SOAP::Lite's reading), a
//! string with characters XML cannot carry as the Latin-1 of its UTF-8
//! bytes; everything else unchanged. One shape is ambiguous on the wire
//! and skipped: a struct whose only field is `item` holding exactly `key`
//! and `value` reads as an `apachens:Map`, as SOAP::Lite reads it.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::value;
use serde_json::{Map, Value};
use soap_bridge::soap::encode::response;
use soap_bridge::soap::parse::{latin1, parse_tree, to_value};

fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// What the bridge's encoder and reader make of `v`; `None` when the wire
/// form is ambiguous (see the module docs).
fn expected(v: &Value) -> Option<Value> {
    Some(match v {
        Value::String(s) => {
            let plain = s.chars().all(|c| u32::from(c) <= 0xff) || s.chars().all(xml_char);
            if plain {
                v.clone()
            } else {
                Value::String(latin1(s.as_bytes()))
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(expected).collect::<Option<_>>()?),
        Value::Object(m) if m.is_empty() => Value::String(String::new()),
        Value::Object(m) => {
            if m.len() == 1
                && let Some(Value::Object(inner)) = m.get("item")
                && inner.len() == 2
                && inner.contains_key("key")
                && inner.contains_key("value")
            {
                return None;
            }
            let mut out = Map::new();
            for (k, item) in m {
                out.insert(k.clone(), expected(item)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(v) = value(&mut u, 0) else {
        return;
    };
    let Some(want) = expected(&v) else {
        return;
    };
    let xml = response("getSession", Some(&v));
    let root = parse_tree(&xml)
        .unwrap_or_else(|f| panic!("our own response does not parse: {f:?}\n{xml}"));
    let result = root
        .children
        .first()
        .and_then(|body| body.children.first())
        .and_then(|wrapper| wrapper.children.first())
        .unwrap_or_else(|| panic!("no result element in {xml}"));
    let got = to_value(result)
        .unwrap_or_else(|f| panic!("our own result does not convert: {f:?}\n{xml}"));
    assert_eq!(got, want, "{xml}");
});

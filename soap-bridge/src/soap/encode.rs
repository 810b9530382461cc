//! Writing responses the way the original's SOAP::Lite server wrote them:
//! the same prefixes (`soap`, `soapenc`, `xsd`, `xsi`, and `apachens` only
//! when a Map is present), `soap:encodingStyle` on the Envelope, attributes
//! sorted by name, the result wrapped in `<{op}Response
//! xmlns="urn:MemcachedSOAPClass">`, no newline before or after the Envelope.
//!
//! One difference: the original named its result element `s-gensymN` (a
//! counter); ours is `<result xmlns="">`, the part name our WSDL declares.
//! SOAP::Lite (and other RPC clients) read the first child whatever its
//! name; WSDL-driven clients such as zeep need the declared, unqualified name.
//!
//! Types of values (what a SOAP::Lite client decodes back to the same Perl
//! data, and what typed clients such as zeep read naturally):
//!
//! | session value | written as |
//! |---|---|
//! | string of printable ASCII (tab, LF, CR, 0x20–0x7f) | `xsd:string` (CR as `&#xD;` so it survives) |
//! | string with other code points, all ≤ 0xFF | `xsd:base64Binary` of those bytes (Latin-1), like the original |
//! | string with code points > 0xFF | `xsd:string`, UTF-8 text (`xsd:base64Binary` of its UTF-8 if it holds characters XML cannot carry) |
//! | integer | `xsd:int` in 32-bit range, else `xsd:long` (`xsd:unsignedLong` above 2^63−1) |
//! | other number | `xsd:float` with the shortest exact text |
//! | boolean | `xsd:boolean` |
//! | null | `xsi:nil="true"` |
//! | list | `soapenc:Array`, `arrayType` the items' common type or `xsd:anyType` |
//! | map whose keys are all valid element names (SOAP::Lite's rule) | a struct: one child per key |
//! | any other map | `apachens:Map`, items sorted by key |
//! | empty map | an empty element (SOAP::Lite decodes it to `''`, as the original's missing session) |

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// The XML declaration and Envelope around `body` (the content of
/// `soap:Body`). `apachens` declares the Map namespace.
pub fn envelope(body: &str, apachens: bool) -> String {
    let mut out = String::with_capacity(body.len() + 420);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope \
         soap:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"",
    );
    if apachens {
        out.push_str(" xmlns:apachens=\"http://xml.apache.org/xml-soap\"");
    }
    out.push_str(
        " xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soap:Body>",
    );
    out.push_str(body);
    out.push_str("</soap:Body></soap:Envelope>");
    out
}

/// The response to `method`: `result` as the one `<result xmlns="">`
/// element, or an empty wrapper for operations without a result.
pub fn response(method: &str, result: Option<&Value>) -> String {
    let mut body = String::new();
    let mut apachens = false;
    let _ = write!(body, "<{method}Response xmlns=\"urn:MemcachedSOAPClass\">");
    if let Some(value) = result {
        let start = body.len() + "<result".len();
        write_value(&mut body, "result", value, &mut apachens);
        body.insert_str(start, " xmlns=\"\"");
    }
    let _ = write!(body, "</{method}Response>");
    envelope(&body, apachens)
}

/// Escapes text content: `&`, `<`, `>`, and CR (which XML parsers would turn
/// into LF). `"` stays literal, as SOAP::Lite writes it.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `value` as the element `name`.
pub fn write_value(out: &mut String, name: &str, value: &Value, apachens: &mut bool) {
    match value {
        Value::Null => {
            let _ = write!(out, "<{name} xsi:nil=\"true\" />");
        }
        Value::Array(items) => {
            let ty = array_item_type(items);
            if items.is_empty() {
                let _ = write!(
                    out,
                    "<{name} soapenc:arrayType=\"{ty}[0]\" xsi:type=\"soapenc:Array\" />"
                );
                return;
            }
            let _ = write!(
                out,
                "<{name} soapenc:arrayType=\"{ty}[{}]\" xsi:type=\"soapenc:Array\">",
                items.len()
            );
            for item in items {
                write_value(out, "item", item, apachens);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Object(map) if map.is_empty() => {
            let _ = write!(out, "<{name} />");
        }
        Value::Object(map) if map.keys().all(|k| is_element_name(k)) => {
            let _ = write!(out, "<{name}>");
            for (k, v) in map {
                write_value(out, k, v, apachens);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Object(map) => {
            *apachens = true;
            let _ = write!(out, "<{name} xsi:type=\"apachens:Map\">");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                out.push_str("<item>");
                write_scalar(out, "key", "xsd:string", &escape_text(k));
                if let Some(v) = map.get(k.as_str()) {
                    write_value(out, "value", v, apachens);
                }
                out.push_str("</item>");
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Bool(b) => write_scalar(out, name, "xsd:boolean", if *b { "true" } else { "false" }),
        Value::Number(n) => write_scalar(out, name, number_type(n), &n.to_string()),
        Value::String(s) => {
            let (ty, text) = string_form(s);
            write_scalar(out, name, ty, &text);
        }
    }
}

fn write_scalar(out: &mut String, name: &str, ty: &str, text: &str) {
    if text.is_empty() {
        let _ = write!(out, "<{name} xsi:type=\"{ty}\" />");
    } else {
        let _ = write!(out, "<{name} xsi:type=\"{ty}\">{text}</{name}>");
    }
}

/// The `xsi:type` of a string and its escaped text (see the module table).
fn string_form(s: &str) -> (&'static str, String) {
    let printable_ascii = |c: char| matches!(c, '\t' | '\n' | '\r' | '\x20'..='\x7f');
    if s.chars().all(printable_ascii) {
        return ("xsd:string", escape_text(s));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    if s.chars().all(|c| u32::from(c) <= 0xff) {
        let bytes: Vec<u8> = s.chars().filter_map(|c| u8::try_from(c).ok()).collect();
        return ("xsd:base64Binary", b64.encode(bytes));
    }
    if s.chars().all(xml_char) {
        ("xsd:string", escape_text(s))
    } else {
        ("xsd:base64Binary", b64.encode(s.as_bytes()))
    }
}

/// Characters XML 1.0 text can carry.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

fn number_type(n: &Number) -> &'static str {
    if let Some(i) = n.as_i64() {
        if i32::try_from(i).is_ok() {
            "xsd:int"
        } else {
            "xsd:long"
        }
    } else if n.is_u64() {
        "xsd:unsignedLong"
    } else {
        "xsd:float"
    }
}

/// The common `xsi:type` of array items, or `xsd:anyType`.
fn array_item_type(items: &[Value]) -> &'static str {
    let ty = |v: &Value| -> Option<&'static str> {
        match v {
            Value::String(s) => Some(string_form(s).0),
            Value::Number(n) => Some(number_type(n)),
            Value::Bool(_) => Some("xsd:boolean"),
            Value::Array(_) => Some("soapenc:Array"),
            Value::Object(m) if !m.is_empty() && !m.keys().all(|k| is_element_name(k)) => {
                Some("apachens:Map")
            }
            _ => None,
        }
    };
    let mut types = items.iter().map(ty);
    match types.next() {
        Some(Some(first)) if types.all(|t| t == Some(first)) => first,
        _ => "xsd:anyType",
    }
}

/// SOAP::Lite's rule for hash keys that can be element names:
/// `^(?![xX][mM][lL])[a-zA-Z_][\w.\-]*$` (ASCII word characters here).
pub fn is_element_name(k: &str) -> bool {
    let mut chars = k.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    // On bytes: a key whose third byte is inside a character ("aŪ") has
    // no `k[..3]` (found by the fuzz target soap_roundtrip).
    let starts_xml = k
        .as_bytes()
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"xml"));
    !starts_xml
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A session as a map value, for encoders that take [`Value`].
pub fn session_value(data: &Map<String, Value>) -> Value {
    Value::Object(data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::parse::{parse_tree, to_value};
    use serde_json::json;

    /// The captured getSession response, parsed and converted, must equal
    /// what our encoder produces for the same data parsed the same way.
    fn result_of(xml: &str) -> Value {
        let root = parse_tree(xml).unwrap();
        let body = &root.children[0];
        let wrapper = &body.children[0];
        to_value(&wrapper.children[0]).unwrap()
    }

    fn data() -> Value {
        json!({
            "APT_APT": "00000", "_session_id": "92db707653b9ef2591e64c7b3238f87b",
            "big": 5_000_000_000_i64, "boitier": 77777, "cn": 88888, "empty": "",
            "f": 1.5, "h": {"k": "v", "n": 5}, "list": [1, "two", [3]],
            "uid": "Le Vengeur Masqu\u{e9}", "xml": "a<b>&c\"d"
        })
    }

    #[test]
    fn map_response_matches_the_capture() {
        let captured = include_str!("../../tests/data/get_session_map_response.xml");
        assert_eq!(result_of(captured), data());
        let ours = response("getSession", Some(&data()));
        assert_eq!(result_of(&ours), data());
        // Same envelope head as the original (Map namespace declared), same Map items.
        let head = &captured[..captured.find("<s-gensym").unwrap()];
        assert!(ours.contains("<result xmlns=\"\" xsi:type=\"apachens:Map\"><item>"));
        assert_eq!(&ours[..head.len()], head);
        assert!(ours.contains("<item><key xsi:type=\"xsd:string\">uid</key><value xsi:type=\"xsd:base64Binary\">TGUgVmVuZ2V1ciBNYXNxdek=</value></item><item><key xsi:type=\"xsd:string\">xml</key><value xsi:type=\"xsd:string\">a&lt;b&gt;&amp;c\"d</value></item>"));
    }

    #[test]
    fn struct_response_matches_the_capture() {
        let captured = include_str!("../../tests/data/get_session_struct_response.xml");
        let mut expected = data();
        let map = expected.as_object_mut().unwrap();
        let xml = map.remove("xml").unwrap();
        map.insert("special".into(), xml);
        map.insert(
            "_session_id".into(),
            json!("97f39d2456747d39f203481891f3cce5"),
        );
        assert_eq!(result_of(captured), expected);
        let ours = response("getSession", Some(&expected));
        assert!(!ours.contains("apachens"));
        assert_eq!(result_of(&ours), expected);
        assert!(ours.contains("<uid xsi:type=\"xsd:base64Binary\">TGUgVmVuZ2V1ciBNYXNxdek=</uid>"));
        assert!(ours.contains("<list soapenc:arrayType=\"xsd:anyType[3]\" xsi:type=\"soapenc:Array\"><item xsi:type=\"xsd:int\">1</item><item xsi:type=\"xsd:string\">two</item><item soapenc:arrayType=\"xsd:int[1]\" xsi:type=\"soapenc:Array\"><item xsi:type=\"xsd:int\">3</item></item></list>"));
        assert!(ours.contains("<empty xsi:type=\"xsd:string\" />"));
    }

    #[test]
    fn status_and_empty_results() {
        let ok = response("status", Some(&json!("...... MEMCACHED SOAP OK ......")));
        assert!(ok.contains(
            "<soap:Body><statusResponse xmlns=\"urn:MemcachedSOAPClass\"><result xmlns=\"\""
        ));
        assert!(ok.contains(" xsi:type=\"xsd:string\">...... MEMCACHED SOAP OK ......</result>"));
        assert!(ok.ends_with("</statusResponse></soap:Body></soap:Envelope>"));
        let empty = response("getSession", Some(&json!({})));
        assert!(empty.contains(
            "<getSessionResponse xmlns=\"urn:MemcachedSOAPClass\"><result xmlns=\"\" /></getSessionResponse>"
        ));
    }

    #[test]
    fn strings_round_trip() {
        for s in [
            "plain",
            "tab\there\r\nx",
            "caf\u{e9}",
            "\u{65e5}\u{672c}",
            "a]]>b",
            "",
        ] {
            let v = json!({ "k": s, "n": null, "e": [], "b": true, "u": u64::MAX, "neg": -3_000_000_000_i64 });
            let xml = response("getSession", Some(&v));
            assert_eq!(result_of(&xml), v, "{s:?}: {xml}");
        }
        assert!(is_element_name("APT_APT") && is_element_name("a.b-c"));
        for bad in ["xml", "XmLfoo", "1a", "-a", "a b", "", "caf\u{e9}"] {
            assert!(!is_element_name(bad), "{bad:?}");
        }
    }

    /// Fuzz finding (soap_roundtrip): a map key whose first three bytes
    /// end inside a character made the encoder panic on `k[..3]`; such a
    /// key is no element name, so the map goes out as an `apachens:Map`.
    #[test]
    fn a_key_with_a_character_across_byte_three_is_encoded() {
        for key in ["a\u{16a}", "x\u{e9}l", "\u{e9}", "ab\u{1f600}"] {
            assert!(!is_element_name(key), "{key:?}");
            let v = json!({ key: 1 });
            let xml = response("getSession", Some(&v));
            assert_eq!(result_of(&xml), v, "{key:?}: {xml}");
        }
    }
}

//! The response writer as it was before it wrote into one buffer (commit
//! 2d3f233), kept verbatim as the oracle the tests compare the faster
//! writer with, byte for byte: SOAP::Lite clients depend on every byte.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Number, Value};

use super::{is_element_name, xml_char};

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

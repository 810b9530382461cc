//! The answers of LemonLDAP::NG's SOAP session service, shaped as the
//! portal's `SOAPServer.pm` writes them through SOAP::Lite (captured from
//! the real modules; docs/llng.md shows them):
//!
//! | operation | answer (children of `<{op}Response xmlns="urn:Lemonldap/NG/Common/PSGI/SOAPService">`) |
//! |---|---|
//! | `newSession` | `<attributes>`: the new session's fields, one child each |
//! | `getAttributes` | `<session>` holding `<error xsi:type="xsd:int">` (1: no such session) and, when 0, `<attributes>` |
//! | `setAttributes`, `deleteSession` | `<result xsi:type="xsd:int">`: 1 done, 0 no such session |
//!
//! The client reads the first child of the response element, so names
//! matter only inside `session`. Field values are typed by
//! [`crate::soap::encode`]'s rules, not all as `xsd:string` as LL::NG does:
//! a Latin-1 byte string then comes back as the bytes the client sent
//! (base64Binary), where LL::NG's own server garbles it.
//!
//! Requests are read with [`crate::soap::parse`]: the parameters are
//! positional (`c-gensymN` elements), the operation's namespace is
//! [`NS`].

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::soap::encode::{envelope, write_value};

/// The namespace of the service (the client's default `ns`).
pub const NS: &str = "urn:Lemonldap/NG/Common/PSGI/SOAPService";

/// The operations the session service answers.
pub const OPERATIONS: &[&str] = &[
    "newSession",
    "getAttributes",
    "setAttributes",
    "deleteSession",
];

/// `newSession`'s answer: the new session's fields.
pub fn new_session(data: &Map<String, Value>) -> String {
    let mut apachens = false;
    let mut inner = String::new();
    write_value(
        &mut inner,
        "attributes",
        &Value::Object(data.clone()),
        &mut apachens,
    );
    wrap("newSession", &inner, apachens)
}

/// `getAttributes`' answer: the session's fields, or `error` 1 when there
/// is no such session (not a fault: the client reads `error`).
pub fn get_attributes(data: Option<&Map<String, Value>>) -> String {
    let mut apachens = false;
    let mut inner = String::from("<session>");
    match data {
        None => inner.push_str("<error xsi:type=\"xsd:int\">1</error>"),
        Some(data) => {
            inner.push_str("<error xsi:type=\"xsd:int\">0</error>");
            write_value(
                &mut inner,
                "attributes",
                &Value::Object(data.clone()),
                &mut apachens,
            );
        }
    }
    inner.push_str("</session>");
    wrap("getAttributes", &inner, apachens)
}

/// The integer answer of `setAttributes` and `deleteSession`.
pub fn result(method: &str, value: i64) -> String {
    wrap(
        method,
        &format!("<result xsi:type=\"xsd:int\">{value}</result>"),
        false,
    )
}

/// `inner` inside the method's response element, inside the envelope.
fn wrap(method: &str, inner: &str, apachens: bool) -> String {
    let mut body = String::with_capacity(inner.len() + 2 * method.len() + 80);
    let _ = write!(
        body,
        "<{method}Response xmlns=\"{NS}\">{inner}</{method}Response>"
    );
    envelope(&body, apachens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::parse::{parse_tree, to_value};
    use serde_json::json;

    /// The first child of the response element, as a client decodes it.
    fn answer(xml: &str) -> (String, Value) {
        let root = parse_tree(xml).unwrap();
        let response = &root.children[0].children[0];
        assert_eq!(response.ns.as_deref(), Some(NS));
        let child = &response.children[0];
        (child.name.clone(), to_value(child).unwrap())
    }

    #[test]
    fn new_session_answers_the_attributes() {
        let data = json!({"_session_id": "ab", "_utime": 1_796_311_594, "cn": "Masqu\u{e9}"});
        let xml = new_session(data.as_object().unwrap());
        assert!(xml.contains("<newSessionResponse xmlns=\"urn:Lemonldap/NG/Common/PSGI/SOAPService\"><attributes>"), "{xml}");
        // The Latin-1 byte string goes out as its bytes, like SOAP::Lite sent it.
        assert!(
            xml.contains("<cn xsi:type=\"xsd:base64Binary\">TWFzcXXp</cn>"),
            "{xml}"
        );
        assert_eq!(answer(&xml), ("attributes".into(), data));
    }

    #[test]
    fn get_attributes_found_and_not_found() {
        let data = json!({"_session_id": "ab", "uid": "dwho"});
        let (name, v) = answer(&get_attributes(data.as_object()));
        assert_eq!(name, "session");
        assert_eq!(v, json!({"error": 0, "attributes": data}));
        let xml = get_attributes(None);
        assert!(
            xml.contains("<session><error xsi:type=\"xsd:int\">1</error></session>"),
            "{xml}"
        );
    }

    #[test]
    fn integer_results() {
        let xml = result("deleteSession", 1);
        assert!(xml.contains("<deleteSessionResponse xmlns=\"urn:Lemonldap/NG/Common/PSGI/SOAPService\"><result xsi:type=\"xsd:int\">1</result></deleteSessionResponse>"), "{xml}");
        assert_eq!(answer(&result("setAttributes", 0)).1, json!(0));
    }
}

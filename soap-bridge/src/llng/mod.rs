//! LemonLDAP::NG's session-server protocols, as wire formats without HTTP:
//! what the LL::NG surfaces (`crate::surfaces::llng_soap`,
//! `crate::surfaces::llng_rest`) need besides the service. `docs/llng.md`
//! describes both protocols as LL::NG's client modules speak them.
//!
//! - [`soap`]: the answers of the SOAP session service
//!   (`urn:Lemonldap/NG/Common/PSGI/SOAPService`);
//! - [`secret`]: the REST client's `__secret` check;
//! - here: the session types of the REST paths and their kinds, and the
//!   REST bodies' JSON in LL::NG's one-byte-per-character form.
//!
//! A leaf: it imports only [`crate::soap`] (the SOAP wire format) and
//! [`crate::credentials`] (the constant-time comparison).

pub mod secret;
pub mod soap;

use serde_json::Value;

/// The field of a session's kind (`SSO`, `Persistent`, ...).
pub const KIND_FIELD: &str = "_session_kind";
/// The field LL::NG stamps with the creation time (Unix seconds).
pub const UTIME_FIELD: &str = "_utime";
/// The field of the REST client's ciphered timestamp.
pub const SECRET_FIELD: &str = "__secret";

/// The session types of `RESTServer.pm` (`/sessions/<type>/...`) and the
/// `_session_kind` of each, as `Lemonldap::NG::Common::Session::REST`
/// derives it (`global` is `SSO`, `offline` is `OIDCI`, any other type its
/// own name with a capital first letter).
const TYPES: &[(&str, &str)] = &[
    ("global", "SSO"),
    ("persistent", "Persistent"),
    ("saml", "Saml"),
    ("oidc", "Oidc"),
    ("cas", "Cas"),
    ("localSession", "LocalSession"),
    ("remoteGlobal", "RemoteGlobal"),
    ("offline", "OIDCI"),
];

/// The kind of a REST session type; `None` for a type LL::NG does not
/// have.
pub fn kind_of_type(session_type: &str) -> Option<&'static str> {
    TYPES
        .iter()
        .find(|(t, _)| *t == session_type)
        .map(|(_, kind)| *kind)
}

/// Whether a session's data belongs under a session type of `kind`: its
/// `_session_kind` is that kind, or it has none (a session written by
/// another protocol), which every type sees.
pub fn kind_matches(data: &serde_json::Map<String, Value>, kind: &str) -> bool {
    match data.get(KIND_FIELD) {
        None | Some(Value::Null) => true,
        Some(Value::String(k)) => k == kind,
        Some(_) => false,
    }
}

/// Reads a REST body as LL::NG's Perl client writes it: each byte is one
/// character (ISO-8859-1), so Perl byte strings arrive as the code points
/// 0–255 the SOAP surfaces store for base64Binary too. A UTF-8 body reads
/// as its bytes (`"é"` as `"Ã©"`) and is written back as the same bytes.
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    let text: String = body.iter().map(|&b| char::from(b)).collect();
    serde_json::from_str(&text).map_err(|e| format!("the body is not JSON: {e}"))
}

/// Writes a REST answer the way [`parse_body`] reads: characters up to
/// U+00FF as one byte each, any other as a `\u` escape (JSON text outside
/// strings is ASCII, so only strings ever hold one).
pub fn to_body(value: &Value) -> Vec<u8> {
    let text = value.to_string();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_and_kinds() {
        assert_eq!(kind_of_type("global"), Some("SSO"));
        assert_eq!(kind_of_type("persistent"), Some("Persistent"));
        assert_eq!(kind_of_type("offline"), Some("OIDCI"));
        assert_eq!(kind_of_type("Global"), None);
        let sso = json!({"_session_kind": "SSO"});
        let none = json!({"uid": "x"});
        let (Some(sso), Some(none)) = (sso.as_object(), none.as_object()) else {
            unreachable!("objects")
        };
        assert!(kind_matches(sso, "SSO"));
        assert!(!kind_matches(sso, "Persistent"));
        assert!(kind_matches(none, "Persistent"));
    }

    #[test]
    fn latin1_bodies_round_trip() {
        // What the Perl client sends for {"cn":"Masqu\xe9"}: one byte 0xe9.
        let body = b"{\"cn\":\"Masqu\xe9\",\"sn\":\"Caf\xc3\xa9\"}";
        let v = parse_body(body).unwrap_or_default();
        assert_eq!(v, json!({"cn": "Masqu\u{e9}", "sn": "Caf\u{c3}\u{a9}"}));
        assert_eq!(to_body(&v), body.to_vec());
    }

    #[test]
    fn wide_characters_are_escaped() {
        let v = json!({"k": "\u{20ac} \u{1f600}"});
        assert_eq!(to_body(&v), br#"{"k":"\u20ac \ud83d\ude00"}"#.to_vec());
        assert_eq!(parse_body(&to_body(&v)).ok(), Some(v));
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(parse_body(b"{\"a\":").is_err());
        assert!(parse_body(b"\xff").is_err());
    }
}

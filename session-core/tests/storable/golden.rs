//! Golden vectors: bytes real Perl wrote (`gen_vectors.pl`), decoded here
//! and compared with what Perl's own `thaw` gave, as JSON.

use std::collections::BTreeSet;

use serde_json::Value;
use session_core::codec;
use session_core::storable::{self, ops};
use session_core::{Codec, Error};

use super::dir;

/// One vector: name, stored bytes, flags and expectation.
pub(crate) struct Vector {
    pub name: String,
    pub bytes: Vec<u8>,
    pub flags: u32,
    pub expected: Result<Value, String>,
}

impl Vector {
    /// The Storable image: inflated when Cache::Memcached compressed it.
    pub fn image(&self) -> Vec<u8> {
        codec::unpack(&self.bytes, self.flags).unwrap().into_owned()
    }
}

pub(crate) fn vectors() -> Vec<Vector> {
    let vectors_dir = dir().join("vectors");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&vectors_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let bytes = std::fs::read(path.with_extension("bin")).unwrap();
        let flags = u32::try_from(meta["flags"].as_u64().unwrap()).unwrap();
        let expected = match meta.get("error") {
            Some(op) => Err(op.as_str().unwrap().to_owned()),
            None => Ok(meta["value"].clone()),
        };
        out.push(Vector {
            name,
            bytes,
            flags,
            expected,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn every_case_of_the_issue_has_a_vector() {
    let names: BTreeSet<String> = vectors().into_iter().map(|v| v.name).collect();
    for required in [
        "session",
        "utf8_keys",
        "wasutf8_key_only",
        "restricted_hash_placeholder",
        "integers",
        "doubles",
        "numeric_strings",
        "undef",
        "array_holes",
        "byte_strings",
        "latin1_bytes",
        "utf8_strings",
        "undecoded_utf8_bytes",
        "long_strings",
        "nested_50",
        "top_level_array",
        "session_minor_4",
        "session_minor_7",
        "session_minor_10",
        "session_nstore_file",
        "compressed_gzip",
        "compressed_zlib",
        "blessed",
        "code_ref",
        "shared_ref",
        "cyclic_ref",
        "scalar_ref",
        "weak_ref",
        "tied_hash",
        "regexp",
        "vstring",
    ] {
        assert!(
            names.contains(required),
            "vector {required} missing: run perl session-core/tests/storable/gen_vectors.pl"
        );
    }
}

#[test]
fn perl_vectors_decode_to_what_perl_thaws() {
    for v in vectors() {
        let image = v.image();
        match (&v.expected, storable::decode(&image)) {
            (Ok(want), Ok(got)) => {
                assert_eq!(&got, want, "{}", v.name);
                // And what we write for it decodes to the same again.
                let again = storable::decode(&storable::encode(&got).unwrap()).unwrap();
                assert_eq!(&again, want, "{} re-encoded", v.name);
            }
            (Err(op), Err(e)) => {
                assert_eq!(
                    e.opcode.map(ops::name),
                    Some(op.as_str()),
                    "{}: {e}",
                    v.name
                );
                assert_eq!(
                    image[e.offset],
                    e.opcode.unwrap(),
                    "{}: offset of {e}",
                    v.name
                );
                let text = e.to_string();
                assert!(
                    text.contains(op) && text.contains(&format!("offset {}", e.offset)),
                    "{text}"
                );
            }
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", v.name),
        }
    }
}

#[test]
fn flags_pick_storable_and_sessions_decode_through_codec() {
    let v = vectors().into_iter().find(|v| v.name == "session").unwrap();
    assert_eq!(v.flags, 1);
    let data = Codec::from_flags(v.flags, "k")
        .unwrap()
        .decode(&v.bytes, "k")
        .unwrap();
    assert_eq!(Value::Object(data), v.expected.unwrap());
    // A refused value is a decode error naming the opcode and offset.
    let blessed = vectors().into_iter().find(|v| v.name == "blessed").unwrap();
    match Codec::Storable.decode(&blessed.bytes, "k") {
        Err(
            e @ Error::Decode {
                codec: "storable", ..
            },
        ) => {
            // The opcode and offset are the cause's words, kept in the chain.
            let text = e.chain().to_string();
            assert!(
                text.contains("SX_BLESS") && text.contains("offset"),
                "{text}"
            );
        }
        other => panic!("blessed: {other:?}"),
    }
}

#[test]
fn truncated_perl_vectors_are_errors() {
    for v in vectors() {
        let image = v.image();
        if image.len() > 4096 {
            continue; // the long ones add time, not cases
        }
        for end in 0..image.len() {
            assert!(
                storable::decode(&image[..end]).is_err(),
                "{} cut at {end}",
                v.name
            );
        }
    }
}

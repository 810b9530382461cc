//! Codecs: how a session map becomes bytes, and how flags say which codec.
//!
//! Every stored value carries memcached's 32-bit client flags. We use them
//! as a format tag so a reader never guesses:
//!
//! | flags   | meaning                                                     |
//! |---------|-------------------------------------------------------------|
//! | `0`     | a raw string (e.g. the reverse-principal key); not a session |
//! | `1`     | Perl Storable `nfreeze` (Cache::Memcached's `F_STORABLE`): [`Codec::Storable`], see [`storable`](crate::storable) |
//! | `2` bit | Perl Cache::Memcached's gzip (`F_COMPRESS`); [`storable::inflate_perl_compressed`](crate::storable::inflate_perl_compressed) undoes it |
//! | `0x100` | JSON (the default: every language reads it)                  |
//! | `0x200` | MessagePack (compact)                                        |
//!
//! Our tags keep the low byte zero on purpose: Perl's Cache::Memcached only
//! looks at bits 0 (Storable) and 1 (gzip), and Cache::Memcached::Fast also at
//! bit 2 (UTF-8), so a Perl node reading one of our values gets the plain
//! bytes instead of trying to thaw or gunzip them.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::session::SessionData;

/// Flags of a raw string value (no codec): the reverse-principal key.
pub const FLAGS_RAW: u32 = 0;
/// Flags of Perl Storable `nfreeze` values (Cache::Memcached's `F_STORABLE`).
pub const FLAGS_STORABLE: u32 = 1;
/// Flags of Perl Cache::Memcached's gzip bit.
pub const FLAGS_PERL_COMPRESSED: u32 = 2;
/// Flags of JSON values.
pub const FLAGS_JSON: u32 = 0x100;
/// Flags of MessagePack values.
pub const FLAGS_MSGPACK: u32 = 0x200;

/// The deepest nesting of lists and maps a session may have, on write and
/// on read. serde_json refuses to read beyond 128 levels, so without a
/// write-side check a session could be saved and then never loaded again;
/// the same limit on MessagePack keeps decoding's recursion shallow.
pub const MAX_DEPTH: usize = 100;

/// A session encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// JSON (`serde_json`): the default; readable from any language.
    #[default]
    Json,
    /// MessagePack with field names (`rmp-serde`): about 10% smaller.
    MessagePack,
    /// Perl Storable `nfreeze`, flags 1: what the Perl original writes, so
    /// Perl nodes read our sessions; see [`storable`](crate::storable).
    Storable,
}

impl Codec {
    /// The flags this codec writes.
    pub const fn flags(self) -> u32 {
        match self {
            Codec::Json => FLAGS_JSON,
            Codec::MessagePack => FLAGS_MSGPACK,
            Codec::Storable => FLAGS_STORABLE,
        }
    }

    /// A short name, for errors and configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MessagePack => "msgpack",
            Codec::Storable => "storable",
        }
    }

    /// Parses a configuration name (`json`, `msgpack`, `storable`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "json" => Ok(Codec::Json),
            "msgpack" | "messagepack" => Ok(Codec::MessagePack),
            "storable" => Ok(Codec::Storable),
            other => Err(Error::InvalidConfig(format!(
                "unknown codec {other:?} (expected \"json\", \"msgpack\" or \"storable\")"
            ))),
        }
    }

    /// The codec that wrote a value with these flags.
    ///
    /// `key` is only used for the error of a raw (flags 0) value.
    pub fn from_flags(flags: u32, key: &str) -> Result<Self> {
        match flags {
            FLAGS_JSON => Ok(Codec::Json),
            FLAGS_MSGPACK => Ok(Codec::MessagePack),
            FLAGS_STORABLE => Ok(Codec::Storable),
            FLAGS_RAW => Err(Error::NotASession {
                key: key.to_owned(),
                reason: "raw string value (flags 0), such as a reverse-principal key".into(),
            }),
            f if f & (FLAGS_STORABLE | FLAGS_PERL_COMPRESSED) != 0 => Err(Error::UnknownCodec {
                flags,
                hint: " (Perl Cache::Memcached gzip; not inflated here yet)",
            }),
            _ => Err(Error::UnknownCodec { flags, hint: "" }),
        }
    }

    /// Encodes a session map; [`Error::Encode`] when it nests deeper than
    /// [`MAX_DEPTH`].
    pub fn encode(self, data: &SessionData) -> Result<Vec<u8>> {
        if let Some(field) = data
            .iter()
            .find(|(_, v)| depth(v) >= MAX_DEPTH)
            .map(|(k, _)| k)
        {
            return Err(Error::Encode {
                codec: self.name(),
                message: format!("field {field:?} nests deeper than {MAX_DEPTH} levels"),
            });
        }
        let encoded = match self {
            Codec::Json => serde_json::to_vec(data).map_err(|e| e.to_string()),
            Codec::MessagePack => rmp_serde::to_vec_named(data).map_err(|e| e.to_string()),
            Codec::Storable => crate::storable::encode_map(data).map_err(|e| e.to_string()),
        };
        encoded.map_err(|message| Error::Encode {
            codec: self.name(),
            message,
        })
    }

    /// Decodes bytes written by this codec; the top level must be a map.
    pub fn decode(self, bytes: &[u8], key: &str) -> Result<SessionData> {
        let value: Value = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MessagePack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
                de.set_max_depth(MAX_DEPTH + 1);
                serde::Deserialize::deserialize(&mut de).map_err(|e| e.to_string())
            }
            Codec::Storable => crate::storable::decode(bytes).map_err(|e| e.to_string()),
        }
        .map_err(|message| Error::Decode {
            codec: self.name(),
            message,
        })?;
        match value {
            Value::Object(map) => Ok(map),
            other => Err(Error::NotASession {
                key: key.to_owned(),
                reason: format!("top-level {} instead of a map", kind_of(&other)),
            }),
        }
    }
}

/// Nesting depth of a value: 0 for a scalar, 1 for a flat list or map.
/// Iterative, so a hostile value cannot overflow the stack here.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Arbitrary JSON-like values, nested a few levels.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    pub(crate) fn arb_data() -> impl Strategy<Value = SessionData> {
        prop::collection::btree_map("\\PC{1,10}", arb_value(), 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn codecs_round_trip(data in arb_data()) {
            for codec in [Codec::Json, Codec::MessagePack] {
                let bytes = codec.encode(&data).unwrap();
                let back = Codec::from_flags(codec.flags(), "k").unwrap().decode(&bytes, "k").unwrap();
                prop_assert_eq!(&back, &data);
            }
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            for codec in [Codec::Json, Codec::MessagePack] {
                let _ = codec.decode(&bytes, "k");
            }
        }
    }

    #[test]
    fn flags_pick_the_codec_and_unknown_flags_are_typed() {
        assert_eq!(Codec::from_flags(FLAGS_JSON, "k").unwrap(), Codec::Json);
        assert_eq!(
            Codec::from_flags(FLAGS_MSGPACK, "k").unwrap(),
            Codec::MessagePack
        );
        assert!(matches!(
            Codec::from_flags(0, "k"),
            Err(Error::NotASession { .. })
        ));
        assert_eq!(Codec::from_flags(1, "k").unwrap(), Codec::Storable);
        assert!(matches!(
            Codec::from_flags(3, "k"),
            Err(Error::UnknownCodec { flags: 3, .. })
        ));
        assert!(matches!(
            Codec::from_flags(0x7777, "k"),
            Err(Error::UnknownCodec { .. })
        ));
        assert!(Codec::from_name("yaml").is_err());
        assert_eq!(Codec::from_name("msgpack").unwrap(), Codec::MessagePack);
        assert_eq!(Codec::from_name("storable").unwrap(), Codec::Storable);
        assert_eq!(Codec::Storable.flags(), 1);
    }

    #[test]
    fn too_deep_sessions_are_refused_on_write_and_read() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        let mut data = SessionData::new();
        data.insert("deep".into(), deep.clone());
        for codec in [Codec::Json, Codec::MessagePack, Codec::Storable] {
            assert!(
                matches!(codec.encode(&data), Err(Error::Encode { .. })),
                "{codec:?}"
            );
        }
        // Written by someone else, deeper than we write: a typed error, no crash.
        let bytes = rmp_serde::to_vec_named(&json!({ "deep": [deep] })).unwrap();
        assert!(matches!(
            Codec::MessagePack.decode(&bytes, "k"),
            Err(Error::Decode { .. })
        ));
        // Our Storable writer refuses it too, so build the image by hand:
        // {deep => [[...[1]...]]}, MAX_DEPTH + 1 lists deep.
        let mut bytes = vec![5, 11, 3, 0, 0, 0, 1];
        for _ in 0..=MAX_DEPTH {
            bytes.extend_from_slice(&[4, 2, 0, 0, 0, 1]);
        }
        bytes.extend_from_slice(&[8, 129, 0, 0, 0, 4]);
        bytes.extend_from_slice(b"deep");
        let Err(Error::Decode { codec, message }) = Codec::Storable.decode(&bytes, "k") else {
            panic!("too deep Storable must be a decode error")
        };
        assert_eq!(codec, "storable");
        assert!(
            message.contains("offset") && message.contains("SX_ARRAY"),
            "{message}"
        );
        // One level less is fine both ways.
        let Value::Array(mut inner) = deep else {
            unreachable!()
        };
        data.insert("deep".into(), inner.remove(0));
        for codec in [Codec::Json, Codec::MessagePack, Codec::Storable] {
            let bytes = codec.encode(&data).unwrap();
            assert_eq!(codec.decode(&bytes, "k").unwrap(), data);
        }
    }

    #[test]
    fn non_map_top_level_is_not_a_session() {
        let err = Codec::Json.decode(b"[1,2]", "k").unwrap_err();
        assert!(matches!(err, Error::NotASession { .. }));
        let data: SessionData = json!({"a": {"b": [1, 2]}}).as_object().unwrap().clone();
        let msgpack = Codec::MessagePack.encode(&data).unwrap();
        assert!(msgpack.len() < Codec::Json.encode(&data).unwrap().len());
    }
}

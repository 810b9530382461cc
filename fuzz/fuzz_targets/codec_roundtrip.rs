//! Fuzz target: session-core's `Codec` (JSON, MessagePack, Storable), both
//! ways.
//!
//! - Structure-aware: an arbitrary session map, encoded by each codec and
//!   decoded again, is the same map (Storable: booleans become 1/0 and
//!   integers above `i64::MAX` decimal strings, as its docs state).
//! - Raw: arbitrary bytes under arbitrary flags through `decode_stored`
//!   (format bits, compression, markers) give a session or a typed error;
//!   a session read re-encodes and reads back unchanged.
//!
//! Limit asserted: decoding holds at most 64 bytes per input byte plus
//! 64 KiB at once (plus the inflate cap when the flags say compressed).
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::{map, no_bools, within};
use serde_json::Value;
use session_core::Codec;
use session_core::codec::{MAX_INFLATED_SIZE, is_compressed};

const CODECS: [Codec; 3] = [Codec::Json, Codec::MessagePack, Codec::Storable];

/// What `codec` gives back for `v`.
fn expected(codec: Codec, v: Value) -> Value {
    if codec != Codec::Storable {
        return v;
    }
    fn wide(v: Value) -> Value {
        match v {
            Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Value::String(n.to_string()),
            Value::Array(items) => Value::Array(items.into_iter().map(wide).collect()),
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, wide(v))).collect()),
            other => other,
        }
    }
    wide(no_bools(v))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut u = Unstructured::new(rest);
        let Ok(session) = map(&mut u, 1) else {
            return;
        };
        for codec in CODECS {
            let bytes = codec.encode(&session).expect("a generated session encodes");
            let back = codec.decode(&bytes, "k").expect("our own encoding decodes");
            assert_eq!(
                Value::Object(back),
                expected(codec, Value::Object(session.clone())),
                "{codec:?}"
            );
        }
        return;
    }
    let [a, b, c, d, bytes @ ..] = rest else {
        return;
    };
    let flags = u32::from_le_bytes([*a, *b, *c, *d]);
    let mut limit = 64 * bytes.len() + (64 << 10);
    if is_compressed(flags) {
        limit += 65 * MAX_INFLATED_SIZE;
    }
    let decoded = within("Codec::decode_stored", limit, || {
        Codec::decode_stored(bytes, flags, "k")
    });
    if let Ok(session) = decoded {
        let codec = Codec::from_flags(flags, "k").expect("flags that decoded name a codec");
        let again = codec.encode(&session).expect("a decoded session encodes");
        let back = codec.decode(&again, "k").expect("our own encoding decodes");
        assert_eq!(
            Value::Object(back),
            expected(codec, Value::Object(session)),
            "{codec:?}"
        );
    }
});

//! Fuzz target: the Storable decoder (and the gzip inflater in front of
//! it) on arbitrary bytes must return a value or a typed error — never
//! panic, hang or allocate beyond the input — and whatever it accepts must
//! survive a re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use session_core::storable;

/// Perl's yes/no read as booleans and are written as 1/0 (Storable 3.26
/// has no booleans), so compare with booleans as those integers.
fn no_bools(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::from(i64::from(b)),
        Value::Array(items) => Value::Array(items.into_iter().map(no_bools).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, no_bools(v))).collect()),
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = storable::decode(data) {
        // What we accept, we can write, and read back unchanged (integers
        // above i64::MAX, which we write as strings, never come out of it).
        let bytes = storable::encode(&value).expect("a decoded value encodes");
        let again = storable::decode(&bytes).expect("our own image decodes");
        assert_eq!(again, no_bools(value));
    }
    if let Ok(inflated) = storable::inflate_perl_compressed(data, 1 << 20) {
        let _ = storable::decode(&inflated);
    }
});

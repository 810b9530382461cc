//! Fuzz target: the Storable decoder (and the inflater in front of it) on
//! arbitrary bytes returns a value or a typed error, never panics, and
//! whatever it accepts survives a re-encode unchanged.
//!
//! Limits asserted: decoding never holds more than 64 bytes per input
//! byte plus 64 KiB at once (a declared length of 2^31 in a short image is
//! an error, not an allocation); inflating a "compressed" value never
//! holds more than session-core's `MAX_INFLATED_SIZE` plus 1 MiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::{no_bools, within};
use session_core::codec::{self, FLAGS_PERL_COMPRESSED, FLAGS_STORABLE, MAX_INFLATED_SIZE};
use session_core::storable;

fuzz_target!(|data: &[u8]| {
    let limit = 64 * data.len() + (64 << 10);
    if let Ok(value) = within("storable::decode", limit, || storable::decode(data)) {
        // What we accept, we can write, and read back unchanged (integers
        // above i64::MAX, which we write as strings, never come out of it).
        let bytes = storable::encode(&value).expect("a decoded value encodes");
        let again = storable::decode(&bytes).expect("our own image decodes");
        assert_eq!(again, no_bools(value));
    }
    let inflated = within("codec::unpack", MAX_INFLATED_SIZE + (1 << 20), || {
        codec::unpack(data, FLAGS_STORABLE | FLAGS_PERL_COMPRESSED).map(|c| c.into_owned())
    });
    if let Ok(inflated) = inflated {
        assert!(inflated.len() <= MAX_INFLATED_SIZE);
        let _ = storable::decode(&inflated);
    }
});

//! Fuzz target: the SOAP/XML reader (`soap_bridge::soap::parse`) on
//! arbitrary request bodies: `parse_call`, then every parameter through
//! `to_value`, as the memcached SOAP surface does.
//!
//! Checked: never a panic; an accepted call nests no deeper than
//! `MAX_DEPTH`. Limits: at most 256 bytes per input byte plus 64 KiB
//! allocated at once (a tree node per tag and a value per node; a
//! declared `soapenc:arrayType="xsd:string[1000000000]"` reserves
//! nothing), and libFuzzer's `-timeout` for time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;
use soap_bridge::soap::parse::{Element, MAX_DEPTH, parse_call, to_value};

fn depth(e: &Element) -> usize {
    1 + e.children.iter().map(depth).max().unwrap_or(0)
}

fuzz_target!(|body: &[u8]| {
    let limit = 256 * body.len() + (64 << 10);
    within("soap parse_call + to_value", limit, || {
        if let Ok(call) = parse_call(body) {
            for p in &call.params {
                // Envelope, Body and the method element are above it.
                assert!(depth(p) + 3 <= MAX_DEPTH);
                let _ = to_value(p);
            }
        }
    });
});

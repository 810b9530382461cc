//! Fuzz target: every single-line parser of the memcached client (meta
//! header, classic `VALUE`, `stats settings`, `lru_crawler metadump` item,
//! the shared error lines) on arbitrary bytes, and the `%XX` key decoding
//! as a round trip.
//!
//! Checked: never a panic; a dump item's key decodes to at most the
//! line's length; `uri_decode(uri_encode(k)) == k` for any bytes. Limit:
//! at most 4 bytes per input byte plus 4 KiB allocated at once.
#![no_main]

use backend_memcached::fuzzing;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;

fn uri_encode(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() * 3);
    for &b in key {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fuzz_target!(|line: &[u8]| {
    let item = within("memcached line parsers", 4 * line.len() + 4096, || {
        fuzzing::line(line)
    });
    if let Some((key, _exp)) = item {
        assert!(key.len() <= line.len());
    }
    let decoded = fuzzing::uri_decode(line);
    if let Some(d) = &decoded {
        assert!(d.len() <= line.len());
    }
    assert_eq!(
        fuzzing::uri_decode(&uri_encode(line)).as_deref(),
        Some(line)
    );
});

//! Fuzz target: the replicator's change feed lines
//! (`backend_memcached::raw::WatchEvent::parse`) on arbitrary bytes.
//!
//! Checked: never a panic; an accepted event names a key that passes the
//! key rules (it goes straight into a `mg` request), and a line that is
//! not UTF-8 is never an event. Limit: at most 4 bytes per input byte plus
//! 4 KiB allocated at once.
#![no_main]

use backend_memcached::raw::WatchEvent;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;

fuzz_target!(|line: &[u8]| {
    let parsed = within("WatchEvent::parse", 4 * line.len() + 4096, || {
        WatchEvent::parse(line)
    });
    if let Ok(event) = parsed {
        assert!(std::str::from_utf8(line).is_ok());
        assert!(
            session_core::key::validate_key(&event.key).is_ok(),
            "an event with an invalid key: {event:?}"
        );
        assert!(event.key.len() <= line.len());
        if let Some(ts) = event.ts {
            assert!(ts.is_finite() && ts >= 0.0);
        }
    }
});

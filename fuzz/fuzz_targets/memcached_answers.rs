//! Fuzz target: the memcached client's answer reader, the code every
//! connection runs (`Reader` → `read_frames` → the dialect's `interpret`),
//! on an arbitrary stream, as the answer to an arbitrary request.
//!
//! Input: byte 0 picks the dialect (even: meta, odd: classic), byte 1 the
//! request (`backend_memcached::fuzzing::answer`), byte 2 the key count of
//! a multi-get; the rest is what the server "sent". Meta requests carry
//! `O1`.
//!
//! Checked: never a panic or a wait; never more bytes consumed than sent;
//! a read's reply has exactly one entry per key asked, none longer than the
//! reader's block limit. Limit: at most 4 bytes per input byte plus 256
//! KiB allocated at once (a `VA 1000000000` line costs what is sent, not
//! what it announces).
#![no_main]

use backend_memcached::Protocol;
use backend_memcached::fuzzing::{self, MAX_BLOCK};
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;

fuzz_target!(|data: &[u8]| {
    let [mode, op, keys, stream @ ..] = data else {
        return;
    };
    let protocol = if mode % 2 == 0 {
        Protocol::Meta
    } else {
        Protocol::Classic
    };
    let limit = 4 * data.len() + (256 << 10);
    let answer = within("memcached answer reader", limit, || {
        fuzzing::answer(protocol, *op, *keys, stream)
    });
    if let Ok(answer) = answer {
        assert!(answer.consumed <= stream.len());
        if let Some(n) = fuzzing::expected_entries(*op, *keys) {
            assert_eq!(answer.entries.len(), n, "{answer:?}");
        }
        for len in answer.entries.iter().flatten() {
            assert!(*len <= MAX_BLOCK);
        }
    }
});

//! memorycached's load-generator benchmarks, run by `cargo xtask bench`
//! (this library holds only what the bench targets share: the session
//! they store).
//!
//! - `benches/ops.rs`: every session operation (create, load, save changed
//!   and unchanged, update, delete, find_by_principal) at 1, 16 and 64
//!   concurrent tasks on `MemoryStore`, one memcached, three memcached and
//!   one memcached with a local read-first cache, each beside the floor:
//!   raw `set`+`get` pairs through the same store in the same run.
//! - `benches/seal.rs`: the cost of sealing sessions at rest: `load` and
//!   `save_changed` sealed beside plain on `MemoryStore` and one memcached,
//!   and the cipher alone (also timed in CPU time, on the terminal).
//! - `benches/peers.rs`: the outside floor (libmemcached's `memcslap`), the
//!   Perl original's path (`Cache::Memcached` + `Storable`, in 1 to 64
//!   processes) and tower-sessions' `MemoryStore`, each beside ours.
//! - `benches/redis_peers.rs`: tower-sessions' Redis store
//!   (`tower-sessions-redis-store`, on `fred`) beside our `Sessions` on
//!   Redis and on memcached.
//!
//! All print the JSON lines `cargo xtask bench` reads (format in
//! `xtask/src/bench.rs`) through `test_support::bench`.

use serde_json::{Map, Value, json};

/// The typical single-sign-on session of 10 fields that every side of the
/// benchmarks stores (ours, and the Perl peer's `perl/peer.pl`).
pub fn ten_fields(uid: &str) -> Map<String, Value> {
    let fields = json!({
        "uid": uid,
        "cn": "Jean Dupont",
        "mail": "jean.dupont@example.org",
        "givenName": "Jean",
        "sn": "Dupont",
        "groups": "admins; staff; vpn-users",
        "ipAddr": "192.0.2.10",
        "_utime": 1_700_000_000u64,
        "authenticationLevel": 2,
        "profile": "p".repeat(200),
    });
    match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

//! memorycached's load-generator benchmarks, run by `cargo xtask bench`
//! (this library is empty: everything is in `benches/`).
//!
//! - `benches/ops.rs`: every session operation (create, load, save changed
//!   and unchanged, update, delete, find_by_principal) at 1, 16 and 64
//!   concurrent tasks on `MemoryStore`, one memcached, three memcached and
//!   one memcached with a local read-first cache, each beside the floor:
//!   raw `set`+`get` pairs through the same store in the same run.
//! - `benches/peers.rs`: the outside floor (libmemcached's `memcslap`), the
//!   Perl original's path (`Cache::Memcached` + `Storable`, in 1 to 64
//!   processes) and tower-sessions' `MemoryStore`, each beside ours.
//!
//! Both print the JSON lines `cargo xtask bench` reads (format in
//! `xtask/src/bench.rs`) through `test_support::bench`.

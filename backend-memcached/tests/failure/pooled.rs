//! The failure cases (`cases.rs`) in the pooled connection mode.

const MODE: backend_memcached::ConnectionMode = backend_memcached::ConnectionMode::Pooled;

// The same file is the `cases` of both modes, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "cases.rs"]
mod cases;

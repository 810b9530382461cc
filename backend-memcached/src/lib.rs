//! `MemcachedStore` (in progress).

//! The memorycached replicator: copies writes *and deletes* between memcached
//! servers, master→slave and master↔master. **Not built yet.**
//!
//! Planned by its own issue (see `../ARCHITECTURE.md`): a change feed from
//! memcached's `watch mutations`, values fetched with meta `mg` (value, flags,
//! remaining TTL), a full resync from `lru_crawler metadump` at start and after
//! reconnects, loop prevention without writing into session data, bounded
//! queues and counters. Until then this crate deliberately exports nothing.

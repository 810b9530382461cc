//! Counters of a [`Sessions`](crate::Sessions), for logs and metrics endpoints.
//!
//! Plain relaxed atomics: each counter is exact, but a snapshot taken while
//! other tasks work is not a consistent cut across counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by every clone of one `Sessions`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub created: AtomicU64,
    pub loads: AtomicU64,
    pub local_hits: AtomicU64,
    pub not_found: AtomicU64,
    pub saves_written: AtomicU64,
    pub saves_unchanged: AtomicU64,
    pub merges: AtomicU64,
    pub conflicts: AtomicU64,
    pub deletes: AtomicU64,
    pub field_conflicts: AtomicU64,
    pub update_retries: AtomicU64,
    pub index_evictions: AtomicU64,
    pub regenerated: AtomicU64,
    pub seal_tampered: AtomicU64,
    pub seal_truncated: AtomicU64,
    pub seal_unknown_key: AtomicU64,
    pub seal_unsealed: AtomicU64,
    pub resealed: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SessionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SessionStats {
            created: get(&self.created),
            loads: get(&self.loads),
            local_hits: get(&self.local_hits),
            not_found: get(&self.not_found),
            saves_written: get(&self.saves_written),
            saves_unchanged: get(&self.saves_unchanged),
            merges: get(&self.merges),
            conflicts: get(&self.conflicts),
            deletes: get(&self.deletes),
            field_conflicts: get(&self.field_conflicts),
            update_retries: get(&self.update_retries),
            index_evictions: get(&self.index_evictions),
            regenerated: get(&self.regenerated),
            seal_tampered: get(&self.seal_tampered),
            seal_truncated: get(&self.seal_truncated),
            seal_unknown_key: get(&self.seal_unknown_key),
            seal_unsealed: get(&self.seal_unsealed),
            resealed: get(&self.resealed),
        }
    }
}

/// A snapshot of a `Sessions`' counters since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionStats {
    /// Sessions created.
    pub created: u64,
    /// Loads attempted (valid ids only).
    pub loads: u64,
    /// Loads answered by a trusted local copy.
    pub local_hits: u64,
    /// Loads that found no session.
    pub not_found: u64,
    /// Saves that wrote.
    pub saves_written: u64,
    /// Saves with nothing to write.
    pub saves_unchanged: u64,
    /// Concurrent changes merged into a save (one per extra attempt).
    pub merges: u64,
    /// Saves that gave up with `Error::Conflict`.
    pub conflicts: u64,
    /// Sessions deleted.
    pub deletes: u64,
    /// Fields found changed by both this handle and another writer (to
    /// different values) while merging a save, whatever the
    /// [`FieldConflict`](crate::FieldConflict) policy did with them.
    pub field_conflicts: u64,
    /// Closures of [`Sessions::update`](crate::Sessions::update) re-run on a
    /// fresh read after losing a race.
    pub update_retries: u64,
    /// Members dropped from a full principal index.
    pub index_evictions: u64,
    /// Sessions given a new id by [`Sessions::regenerate`](crate::Sessions::regenerate).
    pub regenerated: u64,
    /// Sealed values that did not verify (tampered, copied under another
    /// key, sealed under other material, or another format version): see
    /// [`crate::seal`]. Loads answer every seal failure as an unknown id.
    pub seal_tampered: u64,
    /// Sealed values cut short.
    pub seal_truncated: u64,
    /// Sealed values naming a key id not in the keyring (or read with no
    /// seal keys at all).
    pub seal_unknown_key: u64,
    /// Plain session values refused because sealing is required (and
    /// `accept_unsealed` is off).
    pub seal_unsealed: u64,
    /// Sessions rewritten under the current key by
    /// [`Sessions::reseal`](crate::Sessions::reseal).
    pub resealed: u64,
}

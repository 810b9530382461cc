//! Delete markers: what a store with
//! [`MemcachedConfig::delete_markers`](crate::MemcachedConfig::delete_markers)
//! writes after a delete, for the replicator. memcached 1.6.18's `watch`
//! reports stores but not deletes; an empty item named
//! `memorycached.deleted:<key>`, written on the deleted key's own server
//! with a short TTL, is a store its feed reports, and the replicator reads
//! it as "`<key>` was just deleted here". A leaf: the store writes markers,
//! the replicator reads them, neither through the other.

/// The prefix of every marker: `memorycached.deleted:<key>`.
pub const DELETE_MARKER_PREFIX: &str = "memorycached.deleted:";

/// The marker key for a delete of `key`; `None` when the prefixed key
/// would be longer than memcached's 250 bytes (such a delete gets no
/// marker).
pub fn delete_marker(key: &str) -> Option<String> {
    let marker = format!("{DELETE_MARKER_PREFIX}{key}");
    (marker.len() <= 250).then_some(marker)
}

/// The key a marker stands for; `None` for any other key.
pub fn deleted_by_marker(marker: &str) -> Option<&str> {
    marker
        .strip_prefix(DELETE_MARKER_PREFIX)
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_their_key_and_fit_memcached() {
        let marker = delete_marker("sess:1").unwrap();
        assert_eq!(marker, "memorycached.deleted:sess:1");
        assert_eq!(deleted_by_marker(&marker), Some("sess:1"));
        assert_eq!(deleted_by_marker("sess:1"), None);
        assert_eq!(deleted_by_marker(DELETE_MARKER_PREFIX), None);
        assert!(delete_marker(&"k".repeat(250 - DELETE_MARKER_PREFIX.len())).is_some());
        assert!(delete_marker(&"k".repeat(251 - DELETE_MARKER_PREFIX.len())).is_none());
    }
}

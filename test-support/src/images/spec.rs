//! Per server: the official image, the name of a local one, the port it serves on.

use crate::kind::ServerKind;

/// Where the official image is taken from and what a local one is called.
pub(super) struct Spec {
    pub(super) official: (&'static str, &'static str),
    pub(super) local_name: &'static str,
    pub(super) port: u16,
}

pub(super) fn spec(kind: ServerKind) -> Spec {
    match kind {
        ServerKind::Memcached => Spec {
            official: ("memcached", "1.6"),
            local_name: "memorycached/memcached",
            port: 11211,
        },
        ServerKind::Redis => Spec {
            official: ("redis", "7"),
            local_name: "memorycached/redis",
            port: 6379,
        },
        // Not built today (a Valkey is always a local process); here so
        // every kind has a spec.
        ServerKind::Valkey => Spec {
            official: ("valkey/valkey", "8.1"),
            local_name: "memorycached/valkey",
            port: 6379,
        },
    }
}

//! The process provider against the local `memcached` and `redis-server` binaries.

mod common;

provider_tests!(ProviderKind::Process);

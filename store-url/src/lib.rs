//! Store URLs: one function, [`open`], turns a URL such as `memory://` or
//! `memcached://10.0.0.1:11211,10.0.0.2:11211?timeout_ms=500` into an
//! `Arc<dyn Store>`, so every binary of the workspace (the SOAP bridge, the
//! replicator, the CLI) accepts the same `--store` and `--local` values.
//!
//! This is the one *library* allowed to depend on backend crates: mapping a
//! URL to a backend is exactly its job, and keeping it in one place means a
//! new backend is wired into every binary at once. Everything else takes an
//! `Arc<dyn Store>`.
//!
//! | scheme | store |
//! |---|---|
//! | `memory://` | [`session_core::MemoryStore`], in this process (no query keys) |
//! | `memcached://[USER:PASSWORD@]H:P[,H:P[:weight]]?...` | `backend_memcached::MemcachedStore` (its docs list the query keys; `USER:PASSWORD@` is memcached's `-Y` authentication) |
//! | `memcacheds://...?ca=FILE[&cert=FILE&key=FILE][&server_name=NAME]` | the same over TLS (memcached `-Z`), certificates verified, always built in |
//! | `redis://[USER:PASSWORD@]HOST[:PORT][/DB]?...` | `backend_redis::RedisStore` (its docs list the query keys; `cluster=true` needs this crate's `redis-cluster` feature) |
//! | `rediss://...` | the same over TLS: needs this crate's `redis-tls` feature (without it, a [`Error::Redis`] configuration error saying so) |
//!
//! A binary gets the optional backends' features through this crate's;
//! soap-bridge and sessionctl turn both on by default, so their release
//! binaries serve `rediss://` and Redis Cluster as built
//! (`--no-default-features` leaves them out).
//!
//! ```
//! let (servers, local) = store_url::open("memory://", None)?;
//! assert!(local.is_none());
//! # let _ = servers;
//! assert!(store_url::open("redis://127.0.0.1:6379/1?prefix=app:", None).is_ok());
//! assert!(matches!(store_url::open("redis://127.0.0.1?nope=1", None), Err(store_url::Error::Redis { .. })));
//! assert!(matches!(store_url::open("ftp://x", None), Err(store_url::Error::UnknownScheme { .. })));
//! # Ok::<(), store_url::Error>(())
//! ```

use std::sync::Arc;

use backend_memcached::MemcachedStore;
use backend_redis::RedisStore;
use session_core::{MemoryStore, Store};

/// Why a store URL could not be opened. Nothing is connected before the URL
/// is fully checked, so every variant is a configuration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no scheme this build knows.
    #[error(
        "unknown store URL {url:?}: expected memory://, memcached://HOST:PORT[,HOST:PORT]..., memcacheds://... or redis://HOST:PORT"
    )]
    UnknownScheme {
        /// The URL as given (printable form, without its password).
        url: String,
    },
    /// The scheme is planned but its backend is not part of this build yet.
    #[error("the {scheme}:// store is not built yet; use memory://, memcached:// or redis://")]
    NotBuilt {
        /// The scheme, without `://`.
        scheme: &'static str,
    },
    /// `memory://` takes no host, path or query.
    #[error("memory:// takes no host, path or options (got {url:?})")]
    MemoryOptions {
        /// The URL as given.
        url: String,
    },
    /// The memcached URL did not validate (bad address, unknown query key,
    /// an unreadable certificate file...).
    #[error("memcached store URL {url:?}: {source}")]
    Memcached {
        /// The URL as given, without its password.
        url: String,
        /// What the memcached backend said.
        #[source]
        source: backend_memcached::Error,
    },
    /// The Redis URL did not validate (bad address, unknown query key,
    /// `rediss://`, a cluster without the `redis-cluster` feature...).
    #[error("redis store URL {url:?}: {source}")]
    Redis {
        /// The URL as given, without its password.
        url: String,
        /// What the Redis backend said.
        #[source]
        source: backend_redis::Error,
    },
}

/// The principal store, and the read-first local store when one was given.
pub type Stores = (Arc<dyn Store>, Option<Arc<dyn Store>>);

/// `url` with its password, if it has one, replaced by `***`: what may be
/// printed or logged of a store URL.
pub fn redact(url: &str) -> String {
    // Both backends spell credentials as `USER:PASSWORD@` before the hosts,
    // so memcached's redaction serves every scheme.
    backend_memcached::redact_url(url)
}

/// Opens the principal store named by `url`, and the optional read-first
/// `local` store (the original's `local` argument). `local` is a URL too, or
/// a bare `HOST:PORT`, which means `memcached://HOST:PORT`.
///
/// No I/O happens here: backends connect on first use, so a server that is
/// down shows up as errors of the first operations, not here.
pub fn open(url: &str, local: Option<&str>) -> Result<Stores, Error> {
    let servers = open_one(url)?;
    let local = match local {
        None => None,
        Some(l) if l.contains("://") => Some(open_one(l)?),
        Some(l) => Some(open_one(&format!("memcached://{l}"))?),
    };
    Ok((servers, local))
}

/// Opens one store URL; see the module docs for the schemes.
pub fn open_one(url: &str) -> Result<Arc<dyn Store>, Error> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("memory") => {
            if url != "memory://" {
                return Err(Error::MemoryOptions { url: shown(url) });
            }
            Ok(Arc::new(MemoryStore::new()))
        }
        Some("memcached") | Some("memcacheds") => MemcachedStore::from_url(url)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|source| Error::Memcached {
                url: printable(&without_password(url)),
                source,
            }),
        Some("redis") | Some("rediss") => RedisStore::from_url(url)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|source| Error::Redis {
                url: shown(url),
                source,
            }),
        _ => Err(Error::UnknownScheme { url: shown(url) }),
    }
}

/// The URL with the password of `scheme://user:password@host` replaced, so
/// an error message never shows it.
///
/// The password ends at the URL's last `@`, wherever it is: the Redis
/// parser lets a password hold `/`, and a URL with a mistyped scheme
/// (`redis:/u:pw@h`, `redsi://u:pw@h`) still holds one. Hiding a little
/// too much of an error message costs nothing.
fn without_password(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    let (head, tail) = url.split_at(at);
    let start = head.find("://").map_or(0, |i| i + 3);
    match head[start..].find(':') {
        Some(colon) => format!("{}:***{tail}", &head[..start + colon]),
        None => url.to_owned(),
    }
}

/// [`printable`] of [`without_password`]: how every error shows a URL.
fn shown(url: &str) -> String {
    printable(&without_password(url))
}

/// A URL fit for an error message: control characters escaped, length capped.
fn printable(url: &str) -> String {
    let mut s: String = url
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    if url.chars().count() > 200 {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(open("memory://", None).is_ok());
        assert!(matches!(
            open("memory://x", None),
            Err(Error::MemoryOptions { .. })
        ));
        let (_, local) = open("memcached://127.0.0.1:1", Some("127.0.0.1:2")).unwrap();
        assert!(local.is_some());
        let (_, local) = open("memory://", Some("memory://")).unwrap();
        assert!(local.is_some());
        assert!(matches!(
            open("memcached://127.0.0.1:1?nope=1", None),
            Err(Error::Memcached { .. })
        ));
        assert!(matches!(
            open("memory://", Some("127.0.0.1:1?bad=1")),
            Err(Error::Memcached { .. })
        ));
        assert!(open("redis://127.0.0.1:6379/2?prefix=s:&timeout_ms=100", None).is_ok());
        for bad in ["redis://127.0.0.1:6379?nope=1", "redis://h1,h2"] {
            assert!(matches!(open(bad, None), Err(Error::Redis { .. })), "{bad}");
        }
        let tls = open("rediss://127.0.0.1", None);
        assert_eq!(tls.is_ok(), cfg!(feature = "redis-tls"), "{:?}", tls.err());
        let cluster = open("redis://a:1,b:2?cluster=true", None);
        assert_eq!(cluster.is_ok(), cfg!(feature = "redis-cluster"));
        let e = open("redis://app:s3cret@h:1?bad=1", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && e.contains("app:***@h:1"), "{e}");
        assert!(matches!(
            open("127.0.0.1:11211", None),
            Err(Error::UnknownScheme { .. })
        ));
        let e = open("memcached://app:s3cret@h:1?bad=1", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && e.contains("app:***@h:1"), "{e}");
        let e = open("memcacheds://app:s3cret@h:1?ca=/nonexistent/ca.pem", None)
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("s3cret") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let e = open("memcache://app:s3cret@h:1", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        let e = open("x\n", None).unwrap_err().to_string();
        assert!(e.contains("\\n"), "{e}");
    }

    /// Fuzz findings (store_urls): a password showed in the error of a URL
    /// with an unknown or mistyped scheme, and in a Redis URL's error when
    /// the password held a `/` (the Redis parser allows it).
    #[test]
    fn no_error_shows_a_password() {
        for url in [
            "://:Secret00ff@",
            "redsi://u:Secret00ff@h:1",
            "redis:/u:Secret00ff@h:1",
            "redis://u:Sec/ret00ff@h:1?bad=1",
            "memory://u:Secret00ff@h",
            "memcached://u:Secret00ff@h:1?nope=1",
        ] {
            let e = open(url, None).unwrap_err().to_string();
            assert!(
                !e.contains("Secret00ff") && !e.contains("ret00ff"),
                "{url}: {e}"
            );
            assert!(e.contains(":***@"), "{url}: {e}");
        }
    }
}

//! The URL form of a [`MemcachedConfig`] (documented in the [parent
//! module](super)): the scheme, `user:password@`, the servers and the one
//! table of query keys.
//!
//! A URL may carry a password, so nothing here quotes a whole URL in an
//! error: [`redact_url`] is the form that may be printed.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use session_core::url_options::{UrlOption, apply_query, millis};

use super::security::{Credentials, TlsConfig};
use super::{ConnectionMode, FailurePolicy, MemcachedConfig, Protocol, Routing, ServerSpec};
use crate::error::{Error, Result};

/// The plain scheme.
pub(super) const PLAIN: &str = "memcached://";

/// The TLS scheme (see [`super::security`] for why a scheme).
pub(super) const TLS: &str = "memcacheds://";

/// The one list of query keys: parsing, the unknown-key message and the
/// docs' table (checked by a test) all follow it.
pub(super) const URL_KEYS: &[UrlOption<MemcachedConfig>] = &[
    UrlOption {
        key: "timeout_ms",
        set: |c, v| {
            c.io_timeout = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "connect_timeout_ms",
        set: |c, v| {
            c.connect_timeout = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "protocol",
        set: |c, v| {
            c.protocol = match v {
                "meta" => Protocol::Meta,
                "classic" => Protocol::Classic,
                _ => return Err("meta or classic"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "routing",
        set: |c, v| {
            c.routing = match v {
                "perl" => Routing::Perl,
                "ketama" => Routing::Ketama,
                _ => return Err("perl or ketama"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "failure",
        set: |c, v| {
            c.failure = match v {
                "fail" => FailurePolicy::Fail,
                "rehash" => FailurePolicy::Rehash,
                _ => return Err("fail or rehash"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "max_value_size",
        set: |c, v| {
            c.max_value_size = v.parse().map_err(|_| "a byte count")?;
            Ok(())
        },
    },
    UrlOption {
        key: "pool_size",
        set: |c, v| {
            c.pool_size = v.parse().map_err(|_| "a count")?;
            Ok(())
        },
    },
    UrlOption {
        key: "mode",
        set: |c, v| {
            c.mode = match v {
                "adaptive" => ConnectionMode::Adaptive,
                "multiplexed" => ConnectionMode::Multiplexed,
                "pooled" => ConnectionMode::Pooled,
                _ => return Err("adaptive, multiplexed or pooled"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "connections",
        set: |c, v| {
            c.connections = v.parse().map_err(|_| "a count")?;
            Ok(())
        },
    },
    UrlOption {
        key: "backoff_initial_ms",
        set: |c, v| {
            c.backoff_initial = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "backoff_max_ms",
        set: |c, v| {
            c.backoff_max = millis(v)?;
            Ok(())
        },
    },
    UrlOption {
        key: "delete_markers",
        set: |c, v| {
            c.delete_markers = match v {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err("1 or 0"),
            };
            Ok(())
        },
    },
    UrlOption {
        key: "ca",
        set: |c, v| {
            c.tls.get_or_insert_with(TlsConfig::default).ca_file = Some(path(v)?);
            Ok(())
        },
    },
    UrlOption {
        key: "cert",
        set: |c, v| {
            c.tls.get_or_insert_with(TlsConfig::default).cert_file = Some(path(v)?);
            Ok(())
        },
    },
    UrlOption {
        key: "key",
        set: |c, v| {
            c.tls.get_or_insert_with(TlsConfig::default).key_file = Some(path(v)?);
            Ok(())
        },
    },
    UrlOption {
        key: "server_name",
        set: |c, v| {
            let name = decode(v).ok_or("a DNS name or an IP address")?;
            if name.is_empty() {
                return Err("a DNS name or an IP address");
            }
            c.tls.get_or_insert_with(TlsConfig::default).server_name = Some(name);
            Ok(())
        },
    },
];

/// A percent-decoded query value or user info part, if it is UTF-8.
fn decode(value: &str) -> Option<String> {
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A percent-decoded file path (`ca=%2Fetc%2Fmemcached%2Fca.pem` or as
/// written).
fn path(value: &str) -> Result<PathBuf, &'static str> {
    match decode(value) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err("a file path"),
    }
}

/// `url` as it may be printed: the password of its `user:password@`, if
/// any, replaced by `***` (and nothing else changed). Use it for anything
/// that shows a store URL: logs, errors, metric labels.
///
/// ```
/// use backend_memcached::config::redact_url;
/// assert_eq!(redact_url("memcacheds://app:s3cret@h:11211?ca=/ca.pem"),
///            "memcacheds://app:***@h:11211?ca=/ca.pem");
/// assert_eq!(redact_url("memcached://h:11211"), "memcached://h:11211");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['?', '/']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Parses `memcached[s]://[user:password@]servers[?query]` and validates it.
pub(super) fn parse(url: &str) -> Result<MemcachedConfig> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix(TLS) {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix(PLAIN) {
        (false, rest)
    } else {
        return Err(Error::InvalidConfig(format!(
            "{:?} does not start with {PLAIN:?} or {TLS:?}",
            redact_url(url)
        )));
    };
    let (authority, query) = match rest.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (rest, None),
    };
    // The last '@': a password may hold one (percent-encoded or not), a
    // server list never does.
    let (auth, servers) = match authority.rsplit_once('@') {
        Some((userinfo, servers)) => (Some(credentials(userinfo)?), servers),
        None => (None, authority),
    };
    let mut config = MemcachedConfig {
        servers: servers
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<ServerSpec>>>()?,
        auth,
        tls: tls.then(TlsConfig::default),
        ..MemcachedConfig::default()
    };
    apply_query(URL_KEYS, &mut config, query).map_err(Error::InvalidConfig)?;
    if !tls && config.tls.is_some() {
        return Err(Error::InvalidConfig(format!(
            "ca, cert, key and server_name are TLS options: use {TLS:?}"
        )));
    }
    config.validate()?;
    Ok(config)
}

/// `user:password`, each percent-decoded. The error never quotes the
/// password.
fn credentials(userinfo: &str) -> Result<Credentials> {
    let (user, password) = userinfo.split_once(':').ok_or_else(|| {
        Error::InvalidConfig("user info without ':' (expected user:password@)".into())
    })?;
    let user =
        decode(user).ok_or_else(|| Error::InvalidConfig("the auth user is not UTF-8".into()))?;
    let password = decode(password).ok_or_else(|| {
        Error::InvalidConfig(format!("the password of auth user {user:?} is not UTF-8"))
    })?;
    Ok(Credentials::new(user, password))
}

//! A raw connection's target: `host:port`, or a one-server store URL
//! (`memcached://`, `memcacheds://`) for TLS and authentication, checked
//! and turned into an address and a connector.

use crate::config::MemcachedConfig;
use crate::connector::Connector;
use crate::error::{Error, Result};

/// Checks a target (`host:port`, or a one-server `memcached://` or
/// `memcacheds://` URL) without connecting, and returns its `host:port`,
/// the form to print.
///
/// ```
/// use backend_memcached::raw::target_addr;
/// assert_eq!(target_addr("10.0.0.1:11211").unwrap(), "10.0.0.1:11211");
/// assert_eq!(target_addr("memcacheds://app:pw@mc1:11211?ca=/ca.pem").unwrap(), "mc1:11211");
/// assert!(target_addr("memcached://a:1,b:2").is_err());
/// ```
pub fn target_addr(target: &str) -> Result<String> {
    Ok(match one_server(target)? {
        Some(config) => config.servers[0].addr(),
        None => target.to_owned(),
    })
}

/// The configuration a URL target names (exactly one server); `None` for
/// a bare `host:port`, which is checked as such.
fn one_server(target: &str) -> Result<Option<MemcachedConfig>> {
    if !target.contains("://") {
        match target.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                return Ok(None);
            }
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "{target:?} is neither host:port nor a memcached:// or memcacheds:// URL"
                )));
            }
        }
    }
    let config = MemcachedConfig::from_url(target)?;
    if config.servers.len() != 1 {
        return Err(Error::InvalidConfig(format!(
            "{:?} names {} servers; a raw connection goes to one",
            crate::config::redact_url(target),
            config.servers.len()
        )));
    }
    Ok(Some(config))
}

/// The address and connector of a target (certificate files read here).
pub(super) fn resolve(target: &str) -> Result<(String, Connector)> {
    match one_server(target)? {
        Some(config) => Ok((config.servers[0].addr(), Connector::new(&config)?)),
        None => Ok((target.to_owned(), Connector::plain())),
    }
}

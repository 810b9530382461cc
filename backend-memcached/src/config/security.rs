//! The security settings of a store: TLS ([`TlsConfig`]) and memcached's
//! ASCII authentication ([`Credentials`]), as configured. Turning them into
//! a connector (certificates read, rustls set up) is `crate::connector`'s
//! job; this module only holds and checks what the user wrote.
//!
//! # Why `memcacheds://`
//!
//! TLS is chosen by the scheme, `memcacheds://`, not by a `tls=1` query
//! key: it is the convention of `https://` and of this workspace's own
//! `rediss://`, so a URL says on its face, in a log line or a config file,
//! whether it is encrypted; and the TLS keys (`ca`, `cert`, `key`,
//! `server_name`) on a `memcached://` URL are an error, so nobody believes
//! a connection is encrypted because they added a `ca=`.
//!
//! # Secrets
//!
//! The password is held in a [`Password`], whose `Debug` prints
//! `"<redacted>"` and which has no `Display`: it cannot reach a log line,
//! an error message or a metric label by formatting a configuration. It
//! leaves this crate only as the data of the authentication request.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A password, printed as `<redacted>` by `Debug` and never by anything
/// else.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the authentication request only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// A user and password for memcached's ASCII authentication (`memcached
/// -Y FILE`, whose lines are `user:password`). Each new connection sends
/// them once, before any other request, as the data of a `set` (the form
/// memcached 1.6 expects); a wrong pair is [`Error::Unauthorized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name: no whitespace, control characters or `:`.
    pub user: String,
    /// The password: no control characters (memcached compares it as the
    /// rest of the line).
    pub password: Password,
}

impl Credentials {
    /// A user and its password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: Password::new(password),
        }
    }

    /// Checks both parts: memcached splits the request data at the first
    /// space, and a line break would end it early.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.user.is_empty()
            || self
                .user
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return Err(Error::InvalidConfig(format!(
                "auth user {:?} is empty or holds whitespace, control characters or ':'",
                self.user
            )));
        }
        let password = self.password.expose();
        if password.is_empty() || password.chars().any(char::is_control) {
            // The password itself is not quoted, not even in this error.
            return Err(Error::InvalidConfig(format!(
                "the password of auth user {:?} is empty or holds control characters",
                self.user
            )));
        }
        Ok(())
    }
}

/// How to speak TLS to the servers (`memcacheds://`). Certificates are
/// verified against [`TlsConfig::ca_file`] (or the system's roots) and
/// the host name checked, always: there is no switch to turn that off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM file of the CA certificates to trust (`ca=`); `None` for the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the client's certificate chain (`cert=`), for a
    /// memcached started with `-o ssl_verify_mode=2` (or 3) and
    /// `ssl_ca_cert=`; needs [`TlsConfig::key_file`].
    pub cert_file: Option<PathBuf>,
    /// The PEM file of the client certificate's private key (`key=`).
    pub key_file: Option<PathBuf>,
    /// The name the servers' certificates must carry (`server_name=`);
    /// `None` for each server's own host (a name or an IP address).
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Checks that the client certificate and its key come together.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(Error::InvalidConfig(
                "a client certificate needs both cert= and key=".into(),
            ));
        }
        if let Some(name) = &self.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(Error::InvalidConfig(format!(
                "server_name {name:?} is not a DNS name or an IP address"
            )));
        }
        Ok(())
    }
}

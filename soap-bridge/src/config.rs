//! [`Config`]: every setting of the bridge, from a TOML file and/or flags
//! (flags win), checked by [`Config::validate`] before anything listens.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! store = "memcached://10.0.0.1:11211,10.0.0.2:11211?timeout_ms=500"
//! local = "127.0.0.1:11211"        # optional read-first store
//! timeout = 3600                   # session expiry in seconds, 0 = never
//! principal = "uid"                # enables findByPrincipal
//! reverse_key_refresh = 60         # seconds a save may skip rewriting the reverse key; 0 = every save
//! codec = "json"                   # json | msgpack | storable
//! body_limit = 1048576             # bytes
//! header_timeout_ms = 5000
//! body_timeout_ms = 10000
//! shutdown_grace_ms = 10000
//!
//! principal_index = true          # per-user index: every session of a user (needs principal)
//!
//! [auth]                           # optional; /healthz, status and the WSDL stay open
//! type = "bearer"                  # or "basic" with user = "..." and password = "..."
//! token = "secret"                 # or token_file = "/run/secrets/bridge-token"
//!                                  # (password_file for basic; a final newline is dropped)
//!
//! [admin]                          # the web session explorer under /admin (needs [auth])
//! enabled = true
//! idle_timeout = 1800              # seconds an admin login lasts without a request
//! secure_cookie = false            # true behind a TLS proxy (always Secure with [tls])
//!
//! [tls]                            # optional: serve HTTPS (PEM files, read at start)
//! cert = "/etc/soap-bridge/cert.pem"   # the chain, leaf first
//! key = "/etc/soap-bridge/key.pem"     # PKCS#8, PKCS#1 or SEC1
//!
//! [llng]                           # LemonLDAP::NG's REST protocol (docs/llng.md)
//! key = "..."                      # LL::NG's `key`: checks the client's __secret
//! clock_tolerance_secs = 15        # LL::NG's restClockTolerance
//!
//! [seal]                           # sessions sealed at rest (session_core::seal)
//! keys_file = "/etc/soap-bridge/seal.keys"  # ID:HEX lines, current key first
//! # keys_env = "SEAL_KEYS"         # or: the name of a variable holding them
//! accept_unsealed = false          # transition: read plain values too
//! allow_storable = false           # codec storable inside the seal (Perl cannot read it)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use session_core::{Codec, Keyring, PrincipalIndex, SealConfig, SessionsConfig, Ttl};

use crate::error::Error;

/// Largest accepted `body_limit` (64 MiB): sessions are small, and a
/// larger value would only widen what one request can make us buffer.
pub const MAX_BODY_LIMIT: usize = 64 << 20;

/// The bridge's settings. `Default` is what `cargo run -p soap-bridge` uses.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Principal store URL (`memory://`, `memcached://...`).
    pub store: String,
    /// Read-first local store: a URL, or `HOST:PORT` for memcached.
    pub local: Option<String>,
    /// Session expiry in seconds, re-set on every write; 0 = never.
    pub timeout: u32,
    /// The field naming a session's user; needed by `findByPrincipal`.
    pub principal: Option<String>,
    /// Seconds after this process wrote a session's reverse key during which
    /// saves that keep the user leave it alone (session-core's
    /// `reverse_key_refresh`); 0 rewrites it on every save, as the original.
    pub reverse_key_refresh: u32,
    /// Encoding of new writes: `json`, `msgpack`, or `storable` (what the
    /// Perl original writes, so Perl nodes read the bridge's sessions).
    pub codec: String,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Time a client has to send a request's headers (and between requests
    /// on a kept-alive connection).
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body.
    pub body_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long requests in flight may still run.
    pub shutdown_grace_ms: u64,
    /// Optional authentication.
    pub auth: Option<Auth>,
    /// Keep a per-user index of live sessions (session-core's
    /// `principal_index`, MD5-keyed like the reverse key), so every session
    /// of a user can be listed and revoked. Needs `principal`.
    pub principal_index: bool,
    /// The web session explorer under `/admin` (off by default).
    pub admin: AdminConfig,
    /// LemonLDAP::NG's protocols (`[llng]`).
    pub llng: LlngConfig,
    /// HTTPS (`[tls]`, `--tls-cert/--tls-key`): plain HTTP without it.
    pub tls: TlsConfig,
    /// Sessions sealed at rest (`[seal]`, `--seal-keys-file`, ...): off
    /// without keys.
    pub seal: SealSettings,
}

/// Where the seal keys are (a file, or the name of an environment
/// variable: never the keys themselves, so they stay out of the TOML and
/// the command line), and the seal's two switches; see `session_core::seal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealSettings {
    /// The keyring file (`ID:HEX` entries, the current key first).
    pub keys_file: Option<PathBuf>,
    /// The environment variable holding the keyring, in the same form.
    pub keys_env: Option<String>,
    /// Transition setting: plain (unsealed) sessions are read, not refused.
    pub accept_unsealed: bool,
    /// Allow `codec = "storable"` with a seal (Perl nodes cannot read it).
    pub allow_storable: bool,
}

impl SealSettings {
    /// The seal these settings mean: `None` without keys; the keyring is
    /// read here (errors name the file or variable, never a key).
    pub fn seal_config(&self) -> Result<Option<SealConfig>, Error> {
        let keyring = match (&self.keys_file, &self.keys_env) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "seal: give keys_file or keys_env, not both".into(),
                ));
            }
            (Some(path), None) => Keyring::from_file(path),
            (None, Some(var)) => Keyring::from_env(var),
            (None, None) if self.accept_unsealed || self.allow_storable => {
                return Err(Error::Config(
                    "seal: accept_unsealed and allow_storable need keys (keys_file or keys_env)"
                        .into(),
                ));
            }
            (None, None) => return Ok(None),
        }
        .map_err(|e| Error::Config(e.to_string()))?;
        let mut seal = SealConfig::new(keyring);
        seal.accept_unsealed = self.accept_unsealed;
        seal.allow_storable = self.allow_storable;
        Ok(Some(seal))
    }
}

/// The certificate and key the bridge serves HTTPS with (`[tls]`,
/// `--tls-cert`, `--tls-key`); both or neither. PEM files, read once at
/// start by [`crate::tls`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// The private key of the leaf certificate.
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether HTTPS is configured (both files given).
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }
}

/// Settings of LemonLDAP::NG's session protocols (`[llng]`,
/// `--llng-key-file`, `--llng-clock-tolerance`). The SOAP and REST
/// surfaces are always served; the key only enables what LL::NG's REST
/// client proves with its `__secret`: creating a session under the id it
/// made, and listing sessions (`all=1`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlngConfig {
    /// LL::NG's `key` (its configuration's secret). Without it, creation
    /// under a client's id and `all=1` are refused with 403.
    pub key: Option<String>,
    /// Accepted clock difference, in seconds, between the client that made
    /// a `__secret` and this host (LL::NG's `restClockTolerance`; 1..=3600).
    pub clock_tolerance_secs: u64,
}

impl Default for LlngConfig {
    fn default() -> Self {
        LlngConfig {
            key: None,
            // LL::NG's default `restClockTolerance`.
            clock_tolerance_secs: 15,
        }
    }
}

impl std::fmt::Debug for Config {
    // The store URLs may hold a password: `Debug` shows them redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &store_url::redact(&self.store))
            .field("local", &self.local.as_deref().map(store_url::redact))
            .field("timeout", &self.timeout)
            .field("principal", &self.principal)
            .field("reverse_key_refresh", &self.reverse_key_refresh)
            .field("codec", &self.codec)
            .field("body_limit", &self.body_limit)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("auth", &self.auth)
            .field("principal_index", &self.principal_index)
            .field("admin", &self.admin)
            .field("llng", &self.llng)
            .field("tls", &self.tls)
            .field("seal", &self.seal)
            .finish()
    }
}

impl std::fmt::Debug for LlngConfig {
    // The key never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlngConfig")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("clock_tolerance_secs", &self.clock_tolerance_secs)
            .finish()
    }
}

/// Settings of the web session explorer (`[admin]`, `--admin`); see
/// the admin surface (`surfaces/admin`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve `/admin`. Needs `[auth]`: the login form asks for its
    /// credentials.
    pub enabled: bool,
    /// Seconds an admin login stays valid without a request (60..=86400).
    pub idle_timeout: u64,
    /// Mark the login cookie `Secure` (browsers then send it over HTTPS
    /// only): set it when a TLS proxy fronts the bridge. With `[tls]` the
    /// cookie is `Secure` whatever this says.
    pub secure_cookie: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            idle_timeout: 1800,
            secure_cookie: false,
        }
    }
}

/// Authentication of requests (`Authorization` header).
///
/// In TOML the secret is given inline (`token`, `password`) or, so it
/// stays out of the config file, as a file read once when the config is
/// loaded (`token_file`, `password_file`; one trailing newline is
/// dropped). A missing or unreadable file is a config error naming the
/// file, never the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AuthToml")]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// `[auth]` as written: each secret inline or in a file.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum AuthToml {
    Bearer {
        token: Option<String>,
        token_file: Option<PathBuf>,
    },
    Basic {
        user: String,
        password: Option<String>,
        password_file: Option<PathBuf>,
    },
}

impl TryFrom<AuthToml> for Auth {
    type Error = String;

    fn try_from(toml: AuthToml) -> Result<Self, String> {
        Ok(match toml {
            AuthToml::Bearer { token, token_file } => Auth::Bearer {
                token: secret("token", token, token_file)?,
            },
            AuthToml::Basic {
                user,
                password,
                password_file,
            } => Auth::Basic {
                user,
                password: secret("password", password, password_file)?,
            },
        })
    }
}

/// The secret `name`, from the TOML or from `name_file`: exactly one.
fn secret(name: &str, inline: Option<String>, file: Option<PathBuf>) -> Result<String, String> {
    match (inline, file) {
        (Some(s), None) => Ok(s),
        (None, Some(path)) => read_secret(&path).map_err(|e| format!("auth.{name}_file {e}")),
        (Some(_), Some(_)) => Err(format!("auth: give {name} or {name}_file, not both")),
        (None, None) => Err(format!("auth needs {name} or {name}_file")),
    }
}

/// A secret file's text without its trailing newline (`\n` or `\r\n`).
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    let text = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    Ok(text.to_owned())
}

impl std::fmt::Debug for Auth {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user:?}, <redacted>)"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: "memory://".into(),
            local: None,
            timeout: 0,
            principal: None,
            reverse_key_refresh: 60,
            codec: "json".into(),
            body_limit: 1 << 20,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            auth: None,
            principal_index: false,
            admin: AdminConfig::default(),
            llng: LlngConfig::default(),
            tls: TlsConfig::default(),
            seal: SealSettings::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document (unknown keys are errors). The error is one
    /// line: `config file: line L, column C: what`.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Self::parse(text, "config file")
    }

    /// Reads and parses a TOML file; errors name it.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// `text` as settings; a parse error becomes one line naming `origin`
    /// and the place (toml's own message adds a multi-line excerpt).
    fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let what = e.message().trim().replace('\n', " ");
            let place = e.span().map_or(String::new(), |span| {
                let before = text.get(..span.start).unwrap_or(text);
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                let line = before.matches('\n').count() + 1;
                format!(" line {line}, column {column}:")
            });
            Error::Config(format!("{origin}:{place} {what}"))
        })
    }

    /// Checks every setting; the first problem is an [`Error::Config`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if !(1..=MAX_BODY_LIMIT).contains(&self.body_limit) {
            return bad(format!(
                "body_limit {} is outside 1..={MAX_BODY_LIMIT}",
                self.body_limit
            ));
        }
        for (name, ms) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
        ] {
            if !(1..=3_600_000).contains(&ms) {
                return bad(format!("{name} {ms} is outside 1..=3600000"));
            }
        }
        match &self.auth {
            Some(Auth::Bearer { token }) if token.is_empty() => {
                return bad("auth token is empty".into());
            }
            Some(Auth::Basic { user, .. }) if user.is_empty() || user.contains(':') => {
                return bad("auth user is empty or contains ':'".into());
            }
            _ => {}
        }
        if self.admin.enabled && self.auth.is_none() {
            return bad(
                "the admin pages need [auth] (their login form asks for its credentials)".into(),
            );
        }
        if !(60..=86_400).contains(&self.admin.idle_timeout) {
            return bad(format!(
                "admin.idle_timeout {} is outside 60..=86400",
                self.admin.idle_timeout
            ));
        }
        if self.llng.key.as_deref().is_some_and(str::is_empty) {
            return bad(
                "llng.key is empty (leave it out to refuse what needs LL::NG's secret)".into(),
            );
        }
        if !(1..=3600).contains(&self.llng.clock_tolerance_secs) {
            return bad(format!(
                "llng.clock_tolerance_secs {} is outside 1..=3600",
                self.llng.clock_tolerance_secs
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("tls needs both cert and key (--tls-cert and --tls-key)".into());
        }
        if self.principal_index && self.principal.is_none() {
            return bad("principal_index needs principal (the field naming the user)".into());
        }
        self.codec()?;
        self.sessions_config()?.validate()?;
        Ok(())
    }

    /// The codec named by `codec`.
    pub fn codec(&self) -> Result<Codec, Error> {
        Codec::from_name(&self.codec).map_err(|e| Error::Config(e.to_string()))
    }

    /// The session-core configuration these settings mean.
    pub fn sessions_config(&self) -> Result<SessionsConfig, Error> {
        Ok(SessionsConfig {
            timeout: if self.timeout == 0 {
                Ttl::NEVER
            } else {
                Ttl::seconds(self.timeout)
            },
            principal: self.principal.clone(),
            reverse_key_refresh: Duration::from_secs(self.reverse_key_refresh.into()),
            codec: self.codec()?,
            principal_index: self.principal_index.then(PrincipalIndex::default),
            seal: self.seal.seal_config()?,
            // Many clients patching one session at once all get through with
            // session-core's defaults (per-key turns, backoff with jitter).
            ..SessionsConfig::default()
        })
    }

    /// `header_timeout_ms` as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// `body_timeout_ms` as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    /// `shutdown_grace_ms` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests;

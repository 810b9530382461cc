//! Opening a connection as the configuration says: TCP, then the TLS
//! handshake (`memcacheds://`), then memcached's ASCII authentication
//! (`user:password@`), all within the connect deadline, before any request
//! of the caller is written.
//!
//! A [`Connector`] is made once per store (or per raw connection) from the
//! configuration: certificate files are read and rustls is set up then, so
//! a missing or unreadable file is a configuration error at start, not a
//! failure of the first request. Every connection mode (pooled,
//! multiplexed, adaptive) and [`RawConnection`](crate::raw::RawConnection)
//! open their connections through it.
//!
//! **Failures name their cause.** rustls's verdict on the server's
//! certificate becomes an [`Error::Tls`] with a [`TlsFailure`] (untrusted,
//! expired, wrong name, not a TLS server); a refused password is
//! [`Error::Unauthorized`]; silence where a TLS server or a plaintext one
//! would have answered is reported with the likely reason (see
//! [`Error::NoAnswer`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::config::{Credentials, MemcachedConfig, TlsConfig};
use crate::error::{Error, Result, TlsFailure};
use crate::transport::Stream;

/// The key of the authentication `set`. memcached with `-Y` ignores it; a
/// memcached without `-Y` would store the item, so its TTL is negative
/// (stored already expired: nothing readable is left behind).
const AUTH_REQUEST_KEY: &str = "_memorycached_auth";

/// How connections are opened: plain or TLS, with or without credentials.
/// Cheap to clone (the rustls configuration is shared).
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<Tls>,
    auth: Option<Credentials>,
}

/// A ready TLS client.
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    /// `server_name=`, else each server's own host.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials print their user and a redacted password.
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .finish()
    }
}

impl Connector {
    /// Plain TCP, no authentication.
    pub(crate) fn plain() -> Self {
        Connector {
            tls: None,
            auth: None,
        }
    }

    /// The connector `config` asks for; reads the certificate files.
    pub(crate) fn new(config: &MemcachedConfig) -> Result<Self> {
        let tls = config.tls.as_ref().map(tls_client).transpose()?;
        Ok(Connector {
            tls,
            auth: config.auth.clone(),
        })
    }

    /// Opens a connection to `server` (`host:port`), ready for requests,
    /// giving up at `deadline`; `after` is the budget the deadline stands
    /// for, for the error.
    pub(crate) async fn open(
        &self,
        server: &str,
        deadline: Instant,
        after: Duration,
    ) -> Result<Stream> {
        let tcp = connect_tcp(server, deadline, after).await?;
        let mut stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(tls.handshake(tcp, server, deadline, after).await?)),
        };
        if let Some(auth) = &self.auth {
            authenticate(&mut stream, auth, server, deadline, after).await?;
        }
        Ok(stream)
    }
}

impl Tls {
    async fn handshake(
        &self,
        tcp: TcpStream,
        server: &str,
        deadline: Instant,
        after: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host_of(server).to_owned()).map_err(|_| {
                Error::InvalidConfig(format!(
                    "{server}: its host is no DNS name or IP address for TLS; give server_name="
                ))
            })?,
        };
        match tokio::time::timeout_at(deadline, self.connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(tls_error(server, &e)),
            Err(_) => Err(Error::Tls {
                server: server.to_owned(),
                cause: TlsFailure::HandshakeTimeout,
                detail: format!("no handshake answer within {after:?}"),
            }),
        }
    }
}

/// Sends the credentials as memcached 1.6 expects them (a `set` whose data
/// is `user password`) and reads its verdict.
async fn authenticate(
    stream: &mut Stream,
    auth: &Credentials,
    server: &str,
    deadline: Instant,
    after: Duration,
) -> Result<()> {
    let data = format!("{} {}", auth.user, auth.password.expose());
    let request = format!("set {AUTH_REQUEST_KEY} 0 -1 {}\r\n{data}\r\n", data.len());
    let mut line = Vec::with_capacity(64);
    let mut reader = BufReader::new(stream);
    let answer = tokio::time::timeout_at(deadline, async {
        reader.get_mut().write_all(request.as_bytes()).await?;
        reader.get_mut().flush().await?;
        // One short line; a longer one is no answer to this.
        (&mut reader).take(256).read_until(b'\n', &mut line).await
    })
    .await;
    // Nothing was read ahead: the server says nothing more until the next
    // request, so dropping the buffer loses nothing.
    let buffered = !reader.buffer().is_empty();
    match answer {
        Err(_) if line.is_empty() => Err(Error::NoAnswer {
            server: server.to_owned(),
            step: "the authentication request",
            detail: format!("nothing within the connect timeout of {after:?}"),
            silent_for: Some(after),
        }),
        Err(_) => Err(Error::ConnectTimeout {
            server: server.to_owned(),
            after,
        }),
        // A TLS alert here is the server refusing our client certificate
        // (TLS 1.3 tells so only after the handshake).
        Ok(Err(e)) => Err(match tls_cause(&e) {
            Some(_) => tls_error(server, &e),
            None if line.is_empty() => Error::NoAnswer {
                server: server.to_owned(),
                step: "the authentication request",
                detail: format!("the connection ended: {e}"),
                silent_for: None,
            },
            None => Error::Connect {
                server: server.to_owned(),
                source: e,
            },
        }),
        // The end of the stream before any answer.
        Ok(Ok(0)) => Err(Error::NoAnswer {
            server: server.to_owned(),
            step: "the authentication request",
            detail: "the server closed the connection".into(),
            silent_for: None,
        }),
        Ok(Ok(_)) => match line.as_slice() {
            b"STORED\r\n" if !buffered => Ok(()),
            l if l.starts_with(b"CLIENT_ERROR") => Err(Error::Unauthorized {
                server: server.to_owned(),
                user: auth.user.clone(),
            }),
            other => Err(Error::Protocol {
                server: server.to_owned(),
                message: format!(
                    "unexpected answer to the authentication request: {:?}",
                    String::from_utf8_lossy(&other[..other.len().min(100)])
                ),
            }),
        },
    }
}

/// Opens a TCP connection to `server` with Nagle off, giving up at
/// `deadline` (`after` is the budget it stands for, for the error).
async fn connect_tcp(server: &str, deadline: Instant, after: Duration) -> Result<TcpStream> {
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(server)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(Error::Connect {
                server: server.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(Error::ConnectTimeout {
                server: server.to_owned(),
                after,
            });
        }
    };
    // Requests are written whole; Nagle would only add latency to the
    // small ones.
    stream.set_nodelay(true).map_err(|source| Error::Connect {
        server: server.to_owned(),
        source,
    })?;
    Ok(stream)
}

/// The host of `host:port` or `[v6]:port`, without brackets.
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The rustls verdict inside an I/O error, if that is what it is.
pub(crate) fn tls_cause(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A fresh connection's failed first request as an [`Error::Tls`] when it
/// was rustls's verdict: TLS 1.3 tells a client its certificate was
/// refused (or missing) only after the handshake, as an alert on the first
/// read. Any other error is returned as it is.
pub(crate) fn tls_refusal(e: Error) -> Error {
    match e {
        Error::Io { server, source, .. } if tls_cause(&source).is_some() => {
            tls_error(&server, &source)
        }
        other => other,
    }
}

/// A failed handshake (or a first read that found a TLS alert) as an
/// [`Error::Tls`] naming its cause.
fn tls_error(server: &str, e: &io::Error) -> Error {
    let (cause, detail) = match tls_cause(e) {
        Some(tls) => (classify(tls), tls.to_string()),
        // Not rustls's verdict: the stream broke (closed, reset) mid-way.
        None => (
            TlsFailure::Other,
            format!("the connection broke during the handshake: {e}"),
        ),
    };
    Error::Tls {
        server: server.to_owned(),
        cause,
        detail,
    }
}

/// What a rustls error says went wrong, in the terms of [`TlsFailure`].
fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::AlertDescription as Alert;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::ExpiredCertificate
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::HostnameMismatch
            }
            _ => TlsFailure::UntrustedCertificate,
        },
        // Bytes that are no TLS record: a plaintext server answered (a
        // memcached without -Z says `ERROR` to a ClientHello).
        rustls::Error::InvalidMessage(_) => TlsFailure::NotTls,
        rustls::Error::AlertReceived(
            Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::HandshakeFailure,
        ) => TlsFailure::ClientCertificateRefused,
        _ => TlsFailure::Other,
    }
}

/// The rustls client `tls` asks for: the CAs of `ca=` or the system's,
/// and the client certificate of `cert=`/`key=`.
fn tls_client(tls: &TlsConfig) -> Result<Tls> {
    let bad = |what: String| Error::InvalidConfig(what);
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("reading the CA file {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(format!(
                    "the CA file {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(bad(
                    "no system CA certificates found (install ca-certificates, or give ca=)".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    bad(format!(
                        "reading the certificate file {}: {e}",
                        cert.display()
                    ))
                })?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("reading the key file {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("the client certificate and key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    // No session resumption: memcached 1.6.18 sets no session id context,
    // so with client certificates (ssl_verify_mode) OpenSSL answers a
    // resumption attempt with an internal_error alert (measured: one
    // handshake in a few failed so). Connections are long-lived; a full
    // handshake per new one costs little.
    config.resumption = rustls::client::Resumption::disabled();
    let server_name = tls
        .server_name
        .as_ref()
        .map(|name| {
            ServerName::try_from(name.clone()).map_err(|_| {
                bad(format!(
                    "server_name {name:?} is not a DNS name or an IP address"
                ))
            })
        })
        .transpose()?;
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_brackets() {
        assert_eq!(host_of("mc.example:11211"), "mc.example");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:11211"), "::1");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = MemcachedConfig {
            auth: Some(Credentials::new("app", "hunter2-secret")),
            ..MemcachedConfig::default()
        };
        let connector = Connector::new(&config).unwrap_or_else(|e| panic!("{e}"));
        let printed = format!("{connector:?} {config:?}");
        assert!(printed.contains("app"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

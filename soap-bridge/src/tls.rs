//! HTTPS: the rustls acceptor made from `[tls]`'s PEM files (ring as the
//! crypto provider, as everywhere in the workspace; TLS 1.2 and 1.3;
//! ALPN `http/1.1`, the only protocol the bridge serves). Read once at
//! start: a missing or unreadable file, or a key that does not match the
//! certificate, is an [`Error::Tls`] before the port is taken.
//!
//! A leaf: it imports only [`crate::config`] and [`crate::error`]; the
//! server's accept loop uses it.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::config::TlsConfig;
use crate::error::Error;

/// The acceptor for `config`, or `None` when HTTPS is not configured.
pub fn acceptor(config: &TlsConfig) -> Result<Option<TlsAcceptor>, Error> {
    let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
        return Ok(None);
    };
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("key file {}: {e}", key.display())))?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::Tls(format!(
                "certificate {} and its key do not go together: {e}",
                cert.display()
            ))
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Every certificate of a PEM file; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad =
        |e: &dyn std::fmt::Display| Error::Tls(format!("certificate file {}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if chain.is_empty() {
        return Err(bad(&"no CERTIFICATE in it"));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn off_without_files_and_clear_errors_with_bad_ones() {
        assert!(acceptor(&TlsConfig::default()).unwrap().is_none());
        let dir = std::env::temp_dir().join(format!("soap-bridge-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = TlsConfig {
            cert: Some(dir.join("missing.pem")),
            key: Some(dir.join("missing.key")),
        };
        let e = acceptor(&missing).err().unwrap().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = acceptor(&TlsConfig {
            cert: Some(empty.clone()),
            key: Some(PathBuf::from(&empty)),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Test certificates made by the `openssl` command line tool: a CA, a
//! server certificate for `127.0.0.1` and `localhost`, and whatever else a
//! test needs (a second CA, an expired or a client certificate), in a
//! scratch directory removed on drop.
//!
//! The command line tool rather than a certificate crate: it is what an
//! operator runs, memcached and Redis read its files as they are, and the
//! tests stay free of a second X.509 stack. P-256 keys: quick to make, and
//! rustls verifies them.
//!
//! ```no_run
//! # fn demo() -> Result<(), test_support::Error> {
//! use test_support::tls::Certificates;
//!
//! let certs = Certificates::new("my-test")?; // ca.pem/.key, server.pem/.key
//! certs.add_ca("other-ca")?;
//! certs.add_cert("stale", "ca", -1, Certificates::SERVER_EXT)?; // already expired
//! certs.add_cert("client", "ca", 1, Certificates::CLIENT_EXT)?;
//! let ca = certs.url_path("ca.pem"); // for `?ca=` in a URL
//! # let _ = ca; Ok(()) }
//! ```
//!
//! A leaf module: it uses nothing of the crate but the error type.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::Error;

/// The key options of every `openssl req` here: a P-256 key.
const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A scratch directory of certificates and keys, removed on drop.
///
/// [`Certificates::new`] makes the CA `ca` (`ca.pem`, `ca.key`) and the
/// server certificate `server` (`server.pem`, `server.key`) it signed for
/// `127.0.0.1` and `localhost`, both valid for one day.
#[derive(Debug)]
pub struct Certificates {
    dir: PathBuf,
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Certificates {
    /// The extensions of a server certificate for `127.0.0.1` and `localhost`.
    pub const SERVER_EXT: &'static str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    /// The extensions of a client certificate.
    pub const CLIENT_EXT: &'static str = "extendedKeyUsage=clientAuth\n";

    /// A fresh directory under the system's temporary one, named after
    /// `label`, this process and a counter, holding the CA `ca` and the
    /// server certificate `server`.
    ///
    /// A missing `openssl` is an error saying how to install it.
    pub fn new(label: &str) -> Result<Certificates, Error> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "memorycached-certs-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let certs = Certificates { dir };
        certs.add_ca("ca")?;
        certs.add_cert("server", "ca", 1, Certificates::SERVER_EXT)?;
        Ok(certs)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` (e.g. `ca.pem`) in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// [`Certificates::path`] as a string, for a command line argument.
    pub fn file(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// [`Certificates::file`] percent-encoded for a URL query (`?ca=...`).
    pub fn url_path(&self, name: &str) -> String {
        percent_encode(&self.file(name))
    }

    /// A self-signed CA `name` (`name.pem`, `name.key`), valid for one day.
    pub fn add_ca(&self, name: &str) -> Result<(), Error> {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN=memorycached test {name}"),
        );
        let mut args = vec!["req", "-x509", "-nodes", "-days", "1"];
        args.extend(EC);
        args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
        self.openssl(&args)
    }

    /// A certificate `name` (`name.pem`, `name.key`, subject `CN=localhost`)
    /// signed by the CA `ca`, valid for `days` (negative: expired that many
    /// days ago), with the extensions `ext` (an `openssl x509 -extfile`,
    /// such as [`Certificates::SERVER_EXT`] or [`Certificates::CLIENT_EXT`]).
    pub fn add_cert(&self, name: &str, ca: &str, days: i32, ext: &str) -> Result<(), Error> {
        let (key, csr, pem, cnf) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.cnf"),
        );
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(EC);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        self.openssl(&args)?;
        let cnf_path = self.dir.join(&cnf);
        std::fs::write(&cnf_path, ext)
            .map_err(Error::io(format!("writing {}", cnf_path.display())))?;
        let (ca_pem, ca_key, days) = (format!("{ca}.pem"), format!("{ca}.key"), days.to_string());
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            &days,
            "-extfile",
            &cnf,
            "-out",
            &pem,
        ])
    }

    /// Runs `openssl args` in the directory; its stderr is the error.
    fn openssl(&self, args: &[&str]) -> Result<(), Error> {
        let context = format!("running `openssl {}`", args.join(" "));
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(Error::io(format!(
                "{context} (install it: apt-get install openssl)"
            )))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Io {
                context,
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                ),
            })
        }
    }
}

/// Percent-encodes every byte of `s` a URL query value may not hold as it
/// is (a path's `/`, `.`, `-` and `_` stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificates_are_made_and_removed_with_the_directory() {
        let certs = Certificates::new("unit").unwrap();
        certs
            .add_cert("stale", "ca", -1, Certificates::SERVER_EXT)
            .unwrap();
        for f in ["ca.pem", "ca.key", "server.pem", "server.key", "stale.pem"] {
            let text = std::fs::read_to_string(certs.path(f)).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{f}: {text}");
        }
        // openssl itself says the server certificate verifies against the CA
        // and the expired one does not.
        let verify = |name: &str| {
            Command::new("openssl")
                .args(["verify", "-CAfile", "ca.pem", name])
                .current_dir(certs.dir())
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify("server.pem"));
        assert!(!verify("stale.pem"));
        let e = certs.add_cert("orphan", "no-such-ca", 1, "").unwrap_err();
        assert!(e.to_string().contains("no-such-ca.pem"), "{e}");
        let dir = certs.dir().to_owned();
        drop(certs);
        assert!(!dir.exists());
    }

    #[test]
    fn paths_are_percent_encoded_for_urls() {
        assert_eq!(percent_encode("/tmp/a b/c+d.pem"), "/tmp/a%20b/c%2Bd.pem");
    }
}

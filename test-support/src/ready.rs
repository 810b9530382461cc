//! Readiness: the protocol ping (`version` / `PING`) and the polling wait
//! every provider uses after starting a server.
//!
//! A leaf module (only the error type and [`ServerKind`] from this crate), so
//! the process and docker providers share it without depending on
//! [`Server`](crate::Server).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{Error, kind::ServerKind};

/// How long one ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a server started with `args` answers a plaintext ping: a
/// memcached serving TLS only (`-Z`) answers nothing in plaintext, so it
/// is pinged with a TLS ClientHello instead ([`client_hello`]).
pub(crate) fn answers_plaintext(kind: ServerKind, args: &[String]) -> bool {
    !(kind == ServerKind::Memcached && args.iter().any(|a| a == "-Z" || a == "--enable-ssl"))
}

/// A TLS 1.2 ClientHello (ECDHE with AES-GCM, P-256 or X25519), enough
/// for any TLS server to answer with its ServerHello or an alert.
///
/// Why a handshake's first flight rather than a TCP connect: Docker's
/// userland proxy accepts on the published port before the server in the
/// container listens (and then closes), so only an answer from the server
/// shows it is up. Hand-written because these few bytes are all the
/// readiness check needs of TLS; the tests' clients use rustls.
pub(crate) fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // client_version: TLS 1.2
    body.extend([0u8; 32]); // random
    body.push(0); // no session id
    let suites: [u16; 5] = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0x009c];
    body.extend(u16::try_from(suites.len() * 2).unwrap_or(0).to_be_bytes());
    for suite in suites {
        body.extend(suite.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null only
    let extensions: [&[u8]; 3] = [
        // supported_groups: secp256r1, x25519
        &[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d],
        // ec_point_formats: uncompressed
        &[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00],
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        &[
            0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
        ],
    ];
    let ext_len: usize = extensions.iter().map(|e| e.len()).sum();
    body.extend(u16::try_from(ext_len).unwrap_or(0).to_be_bytes());
    for extension in extensions {
        body.extend_from_slice(extension);
    }
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    let mut handshake = vec![0x01, len[1], len[2], len[3]]; // client_hello, u24 length
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 for compatibility
    record.extend(u16::try_from(handshake.len()).unwrap_or(0).to_be_bytes());
    record.extend(handshake);
    record
}

/// One connect and protocol ping (`version` / `PING`; a TLS ClientHello
/// answered by a handshake or alert record unless `plaintext`); `Err`
/// says what failed.
pub(crate) async fn ping(
    kind: ServerKind,
    addr: SocketAddr,
    plaintext: bool,
) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if !plaintext {
            stream
                .write_all(&client_hello())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut first = [0u8; 1];
            let n = stream
                .read(&mut first)
                .await
                .map_err(|e| format!("read: {e}"))?;
            return match (n, first[0]) {
                (0, _) => Err("connection closed before a TLS answer".to_owned()),
                // A handshake record (ServerHello) or an alert: TLS is served.
                (_, 0x16 | 0x15) => Ok(()),
                (_, other) => Err(format!("answer is not TLS (first byte {other:#04x})")),
            };
        }
        let (request, expect): (&[u8], &[u8]) = match kind {
            ServerKind::Memcached => (b"version\r\n", b"VERSION "),
            ServerKind::Redis | ServerKind::Valkey => (b"PING\r\n", b"+PONG"),
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 64];
        while !reply.ends_with(b"\r\n") {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before a reply".to_owned());
            }
            reply.extend_from_slice(&buf[..n]);
        }
        // A memcached with authentication (`-Y`) refuses `version` before
        // a login, which shows it up just as well.
        let refused_login =
            kind == ServerKind::Memcached && reply.starts_with(b"CLIENT_ERROR unauthenticated");
        if reply.starts_with(expect) || refused_login {
            Ok(())
        } else {
            Err(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(&reply).trim_end()
            ))
        }
    };
    match tokio::time::timeout(PING_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no reply within {PING_TIMEOUT:?}")),
    }
}

/// First pause between two pings; doubled after each failure up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// Longest pause between two pings.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Pings until the server answers or `budget` runs out. `check` runs before
/// each attempt and stops the wait early (a process that exited, say).
///
/// The pause between attempts starts at 2 ms and doubles up to 100 ms, so a
/// server that is up in a few milliseconds (a local process) is seen at once
/// and a slow one (a container) is not pinged in a busy loop; the last pause
/// is cut short so the wait never overruns `budget` by more than one ping.
pub(crate) async fn wait_ready(
    kind: ServerKind,
    addr: SocketAddr,
    plaintext: bool,
    budget: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), Error> {
    let started = Instant::now();
    let deadline = started + budget;
    let not_ready = |detail: String| Error::NotReady {
        server: kind.name(),
        addr: addr.to_string(),
        waited: started.elapsed(),
        detail,
    };
    let mut pause = FIRST_PAUSE;
    loop {
        check().map_err(not_ready)?;
        match ping(kind, addr, plaintext).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(not_ready(e));
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{process::ProcessServer, tls::Certificates};

    /// The ClientHello ping tells a memcached serving TLS from one that
    /// does not: the first answers with a handshake record, the second
    /// with a plaintext error line (or nothing). Local processes.
    #[tokio::test]
    async fn the_tls_ping_is_answered_by_tls_servers_only() {
        let certs = Certificates::new("ready").unwrap();
        let tls_args = vec![
            "-Z".to_owned(),
            "-o".to_owned(),
            format!(
                "ssl_chain_cert={},ssl_key={}",
                certs.file("server.pem"),
                certs.file("server.key")
            ),
        ];
        assert!(!answers_plaintext(ServerKind::Memcached, &tls_args));
        assert!(answers_plaintext(ServerKind::Memcached, &[]));
        // Launching waits for the ClientHello's answer.
        let (tls, tls_addr) = ProcessServer::launch(ServerKind::Memcached, tls_args)
            .await
            .unwrap();
        ping(ServerKind::Memcached, tls_addr, false).await.unwrap();
        let refused = ping(ServerKind::Memcached, tls_addr, true).await;
        assert!(refused.is_err(), "a plaintext ping to TLS: {refused:?}");
        let (plain, plain_addr) = ProcessServer::launch(ServerKind::Memcached, Vec::new())
            .await
            .unwrap();
        let e = ping(ServerKind::Memcached, plain_addr, false)
            .await
            .unwrap_err();
        assert!(
            e.contains("not TLS") || e.contains("closed") || e.contains("no reply"),
            "{e}"
        );
        drop((tls, plain));
    }

    #[test]
    fn the_client_hello_is_one_well_formed_record() {
        let hello = client_hello();
        assert_eq!(hello[0], 0x16, "a handshake record");
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 0x01, "client_hello");
        let body_len = usize::from(hello[7]) << 8 | usize::from(hello[8]);
        assert_eq!(usize::from(hello[6]), 0);
        assert_eq!(body_len, record_len - 4);
    }
}

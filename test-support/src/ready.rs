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
/// memcached serving TLS only (`-Z`) answers nothing in plaintext, so for
/// it a TCP connect is the ping (memcached listens once it is set up).
pub(crate) fn answers_plaintext(kind: ServerKind, args: &[String]) -> bool {
    !(kind == ServerKind::Memcached && args.iter().any(|a| a == "-Z" || a == "--enable-ssl"))
}

/// One connect and protocol ping (`version` / `PING`; a connect alone
/// unless `plaintext`); `Err` says what failed.
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
            return Ok(());
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

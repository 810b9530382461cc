//! One Redis command over a fresh connection, in plain RESP: enough to form
//! a cluster (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`, `CLUSTER INFO`)
//! without a Redis client dependency in the harness.
//!
//! A leaf module: it uses only the standard library and tokio.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// How long one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `args` as one command to `addr`; returns a status or bulk reply
/// as text, or `Err` with the error reply or what failed.
pub(crate) async fn command(addr: SocketAddr, args: &[&str]) -> Result<String, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => Ok(line[1..].to_owned()),
            Some(b'-') => Err(line[1..].to_owned()),
            Some(b'$') => {
                let len: usize = line[1..]
                    .parse()
                    .map_err(|_| format!("bad bulk length in {line:?}"))?;
                let mut body = vec![0u8; len + 2];
                reader
                    .read_exact(&mut body)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Err(format!("unexpected reply {line:?}")),
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no reply within {COMMAND_TIMEOUT:?}")),
    }
}

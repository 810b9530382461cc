//! One TCP connection to one memcached server: connect with a deadline,
//! write a request, read answer lines and data blocks.
//!
//! The connection knows nothing about commands; the `protocol` modules
//! encode requests and interpret what is read here. Deadlines for a whole
//! request are applied by the caller (`server.rs`), because one request may
//! read many lines and a per-read timeout would let a slow-drip server hold
//! a caller far longer than the configured I/O timeout.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The longest answer line we accept. Real lines are under 300 bytes (a
/// 250-byte key plus a few flags); a longer one means a confused stream.
const MAX_LINE: u64 = 8 * 1024;

/// The largest data block we accept, memcached's own ceiling (`-I 1024m`),
/// so a corrupt length cannot make us allocate without bound.
const MAX_BLOCK: usize = 1024 * 1024 * 1024;

/// An open connection.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    server: String,
    /// Bytes read since the last request was written: zero after a failure
    /// means the server sent nothing back, so the request was not answered.
    read_since_request: usize,
}

impl Connection {
    /// Opens a connection to `server` (`host:port`) within `timeout`.
    pub(crate) async fn connect(server: &str, timeout: Duration) -> Result<Self> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
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
                    after: timeout,
                });
            }
        };
        // Requests are written whole; Nagle would only add latency to the
        // small ones.
        stream.set_nodelay(true).map_err(|source| Error::Connect {
            server: server.to_owned(),
            source,
        })?;
        Ok(Connection {
            stream: BufReader::with_capacity(16 * 1024, stream),
            server: server.to_owned(),
            read_since_request: 0,
        })
    }

    /// The server address, for errors.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// True when nothing has been read since the last [`Connection::send`].
    pub(crate) fn nothing_read(&self) -> bool {
        self.read_since_request == 0
    }

    fn io_error(&self, operation: &'static str, source: io::Error) -> Error {
        Error::Io {
            operation,
            server: self.server.clone(),
            source,
        }
    }

    /// Writes a whole request.
    pub(crate) async fn send(&mut self, operation: &'static str, request: &[u8]) -> Result<()> {
        self.read_since_request = 0;
        let result = async {
            self.stream.get_mut().write_all(request).await?;
            self.stream.get_mut().flush().await
        }
        .await;
        result.map_err(|e| self.io_error(operation, e))
    }

    /// Reads one line and returns it without its `\r\n`.
    pub(crate) async fn read_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        let mut line = Vec::with_capacity(64);
        let n = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| self.io_error(operation, e))?;
        self.read_since_request += n;
        if n == 0 {
            return Err(self.io_error(
                operation,
                io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"),
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: format!(
                    "answer line too long or not ended by CRLF: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(100)])
                ),
            });
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Reads a data block of `len` bytes followed by `\r\n`.
    pub(crate) async fn read_block(
        &mut self,
        operation: &'static str,
        len: usize,
    ) -> Result<Vec<u8>> {
        if len > MAX_BLOCK {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: format!("data block of {len} bytes is beyond memcached's limits"),
            });
        }
        let mut data = vec![0u8; len + 2];
        self.stream
            .read_exact(&mut data)
            .await
            .map_err(|e| self.io_error(operation, e))?;
        self.read_since_request += data.len();
        if !data.ends_with(b"\r\n") {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: "data block not followed by CRLF".into(),
            });
        }
        data.truncate(len);
        Ok(data)
    }
}

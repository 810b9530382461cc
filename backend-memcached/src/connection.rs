//! One connection to one memcached server (plain or TLS, opened by
//! `crate::connector`): write a request, read answer lines and data blocks.
//!
//! The connection knows nothing about commands; the `protocol` modules
//! encode requests and interpret what is read here. Deadlines for a whole
//! request are applied by the caller (`server.rs`), because one request may
//! read many lines and a per-read timeout would let a slow-drip server hold
//! a caller far longer than the configured I/O timeout.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use crate::connector::Connector;
use crate::error::{Error, Result};
pub(crate) use crate::transport::IdleState;
use crate::transport::Stream;

/// The longest answer line we accept. Real lines are under 300 bytes (a
/// 250-byte key plus a few flags); a longer one means a confused stream.
const MAX_LINE: u64 = 8 * 1024;

/// The largest data block a new connection accepts until its server sets a
/// limit ([`Connection::set_max_block`]): memcached's default item size.
const DEFAULT_MAX_BLOCK: usize = 1024 * 1024;

/// How much of a data block is allocated before its bytes arrive. The
/// buffer grows as they do, so a lying length costs at most what the server
/// really sends, not what it announces.
const BLOCK_PREALLOC: usize = 64 * 1024;

/// The read side of a connection: answer lines and data blocks, with the
/// limits that keep a confused or hostile stream from costing more than
/// what it really sends. Generic over the stream so that a pooled
/// [`Connection`] (a whole [`Stream`]) and a multiplexed connection's
/// reader task (the read half alone, `crate::mux`) share it.
#[derive(Debug)]
pub(crate) struct Reader<R> {
    stream: BufReader<R>,
    server: String,
    /// Bytes read since [`Reader::reset_count`]: zero after a failure
    /// means the server sent nothing back, so the request was not answered.
    read_count: usize,
    /// The longest data block accepted (see [`Reader::set_max_block`]).
    max_block: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader of `stream`, which talks to `server`.
    pub(crate) fn new(stream: R, server: String) -> Self {
        Reader {
            stream: BufReader::with_capacity(16 * 1024, stream),
            server,
            read_count: 0,
            max_block: DEFAULT_MAX_BLOCK,
        }
    }

    /// The server address, for errors.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Sets the longest data block [`Reader::read_block`] accepts. The
    /// server knows its limits (the store's `max_value_size`, the server's
    /// `item_size_max`); a longer length is a confused or hostile stream.
    pub(crate) fn set_max_block(&mut self, max_block: usize) {
        self.max_block = max_block;
    }

    /// True when bytes were read from the socket but not consumed by the
    /// parser: after a complete answer, the server sent more than was asked.
    pub(crate) fn has_unread(&self) -> bool {
        !self.stream.buffer().is_empty()
    }

    /// Waits until at least one byte can be read without consuming it;
    /// false at the end of the stream.
    pub(crate) async fn wait_readable(&mut self) -> io::Result<bool> {
        Ok(!self.stream.fill_buf().await?.is_empty())
    }

    /// Bytes read since the last [`Reader::reset_count`].
    pub(crate) fn read_count(&self) -> usize {
        self.read_count
    }

    fn reset_count(&mut self) {
        self.read_count = 0;
    }

    /// An I/O error while reading an answer: reading comes after the whole
    /// request was written, so it was sent.
    fn io_error(&self, operation: &'static str, source: io::Error) -> Error {
        Error::Io {
            operation,
            server: self.server.clone(),
            source,
            sent: true,
        }
    }

    /// Reads one line and returns it without its `\r\n`.
    pub(crate) async fn read_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        let line = self.read_raw_line(operation).await?;
        if !line.ends_with(b"\r\n") {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: format!(
                    "answer line too long or not ended by CRLF: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(100)])
                ),
            });
        }
        Ok(strip_eol(line))
    }

    /// Reads one line ended by `\n` or `\r\n` (`lru_crawler metadump`
    /// ends its item lines with a bare `\n`), without the line ending.
    pub(crate) async fn read_lf_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        let line = self.read_raw_line(operation).await?;
        if !line.ends_with(b"\n") {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: format!(
                    "answer line too long: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(100)])
                ),
            });
        }
        Ok(strip_eol(line))
    }

    /// Reads up to and including `\n`, at most [`MAX_LINE`] bytes.
    async fn read_raw_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        let mut line = Vec::with_capacity(64);
        let n = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| self.io_error(operation, e))?;
        self.read_count += n;
        if n == 0 {
            return Err(self.io_error(
                operation,
                io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"),
            ));
        }
        Ok(line)
    }

    /// Reads a data block of `len` bytes followed by `\r\n`.
    pub(crate) async fn read_block(
        &mut self,
        operation: &'static str,
        len: usize,
    ) -> Result<Vec<u8>> {
        // A length beyond what this server can hold is a corrupt stream:
        // refused before reading (the caller drops the connection), so it
        // cannot make us allocate or wait for a gigabyte.
        if len > self.max_block {
            return Err(Error::Protocol {
                server: self.server.clone(),
                message: format!(
                    "data block of {len} bytes is longer than the {} bytes this server can hold",
                    self.max_block
                ),
            });
        }
        // Checked even below the limit: the limit itself comes from the
        // server (capped, but this must not depend on that).
        let want = len.checked_add(2).ok_or_else(|| Error::Protocol {
            server: self.server.clone(),
            message: format!("data block of {len} bytes is impossibly long"),
        })?;
        // Grown as bytes arrive rather than allocated up front.
        let mut data = Vec::with_capacity(want.min(BLOCK_PREALLOC));
        let n = (&mut self.stream)
            .take(want as u64)
            .read_to_end(&mut data)
            .await
            .map_err(|e| self.io_error(operation, e))?;
        self.read_count += n;
        if n < want {
            return Err(self.io_error(
                operation,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection inside a data block",
                ),
            ));
        }
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

/// An open connection, used by one request at a time.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: Reader<Stream>,
    /// Bytes of the last request handed to the socket: zero after a failed
    /// [`Connection::send`] means none of it can have reached the server.
    written_since_request: usize,
}

impl Connection {
    /// Opens a plain connection to `server` (`host:port`) within `timeout`.
    #[cfg(test)]
    pub(crate) async fn connect(server: &str, timeout: Duration) -> Result<Self> {
        Connection::connect_until(
            &Connector::plain(),
            server,
            Instant::now() + timeout,
            timeout,
        )
        .await
    }

    /// Opens a connection to `server` the way `connector` says (TLS,
    /// authentication), giving up at `deadline`; `after` is the budget the
    /// deadline stands for, for the error.
    pub(crate) async fn connect_until(
        connector: &Connector,
        server: &str,
        deadline: Instant,
        after: Duration,
    ) -> Result<Self> {
        let stream = connector.open(server, deadline, after).await?;
        Ok(Connection {
            reader: Reader::new(stream, server.to_owned()),
            written_since_request: 0,
        })
    }

    /// The server address, for errors.
    pub(crate) fn server(&self) -> &str {
        self.reader.server()
    }

    /// The read side, for the answer parsers.
    pub(crate) fn reader(&mut self) -> &mut Reader<Stream> {
        &mut self.reader
    }

    /// True when nothing has been read since the last [`Connection::send`].
    pub(crate) fn nothing_read(&self) -> bool {
        self.reader.read_count() == 0
    }

    /// True when no byte of the last request was handed to the socket.
    pub(crate) fn nothing_written(&self) -> bool {
        self.written_since_request == 0
    }

    /// See [`Reader::set_max_block`].
    pub(crate) fn set_max_block(&mut self, max_block: usize) {
        self.reader.set_max_block(max_block);
    }

    /// See [`Reader::has_unread`].
    pub(crate) fn has_unread(&self) -> bool {
        self.reader.has_unread()
    }

    /// Whether an idle connection can take a request: nothing buffered and
    /// nothing (data or end of stream) waiting in the socket. Does not
    /// block; readiness the runtime has not seen yet reads as clean.
    pub(crate) fn idle_state(&mut self) -> IdleState {
        if self.has_unread() {
            return IdleState::Unsolicited;
        }
        self.reader.stream.get_mut().idle_state()
    }

    /// The socket itself, for a multiplexed connection to split (nothing
    /// may be buffered yet: it is taken right after connecting).
    pub(crate) fn into_stream(self) -> Stream {
        self.reader.stream.into_inner()
    }

    /// Writes a whole request.
    pub(crate) async fn send(&mut self, operation: &'static str, request: &[u8]) -> Result<()> {
        self.reader.reset_count();
        self.written_since_request = 0;
        let result = async {
            // `write_all` by hand, counting, so a failure can tell whether
            // any byte may have reached the server.
            let mut rest = request;
            while !rest.is_empty() {
                let n = self.reader.stream.get_mut().write(rest).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                self.written_since_request += n;
                rest = &rest[n..];
            }
            self.reader.stream.get_mut().flush().await
        }
        .await;
        result.map_err(|source| Error::Io {
            operation,
            server: self.server().to_owned(),
            source,
            sent: self.written_since_request > 0,
        })
    }

    /// See [`Reader::read_line`].
    pub(crate) async fn read_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        self.reader.read_line(operation).await
    }

    /// See [`Reader::read_lf_line`].
    pub(crate) async fn read_lf_line(&mut self, operation: &'static str) -> Result<Vec<u8>> {
        self.reader.read_lf_line(operation).await
    }

    /// See [`Reader::read_block`].
    #[cfg(test)]
    pub(crate) async fn read_block(
        &mut self,
        operation: &'static str,
        len: usize,
    ) -> Result<Vec<u8>> {
        self.reader.read_block(operation, len).await
    }
}

/// `line` without its trailing `\n` or `\r\n`.
fn strip_eol(mut line: Vec<u8>) -> Vec<u8> {
    if line.ends_with(b"\n") {
        line.pop();
    }
    if line.ends_with(b"\r") {
        line.pop();
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connection to a listener that writes `chunks`, pausing between
    /// them, then closes.
    async fn serving(chunks: Vec<&'static [u8]>) -> Connection {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for chunk in chunks {
                socket.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Connection::connect(&addr, Duration::from_secs(1))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn blocks_are_read_as_they_arrive() {
        let mut conn = serving(vec![b"ab", b"c\r", b"\nrest"]).await;
        assert_eq!(conn.read_block("get", 3).await.unwrap(), b"abc");
        assert!(!conn.nothing_read());
    }

    #[tokio::test]
    async fn block_lengths_are_bounded_by_the_server_limit() {
        // Regression: any length up to 1 GiB was accepted and allocated
        // before a byte arrived.
        let mut conn = serving(vec![b"xxxx\r\n"]).await;
        conn.set_max_block(3);
        let err = conn.read_block("get", 4).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert!(conn.nothing_read(), "refused before reading");
        conn.set_max_block(4);
        assert_eq!(conn.read_block("get", 4).await.unwrap(), b"xxxx");
    }

    #[tokio::test]
    async fn a_block_length_near_usize_max_is_an_error_not_an_overflow() {
        // Regression: `len + 2` overflowed (a panic in debug builds) once a
        // server's claimed `item_size_max` let such a length through.
        let mut conn = serving(vec![b"xx"]).await;
        conn.set_max_block(usize::MAX);
        let err = conn.read_block("get", usize::MAX).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn dump_lines_may_end_with_a_bare_newline() {
        let mut conn = serving(vec![b"key=a exp=-1\nEND\r\n"]).await;
        assert_eq!(conn.read_lf_line("scan").await.unwrap(), b"key=a exp=-1");
        assert_eq!(conn.read_lf_line("scan").await.unwrap(), b"END");
    }

    #[tokio::test]
    async fn a_short_or_unterminated_block_is_an_error() {
        let mut conn = serving(vec![b"abcXY"]).await;
        assert!(matches!(
            conn.read_block("get", 3).await,
            Err(Error::Protocol { .. })
        ));
        let mut conn = serving(vec![b"ab"]).await;
        assert!(matches!(
            conn.read_block("get", 3).await,
            Err(Error::Io { .. })
        ));
    }
}

//! The byte stream under a connection: plain TCP or TLS over TCP
//! ([`Stream`]), and its two halves for a multiplexed connection's reader
//! and writer tasks.
//!
//! An enum rather than a boxed trait object: the plain path, the common
//! one, stays a direct call to tokio's `TcpStream` and keeps its cheap
//! owned halves; only TLS pays for `tokio::io::split`'s shared lock (a
//! TLS session is one state machine that both halves drive).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::client::TlsStream;

/// What a pooled connection holds before it is reused (read off its
/// stream without blocking, [`Stream::idle_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleState {
    /// Nothing to read: safe to send the next request on.
    Clean,
    /// The server closed it meanwhile (restart, idle timeout).
    Closed,
    /// Bytes no request asked for: reading them would take them for the
    /// next answer.
    Unsolicited,
}

/// A TLS session over TCP (boxed: rustls's state is a few kilobytes).
type Tls = Box<TlsStream<TcpStream>>;

/// An open connection's byte stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP (`memcached://`).
    Plain(TcpStream),
    /// TLS (`memcacheds://`), handshake done.
    Tls(Tls),
}

/// The read half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The write half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl Stream {
    /// Splits the stream for a reader task and a writer task.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(tls) => {
                let (r, w) = tokio::io::split(*tls);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }

    /// Whether an idle connection can take a request, without blocking
    /// (see [`IdleState`]). Plain TCP peeks at the socket; TLS must read
    /// through the session, since the socket may hold records that carry
    /// no data (TLS 1.3 session tickets arrive after the handshake), so it
    /// polls one read with a waker that does nothing: pending means
    /// nothing to read. Readiness the runtime has not seen yet reads as
    /// clean, in both.
    pub(crate) fn idle_state(&mut self) -> IdleState {
        let mut probe = [0u8; 1];
        match self {
            Stream::Plain(tcp) => match tcp.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => IdleState::Clean,
                Ok(0) | Err(_) => IdleState::Closed,
                Ok(_) => IdleState::Unsolicited,
            },
            Stream::Tls(tls) => {
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(tls.as_mut()).poll_read(&mut cx, &mut buf) {
                    Poll::Pending => IdleState::Clean,
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => IdleState::Closed,
                    Poll::Ready(Ok(())) => IdleState::Unsolicited,
                    Poll::Ready(Err(_)) => IdleState::Closed,
                }
            }
        }
    }
}

/// Forwards each `AsyncRead`/`AsyncWrite` method to the variant's stream.
macro_rules! forward {
    ($ty:ident, $($variant:ident),+) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
    (write $ty:ident, $($variant:ident),+) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

forward!(Stream, Plain, Tls);
forward!(write Stream, Plain, Tls);
forward!(ReadHalf, Plain, Tls);
forward!(write WriteHalf, Plain, Tls);

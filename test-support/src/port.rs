//! [`dead_port`]: a loopback address where nothing listens, reliably.
//!
//! Tests of failure paths need an address that refuses connections. A fixed
//! port (`127.0.0.1:1`) may be open on some machine; a port probed free and
//! released may be taken by a parallel test a moment later. A socket that is
//! bound but never listens reserves the port for as long as it lives, and
//! the kernel answers every connection attempt to it with a reset
//! ("connection refused").

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpSocket;

use crate::Error;

/// A loopback port reserved by a bound, non-listening socket: connecting to
/// [`addr`](DeadPort::addr) is refused until the `DeadPort` is dropped.
#[derive(Debug)]
pub struct DeadPort {
    /// Holds the port; never listens.
    _socket: TcpSocket,
    addr: SocketAddr,
}

impl DeadPort {
    /// `127.0.0.1:PORT`, refusing connections.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port alone.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Reserves a loopback port where connections are refused; keep the returned
/// value alive for as long as the address is used.
pub fn dead_port() -> Result<DeadPort, Error> {
    let socket = TcpSocket::new_v4().map_err(Error::io("creating a TCP socket"))?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(Error::io("binding a loopback port"))?;
    let addr = socket
        .local_addr()
        .map_err(Error::io("reading the reserved port"))?;
    Ok(DeadPort {
        _socket: socket,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused, not hung: outside any runtime, with plain std sockets.
    #[test]
    fn a_dead_port_refuses_connections_while_it_lives() {
        let dead = dead_port().unwrap();
        let err =
            std::net::TcpStream::connect_timeout(&dead.addr(), std::time::Duration::from_secs(2))
                .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // The port stays reserved: a listener cannot take it meanwhile.
        assert!(std::net::TcpListener::bind(dead.addr()).is_err());
    }
}

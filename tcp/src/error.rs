//! Errors reported to users of the socket API.

use core::net::SocketAddrV4;

/// What a socket call can fail with. Connection errors are sticky: once a
/// connection is reset or times out, every later call reports the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("operation would block")]
    WouldBlock,
    #[error("connection reset by peer")]
    ConnectionReset,
    #[error("connection refused by {0}")]
    ConnectionRefused(SocketAddrV4),
    #[error("connection timed out: no answer after {retries} retransmissions")]
    TimedOut { retries: u32 },
    #[error("cannot send: this side of the connection is already shut down")]
    SendAfterShutdown,
    #[error("socket is not connected")]
    NotConnected,
    #[error("invalid or stale socket handle")]
    InvalidHandle,
    #[error("address {0} is already in use")]
    AddrInUse(SocketAddrV4),
    #[error("connection table full ({0} connections)")]
    TooManyConnections(usize),
    #[error("no free ephemeral port towards {0}")]
    NoEphemeralPort(SocketAddrV4),
}

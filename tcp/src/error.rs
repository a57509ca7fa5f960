//! Errors reported to users of the socket API.

use core::net::SocketAddrV4;

use ustack_ipv4::icmp::IcmpError;

/// What a socket call can fail with. Connection errors are sticky: once a
/// connection is reset or times out, every later call reports the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// Nothing can be done now: no data to read, no room in the send buffer,
    /// or no connection to accept. Retry after the next `poll`; not sticky.
    #[error("operation would block")]
    WouldBlock,
    /// An acceptable RST arrived on a synchronized connection (RFC 9293
    /// §3.10.7.4; in-window and exact per RFC 5961 §3, else only a
    /// challenge ACK is sent).
    #[error("connection reset by peer")]
    ConnectionReset,
    /// The peer (its address) answered our SYN with an acceptable RST
    /// (RFC 9293 §3.10.7.3), a simultaneous open in SYN-RECEIVED was reset,
    /// or an ICMP hard error (RFC 1122 §4.2.3.9) arrived in SYN-SENT.
    #[error("connection refused by {0}")]
    ConnectionRefused(SocketAddrV4),
    /// Retransmissions (RFC 6298 RTO backoff, `TcpConfig::max_retries`), SYN
    /// retries, keep-alive probes or the user timeout ran out with no ICMP
    /// error to blame.
    #[error("connection timed out: no answer after {retries} retransmissions")]
    TimedOut {
        /// Retransmissions (or keep-alive probes) sent before giving up.
        retries: u32,
    },
    /// The connection timed out (retransmissions, SYN retries, keep-alive
    /// or user timeout) after an ICMP error said why: RFC 1122 §4.2.3.9
    /// soft errors are reported only then, as Linux reports EHOSTUNREACH
    /// rather than ETIMEDOUT.
    #[error("connection timed out: {cause} (ICMP) after {retries} retransmissions")]
    Unreachable {
        /// The last ICMP error received about the connection's segments.
        cause: IcmpError,
        /// Retransmissions (or keep-alive probes) sent before giving up.
        retries: u32,
    },
    /// `send` after `shutdown` or `close` queued our FIN.
    #[error("cannot send: this side of the connection is already shut down")]
    SendAfterShutdown,
    /// The connection is in a state where the call makes no sense: `send` in
    /// FIN-WAIT, CLOSING, LAST-ACK, TIME-WAIT or CLOSED, `recv` on CLOSED.
    #[error("socket is not connected")]
    NotConnected,
    /// `recv` while receive buffers are posted on the connection: its data
    /// goes into them, and `take_recv` hands them back.
    #[error("receive buffers are posted: take the data with take_recv")]
    BuffersPosted,
    /// `take_recv` with no receive buffer posted on the connection.
    #[error("no receive buffer posted: post one with post_recv")]
    NothingPosted,
    /// The [`ConnId`](crate::ConnId) or [`ListenerId`](crate::ListenerId)
    /// names no live object: it was closed, aborted or evicted to make room
    /// in a full table, and its slot may be reused (handles carry a
    /// generation, so a stale one never reaches the new occupant).
    #[error("invalid or stale socket handle")]
    InvalidHandle,
    /// `listen` on a port that already has a listener, or `connect` from a
    /// local address whose 4-tuple is live or in TIME-WAIT.
    #[error("address {0} is already in use")]
    AddrInUse(SocketAddrV4),
    /// A new connection (`connect`, a capture) was refused because the table
    /// holds `TcpLayerConfig::max_connections`, the value carried. Only
    /// handshakes completed by SYN cookie evict an idle connection instead.
    #[error("connection table full ({0} connections)")]
    TooManyConnections(usize),
    /// Every port of `TcpLayerConfig::ephemeral_ports` is in use towards this
    /// remote address (RFC 6056 §2.2: TIME-WAIT 4-tuples count as in use).
    #[error("no free ephemeral port towards {0}")]
    NoEphemeralPort(SocketAddrV4),
}

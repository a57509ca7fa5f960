//! Connection states and per-connection tunables.

use core::time::Duration;

use crate::cc;

/// Connection states of RFC 9293 §3.3.2. LISTEN is represented by a listener
/// in the stack, never by a `Tcb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// CLOSED: no connection. Reported for a connection that was reset, timed
    /// out or finished closing while its handle is still held.
    Closed,
    /// LISTEN: waiting for a SYN. Never the state of a connection here: a
    /// listener is a separate object with its own accept queue.
    Listen,
    /// SYN-SENT: our SYN is out (active open); waiting for a matching SYN-ACK.
    SynSent,
    /// SYN-RECEIVED: a SYN arrived and our SYN-ACK is out; waiting for the ACK
    /// that completes the three-way handshake (RFC 9293 §3.5).
    SynReceived,
    /// ESTABLISHED: the handshake is complete; data flows both ways.
    Established,
    /// FIN-WAIT-1: we closed (our FIN is queued or sent) and it is not yet
    /// acknowledged; the peer may still send.
    FinWait1,
    /// FIN-WAIT-2: our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// CLOSE-WAIT: the peer's FIN arrived (reads return end of stream); we
    /// may still send until the application closes.
    CloseWait,
    /// CLOSING: both sides sent FIN at once; waiting for the ACK of ours.
    Closing,
    /// LAST-ACK: the peer closed first, then we did; waiting for the ACK of
    /// our FIN.
    LastAck,
    /// TIME-WAIT: both FINs are acknowledged; we closed first and wait out
    /// old duplicates of the connection's segments (RFC 9293 §3.6; `TcpConfig::time_wait`, 2 MSL)
    /// before the 4-tuple may be reused.
    TimeWait,
}

impl State {
    /// States after the three-way handshake in which the peer's sequence
    /// numbers are known (RFC 9293 §3.5 "synchronized").
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent)
    }
}

/// Tunables of every connection.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// MSS we announce; the stack derives it from the link MTU (MTU - 40).
    pub mss: u16,
    /// Bytes the application may queue for sending at first. The send
    /// buffer then grows with the congestion window (twice cwnd, like
    /// Linux's `tcp_sndbuf_expand`) up to `send_buffer_max`. Sizes are
    /// rounded up to powers of two.
    pub send_buffer: usize,
    /// Largest send buffer (Linux `tcp_wmem` max is 4 MiB; more is needed
    /// to fill 1 Gbit/s over 50 ms of RTT).
    pub send_buffer_max: usize,
    /// Bytes of received data held for the application at first: the
    /// first advertised window. Grown by receive auto-tuning (dynamic
    /// right-sizing, Linux `tcp_rcv_space_adjust`) toward twice what the
    /// application reads per round trip, up to `recv_buffer_max`.
    pub recv_buffer: usize,
    /// Largest receive buffer (Linux `tcp_rmem` max is 6 MiB); it also sets
    /// the window scale we offer (RFC 7323 §2.3).
    pub recv_buffer_max: usize,
    /// RFC 6298 §2.1 initial RTO (1 s).
    pub rto_initial: Duration,
    /// Lower bound on the RTO. RFC 6298 §2.4 says 1 s; like Linux we use 200 ms,
    /// since a 1 s floor makes every loss on a LAN or TUN link cost a second.
    pub rto_min: Duration,
    /// Upper bound on the RTO (RFC 6298 §2.5 allows >= 60 s; Linux uses 120 s).
    pub rto_max: Duration,
    /// Retransmissions of a SYN or SYN-ACK before giving up (Linux: 6).
    pub syn_retries: u32,
    /// Retransmissions of data or FIN before giving up (RFC 1122 §4.2.3.5 R2).
    pub data_retries: u32,
    /// How long TIME-WAIT lasts: 2 x MSL (RFC 9293 §3.4.2). Linux uses 60 s.
    pub time_wait: Duration,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3): RTT measurement and PAWS.
    pub timestamps: bool,
    /// Offer selective acknowledgements (RFC 2018).
    pub sack: bool,
    /// Congestion control algorithm (RFC 9438 CUBIC by default).
    pub congestion: cc::Algorithm,
    /// Disable Nagle's algorithm (RFC 9293 §3.7.4), like TCP_NODELAY.
    pub nodelay: bool,
    /// Longest an ACK may be delayed (RFC 9293 §3.8.6.3: under 0.5 s).
    pub ack_delay: Duration,
    /// Send keep-alive probes after this long without hearing from the peer
    /// (RFC 1122 §4.2.3.6; off by default, as it must be).
    pub keepalive: Option<Duration>,
    /// Interval between unanswered keep-alive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keep-alive probes before the connection is dropped.
    pub keepalive_probes: u32,
    /// Give up when sent data stays unacknowledged this long (RFC 9293 §3.8.4
    /// USER TIMEOUT, RFC 5482). `None`: only the retransmission limits apply.
    pub user_timeout: Option<Duration>,
}

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            mss: 1460,
            send_buffer: 64 * 1024,
            send_buffer_max: 16 << 20,
            recv_buffer: 64 * 1024,
            recv_buffer_max: 16 << 20,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            syn_retries: 6,
            data_retries: 10,
            time_wait: Duration::from_secs(60),
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion: cc::Algorithm::Cubic,
            nodelay: false,
            ack_delay: Duration::from_millis(40),
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            user_timeout: None,
        }
    }
}

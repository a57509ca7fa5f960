//! ICMP errors about the connection's segments (RFC 1122 §4.2.3.9,
//! RFC 5927) and path MTU discovery (RFC 1191).

use tracing::debug;
use ustack_ipv4::icmp::IcmpError;

use super::{State, Tcb, TcpConfig, HEADERS};
use crate::cc::CongestionControl;
use crate::error::TcpError;
use crate::seq::SeqNumber;
use crate::time::Instant;

/// Least path MTU a Fragmentation Needed message can bring us down to
/// (Linux `min_pmtu`): lower claims are most likely forged (RFC 5927 §5.2).
pub const MIN_PATH_MTU: usize = 552;

/// RFC 1191 §7 table of common MTU plateaus, highest first.
const PLATEAUS: [usize; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// RFC 1191 §5: a pre-RFC 1191 router reports no MTU; guess the plateau
/// below the length of the datagram it could not forward.
fn plateau_below(len: usize) -> usize {
    PLATEAUS.iter().copied().find(|&p| p < len).unwrap_or(68)
}

impl Tcb {
    /// An ICMP error about a segment this connection sent; `seq` is the
    /// sequence number in the quoted TCP header, `quoted_len` the quoted
    /// IPv4 total length. Returns true when it was acted on.
    ///
    /// In SYN-SENT, port and protocol unreachable (hard errors) fail the
    /// connect; everything else is remembered and reported only if the
    /// connection times out (RFC 1122 §4.2.3.9).
    pub fn on_icmp_error(
        &mut self,
        _cfg: &TcpConfig,
        _now: Instant,
        err: IcmpError,
        seq: SeqNumber,
        quoted_len: u16,
    ) -> bool {
        // RFC 5927 §4.1: only a segment in flight can have caused it.
        // SND.NXT there is our highest sequence sent (SND.NXT goes back on
        // an RTO), so in SYN-SENT only the ISS is accepted.
        let in_flight = seq.distance(self.snd_una) >= 0 && seq.distance(self.snd_max) < 0;
        if !in_flight || matches!(self.state, State::Closed | State::Listen) {
            return false;
        }
        let acted = match err {
            IcmpError::FragNeeded { next_hop_mtu } => {
                let mtu = match usize::from(next_hop_mtu) {
                    0 => plateau_below(usize::from(quoted_len)),
                    mtu => mtu,
                };
                self.lower_path_mtu(mtu)
            }
            // Linux aborts a connection attempt at once on these; RFC 1122
            // §4.2.3.9 allows it for hard errors.
            e if e.is_hard() && self.state == State::SynSent => {
                self.fail(TcpError::ConnectionRefused(self.remote));
                true
            }
            // RFC 1122 §4.2.3.9: soft errors MUST NOT abort the connection;
            // the cause is reported if it times out.
            e => {
                self.soft_error = Some(e);
                true
            }
        };
        debug!(?err, %seq, acted, "ICMP error");
        acted
    }

    /// Current path MTU (starts at the interface MTU, i.e. the configured
    /// mss + 40).
    pub fn path_mtu(&self) -> usize {
        self.path_mtu
    }

    /// The last soft ICMP error since the connection last made progress.
    pub fn soft_error(&self) -> Option<IcmpError> {
        self.soft_error
    }

    /// The error a connection that gives up after `retries` reports: the
    /// last soft ICMP error if one arrived since the last progress.
    pub(super) fn timeout_error(&self, retries: u32) -> TcpError {
        match self.soft_error {
            Some(cause) => TcpError::Unreachable { cause, retries },
            None => TcpError::TimedOut { retries },
        }
    }

    /// RFC 1191 §6: a smaller path MTU, never below [`MIN_PATH_MTU`] and
    /// never raised. Segments in flight that no longer fit are resent at
    /// the new size at once, without a congestion response (the network
    /// dropped them for their size, not for congestion).
    fn lower_path_mtu(&mut self, mtu: usize) -> bool {
        let mtu = mtu.max(MIN_PATH_MTU);
        if mtu >= self.path_mtu {
            return false;
        }
        debug!(from = self.path_mtu, to = mtu, "path MTU lowered");
        self.path_mtu = mtu;
        let mss = mtu - HEADERS;
        if mss >= self.send_mss {
            return true;
        }
        self.send_mss = mss;
        self.cc.set_mss(mss);
        if !self.state.is_synchronized() || self.snd_una == self.snd_max {
            return true;
        }
        // Payload per segment at the new size, as `next_segment` cuts it (a
        // segment carrying a FIN as well is resent needlessly, but fits).
        let max_len = self.eff_mss();
        let marked = if self.sack_ok {
            self.rack.mark_oversized_lost(max_len)
        } else {
            None
        };
        if marked.is_none() {
            // Without per-segment records: resend from SND.UNA (go-back-N,
            // as after an RTO but with cwnd and RTO untouched).
            self.snd_nxt = self.snd_una;
            self.rtx_front = false;
        }
        // What is in flight now was sent at the old size: no RTT sample.
        self.rtt.discard_sample();
        true
    }
}

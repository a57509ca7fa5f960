//! What a SYN cookie needs of a TCB: the SYN-ACK a listener would send,
//! computed without one, and a TCB that starts as if it had sent it.

use super::{offered_wscale, Tcb, TcpConfig, MAX_WINDOW};
use crate::time::Instant;

impl Tcb {
    /// The window field and window-scale shift a passive TCB made with
    /// `cfg` offers in its SYN-ACK (the shift only if `cfg` scales windows).
    pub fn syn_ack_offer(cfg: &TcpConfig) -> (u16, Option<u8>) {
        let window = cfg.recv_buffer.min(MAX_WINDOW) as u16;
        let shift = offered_wscale(cfg);
        (window, shift)
    }

    /// For a TCB just made by `accept_syn` from a SYN rebuilt from a cookie:
    /// the SYN-ACK (ISN `iss`, window field `window`) already left, statelessly.
    /// The ACK that carried the cookie is processed next, as in SYN-RECEIVED.
    pub fn cookie_syn_ack_sent(&mut self, window: u16) {
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
        self.last_ack_sent = self.rcv_nxt;
        // The window we advertised binds us (RFC 9293 §3.8.6.2.2).
        self.rcv_adv = self.rcv_nxt + u32::from(window);
        // The echoed TSval was lowered to carry options: no RTT sample from it.
        self.rtt_sample_after = self.iss + 2u32;
    }

    /// When the peer was last heard from: how long a connection has been
    /// idle, for choosing one to evict when the table is full.
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }
}

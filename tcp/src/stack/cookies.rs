//! A listener's stateless path (SYN cookies, RFC 4987 §3.6) and the policy
//! when the connection table is full.
//!
//! **When cookies are used.** A listener in [`SynCookies::Auto`] (the
//! default) answers a SYN with a cookie instead of a TCB when its backlog
//! is full (connections in the handshake or waiting to be accepted) or the
//! connection table is; [`SynCookies::Always`] answers every SYN so;
//! [`SynCookies::Never`] drops the SYN instead, as before. Within two
//! cookie periods (128 s) of the last cookie sent (always, for `Always`),
//! an ACK that matches no connection is checked as a cookie: a valid one
//! creates the connection in ESTABLISHED, with any data it carries, and
//! queues it for `accept`; an invalid or stale one is dropped and counted
//! (`tcp_syncookies_failed`), without the RST RFC 9293 would send, as
//! Linux does (an attacker learns nothing from guessing).
//!
//! **The accept queue.** A SYN that finds `backlog` connections waiting to
//! be accepted is dropped in every mode. A cookie connection joins the queue only while
//! fewer than `backlog` connections wait in it; otherwise the ACK is dropped
//! (`tcp_listen_overflow`) and the peer's retransmission tries again.
//!
//! **Table full.** A valid cookie when the table holds `max_connections`
//! makes room: the first to go is a TIME-WAIT connection (it owes nothing),
//! then one the application already closed, then the established
//! connection heard from least recently; it is reset (RST to its peer) and
//! counted (`tcp_evicted`). A new arrival that completed the handshake is
//! worth more than the connection idle longest, and this way an attacker
//! who fills the table with idle connections cannot lock clients out. The
//! choice is a walk over the table, which happens only when it is full. An
//! evicted connection the application holds is reported once more by
//! [`Tcp::poll_ready`]; every call on its handle then fails with
//! [`TcpError::InvalidHandle`](crate::TcpError::InvalidHandle).

use core::net::SocketAddrV4;
use core::time::Duration;

use tracing::debug;
use ustack_ipv4::IpSend;

use super::{conn_span, Owner, Tcp};
use crate::conn::{State, Tcb};
use crate::seq::SeqNumber;
use crate::syncookie::{decode_ts, encode_ts, SynCookieJar, TsOptions, COUNTER_PERIOD};
use crate::time::Instant;
use crate::wire::{Flags, TcpOptions, TcpRepr};

/// When a listener answers SYNs statelessly with SYN cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynCookies {
    /// When the backlog or the connection table is full.
    #[default]
    Auto,
    /// For every SYN (for tests, or a server that wants no half-open state).
    Always,
    /// Never: a SYN that finds no room is dropped.
    Never,
}

/// How a port listens: [`Tcp::listen_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// Connections in the handshake plus those waiting to be accepted
    /// (at least 1).
    pub backlog: usize,
    /// When to answer with SYN cookies.
    pub syn_cookies: SynCookies,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: 128,
            syn_cookies: SynCookies::Auto,
        }
    }
}

/// How long after the last cookie sent ACKs are still checked as cookies:
/// as long as a cookie stays valid.
const COOKIE_CHECK_WINDOW: Duration = Duration::from_secs(2 * COUNTER_PERIOD.as_secs());

/// MSS assumed when a SYN carries none (RFC 9293 §3.7.1).
const DEFAULT_MSS: u16 = 536;

impl Tcp {
    /// Answers the SYN `seg` with a SYN-ACK whose ISN is a cookie; keeps nothing.
    pub(super) fn send_cookie(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        tx: &mut impl IpSend,
    ) {
        let rng = &mut self.rng;
        let jar = self
            .cookies
            .get_or_insert_with(|| SynCookieJar::new(rng.as_mut()));
        let cfg = &self.cfg.tcp;
        let peer_mss = seg.options.mss.unwrap_or(DEFAULT_MSS);
        let iss = jar.encode(local, remote, seg.seq, peer_mss, now);
        let (window, our_shift) = Tcb::syn_ack_offer(cfg);
        let mut options = TcpOptions {
            mss: Some(cfg.mss),
            ..TcpOptions::default()
        };
        // Window scale and SACK only where TSval can carry the peer's offer.
        if let (true, Some((tsval, _))) = (cfg.timestamps, seg.options.timestamps) {
            let scaled = our_shift.is_some() && seg.options.window_scale.is_some();
            let carried = TsOptions {
                window_scale: seg.options.window_scale.filter(|_| scaled),
                sack_permitted: cfg.sack && seg.options.sack_permitted,
            };
            options.window_scale = our_shift.filter(|_| scaled);
            options.sack_permitted = carried.sack_permitted;
            let ts_now =
                (now.total_millis() as u32).wrapping_add(self.isn.ts_offset(local, remote));
            options.timestamps = Some((encode_ts(ts_now, carried), tsval));
        }
        let syn_ack = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: iss,
            ack: seg.seq + 1u32,
            flags: Flags::SYN | Flags::ACK,
            window,
            urgent: 0,
            options,
        };
        if let Some(l) = self.listeners.get_mut(&local.port()) {
            l.cookie_sent_at = Some(now);
        }
        self.stats.tcp_syncookies_sent += 1;
        self.stats.tcp_tx_segments += 1;
        self.send_header(local, remote, &syn_ack, tx);
    }

    /// Whether an ACK that matches no connection on `port` is to be checked
    /// as a cookie.
    pub(super) fn cookies_in_use(&self, port: u16, now: Instant) -> bool {
        let Some(l) = self.listeners.get(&port) else {
            return false;
        };
        match l.syn_cookies {
            SynCookies::Always => true,
            SynCookies::Never => false,
            SynCookies::Auto => l
                .cookie_sent_at
                .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_CHECK_WINDOW),
        }
    }

    /// The third ACK of a cookie handshake: checks the cookie and, if valid,
    /// creates the connection in ESTABLISHED and processes the segment
    /// (data, FIN) as SYN-RECEIVED would have.
    pub(super) fn accept_cookie(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        payload: &[u8],
        tx: &mut impl IpSend,
    ) {
        // SEG.SEQ - 1 and SEG.ACK - 1: the two ISNs.
        let peer_isn = seg.seq + u32::MAX;
        let mss = self
            .cookies
            .as_ref()
            .and_then(|j| j.validate(local, remote, peer_isn, seg.ack + u32::MAX, now));
        let Some(mss) = mss else {
            self.stats.tcp_syncookies_failed += 1;
            debug!(%local, %remote, "ACK with an invalid or stale SYN cookie dropped");
            return;
        };
        let port = local.port();
        let Some(l) = self.listeners.get(&port) else {
            return;
        };
        if l.queue.len() >= l.backlog || l.pending >= 2 * l.backlog {
            self.stats.tcp_listen_overflow += 1;
            debug!(%local, %remote, "valid SYN cookie dropped: accept queue full");
            return;
        }
        if self.live >= self.cfg.max_connections && !self.evict_one() {
            self.stats.tcp_syn_dropped += 1;
            debug!(%local, %remote, "valid SYN cookie dropped: table full, nothing to evict");
            return;
        }
        let cfg = &self.cfg.tcp;
        let syn = remembered_syn(seg, mss, cfg.timestamps);
        // The SYN-ACK's TSval came from the same per-4-tuple offset.
        let ts_offset = self.isn.ts_offset(local, remote);
        let (window, _) = Tcb::syn_ack_offer(cfg);
        let span = conn_span(local, remote);
        let pool = &mut self.pool;
        let (tcb, rst, stored) = span.in_scope(|| {
            let mut tcb = Tcb::accept_syn(cfg, local, remote, seg.ack + u32::MAX, ts_offset, &syn);
            tcb.cookie_syn_ack_sent(window);
            debug!(mss, opts = ?syn.options, "connection from a SYN cookie");
            // Data riding on the third ACK needs storage like any other.
            let stored = tcb.prepare_recv(pool, payload.len());
            let rst = tcb.handle_segment(cfg, now, seg, payload);
            (tcb, rst, stored)
        });
        let owner = Owner::Listener {
            port,
            queued: false,
        };
        let idx = self.insert(tcb, owner, span);
        if let Some(l) = self.listeners.get_mut(&port) {
            l.pending += 1;
        }
        self.stats.tcp_syncookies_ok += 1;
        if !stored {
            self.stats.tcp_mem_rx_dropped += 1;
        }
        if let Some(r) = rst {
            self.send_rst(local, remote, &r, tx);
        }
        self.after_event(idx, now, true);
    }

    /// The table-full policy (see the module doc): resets the connection
    /// that is least missed. False when no connection may go (all are in a
    /// handshake).
    fn evict_one(&mut self) -> bool {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.entry.as_ref()?)))
            .filter(|(_, e)| e.tcb.state().is_synchronized())
            .min_by_key(|(_, e)| {
                let rank = match (e.tcb.state(), e.owner) {
                    (State::TimeWait, _) => 0,
                    (_, Owner::Orphan) => 1,
                    _ => 2,
                };
                (rank, e.tcb.last_heard())
            })
            .map(|(i, e)| (i, e.owner, e.tcb.local(), e.tcb.remote()));
        let Some((idx, owner, local, remote)) = victim else {
            return false;
        };
        debug!(%local, %remote, "table full: connection evicted for a new one");
        self.stats.tcp_evicted += 1;
        if owner == Owner::User {
            let id = self.id_of(idx);
            // Bounded by the table: one per connection the application held.
            if self.evicted.len() < self.cfg.max_connections {
                self.evicted.push_back(id);
            }
        }
        self.abort_idx(idx);
        true
    }
}

/// The SYN as far as a cookie remembers it: the peer's ISN (SEG.SEQ - 1 of
/// its third ACK `seg`), the MSS from the cookie, window scale and SACK
/// from the echoed TSval (only if `timestamps` are on: otherwise we offered
/// none), and the ACK's TSval as TS.Recent.
fn remembered_syn(seg: &TcpRepr, mss: u16, timestamps: bool) -> TcpRepr {
    let ts = seg.options.timestamps;
    let carried = match ts {
        Some((_, ecr)) if timestamps => decode_ts(ecr),
        _ => TsOptions {
            window_scale: None,
            sack_permitted: false,
        },
    };
    TcpRepr {
        src_port: seg.src_port,
        dst_port: seg.dst_port,
        seq: seg.seq + u32::MAX,
        ack: SeqNumber(0),
        flags: Flags::SYN,
        // Replaced, scaled, by the ACK's own window when it is processed.
        window: seg.window,
        urgent: 0,
        options: TcpOptions {
            mss: Some(mss),
            window_scale: carried.window_scale,
            sack_permitted: carried.sack_permitted,
            timestamps: ts.map(|(tsval, _)| (tsval, 0)),
            ..TcpOptions::default()
        },
    }
}

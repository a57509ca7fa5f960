//! Packet in: a TCP segment from the IP layer, verified and taken to its
//! connection, a TIME-WAIT record, a capture rule or a listener
//! (RFC 9293 §3.10.7).

use core::net::SocketAddrV4;

use tracing::{debug, trace};
use ustack_ipv4::{checksum, IpSend, Ipv4Repr};

use super::time_wait::Verdict;
use super::{conn_span, reset_for_closed_port, slot_entry, Owner, SynCookies, Tcp};
use crate::conn::Tcb;
use crate::time::Instant;
use crate::wire::{TcpPacket, TcpRepr};

/// Where and when a segment arrived, for [`Tcp::connection_segment`].
struct Arrival<'a> {
    now: Instant,
    ip: &'a Ipv4Repr,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// The pseudo-header and header part of a checksum still to verify.
    header_sum: Option<u32>,
}

impl Tcp {
    pub(super) fn handle_tcp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        segment: &[u8],
        verify_checksum: bool,
        tx: &mut impl IpSend,
    ) {
        self.stats.tcp_rx_segments += 1;
        let pkt = match TcpPacket::new_checked(segment) {
            Ok(p) => p,
            Err(e) => {
                self.stats.tcp_bad_header += 1;
                trace!(%e, "tcp dropped");
                return;
            }
        };
        // The checksum is verified before anything acts on the segment. For
        // a connection's next in-order data the payload's part is summed
        // while it is copied into the receive ring (Tcb::stage_payload):
        // one pass over the bytes instead of two. Other segments are
        // verified whole, below.
        let header_sum = if verify_checksum {
            match pkt.header_sum(ip.src_addr, ip.dst_addr) {
                Some(s) => Some(s),
                None => return self.bad_checksum(ip),
            }
        } else {
            None
        };
        let seg = match TcpRepr::parse(&pkt) {
            Ok(s) => s,
            Err(e) => {
                self.stats.tcp_bad_header += 1;
                trace!(%e, "tcp dropped");
                return;
            }
        };
        let payload = pkt.payload();
        let local = SocketAddrV4::new(ip.dst_addr, seg.dst_port);
        let remote = SocketAddrV4::new(ip.src_addr, seg.src_port);
        trace!(%remote, flags = ?seg.flags, seq = %seg.seq, ack = %seg.ack, wnd = seg.window, len = payload.len(), "rx");

        let found = self.table.lookup(&(local, remote));
        if let Some(idx) = found {
            let reuse = seg.flags.syn()
                && !seg.flags.ack()
                && (self.listeners.contains_key(&local.port()) || self.capture_takes(local))
                && self
                    .entry(idx)
                    .is_some_and(|e| e.tcb.time_wait_reusable_by(seg.seq));
            if !reuse {
                let rx = Arrival {
                    now,
                    ip,
                    local,
                    remote,
                    header_sum,
                };
                return self.connection_segment(idx, &rx, &seg, payload, tx);
            }
        }
        // Every other segment is verified whole before it is acted on.
        if header_sum.is_some() && !pkt.verify_checksum(ip.src_addr, ip.dst_addr) {
            return self.bad_checksum(ip);
        }
        if let Some(idx) = found {
            debug!(%local, %remote, "new SYN recycles a TIME-WAIT connection");
            self.free_slot(idx);
        } else if let Some(v) =
            self.time_wait
                .on_segment(now, &(local, remote), &seg, payload.len())
        {
            match v {
                Verdict::Drop => return,
                Verdict::Ack(ack) => return self.send_header(local, remote, &ack, tx),
                Verdict::Reopen => debug!(%local, %remote, "new SYN reopens a TIME-WAIT 4-tuple"),
            }
        }

        if self.capture_takes(local) {
            self.handle_capture(local, remote, &seg, tx);
        } else if *local.ip() == self.addr && self.listeners.contains_key(&local.port()) {
            self.handle_listen(now, local, remote, &seg, payload, tx);
        } else {
            self.stats.tcp_no_listener += 1;
            if let Some(r) = reset_for_closed_port(&seg, payload.len()) {
                self.send_rst(local, remote, &r, tx);
            }
        }
    }

    /// A segment for connection `idx` (RFC 9293 §3.10.7.4), its checksum
    /// verified here when `rx.header_sum` says it is still to be.
    fn connection_segment(
        &mut self,
        idx: u32,
        rx: &Arrival<'_>,
        seg: &TcpRepr,
        payload: &[u8],
        tx: &mut impl IpSend,
    ) {
        let Some(e) = slot_entry(&mut self.slots, idx) else {
            return;
        };
        // Entering a disabled span still costs a clone and a drop.
        let _span = (!e.span.is_disabled()).then(|| e.span.clone().entered());
        // A pure ACK neither needs receive storage nor stages anything.
        let has_data = !payload.is_empty();
        if has_data && !e.tcb.prepare_recv(&mut self.pool, payload.len()) {
            self.stats.tcp_mem_rx_dropped += 1;
            trace!(len = payload.len(), "no buffer memory: data dropped");
        }
        if let Some(h) = rx.header_sum {
            let p = if has_data {
                e.tcb.stage_payload(seg.seq, payload)
            } else {
                0
            };
            let total = u32::from(checksum::fold(h)) + u32::from(checksum::fold(p));
            if checksum::fold(total) != 0xffff {
                e.tcb.unstage();
                return self.bad_checksum(rx.ip);
            }
        }
        let rst = e.tcb.handle_segment(&self.cfg.tcp, rx.now, seg, payload);
        if let Some(r) = rst {
            self.send_rst(rx.local, rx.remote, &r, tx);
        }
        self.after_event(idx, rx.now, true);
        if payload.len() >= 2 * usize::from(self.cfg.tcp.mss)
            && self.entry(idx).is_some_and(|e| e.tcb.stretch_ack_due())
        {
            // GRO super-frames hold many full segments: acknowledge them
            // as they arrive, about every 60 KiB (RFC 5681 §4.2), not
            // once per batch of frames, or the sender's clock stalls. The
            // rest is acknowledged when the batch ends.
            self.transmit(idx, rx.now, tx);
        }
    }

    fn bad_checksum(&mut self, ip: &Ipv4Repr) {
        self.stats.tcp_bad_checksum += 1;
        trace!(src = %ip.src_addr, "tcp checksum mismatch");
    }

    /// LISTEN state processing (RFC 9293 §3.10.7.2).
    fn handle_listen(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        payload: &[u8],
        tx: &mut impl IpSend,
    ) {
        if seg.flags.rst() {
            return;
        }
        if seg.flags.ack() {
            if !seg.flags.syn() && self.cookies_in_use(local.port(), now) {
                self.accept_cookie(now, local, remote, seg, payload, tx);
                return;
            }
            let rst = TcpRepr::rst(seg.dst_port, seg.src_port, seg.ack);
            self.send_rst(local, remote, &rst, tx);
            return;
        }
        if !seg.flags.syn() || seg.flags.fin() {
            return;
        }
        let Some(l) = self.listeners.get(&local.port()) else {
            return;
        };
        if l.queue.len() >= l.backlog {
            // The application is not accepting: a cookie's connection
            // would find no room either (Linux drops here too).
            self.stats.tcp_syn_dropped += 1;
            debug!(%local, %remote, "SYN dropped: accept queue full");
            return;
        }
        let full = l.pending >= l.backlog || self.live >= self.cfg.max_connections;
        match l.syn_cookies {
            SynCookies::Always => return self.send_cookie(now, local, remote, seg, tx),
            SynCookies::Auto if full => return self.send_cookie(now, local, remote, seg, tx),
            _ => {}
        }
        if full {
            // The peer retransmits its SYN; by then there may be room.
            self.stats.tcp_syn_dropped += 1;
            debug!(%local, %remote, "SYN dropped: backlog or connection table full");
            return;
        }
        let iss = self.isn.isn(local, remote, now);
        let span = conn_span(local, remote);
        let ts_offset = self.isn.ts_offset(local, remote);
        let tcb =
            span.in_scope(|| Tcb::accept_syn(&self.cfg.tcp, local, remote, iss, ts_offset, seg));
        let owner = Owner::Listener {
            port: local.port(),
            queued: false,
        };
        let idx = self.insert(tcb, owner, span);
        if let Some(l) = self.listeners.get_mut(&local.port()) {
            l.pending += 1;
        }
        self.after_event(idx, now, true);
    }
}

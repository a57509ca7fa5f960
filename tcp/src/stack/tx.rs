//! What the TCP layer sends on its own behalf: each connection's segments
//! (super-frames with TSO), and header-only segments that belong to no TCB
//! (RSTs, cookie SYN-ACKs, TIME-WAIT ACKs).

use std::net::SocketAddrV4;

use tracing::trace;
use ustack_ipv4::{protocol, IpSend, Outgoing, Tso};

use super::time_wait::Record;
use super::{slot_entry, Tcp, IP_HDR};
use crate::time::Instant;
use crate::wire::{TcpPacket, TcpRepr};

impl Tcp {
    /// The largest segment (or super-frame) and the most segments in it.
    pub(super) fn tx_limits(&self) -> (usize, usize) {
        if self.tso_max > self.mtu {
            // Worst case per segment: one MSS of payload plus 40 bytes of
            // TCP options and the fixed headers.
            let per_seg = usize::from(self.cfg.tcp.mss) + 40 + 20;
            (
                self.tso_max - IP_HDR,
                ((self.tso_max - IP_HDR) / per_seg).max(1),
            )
        } else {
            (self.mtu.saturating_sub(IP_HDR), 1)
        }
    }

    /// Sends everything connection `idx` has to send.
    pub(super) fn transmit(&mut self, idx: u32, now: Instant, tx: &mut impl IpSend) {
        let (limit, max_segs) = self.tx_limits();
        let Some(e) = slot_entry(&mut self.slots, idx) else {
            return;
        };
        e.in_tx = false;
        e.tcb.set_device_checksums(self.finishes_checksums);
        let _span = e.span.clone().entered();
        let src = *e.tcb.local().ip();
        let dst = *e.tcb.remote().ip();
        while let Some(seg) = e
            .tcb
            .poll_transmit_gather(now, &mut self.scratch[..limit], max_segs)
        {
            let [a, b] = e.tcb.segment_payload(&seg);
            let tso = (seg.segment_payload > 0).then(|| Tso {
                segment: seg.segment_payload as u16,
                segments: seg.payload_len.div_ceil(seg.segment_payload).max(1) as u16,
            });
            self.stats.tcp_tx_segments += tso.map_or(1, |t| u64::from(t.segments));
            tx.send(&Outgoing {
                src,
                dst,
                protocol: protocol::TCP,
                payload: &[&self.scratch[..seg.header_len], a, b],
                dont_frag: true,
                dscp_ecn: 0,
                tso,
                partial_checksum: seg.partial_checksum,
            });
        }
        self.after_event(idx, now, false);
    }

    /// Frees the slot of an orphaned connection in TIME-WAIT and keeps a
    /// record of it instead: it no longer counts against `max_connections`.
    pub(super) fn enter_time_wait(&mut self, idx: u32, now: Instant) {
        let Some(e) = self.entry(idx) else { return };
        let (snd_nxt, rcv_nxt, ts, window) = e.tcb.time_wait_state();
        let tuple = (e.tcb.local(), e.tcb.remote());
        self.free_slot(idx);
        self.time_wait
            .insert(now, tuple, Record::new(snd_nxt, rcv_nxt, ts, window));
    }

    pub(super) fn send_rst(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        rst: &TcpRepr,
        tx: &mut impl IpSend,
    ) {
        self.stats.tcp_rst_sent += 1;
        trace!(%remote, seq = %rst.seq, "tx RST");
        self.send_header(local, remote, rst, tx);
    }

    /// Sends a segment that is only a header and belongs to no TCB (a RST,
    /// a cookie SYN-ACK, an ACK from a TIME-WAIT record).
    pub(super) fn send_header(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        tx: &mut impl IpSend,
    ) {
        let mut header = [0u8; 60];
        let hl = repr.header_len();
        let mut pkt = TcpPacket::new_unchecked(&mut header[..hl]);
        repr.emit(&mut pkt);
        pkt.fill_checksum(*local.ip(), *remote.ip());
        tx.send(&Outgoing {
            src: *local.ip(),
            dst: *remote.ip(),
            protocol: protocol::TCP,
            payload: &[&header[..hl]],
            dont_frag: true,
            dscp_ecn: 0,
            tso: None,
            partial_checksum: false,
        });
    }
}

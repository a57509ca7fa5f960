//! [`Tcp`] as a transport of the IP layer: attached to an interface, fed
//! segments and ICMP errors, polled for what it sends.

use core::net::{Ipv4Addr, SocketAddrV4};

use tracing::debug;
use ustack_ipv4::icmp::IcmpError;
use ustack_ipv4::{protocol, Interface, IpSend, Ipv4Repr, RxInfo, Transport};

use super::{slot_entry, Tcp, HEADERS, IP_HDR};
use crate::seq::SeqNumber;
use crate::time::Instant;

impl Transport for Tcp {
    fn attach(&mut self, iface: &Interface) {
        self.addr = iface.addr();
        self.mtu = iface.caps.mtu;
        self.tso_max = iface.caps.tso_max.min(ustack_ipv4::MAX_PACKET_LEN);
        self.finishes_checksums = iface.caps.finishes_checksums;
        let mtu_mss = self
            .mtu
            .saturating_sub(HEADERS)
            .clamp(64, usize::from(u16::MAX));
        self.cfg.tcp.mss = self.cfg.tcp.mss.min(mtu_mss as u16);
        // One segment or super-frame, TCP header first, with room for the
        // largest header even on a tiny MTU.
        let largest = self.mtu.max(self.tso_max).saturating_sub(IP_HDR);
        self.scratch = vec![0; largest.max(60)];
    }

    fn handles(&self, protocol: u8) -> bool {
        protocol == protocol::TCP
    }

    fn receive<O: IpSend>(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        info: RxInfo,
        out: &mut O,
    ) {
        self.handle_tcp(now, ip, payload, info.checksum.needs_verify(), out);
    }

    fn icmp_error(
        &mut self,
        now: Instant,
        err: IcmpError,
        quoted: &Ipv4Repr,
        quoted_payload: &[u8],
    ) {
        self.handle_icmp_error(now, err, quoted, quoted_payload);
    }

    fn poll<O: IpSend>(&mut self, now: Instant, out: &mut O) {
        self.poll_inner(now, out);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.next_poll()
    }

    fn takes_foreign_dst(&self, dst: Ipv4Addr, protocol: u8) -> bool {
        protocol == protocol::TCP && self.captures(dst)
    }
}

impl Tcp {
    /// An ICMP error quoting a segment we sent (RFC 1122 §4.2.3.9, RFC
    /// 5927): the quote's first 8 bytes are the ports and the sequence
    /// number, enough to find the connection and check the number.
    fn handle_icmp_error(
        &mut self,
        now: Instant,
        err: IcmpError,
        quoted: &Ipv4Repr,
        quoted_payload: &[u8],
    ) {
        let Some(&[s0, s1, d0, d1, q0, q1, q2, q3]) = quoted_payload.first_chunk::<8>() else {
            self.stats.tcp_icmp_ignored += 1;
            return;
        };
        let local = SocketAddrV4::new(quoted.src_addr, u16::from_be_bytes([s0, s1]));
        let remote = SocketAddrV4::new(quoted.dst_addr, u16::from_be_bytes([d0, d1]));
        let seq = SeqNumber(u32::from_be_bytes([q0, q1, q2, q3]));
        let quoted_len = u16::try_from(quoted.buffer_len()).unwrap_or(u16::MAX);
        let Some(idx) = self.table.get(&(local, remote)) else {
            self.stats.tcp_icmp_ignored += 1;
            return;
        };
        let cfg = &self.cfg.tcp;
        let Some(e) = slot_entry(&mut self.slots, idx) else {
            return;
        };
        let _span = e.span.clone().entered();
        if e.tcb.on_icmp_error(cfg, now, err, seq, quoted_len) {
            debug!(?err, "ICMP error applied");
            self.stats.tcp_icmp_applied += 1;
            self.after_event(idx, now, true);
        } else {
            self.stats.tcp_icmp_ignored += 1;
        }
    }
}

//! The Ethernet and ARP layer of the link and its send path: everything but
//! the receive machinery, so that a frame lent from the receive ring and
//! this half can be borrowed apart (`recv_with` hands `f` a send path while
//! the frame is lent).

use std::io;
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use socket2::Socket;
use ustack_ipv4::{Ipv4Packet, Ipv4Subnet, RxChecksum, RxInfo, TxPacket};

use super::ring::TxRing;
use super::sys::io_err;
use super::AfPacketStats;
use crate::arp::{ArpOp, ArpPacket, ArpRepr, Neighbours, SendAction};
use crate::ethernet::{
    EthernetFrame, EthernetRepr, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN, MIN_FRAME_LEN,
};
use crate::middleware::pcap::PcapSink;
use crate::vnet::{self, complete_checksum, VnetHdr};
use crate::{check_parts, is_queue_full, no_tso, IoVecs, LinkError, LinkStats, MAX_TX_PARTS};

/// Frames marked in the transmit ring before `send` kicks the kernel
/// itself rather than waiting for the next `recv`/`recv_with`.
const TX_BATCH: usize = 64;

/// The link minus its receive path.
/// Largest super-frame handed to the kernel to segment (GSO): an IPv4
/// packet's limit.
pub(super) const TSO_MAX: usize = ustack_ipv4::MAX_PACKET_LEN;

pub(super) struct Port {
    pub(super) socket: Socket,
    pub(super) iface: String,
    /// `AF_PACKET on <iface>`, for errors.
    pub(super) label: String,
    pub(super) mac: MacAddr,
    /// Our address and the on-link prefix.
    pub(super) subnet: Ipv4Subnet,
    pub(super) gateway: Option<Ipv4Addr>,
    pub(super) mtu: usize,
    pub(super) neighbours: Neighbours,
    pub(super) stats: LinkStats,
    /// The kernel's receive drops read so far: `PACKET_STATISTICS` resets
    /// on every read, and `Link::stats` (which reads it) takes `&self`.
    pub(super) kernel_rx_dropped: std::cell::Cell<u64>,
    pub(super) af_stats: AfPacketStats,
    pub(super) capture: Option<PcapSink>,
    /// Scratch for packets released by ARP resolution (reused).
    pub(super) ready: Vec<Vec<u8>>,
    /// The transmit ring; `None`: one `sendmsg` per frame.
    pub(super) tx: Option<TxRing>,
}

impl Port {
    pub(super) fn addr(&self) -> Ipv4Addr {
        self.subnet.addr()
    }

    /// Sends one frame: the virtio-net header `vnet` (what the kernel is
    /// to finish: nothing, a checksum, or segmentation; see
    /// `Port::vnet_header`), `header`, then the payload `parts` (at most
    /// [`MAX_TX_PARTS`]), padded to the minimum frame size; into the
    /// transmit ring when there is one, else with one `sendmsg`.
    pub(super) fn send_frame(
        &mut self,
        vnet: &vnet::VnetHdr,
        header: &EthernetRepr,
        parts: &[&[u8]],
    ) -> Result<(), LinkError> {
        debug_assert!(parts.len() <= MAX_TX_PARTS);
        let vnet = vnet.encode();
        let mut eth = [0u8; HEADER_LEN];
        header.emit(&mut eth);
        let pad = [0u8; MIN_FRAME_LEN];
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let pad = &pad[..MIN_FRAME_LEN.saturating_sub(HEADER_LEN + payload_len)];
        if let Some(cap) = &mut self.capture {
            let mut record: [&[u8]; MAX_TX_PARTS + 2] = [&[]; MAX_TX_PARTS + 2];
            record[0] = &eth;
            record[1..=parts.len()].copy_from_slice(parts);
            record[parts.len() + 1] = pad;
            cap.record(&record[..parts.len() + 2]);
        }
        if self.tx.is_some() {
            return self.send_in_ring(&vnet, &eth, parts, pad);
        }
        self.send_msg(&vnet, &eth, parts, pad)
    }

    /// Copies the frame into the next transmit-ring frame (the one copy of
    /// the payload in user space; the kernel sends from the ring). A ring
    /// whose every frame waits for the kernel is kicked once; still full,
    /// the packet is dropped as a full device queue would drop it.
    fn send_in_ring(
        &mut self,
        vnet: &[u8; vnet::LEN],
        eth: &[u8; HEADER_LEN],
        parts: &[&[u8]],
        pad: &[u8],
    ) -> Result<(), LinkError> {
        let fd = self.socket.as_raw_fd();
        let Some(ring) = self.tx.as_mut() else {
            unreachable!("send_in_ring without a transmit ring");
        };
        if ring.slot().is_none() && ring.pending() > 0 {
            if let Err(e) = ring.kick(fd) {
                if !is_queue_full(&e) {
                    return Err(io_err(&self.label, "sendto (transmit ring)", e));
                }
            }
        }
        let Some(slot) = ring.slot() else {
            self.stats.tx_dropped += 1;
            return Ok(());
        };
        let total =
            vnet::LEN + HEADER_LEN + parts.iter().map(|p| p.len()).sum::<usize>() + pad.len();
        if total > slot.len() {
            return Err(LinkError::PacketTooLarge {
                device: self.label.clone(),
                len: total - vnet::LEN - HEADER_LEN,
                mtu: slot.len() - vnet::LEN - HEADER_LEN,
            });
        }
        let mut at = vnet::LEN;
        slot[..at].copy_from_slice(vnet);
        for part in std::iter::once(&eth[..])
            .chain(parts.iter().copied())
            .chain([pad])
        {
            slot[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        ring.commit(at);
        if ring.pending() >= TX_BATCH.min(ring.capacity() / 2) {
            self.flush()?;
        }
        Ok(())
    }

    /// Asks the kernel to send what waits in the transmit ring.
    pub(super) fn flush(&mut self) -> Result<(), LinkError> {
        let fd = self.socket.as_raw_fd();
        match self.tx.as_mut() {
            Some(ring) if ring.pending() > 0 => match ring.kick(fd) {
                Ok(()) => Ok(()),
                // The device queue is full: the frames stay marked and go
                // with the next kick.
                Err(e) if is_queue_full(&e) => Ok(()),
                Err(e) => Err(io_err(&self.label, "sendto (transmit ring)", e)),
            },
            _ => Ok(()),
        }
    }

    /// Whether the kernel segments super-frames for us (GSO through the
    /// virtio-net header): only without a transmit ring, whose slots hold
    /// one MTU-sized frame (and with a ring mapped, `sendmsg` sends from
    /// the ring, not from its arguments), and not while frames are captured
    /// here, whose records would hold 64 KB frames.
    pub(super) fn segmentation(&self) -> bool {
        self.capture.is_none() && self.tx.is_none()
    }

    /// Whether the kernel finishes TCP checksums for us (`NEEDS_CSUM`):
    /// not while frames are captured here, whose records hold complete
    /// checksums.
    pub(super) fn finishes_checksums(&self) -> bool {
        self.capture.is_none()
    }

    /// Whether frames wait in the transmit ring for a kick.
    pub(super) fn tx_pending(&self) -> bool {
        self.tx.as_ref().is_some_and(|r| r.pending() > 0)
    }

    /// One `sendmsg` gathering the virtio-net header, `eth`, `parts`, `pad`.
    fn send_msg(
        &mut self,
        vnet: &[u8; vnet::LEN],
        eth: &[u8; HEADER_LEN],
        parts: &[&[u8]],
        pad: &[u8],
    ) -> Result<(), LinkError> {
        let mut iov = IoVecs::<{ MAX_TX_PARTS + 3 }>::new();
        iov.push(vnet);
        iov.push(eth);
        for part in parts {
            iov.push(part);
        }
        iov.push(pad);
        let iov = iov.as_slice();
        // SAFETY: msghdr is plain old data; zeroed means no address/control.
        let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = iov.len() as _;
        loop {
            // SAFETY: `msg` points at `iov`, an initialised array of
            // `msg_iovlen` iovecs whose buffers (the headers and padding on
            // the stack, the caller's parts) are valid for reading for their
            // lengths and outlive the call; the kernel only reads them.
            let n = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &msg, 0) };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_queue_full(&err) {
                self.stats.tx_dropped += 1;
                return Ok(());
            }
            return Err(io_err(&self.label, "sendmsg", err));
        }
    }

    pub(super) fn send_arp(&mut self, to: MacAddr, arp: &ArpRepr) -> Result<(), LinkError> {
        let mut body = [0u8; crate::arp::PACKET_LEN];
        arp.emit(&mut body);
        match arp.op {
            ArpOp::Request => self.af_stats.arp_requests_sent += 1,
            ArpOp::Reply => self.af_stats.arp_replies_sent += 1,
        }
        tracing::trace!(device = %self.iface, op = ?arp.op, target = %arp.target_ip, "ARP out");
        let eth = EthernetRepr {
            destination: to,
            source: self.mac,
            ethertype: ETHERTYPE_ARP,
        };
        self.send_frame(&vnet::VnetHdr::default(), &eth, &[&body])
    }

    pub(super) fn arp_request(&mut self, to: MacAddr, target: Ipv4Addr) -> Result<(), LinkError> {
        let req = ArpRepr {
            op: ArpOp::Request,
            sender_mac: self.mac,
            sender_ip: self.addr(),
            target_mac: MacAddr::ZERO,
            target_ip: target,
        };
        self.send_arp(to, &req)
    }

    pub(super) fn send_ipv4(&mut self, to: MacAddr, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        let eth = EthernetRepr {
            destination: to,
            source: self.mac,
            ethertype: ETHERTYPE_IPV4,
        };
        let vnet = self.vnet_header(pkt)?;
        self.send_frame(&vnet, &eth, pkt.parts)?;
        self.stats.count_tx(pkt.len());
        Ok(())
    }

    pub(super) fn handle_arp(&mut self, body: &[u8], now: Instant) -> Result<(), LinkError> {
        self.af_stats.arp_rx += 1;
        let Ok(arp) = ArpPacket::new_checked(body).and_then(|p| ArpRepr::parse(&p)) else {
            self.af_stats.rx_dropped += 1;
            return Ok(());
        };
        let addr = self.addr();
        if arp.sender_ip == addr {
            if arp.sender_mac != self.mac {
                self.af_stats.addr_conflicts += 1;
                tracing::warn!(device = %self.iface, %addr, other = %arp.sender_mac, "another host claims our address");
            }
            return Ok(());
        }
        let for_us = arp.target_ip == addr;
        let mut ready = std::mem::take(&mut self.ready);
        self.neighbours
            .on_arp(arp.sender_ip, arp.sender_mac, for_us, now, &mut ready);
        let mut result = Ok(());
        for p in ready.drain(..) {
            if p.len() > self.mtu {
                // A GSO super-frame that waited: its copy no longer says how
                // to cut it. TCP sends the data again.
                self.stats.tx_dropped += 1;
                continue;
            }
            if result.is_ok() {
                result = self.send_ipv4(arp.sender_mac, &TxPacket::new(&[&p]));
            }
        }
        self.ready = ready;
        result?;
        if for_us && arp.op == ArpOp::Request && arp.sender_mac.is_unicast() {
            let reply = ArpRepr {
                op: ArpOp::Reply,
                sender_mac: self.mac,
                sender_ip: addr,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            self.send_arp(arp.sender_mac, &reply)?;
        }
        Ok(())
    }

    /// What the kernel is to finish for `pkt` (PACKET_VNET_HDR; offsets
    /// count from the Ethernet header): for a super-frame, segmentation
    /// and each segment's checksum (GSO, as a TUN device does it); for a
    /// partial checksum, the checksum (`NEEDS_CSUM`, CHECKSUM_PARTIAL: a
    /// veth peer's stack accepts it as it is, a NIC or the kernel's software
    /// fallback sums it on the way out); else nothing.
    fn vnet_header(&self, pkt: &TxPacket<'_>) -> Result<vnet::VnetHdr, LinkError> {
        let ip_hl = pkt.head::<1>().map_or(20, |[b]| usize::from(b & 0x0f) * 4);
        let mut h = match pkt.segment {
            Some(segment) => vnet::tcp4_tx_header(pkt, segment, self.mtu).map_err(|reason| {
                LinkError::MalformedPacket {
                    device: self.label.clone(),
                    reason,
                }
            })?,
            None if pkt.partial_checksum => vnet::VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                csum_start: ip_hl as u16, // at most 60
                csum_offset: vnet::TCP_CSUM_OFFSET,
                ..vnet::VnetHdr::default()
            },
            None => return Ok(vnet::VnetHdr::default()),
        };
        h.csum_start += HEADER_LEN as u16;
        if h.hdr_len > 0 {
            h.hdr_len += HEADER_LEN as u16;
        }
        Ok(h)
    }

    /// The destination itself when it is on-link, else the gateway.
    pub(super) fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.subnet.contains(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }

    pub(super) fn is_broadcast(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast() || dst == self.subnet.broadcast()
    }

    /// [`crate::Link::send`] (see the link's documentation).
    pub(super) fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        check_parts(pkt, &self.label)?;
        let limit = match pkt.segment {
            Some(_) if !self.segmentation() => return Err(no_tso(&self.label)),
            Some(_) => TSO_MAX,
            None => self.mtu,
        };
        let len = pkt.len();
        if len > limit {
            return Err(LinkError::PacketTooLarge {
                device: self.label.clone(),
                len,
                mtu: limit,
            });
        }
        let head = pkt.head::<20>().filter(|h| h[0] >> 4 == 4);
        let Some(head) = head else {
            return Err(LinkError::MalformedPacket {
                device: self.label.clone(),
                reason: "not an IPv4 packet",
            });
        };
        let dst = Ipv4Packet::new_unchecked(&head[..]).dst_addr();
        if self.is_broadcast(dst) {
            return self.send_ipv4(MacAddr::BROADCAST, pkt);
        }
        let Some(hop) = self.next_hop(dst) else {
            self.af_stats.no_route += 1;
            self.stats.tx_dropped += 1;
            tracing::trace!(device = %self.iface, %dst, "no route (off-subnet, no gateway): dropped");
            return Ok(());
        };
        match self.neighbours.on_send(hop, pkt, Instant::now()) {
            SendAction::Send { mac, probe } => {
                self.send_ipv4(mac, pkt)?;
                if probe {
                    self.arp_request(mac, hop)?;
                }
                Ok(())
            }
            SendAction::Queued { request } => {
                if request {
                    self.arp_request(MacAddr::BROADCAST, hop)?;
                }
                Ok(())
            }
            SendAction::Dropped => {
                self.stats.tx_dropped += 1;
                Ok(())
            }
        }
    }

    /// What to make of one received frame: its virtio-net header, Ethernet
    /// header and the bytes after it (`ip`, which a partial checksum is
    /// finished in). ARP is handled here; an IPv4 packet to us comes back
    /// as its length (Ethernet padding cut off) and what we vouch for;
    /// anything else is dropped and counted.
    pub(super) fn accept(
        &mut self,
        vnet_hdr: &[u8; vnet::LEN],
        eth: &[u8; HEADER_LEN],
        ip: &mut [u8],
    ) -> Result<Option<(usize, RxInfo)>, LinkError> {
        let Ok(frame) = EthernetFrame::new_checked(&eth[..]) else {
            return Ok(None);
        };
        let hdr = EthernetRepr::parse(&frame);
        if hdr.source == self.mac
            || !(hdr.destination == self.mac || hdr.destination.is_broadcast())
        {
            return Ok(self.drop_rx());
        }
        match hdr.ethertype {
            ETHERTYPE_ARP => {
                if let Some(cap) = &mut self.capture {
                    cap.record(&[eth, ip]);
                }
                self.handle_arp(ip, Instant::now())?;
                return Ok(None);
            }
            ETHERTYPE_IPV4 => {}
            _ => {
                if let Some(cap) = &mut self.capture {
                    cap.record(&[eth, ip]);
                }
                return Ok(self.drop_rx());
            }
        }
        let len = ip.len();
        // At least 20 bytes: the fixed-header accessors stay in bounds.
        if len < 20 {
            return Ok(self.drop_rx());
        }
        let header = Ipv4Packet::new_unchecked(&ip[..]);
        if header.version() != 4 || header.dst_addr() != self.addr() {
            return Ok(self.drop_rx());
        }
        // Ethernet pads short frames; the IPv4 total length says where
        // the packet ends.
        let total = usize::from(header.total_len());
        let vnet_hdr = VnetHdr::decode(vnet_hdr);
        let mut checksum = if vnet_hdr.flags & vnet::F_DATA_VALID != 0 {
            RxChecksum::Verified
        } else {
            RxChecksum::Unverified
        };
        if vnet_hdr.flags & vnet::F_NEEDS_CSUM != 0 {
            let Some(start) = usize::from(vnet_hdr.csum_start).checked_sub(HEADER_LEN) else {
                return Ok(self.drop_rx());
            };
            if !complete_checksum(ip, start, usize::from(vnet_hdr.csum_offset)) {
                return Ok(self.drop_rx());
            }
            self.af_stats.rx_csum_completed += 1;
            // Finished here from the bytes as they arrived.
            checksum = RxChecksum::Verified;
        }
        // Recorded as the stack gets it: with the checksum finished.
        if let Some(cap) = &mut self.capture {
            cap.record(&[eth, ip]);
        }
        let gro_segment = if vnet_hdr.is_gso() {
            self.af_stats.rx_gso += 1;
            Some(vnet_hdr.gso_size).filter(|&n| n > 0)
        } else {
            None
        };
        let len = if (20..len).contains(&total) {
            total
        } else {
            len
        };
        self.stats.count_rx(len);
        Ok(Some((
            len,
            RxInfo {
                checksum,
                gro_segment,
            },
        )))
    }

    /// Counts a received frame dropped.
    pub(super) fn drop_rx(&mut self) -> Option<(usize, RxInfo)> {
        self.af_stats.rx_dropped += 1;
        None
    }
}

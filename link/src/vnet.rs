//! The virtio-net header (`struct virtio_net_hdr`, linux/virtio_net.h) that
//! precedes every packet on a TUN device opened with `IFF_VNET_HDR` and on an
//! `AF_PACKET` socket with `PACKET_VNET_HDR`, and the checksum arithmetic the
//! offloads need (on `ustack_ipv4::checksum`). Pure functions, no I/O.
//!
//! The legacy (pre-virtio-1.0) header is used: 10 bytes, multi-byte fields
//! in the host's native byte order (the TUN driver's default unless
//! `TUNSETVNETLE`/`TUNSETVNETBE` is issued, which we never do).
// Without the `tun` feature only the pipe and the AF_PACKET backend use this
// module, and not every item.
#![cfg_attr(not(feature = "tun"), allow(dead_code))]

use ustack_ipv4::checksum;
use ustack_ipv4::{protocol, Ipv4Packet, RxChecksum, RxInfo, TxPacket};

/// Bytes in the legacy header (`sizeof(struct virtio_net_hdr)`), the TUN
/// driver's default `TUNSETVNETHDRSZ`.
pub(crate) const LEN: usize = 10;

/// `flags`: the transport checksum is partial; finish it from `csum_start`,
/// storing it at `csum_start + csum_offset`.
pub(crate) const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was verified already.
pub(crate) const F_DATA_VALID: u8 = 2;

pub(crate) const GSO_NONE: u8 = 0;
pub(crate) const GSO_TCPV4: u8 = 1;
pub(crate) const GSO_UDP: u8 = 3;
pub(crate) const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the TCP super-frame carries CWR (ECN), to be set on the
/// first segment only.
pub(crate) const GSO_ECN: u8 = 0x80;

/// Offsets in a TCP header (RFC 9293 §3.1), from its start: data offset
/// (upper nibble, in 32-bit words), flags, checksum.
const TCP_DATA_OFFSET: usize = 12;
const TCP_FLAGS: usize = 13;
pub(crate) const TCP_CSUM_OFFSET: u16 = 16;
/// Offset of the checksum field in a UDP header.
const UDP_CSUM_OFFSET: usize = 6;
/// TCP flag bits.
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;
/// The longest IPv4 header (IHL 15) plus the fixed TCP header: all a
/// super-frame's headers segmentation reads.
const MAX_HEADERS: usize = 60 + 20;

/// One virtio-net header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Bytes of headers (IP + transport) copied onto each segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub(crate) fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; LEN]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        }
    }

    /// What a header the kernel wrote in front of an IPv4 packet says about
    /// it: `NEEDS_CSUM` → [`RxChecksum::Partial`], `DATA_VALID` →
    /// [`RxChecksum::Verified`], and for a TCPv4 GSO super-frame its
    /// `gso_size` as [`RxInfo::gro_segment`]. Only no GSO and TCPv4 GSO
    /// (with or without the ECN bit) are accepted; the reason is returned
    /// for anything else.
    pub(crate) fn rx_info(&self) -> Result<RxInfo, &'static str> {
        let gro_segment = match self.gso_type & !GSO_ECN {
            GSO_NONE => None,
            GSO_TCPV4 => Some(self.gso_size).filter(|&n| n > 0),
            GSO_UDP => return Err("UDP (UFO) GSO super-frame"),
            GSO_TCPV6 => return Err("TCPv6 GSO super-frame"),
            _ => return Err("unknown GSO type"),
        };
        let checksum = if self.flags & F_NEEDS_CSUM != 0 {
            RxChecksum::Partial
        } else if self.flags & F_DATA_VALID != 0 {
            RxChecksum::Verified
        } else {
            RxChecksum::Unverified
        };
        Ok(RxInfo {
            checksum,
            gro_segment,
        })
    }

    /// True when the kernel is asked to cut the frame into segments.
    pub(crate) fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Equality in ones' complement arithmetic, where 0x0000 and 0xffff are
/// both zero.
fn same_ones_complement(a: u16, b: u16) -> bool {
    a == b || matches!((a, b), (0, 0xffff) | (0xffff, 0))
}

/// The pseudo-header sum (RFC 9293 §3.1, RFC 768) of the IPv4 header `ip`
/// for a transport segment of `l4_len` bytes, folded and NOT complemented:
/// what Linux keeps in the checksum field of a CHECKSUM_PARTIAL packet.
pub(crate) fn pseudo_header_sum<T: AsRef<[u8]>>(ip: &Ipv4Packet<T>, l4_len: usize) -> u16 {
    checksum::fold(checksum::pseudo_header_sum(
        ip.src_addr(),
        ip.dst_addr(),
        ip.protocol(),
        l4_len as u16, // an IPv4 packet's payload is below 65536 bytes
    ))
}

/// Finishes a partial checksum as a NIC would (RFC 1071 sum from `start` to
/// the end, stored at `start + offset`); the field already holds the
/// pseudo-header sum. False if the offsets do not fit the packet.
pub(crate) fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start + offset;
    if start >= packet.len() || field + 2 > packet.len() {
        return false;
    }
    let csum = !checksum::fold(checksum::sum(&packet[start..], 0));
    packet[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

/// Recomputes the TCP or UDP checksum of an unfragmented IPv4 packet from
/// scratch, whatever its field held (a full or a partial checksum). A UDP
/// checksum of zero (none) is left alone. False, with the packet untouched,
/// for other protocols, fragments and malformed headers.
pub(crate) fn finish_transport_checksum(packet: &mut [u8]) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(&*packet) else {
        return false;
    };
    if ip.more_frags() || ip.frag_offset() != 0 {
        return false;
    }
    let (ihl, total, proto) = (ip.header_len(), usize::from(ip.total_len()), ip.protocol());
    let offset = match proto {
        protocol::TCP => usize::from(TCP_CSUM_OFFSET),
        protocol::UDP => UDP_CSUM_OFFSET,
        _ => return false,
    };
    let field = ihl + offset;
    if field + 2 > total {
        return false;
    }
    if proto == protocol::UDP && be16(packet, field) == 0 {
        return true;
    }
    let pseudo = pseudo_header_sum(&ip, total - ihl);
    packet[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
    complete_checksum(&mut packet[..total], ihl, offset);
    if proto == protocol::UDP && be16(packet, field) == 0 {
        packet[field..field + 2].copy_from_slice(&[0xff, 0xff]);
    }
    true
}

/// The header that makes the kernel cut `pkt`, a TCP/IPv4 super-frame in
/// parts, into segments of `segment_payload` bytes, each at most `mtu`
/// bytes long. The headers are read across parts (at most the first 80
/// bytes are gathered, on the stack). The TCP checksum field must hold the
/// pseudo-header sum over the whole TCP length (Linux CHECKSUM_PARTIAL). A
/// super-frame whose payload fits in one segment gets a plain
/// checksum-offload header (no GSO): the kernel treats such "GSO" frames as
/// ordinary packets anyway.
///
/// Checks everything the kernel would otherwise get wrong silently: IPv4,
/// no options beyond the IHL, total length equal to the packet, not a
/// fragment, TCP, a sane data offset, no SYN/RST/URG on a frame to be cut
/// (Linux GSO would copy them onto every segment), and the checksum field.
pub(crate) fn tcp4_tx_header(
    pkt: &TxPacket<'_>,
    segment_payload: u16,
    mtu: usize,
) -> Result<VnetHdr, &'static str> {
    if segment_payload == 0 {
        return Err("segment payload size is zero");
    }
    let mut head = [0u8; MAX_HEADERS];
    let n = pkt.copy_prefix(&mut head);
    let head = &head[..n];
    let len = pkt.len();
    if n < 20 || head[0] >> 4 != 4 {
        return Err("not an IPv4 packet");
    }
    // At least 20 bytes: the fixed-header accessors cannot go out of bounds.
    let ip = Ipv4Packet::new_unchecked(head);
    let ip_hl = ip.header_len();
    if ip_hl < 20 || ip_hl > len {
        return Err("bad IPv4 header length");
    }
    if usize::from(ip.total_len()) != len {
        return Err("IPv4 total length does not match the packet");
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err("IPv4 fragment");
    }
    if ip.protocol() != protocol::TCP {
        return Err("not TCP");
    }
    if len < ip_hl + 20 {
        return Err("truncated TCP header");
    }
    // `ip_hl <= 60` and `len >= ip_hl + 20`, so the TCP header's fixed
    // part lies within the 80 bytes gathered.
    let tcp = &head[ip_hl..ip_hl + 20];
    let tcp_hl = usize::from(tcp[TCP_DATA_OFFSET] >> 4) * 4;
    if tcp_hl < 20 || ip_hl + tcp_hl > len {
        return Err("bad TCP data offset");
    }
    let csum = be16(tcp, usize::from(TCP_CSUM_OFFSET));
    if !same_ones_complement(csum, pseudo_header_sum(&ip, len - ip_hl)) {
        return Err("TCP checksum field is not the pseudo-header sum");
    }
    let partial = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_NONE,
        hdr_len: (ip_hl + tcp_hl) as u16, // both at most 60
        gso_size: 0,
        csum_start: ip_hl as u16,
        csum_offset: TCP_CSUM_OFFSET,
    };
    let payload = len - ip_hl - tcp_hl;
    if payload <= usize::from(segment_payload) {
        return Ok(partial);
    }
    if ip_hl + tcp_hl + usize::from(segment_payload) > mtu {
        return Err("segments would be larger than the MTU");
    }
    let flags = tcp[TCP_FLAGS];
    if flags & (TCP_SYN | TCP_RST | TCP_URG) != 0 {
        return Err("SYN, RST or URG on a frame to be segmented");
    }
    let ecn = if flags & TCP_CWR != 0 { GSO_ECN } else { 0 };
    Ok(VnetHdr {
        gso_type: GSO_TCPV4 | ecn,
        gso_size: segment_payload,
        ..partial
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TCP/IPv4 packet 10.0.0.2:80 > 10.0.0.1:4000 with `opts` bytes of
    /// TCP options and `payload` bytes of data, ACK set, its checksum field
    /// holding the pseudo-header sum.
    pub(crate) fn superframe(opts: usize, payload: usize) -> Vec<u8> {
        let tcp_hl = 20 + opts;
        let len = 20 + tcp_hl + payload;
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
        p[20..22].copy_from_slice(&80u16.to_be_bytes());
        p[22..24].copy_from_slice(&4000u16.to_be_bytes());
        p[32] = ((tcp_hl / 4) as u8) << 4;
        p[33] = 0x10;
        for (i, b) in p[20 + tcp_hl..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let pseudo = pseudo_header_sum(&Ipv4Packet::new_unchecked(&p[..]), len - 20);
        p[36..38].copy_from_slice(&pseudo.to_be_bytes());
        p
    }

    /// True when the TCP/UDP checksum of `p` verifies.
    pub(crate) fn transport_checksum_ok(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_unchecked(p);
        let ihl = ip.header_len();
        let sum = checksum::sum(&p[ihl..], u32::from(pseudo_header_sum(&ip, p.len() - ihl)));
        checksum::fold(sum) == 0xffff
    }

    /// [`tcp4_tx_header`] of `p` cut into three parts at awkward places
    /// (inside the IPv4 header, inside the TCP header), as a gather list.
    fn tx_header(p: &[u8], seg: u16, mtu: usize) -> Result<VnetHdr, &'static str> {
        let a = p.len().min(7);
        let b = p.len().min(33);
        let parts = [&p[..a], &p[a..b], &p[b..]];
        tcp4_tx_header(&TxPacket::new(&parts), seg, mtu)
    }

    #[test]
    fn tx_header_reads_headers_across_parts_and_options() {
        // 20 bytes of IPv4 options and 40 of TCP options: the TCP flags sit
        // at byte 53, beyond the first two parts.
        let mut p = [0u8; 40];
        p[0] = 0x4a;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let mut tcp = [0u8; 60];
        tcp[12] = 15 << 4;
        tcp[13] = 0x10 | 0x02; // SYN: refused on a frame to be cut
        let payload = vec![7u8; 5000];
        let len = p.len() + tcp.len() + payload.len();
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let pseudo = pseudo_header_sum(&Ipv4Packet::new_unchecked(&p[..]), len - 40);
        tcp[16..18].copy_from_slice(&pseudo.to_be_bytes());
        let parts = [&p[..], &tcp[..30], &tcp[30..], &payload[..]];
        let pkt = TxPacket::new(&parts);
        assert_eq!(
            tcp4_tx_header(&pkt, 1000, 1500),
            Err("SYN, RST or URG on a frame to be segmented")
        );
        tcp[13] = 0x10;
        let parts = [&p[..], &tcp[..30], &tcp[30..], &payload[..]];
        let h = tcp4_tx_header(&TxPacket::new(&parts), 1000, 1500).unwrap();
        assert_eq!((h.hdr_len, h.csum_start, h.gso_size), (100, 40, 1000));
    }

    #[test]
    fn header_round_trips_in_native_order() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 52,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let b = h.encode();
        assert_eq!(VnetHdr::decode(&b), h);
        assert_eq!(&b[..2], &[1, 0x81]);
        assert_eq!(&b[4..6], &1448u16.to_ne_bytes());
        assert_eq!(VnetHdr::default().encode(), [0u8; LEN]);
    }

    #[test]
    fn rx_accepts_tcpv4_and_none_only() {
        let mut h = VnetHdr::default();
        assert_eq!(h.rx_info(), Ok(RxInfo::default()));
        h.flags = F_DATA_VALID;
        assert_eq!(h.rx_info().unwrap().checksum, RxChecksum::Verified);
        h.flags = F_NEEDS_CSUM | F_DATA_VALID;
        assert_eq!(h.rx_info().unwrap().checksum, RxChecksum::Partial);
        h.flags = F_NEEDS_CSUM;
        h.gso_type = GSO_TCPV4 | GSO_ECN;
        h.gso_size = 1448;
        assert_eq!(
            h.rx_info(),
            Ok(RxInfo {
                checksum: RxChecksum::Partial,
                gro_segment: Some(1448),
            })
        );
        for bad in [GSO_UDP, GSO_TCPV6, GSO_TCPV6 | GSO_ECN, 5, 0x7f] {
            h.gso_type = bad;
            assert!(h.rx_info().is_err(), "gso_type {bad:#x} accepted");
        }
    }

    #[test]
    fn tx_header_for_a_superframe() {
        let p = superframe(12, 10_000);
        let h = tx_header(&p, 1448, 1500).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                hdr_len: 52,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        // CWR rides along as the ECN bit.
        let mut cwr = p.clone();
        cwr[33] |= 0x80;
        assert_eq!(
            tx_header(&cwr, 1448, 1500).unwrap().gso_type,
            GSO_TCPV4 | GSO_ECN
        );
        // A payload that fits in one segment: checksum offload only.
        let small = superframe(12, 1448);
        let h = tx_header(&small, 1448, 1500).unwrap();
        assert_eq!(
            (h.flags, h.gso_type, h.gso_size),
            (F_NEEDS_CSUM, GSO_NONE, 0)
        );
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (20, 16, 52));
    }

    #[test]
    fn tx_header_rejects_what_the_kernel_would_mangle() {
        let good = superframe(0, 5000);
        let reject = |p: &[u8], seg: u16| tx_header(p, seg, 1500).unwrap_err();
        assert_eq!(reject(&good, 0), "segment payload size is zero");
        assert_eq!(reject(&good, 1461), "segments would be larger than the MTU");
        assert_eq!(reject(&good[..10], 1000), "not an IPv4 packet");
        let mut p = good.clone();
        p[0] = 0x65;
        assert_eq!(reject(&p, 1000), "not an IPv4 packet");
        p = good.clone();
        p[0] = 0x44;
        assert_eq!(reject(&p, 1000), "bad IPv4 header length");
        assert_eq!(
            reject(&good[..good.len() - 1], 1000),
            "IPv4 total length does not match the packet"
        );
        p = good.clone();
        p[6] = 0x20; // MF
        assert_eq!(reject(&p, 1000), "IPv4 fragment");
        p = good.clone();
        p[9] = 17;
        assert_eq!(reject(&p, 1000), "not TCP");
        p = good.clone();
        p[32] = 4 << 4;
        assert_eq!(reject(&p, 1000), "bad TCP data offset");
        p = good.clone();
        p[36] ^= 1;
        assert_eq!(
            reject(&p, 1000),
            "TCP checksum field is not the pseudo-header sum"
        );
        for flag in [0x02, 0x04, 0x20] {
            p = good.clone();
            p[33] |= flag;
            assert_eq!(
                reject(&p, 1000),
                "SYN, RST or URG on a frame to be segmented"
            );
            // ...but fine when nothing is cut.
            assert!(tx_header(&p, 5000, 5100).is_ok());
        }
        // A header-only segment (a pure ACK).
        assert!(tx_header(&superframe(0, 0), 1000, 1500).is_ok());
    }

    #[test]
    fn zero_and_ffff_are_the_same_ones_complement_number() {
        assert!(same_ones_complement(0, 0xffff));
        assert!(same_ones_complement(0xffff, 0));
        assert!(same_ones_complement(0x1234, 0x1234));
        assert!(!same_ones_complement(0x1234, 0x1235));
        assert!(!same_ones_complement(0, 1));
        assert!(!same_ones_complement(0x00ff, 0xff00));
    }

    #[test]
    fn partial_checksums_are_completed_like_a_nic() {
        // 20-byte IPv4 header, 8-byte UDP header whose checksum field holds
        // the pseudo-header sum, then an odd-length payload.
        let mut p = vec![0u8; 20 + 8 + 3];
        p[20 + 8..].copy_from_slice(b"abc");
        let pseudo: u16 = 0x1234;
        p[26..28].copy_from_slice(&pseudo.to_be_bytes());
        assert!(complete_checksum(&mut p, 20, 6));
        // The segment, checksum included, plus the pseudo-header sums to all ones.
        assert_eq!(
            checksum::fold(checksum::sum(&p[20..], u32::from(pseudo))),
            0xffff
        );
        assert!(!complete_checksum(&mut p, 40, 6));
        assert!(!complete_checksum(&mut p, 20, 100));
    }

    #[test]
    fn transport_checksum_is_finished_from_partial_or_full() {
        let mut p = superframe(12, 3001);
        assert!(!transport_checksum_ok(&p));
        assert!(finish_transport_checksum(&mut p));
        assert!(transport_checksum_ok(&p));
        // Doing it again (a full checksum in the field) changes nothing.
        let done = p.clone();
        assert!(finish_transport_checksum(&mut p));
        assert_eq!(p, done);
        // UDP: zero means "no checksum" and stays.
        let mut u = superframe(0, 11);
        u[9] = 17;
        u[26..28].copy_from_slice(&[0, 0]);
        assert!(finish_transport_checksum(&mut u));
        assert_eq!(&u[26..28], &[0, 0]);
        u[26] = 1;
        assert!(finish_transport_checksum(&mut u));
        assert!(transport_checksum_ok(&u));
        // Not touched: ICMP, fragments, garbage.
        let mut icmp = superframe(0, 8);
        icmp[9] = 1;
        let before = icmp.clone();
        assert!(!finish_transport_checksum(&mut icmp));
        assert_eq!(icmp, before);
        let mut frag = superframe(0, 8);
        frag[7] = 1;
        assert!(!finish_transport_checksum(&mut frag));
        for n in 0..40 {
            let mut short = superframe(0, 0);
            short.truncate(n);
            let _ = finish_transport_checksum(&mut short);
        }
    }
}

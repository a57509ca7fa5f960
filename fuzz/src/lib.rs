//! Shared pieces of the fuzz targets: whole hosts (`IpStack<Tcp>`) built as
//! in `tcp/tests/support/host.rs`, packet forging, checksum fixing, and a
//! reference Internet checksum.

use std::net::Ipv4Addr;

use ustack_ipv4::{checksum, DeviceCaps, IpConfig, IpStack, Ipv4Packet, Ipv4Subnet, RxInfo};
use ustack_tcp::wire::{TcpPacket, TcpRepr};
use ustack_tcp::{Instant, Tcp, TcpConfig, TcpLayerConfig, XorShiftRng};

/// The peer's address (the client side of the fuzzed connections).
pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The fuzzed host's address (listener on port 80).
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A TCP/IPv4 host on a /24 with an MTU of `mtu`, without offloads.
pub fn host(
    addr: Ipv4Addr,
    mtu: usize,
    max_connections: usize,
    tcp: TcpConfig,
    seed: u64,
) -> IpStack<Tcp> {
    let layer = TcpLayerConfig {
        max_connections,
        tcp,
        ..TcpLayerConfig::default()
    };
    let tcp = Tcp::new(layer, Box::new(XorShiftRng::new(seed)));
    let subnet = Ipv4Subnet::new(addr, 24).expect("a /24");
    IpStack::new(IpConfig::new(subnet), DeviceCaps::ip(mtu), tcp)
}

/// Feeds `pkt` to `host`, collecting what it sends at once into `out`.
pub fn deliver(host: &mut IpStack<Tcp>, now: Instant, pkt: &[u8], out: &mut Vec<Vec<u8>>) {
    host.handle_packet(now, pkt, RxInfo::default(), &mut |p| {
        out.push(p.parts.concat())
    });
}

/// Polls `host`, collecting what it sends into `out`.
pub fn poll(host: &mut IpStack<Tcp>, now: Instant, out: &mut Vec<Vec<u8>>) {
    host.poll(now, &mut |p| out.push(p.parts.concat()));
}

/// An IPv4 packet carrying a TCP segment with header `repr` and `payload`,
/// checksums filled.
pub fn forge(src: Ipv4Addr, dst: Ipv4Addr, repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let hl = repr.header_len();
    let tcp_len = hl + payload.len();
    let mut buf = vec![0u8; 20 + tcp_len];
    {
        let mut t = TcpPacket::new_unchecked(&mut buf[20..]);
        repr.emit(&mut t);
        t.payload_mut()[..payload.len()].copy_from_slice(payload);
        t.fill_checksum(src, dst);
    }
    let ip = ustack_ipv4::Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 6,
        payload_len: tcp_len,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    buf
}

/// Makes a mutated packet pass validation where it still can: IPv4 header
/// checksum, and the TCP or ICMP checksum of an unfragmented packet (over
/// the payload as the header's total length delimits it).
pub fn fix_checksums(pkt: &mut [u8]) {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || ihl > pkt.len() {
        return;
    }
    pkt[10] = 0;
    pkt[11] = 0;
    let c = checksum::checksum(&pkt[..ihl]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0;
    if frag || total < ihl || total > pkt.len() {
        return;
    }
    let proto = pkt[9];
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let l4 = &mut pkt[ihl..total];
    match proto {
        6 if l4.len() >= 20 => TcpPacket::new_unchecked(l4).fill_checksum(src, dst),
        1 if l4.len() >= 8 => {
            l4[2] = 0;
            l4[3] = 0;
            let c = checksum::checksum(l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// The RFC 1071 sum of `data` the slow obvious way, folded, not complemented.
pub fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map_or(0, u64::from);
        acc += hi | lo;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

//! The virtio-net header path: decoding a received header (and encoding it
//! back), finishing a partial checksum where it points, recomputing a
//! transport checksum from scratch, and the transmit header for a TCP
//! super-frame. Invariants: no panic; a finished checksum verifies; a
//! recomputed TCP checksum verifies; an accepted super-frame's header
//! describes the frame.
#![no_main]

use std::net::Ipv4Addr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_fuzz::fix_checksums;
use ustack_ipv4::{checksum, Ipv4Packet, RxChecksum};
use ustack_link::fuzzing::{finish_transport_checksum, tcp4_tx_header, vnet_rx, VNET_HDR_LEN};
use ustack_tcp::wire::TcpPacket;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    hdr: [u8; VNET_HDR_LEN],
    segment: u16,
    mtu: u16,
    /// Fix the IPv4 header checksum (and a TCP/ICMP one) before the test.
    fix: bool,
    packet: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let mut packet = input.packet.to_vec();
    if input.fix {
        fix_checksums(&mut packet);
    }

    let mut rx = packet.clone();
    if let Ok(info) = vnet_rx(&input.hdr, &mut rx) {
        let flags = input.hdr[0];
        if flags & 1 != 0 {
            assert_eq!(info.checksum, RxChecksum::Partial);
            let start = usize::from(u16::from_ne_bytes([input.hdr[6], input.hdr[7]]));
            let offset = usize::from(u16::from_ne_bytes([input.hdr[8], input.hdr[9]]));
            let field = start + offset;
            // The field held the pseudo-header sum: with it, the finished
            // checksum verifies over everything from `start` (when the field
            // is 16-bit aligned from there, as every real one is).
            let held = u16::from_be_bytes([packet[field], packet[field + 1]]);
            if offset % 2 == 0 {
                assert_eq!(
                    checksum::fold(checksum::sum(&rx[start..], u32::from(held))),
                    0xffff
                );
            }
            assert_eq!(&rx[..field], &packet[..field]);
            assert_eq!(&rx[field + 2..], &packet[field + 2..]);
        }
        assert!(info.gro_segment.is_none_or(|n| n > 0));
    }

    let mut fin = packet.clone();
    if finish_transport_checksum(&mut fin) {
        let ip = Ipv4Packet::new_checked(&fin[..]).expect("accepted an IPv4 packet");
        let (ihl, total) = (ip.header_len(), usize::from(ip.total_len()));
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.protocol() == 6 {
            let tcp = TcpPacket::new_unchecked(&fin[ihl..total]);
            assert!(
                tcp.verify_checksum(src, dst),
                "recomputed TCP checksum verifies"
            );
        }
        assert_eq!(
            &fin[total..],
            &packet[total..],
            "bytes beyond the packet untouched"
        );
    } else {
        assert_eq!(fin, packet, "a refused packet is left untouched");
    }

    let mtu = usize::from(input.mtu);
    if let Ok(h) = tcp4_tx_header(&packet, input.segment, mtu) {
        let hdr_len = usize::from(u16::from_ne_bytes([h[2], h[3]]));
        let csum_start = usize::from(u16::from_ne_bytes([h[6], h[7]]));
        assert_eq!(h[0], 1, "NEEDS_CSUM");
        assert!(hdr_len <= packet.len() && csum_start + 20 <= hdr_len);
        assert_eq!(
            usize::from(u16::from_be_bytes([packet[2], packet[3]])),
            packet.len()
        );
        if h[1] != 0 {
            let gso = usize::from(u16::from_ne_bytes([h[4], h[5]]));
            assert!(hdr_len + gso <= mtu, "segments within the MTU");
        }
        let _ = Ipv4Addr::from([packet[12], packet[13], packet[14], packet[15]]);
    }
});

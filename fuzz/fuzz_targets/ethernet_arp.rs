//! Ethernet II headers and ARP packets on arbitrary frames, and the
//! neighbour cache (reachable without a socket) driven by the ARP frames
//! among them, by packets to send and by time. Invariants: header and ARP
//! emit round trips; the cache within its capacity and its queues within
//! their bounds; a packet is never both sent and queued.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_ipv4::TxPacket;
use ustack_link::arp::{ArpPacket, ArpRepr, NeighbourConfig, Neighbours, SendAction, PACKET_LEN};
use ustack_link::ethernet::{EthernetFrame, EthernetRepr, ETHERTYPE_ARP, HEADER_LEN};

const OURS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    capacity: u8,
    queue_per_neighbour: u8,
    queue_total: u8,
    max_requests: u8,
    ops: Vec<Op<'a>>,
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    /// A received frame: Ethernet header, then (for ARP) the ARP packet.
    Frame(&'a [u8]),
    /// An IPv4 packet of this length to a neighbour 10.1.0.x.
    Send {
        host: u8,
        len: u8,
    },
    Advance(u16),
}

fuzz_target!(|input: Input<'_>| {
    let cfg = NeighbourConfig {
        capacity: 1 + usize::from(input.capacity % 16),
        queue_per_neighbour: 1 + usize::from(input.queue_per_neighbour % 8),
        queue_total: 1 + usize::from(input.queue_total % 16),
        max_requests: u32::from(input.max_requests % 4),
        ..NeighbourConfig::default()
    };
    let mut cache = Neighbours::new(cfg);
    let start = Instant::now();
    let mut now = start;
    let mut ready = Vec::new();
    for op in input.ops {
        match op {
            Op::Frame(frame) => {
                let Ok(eth) = EthernetFrame::new_checked(frame) else {
                    assert!(frame.len() < HEADER_LEN);
                    continue;
                };
                let repr = EthernetRepr::parse(&eth);
                let mut header = [0u8; HEADER_LEN];
                repr.emit(&mut header);
                assert_eq!(&header[..], &frame[..HEADER_LEN]);
                assert_eq!(eth.payload(), &frame[HEADER_LEN..]);
                let _ = (
                    repr.destination.is_broadcast(),
                    repr.source.is_multicast(),
                    repr.source.to_string(),
                );
                let Ok(arp) =
                    ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p))
                else {
                    continue;
                };
                let mut out = [0u8; PACKET_LEN];
                arp.emit(&mut out);
                assert_eq!(&out[..], &eth.payload()[..PACKET_LEN], "ARP round trip");
                let p = ArpPacket::new_checked(&out[..]).expect("emitted ARP checks");
                assert_eq!(ArpRepr::parse(&p), Ok(arp));
                if repr.ethertype != ETHERTYPE_ARP || arp.sender_ip == OURS {
                    continue;
                }
                let (queued, evicted) = (cache.queued(), cache.stats().evicted);
                ready.clear();
                cache.on_arp(
                    arp.sender_ip,
                    arp.sender_mac,
                    arp.target_ip == OURS,
                    now,
                    &mut ready,
                );
                // Making room for a new entry may evict a waiting one with
                // its packets; nothing else loses them.
                let now_held = cache.queued() + ready.len();
                if cache.stats().evicted == evicted {
                    assert_eq!(now_held, queued, "queued packets lost or made up");
                } else {
                    assert!(now_held <= queued, "queued packets made up");
                }
                if !ready.is_empty() {
                    assert_eq!(cache.lookup(arp.sender_ip, now), Some(arp.sender_mac));
                }
            }
            Op::Send { host, len } => {
                let packet = vec![0x45u8; usize::from(len)];
                let addr = Ipv4Addr::new(10, 1, 0, host % 8);
                let before = cache.queued();
                match cache.on_send(addr, &TxPacket::new(&[&packet]), now) {
                    SendAction::Send { mac, .. } => {
                        assert!(mac.is_unicast());
                        assert_eq!(cache.queued(), before);
                    }
                    SendAction::Queued { .. } => assert!(cache.queued() >= 1),
                    SendAction::Dropped => {}
                }
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms) * 16),
        }
        assert!(
            cache.len() <= cfg.capacity,
            "{} entries, capacity {}",
            cache.len(),
            cfg.capacity
        );
        assert!(
            cache.queued() <= cfg.queue_total,
            "{} queued, at most {}",
            cache.queued(),
            cfg.queue_total
        );
        let _ = (cache.stats(), cache.is_empty());
    }
});

//! Network input never panics: arbitrary bytes, and mutations of real
//! segments, fed to stacks with a listener and live connections.

mod common;

use std::time::Duration;

use common::{connected, Net, A};
use proptest::prelude::*;

/// A pair with a listener on B and one established connection, plus a copy
/// of every packet that crossed the wire while setting it up.
fn live_pair() -> (Net, Vec<Vec<u8>>) {
    let mut net = Net::new();
    let l = net.b.listen(80, 8).expect("listen");
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40000))
        .expect("connect");
    let mut captured = Vec::new();
    for _ in 0..50 {
        net.a.poll(net.now, &mut |p| captured.push(p.to_vec()));
        net.b.poll(net.now, &mut |p| captured.push(p.to_vec()));
        let (a_out, b_out): (Vec<_>, Vec<_>) = captured
            .iter()
            .cloned()
            .partition(|p| p[12..16] == A.octets());
        for p in &a_out {
            net.b.handle_packet(net.now, p, &mut |_| {});
        }
        for p in &b_out {
            net.a.handle_packet(net.now, p, &mut |_| {});
        }
        net.now += Duration::from_micros(100);
        if net.b.accept(l).is_some() {
            break;
        }
    }
    assert_eq!(
        net.a.state(c),
        Ok(ustack_tcp::State::Established),
        "the fuzzed stacks hold a live connection"
    );
    let _ = net.a.send(c, b"some data to make the engine busy");
    net.a.poll(net.now, &mut |p| captured.push(p.to_vec()));
    (net, captured)
}

fn feed(net: &mut Net, pkt: &[u8]) {
    let now = net.now;
    net.b.handle_packet(now, pkt, &mut |_| {});
    net.a.handle_packet(now, pkt, &mut |_| {});
    net.now += Duration::from_millis(7);
    let now = net.now;
    net.a.poll(now, &mut |_| {});
    net.b.poll(now, &mut |_| {});
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 1..20)) {
        let (mut net, _) = live_pair();
        for p in &pkts {
            feed(&mut net, p);
        }
    }

    /// Real segments with random bytes overwritten, checksums then fixed
    /// so that the engine itself (not the checksum) meets the garbage.
    #[test]
    fn mutated_real_segments_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..40)) {
        let (mut net, captured) = live_pair();
        prop_assume!(!captured.is_empty());
        for (pos, byte, which) in edits {
            let mut p = captured[which % captured.len()].clone();
            // Mutate the TCP part (offset 20..): ports, flags, options, data.
            if p.len() > 20 {
                let i = 20 + pos % (p.len() - 20);
                p[i] = byte;
                // Re-fill the TCP checksum over the pseudo-header.
                let (src, dst) = (std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]), std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]));
                if let Ok(mut t) = ustack_tcp::wire::TcpPacket::new_checked(&mut p[20..]) {
                    t.fill_checksum(src, dst);
                }
            }
            feed(&mut net, &p);
        }
    }
}

/// A sends `data` (one segment's worth); the packet carrying it is returned,
/// not delivered.
fn data_segment(net: &mut Net, c: ustack_tcp::ConnId, data: &[u8]) -> Vec<u8> {
    assert_eq!(net.a.send(c, data), Ok(data.len()));
    let mut sent = Vec::new();
    net.a.poll(net.now, &mut |p| sent.push(p.to_vec()));
    sent.into_iter()
        .find(|p| p.len() > data.len())
        .expect("the data segment")
}

/// In-order data is summed while it is copied into the receive ring (one
/// pass): a copy whose checksum fails must still be refused, counted, and
/// leave nothing readable, and the good copy after it is delivered whole.
#[test]
fn in_order_data_with_a_bad_checksum_is_dropped_and_leaves_nothing_readable() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 13 + 1) as u8).collect();
    let good = data_segment(&mut net, c, &data);
    let before = net.b.stats().tcp_bad_checksum;
    let mut buf = vec![0u8; 4096];
    // Every payload position, odd and even (each word half of the sum).
    for at in [good.len() - 1, good.len() - 2, good.len() - 501, 72] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        net.b.handle_packet(net.now, &bad, &mut |_| {});
        assert!(
            net.b.recv(s, &mut buf).is_err(),
            "a corrupted byte at {at} was made readable"
        );
    }
    assert_eq!(net.b.stats().tcp_bad_checksum, before + 4);
    net.b.handle_packet(net.now, &good, &mut |_| {});
    let n = net.b.recv(s, &mut buf).expect("the good copy is delivered");
    assert_eq!(&buf[..n], &data[..], "delivered byte-exact");
}

/// A corrupted in-order segment that overlaps data already held out of
/// order must not overwrite it: once the gap is filled by a good copy, the
/// application reads the stream as sent.
#[test]
fn a_corrupted_segment_overlapping_held_data_leaves_it_intact() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    let good = data_segment(&mut net, c, &data);
    let pkt = ustack_tcp::wire::TcpPacket::new_checked(&good[20..]).expect("tcp");
    let repr = ustack_tcp::wire::TcpRepr::parse(&pkt).expect("repr");
    let at = |off: usize, bytes: &[u8]| {
        let r = ustack_tcp::wire::TcpRepr {
            seq: repr.seq + off,
            ..repr
        };
        common::forge(A, common::B, &r, bytes)
    };
    let mut buf = vec![0u8; 4096];
    // Held out of order: bytes 500..1000.
    net.b
        .handle_packet(net.now, &at(500, &data[500..]), &mut |_| {});
    assert!(net.b.recv(s, &mut buf).is_err());
    // In order, 0..800 (overlapping the held bytes), one of them corrupted.
    let mut bad = at(0, &data[..800]);
    let payload_start = bad.len() - 800;
    bad[payload_start + 600] ^= 0x01;
    let before = net.b.stats().tcp_bad_checksum;
    net.b.handle_packet(net.now, &bad, &mut |_| {});
    assert_eq!(net.b.stats().tcp_bad_checksum, before + 1);
    // The gap is filled by a good copy of 0..500.
    net.b
        .handle_packet(net.now, &at(0, &data[..500]), &mut |_| {});
    let mut got = Vec::new();
    while let Ok(n) = net.b.recv(s, &mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), data.len());
    assert!(
        got == data,
        "held bytes were overwritten by the corrupted copy"
    );
}

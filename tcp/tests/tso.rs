//! TCP segmentation offload: the engine hands its link super-frames of many
//! segments (`Stack::poll_segmented`), the wire carries MSS-sized segments
//! cut from them (or a GRO receiver takes them whole), and everything TCP
//! promises still holds: byte-exact delivery, loss recovery per segment, a
//! checksum the device can finish.

mod common;

use common::{config, connected, Dir, Net, Offload, A, B};
use ustack_tcp::ConnId;

fn net_with_tso(offload: Offload) -> Net {
    let mut ca = config(A);
    ca.tso_max = 65535;
    let mut net = Net::with_configs(ca, config(B));
    net.a_offload = offload;
    net
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Sends `data` from A to B, then closes A; returns what B read up to EOF.
fn send_all(net: &mut Net, c: ConnId, s: ConnId, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    net.run_until(2_000_000, |n| {
        if sent < data.len() {
            if let Ok(k) = n.a.send(c, &data[sent..]) {
                sent += k;
            }
        } else if !closed {
            n.a.close(c, n.now).expect("close");
            closed = true;
        }
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                return true;
            }
            got.extend_from_slice(&buf[..k]);
        }
        false
    });
    got
}

#[test]
fn super_frames_cut_into_segments_arrive_byte_exact() {
    let mut net = net_with_tso(Offload::Segment);
    let (c, s) = connected(&mut net);
    let data = pattern(8 << 20);
    let got = send_all(&mut net, c, s, &data);
    assert!(got == data, "stream corrupted through segmentation offload");
    // The work went out in super-frames, and every wire segment still fits
    // the MSS: full segments of 1448 bytes (1460 less the timestamps).
    assert!(
        net.a_super_frames > 100,
        "only {} super-frames for 8 MiB",
        net.a_super_frames
    );
    let from_a = net.log.iter().filter(|x| x.dir == Dir::AtoB);
    let biggest = from_a.map(|x| x.payload_len).max().unwrap_or(0);
    assert_eq!(biggest, 1448);
    // B verified every segment's checksum (it does by default) and counted
    // none bad: the partial checksums were finished right.
    assert_eq!(net.b.stats().tcp_bad_checksum, 0);
}

#[test]
fn super_frames_received_whole_are_acknowledged_at_once() {
    let mut net = net_with_tso(Offload::Coalesce);
    let (c, s) = connected(&mut net);
    let data = pattern(4 << 20);
    let got = send_all(&mut net, c, s, &data);
    assert!(got == data, "stream corrupted through GRO-style delivery");
    let frames: Vec<_> = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.payload_len > 1448)
        .collect();
    assert!(frames.len() > 50, "{} super-frames", frames.len());
    // Every super-frame carries many full segments, so B does not delay
    // its ACK (RFC 5681 §4.2: at least every second full-sized segment):
    // B sends at least one ACK per two super-frames.
    let acks = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.payload_len == 0)
        .count();
    assert!(
        acks * 2 >= frames.len(),
        "{acks} ACKs for {} super-frames",
        frames.len()
    );
}

/// Super-frames smaller than a full 64 KiB (what a kernel sender's TSO
/// bursts over TUN often are) arrive many to a batch: B acknowledges
/// about every 60 KiB within the batch, not every frame, and still at
/// least every 64 KiB overall, so the sender's clock keeps running.
#[test]
fn small_super_frames_are_acknowledged_about_every_60_kib() {
    let mut ca = config(A);
    ca.tso_max = 16 * 1024;
    let mut net = Net::with_configs(ca, config(B));
    net.a_offload = Offload::Coalesce;
    let (c, s) = connected(&mut net);
    let data = pattern(8 << 20);
    let got = send_all(&mut net, c, s, &data);
    assert!(got == data, "stream corrupted through GRO-style delivery");
    let frames = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.payload_len > 1448)
        .count();
    let acks = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.payload_len == 0)
        .count();
    assert!(frames > 400, "{frames} super-frames for 8 MiB");
    assert!(
        acks * 2 <= frames,
        "{acks} ACKs for {frames} super-frames of at most 16 KiB: one per frame"
    );
    assert!(
        acks >= data.len() / (64 * 1024),
        "{acks} ACKs for {} bytes: fewer than one per 64 KiB",
        data.len()
    );
}

#[test]
fn segments_lost_from_super_frames_are_recovered_one_by_one() {
    let mut net = net_with_tso(Offload::Segment);
    let (c, s) = connected(&mut net);
    // Drop every 50th data segment from A on its first transmission.
    let mut dropped = std::collections::HashSet::new();
    net.drop = Box::new(move |seen, n| {
        let Some(t) = seen.tcp else { return false };
        seen.dir == Dir::AtoB && seen.payload_len > 0 && n % 50 == 0 && dropped.insert(t.seq)
    });
    let data = pattern(4 << 20);
    let got = send_all(&mut net, c, s, &data);
    assert!(got == data, "stream corrupted under loss");
    // Recovery resends the lost segments, not whole super-frames: one in 50
    // segments was lost, and A's wire bytes exceed the stream by little
    // more than that 2 % (one RACK record per super-frame gives about 9 %).
    let on_wire: usize = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB)
        .map(|x| x.payload_len)
        .sum();
    let overhead = on_wire as f64 / data.len() as f64 - 1.0;
    assert!(
        overhead < 0.04,
        "retransmitted {:.1}% of the stream",
        overhead * 100.0
    );
}

#[test]
fn without_tso_max_poll_segmented_sends_plain_segments() {
    let mut net = Net::new();
    net.a_offload = Offload::Segment;
    let (c, s) = connected(&mut net);
    let data = pattern(1 << 20);
    let got = send_all(&mut net, c, s, &data);
    assert!(got == data);
    assert_eq!(net.a_super_frames, 0);
}

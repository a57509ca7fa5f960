//! Window scaling, timestamps and PAWS (RFC 7323), delayed ACKs, Nagle and receiver SWS avoidance.

use std::time::Duration;

use super::common::{Dir, A, B};

use super::harness::*;
use ustack_tcp::wire::{Flags, SackBlock, TcpOptions, TcpRepr};
use ustack_tcp::State;

// ------------------------------------------------------------ RFC 7323 §2

/// RFC 7323 §2.2: "The Window field in a segment where the SYN bit is set
/// ... MUST NOT be scaled"; §2.2/§2.3: scaling is in effect only if both SYNs
/// carried the option.
#[test]
fn window_scale_offered_in_syn_and_used_when_both_sides_agree() {
    let mut w = Link::new();
    connected(&mut w);
    let syn = w.segs(Dir::AtoB, 0).find(|l| is_syn(l)).unwrap().tcp();
    let syn_ack = w.segs(Dir::BtoA, 0).find(|l| is_syn(l)).unwrap().tcp();
    // Receive buffers that may grow to 16 MiB need a shift of 9 to fit 16 bits.
    assert_eq!(syn.options.window_scale, Some(9));
    assert_eq!(syn_ack.options.window_scale, Some(9));
    // SYN windows are unscaled: the initial 64 KiB buffer is announced as 65535.
    assert_eq!(syn.window, 65535);
    assert_eq!(syn_ack.window, 65535);
    // After the handshake the field is scaled: 65536 >> 9.
    let ack = w.segs(Dir::AtoB, 0).find(|l| !is_syn(l)).unwrap().tcp();
    assert_eq!(ack.window, 128);
}

#[test]
fn window_scale_not_used_when_peer_syn_lacks_it() {
    let mut w = Link::with(|_| {}, |b| b.tcp.window_scaling = false);
    let (c, s) = connected(&mut w);
    let syn = w.segs(Dir::AtoB, 0).find(|l| is_syn(l)).unwrap().tcp();
    let syn_ack = w.segs(Dir::BtoA, 0).find(|l| is_syn(l)).unwrap().tcp();
    assert_eq!(syn.options.window_scale, Some(9), "A still offers");
    assert_eq!(syn_ack.options.window_scale, None, "B does not");
    let data = pattern(400_000, 1);
    let from = w.log.len();
    assert!(transfer(&mut w, c, s, &data) == data);
    // A's window is advertised unscaled, capped at 65535 (not 128 as a
    // shift of 9 would give).
    let a_windows: Vec<u16> = w
        .segs(Dir::AtoB, 0)
        .skip(1)
        .map(|l| l.tcp().window)
        .collect();
    assert!(a_windows.iter().all(|&x| x == 65535), "{a_windows:?}");
    let flight = max_in_flight(&w, from);
    assert!(
        flight <= 65535,
        "{flight} bytes in flight past an unscaled window"
    );
}

/// RFC 7323 §1.1/§2: without scaling the window caps the data in flight at
/// 64 KiB; a 256 KiB scaled window lets the sender go beyond.
#[test]
fn scaled_256k_window_allows_more_than_64k_in_flight() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let data = pattern(1 << 20, 2);
    let from = w.log.len();
    assert!(transfer(&mut w, c, s, &data) == data);
    let flight = max_in_flight(&w, from);
    assert!(flight > 65535, "only {flight} bytes in flight");
    assert!(flight <= 256 * 1024, "{flight} beyond the receive window");
}

// ------------------------------------------------------ RFC 7323 §3-§5

/// RFC 7323 §3.2: "Once TSopt has been successfully negotiated ... the TSopt
/// MUST be sent in every non-<RST> segment"; §4.3: TSecr echoes TS.Recent,
/// the peer's TSval.
#[test]
fn timestamps_on_every_segment_and_tsecr_echoes_peer_tsval() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let data = pattern(100_000, 3);
    assert!(transfer(&mut w, c, s, &data) == data);
    w.b.send(s, b"reply").unwrap();
    w.run_for(Duration::from_millis(100));
    let syn = w.segs(Dir::AtoB, 0).find(|l| is_syn(l)).unwrap().tcp();
    let syn_ack = w.segs(Dir::BtoA, 0).find(|l| is_syn(l)).unwrap().tcp();
    assert_eq!(syn.options.timestamps.map(|t| t.1), Some(0));
    assert_eq!(
        syn_ack.options.timestamps.map(|t| t.1),
        syn.options.timestamps.map(|t| t.0),
        "SYN-ACK echoes the SYN's TSval"
    );
    let mut sent_by = [Vec::new(), Vec::new()];
    for l in w.log.iter().filter(|l| l.seen.tcp.is_some()) {
        let t = l.tcp();
        if t.flags.rst() {
            continue;
        }
        let (me, peer) = match l.seen.dir {
            Dir::AtoB => (0, 1),
            Dir::BtoA => (1, 0),
        };
        let (val, ecr) = t
            .options
            .timestamps
            .unwrap_or_else(|| panic!("segment without timestamps: {t:?}"));
        if !t.flags.syn() || t.flags.ack() {
            assert!(
                sent_by[peer].contains(&ecr),
                "TSecr {ecr} is no TSval the peer sent: {t:?}"
            );
        }
        sent_by[me].push(val);
    }
    // The ACK of the last data segment echoes that segment's TSval.
    let last_data = w.segs(Dir::AtoB, 0).rfind(|l| l.len() > 0).unwrap();
    let end = last_data.end();
    let its_ack = w
        .segs(Dir::BtoA, 0)
        .find(|l| l.tcp().ack == end)
        .unwrap()
        .tcp();
    assert_eq!(
        its_ack.options.timestamps.unwrap().1,
        last_data.tcp().options.timestamps.unwrap().0
    );
}

/// RFC 7323 §5.3 R1: "If SEG.TSval < TS.Recent and the RST bit is off: ...
/// the segment is not acceptable; Send an acknowledgment in reply ... and
/// drop the segment."
#[test]
fn paws_drops_in_window_segment_with_old_tsval_and_acks() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    w.a.send(c, b"hello").unwrap();
    w.run_until(100, |w| w.b.recv_queue_len(s) == Ok(5));
    w.run_for(Duration::from_millis(100));
    let mut buf = [0u8; 16];
    assert_eq!(w.b.recv(s, &mut buf), Ok(5));
    let last_a = w.segs(Dir::AtoB, 0).last().unwrap().tcp();
    let last_b = w.segs(Dir::BtoA, 0).last().unwrap().tcp();
    let (tsval, _) = last_a.options.timestamps.unwrap();
    let (b_tsval, _) = last_b.options.timestamps.unwrap();
    let rcv_nxt = last_b.ack;
    let old = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: rcv_nxt,
        ack: last_a.ack,
        flags: Flags::ACK | Flags::PSH,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some((tsval.wrapping_sub(1000), b_tsval)),
            ..TcpOptions::default()
        },
    };
    let from = w.log.len();
    w.inject_to_b(&forge(A, B, &old, b"stale"));
    assert_eq!(w.b.recv_queue_len(s), Ok(0), "old duplicate delivered");
    let replies: Vec<_> = w.segs(Dir::BtoA, from).map(|l| l.tcp()).collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].flags.ack() && !replies[0].flags.rst());
    assert_eq!(replies[0].ack, rcv_nxt, "nothing of it acknowledged");
    // The same bytes with a current timestamp are taken.
    let fresh = TcpRepr {
        options: TcpOptions {
            timestamps: Some((tsval.wrapping_add(1), b_tsval)),
            ..TcpOptions::default()
        },
        ..old
    };
    w.inject_to_b(&forge(A, B, &fresh, b"fresh"));
    assert_eq!(w.b.recv_queue_len(s), Ok(5));
    assert_eq!(w.b.state(s), Ok(State::Established));
}

// --------------------------------------------------------- delayed ACK

/// RFC 9293 §3.8.6.3 / RFC 5681 §4.2: an ACK may be delayed, but by less
/// than 0.5 s (here the configured 40 ms), and "an ACK SHOULD be generated
/// for at least every second full-sized segment". (The first segments of a
/// connection are ACKed at once: quick-ACK mode, below.)
#[test]
fn delayed_ack_for_one_segment_and_immediate_ack_for_two() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    spend_quick_acks(&mut w, c);

    let from = w.log.len();
    w.a.send(c, &[7u8; 100]).unwrap();
    w.run_for(Duration::from_millis(100));
    let data = w.segs(Dir::AtoB, from).find(|l| l.len() > 0).unwrap();
    let ack = w.segs(Dir::BtoA, from).next().expect("ACK");
    assert_eq!(ack.tcp().ack, data.end());
    let delay = ack.at - data.at;
    assert!(
        delay >= Duration::from_millis(40) && delay <= Duration::from_millis(41),
        "one segment ACKed after {delay:?}"
    );

    let from = w.log.len();
    w.a.send(c, &[8u8; 2 * 1448]).unwrap();
    w.run_for(Duration::from_millis(100));
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    assert_eq!(datas.len(), 2);
    assert!(datas.iter().all(|l| l.len() == 1448));
    let acks: Vec<_> = w.segs(Dir::BtoA, from).collect();
    assert_eq!(acks.len(), 1, "one ACK for both segments");
    assert_eq!(acks[0].tcp().ack, datas[1].end());
    let delay = acks[0].at - datas[0].at;
    assert!(
        delay < Duration::from_millis(1),
        "two segments ACKed after {delay:?}"
    );
}

/// Small segments, one at a time, until B delays its ACK; returns how many
/// B acknowledged at once.
fn spend_quick_acks(w: &mut Link, c: ustack_tcp::ConnId) -> usize {
    for quick in 0..32 {
        let from = w.log.len();
        w.a.send(c, b"tick").unwrap();
        w.run_for(Duration::from_millis(100));
        let data = w.segs(Dir::AtoB, from).find(|l| l.len() > 0).unwrap();
        let ack = w.segs(Dir::BtoA, from).next().expect("ACK");
        if ack.at - data.at > Duration::from_millis(1) {
            return quick;
        }
    }
    panic!("no delayed ACK in 32 small segments");
}

/// Linux's quick-ACK mode: a connection's first data earns up to 16 ACKs
/// without delay. A client that writes a request's header and then its body
/// sends the body only once the header is ACKed (Nagle); a delayed ACK
/// would hold every such request 40 ms.
#[test]
fn a_connections_first_segments_are_acked_at_once() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    let from = w.log.len();
    w.a.send(c, b"POST /sink HTTP/1.1\r\nContent-Length: 4\r\n\r\n")
        .unwrap();
    w.flush();
    w.a.send(c, b"body").unwrap();
    w.run_for(Duration::from_millis(100));
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    assert_eq!(datas.len(), 2);
    assert!(
        datas[1].at - datas[0].at < Duration::from_millis(1),
        "the body waited {:?} for the header's ACK",
        datas[1].at - datas[0].at
    );
    // 64 KiB of buffer holds 22 pairs of segments: the cap of 16 applies.
    assert_eq!(spend_quick_acks(&mut w, c), 16 - 2);
}

/// Ping-pong: once B answers what it receives at once, it stops ACKing
/// without delay, so its ACKs ride on its replies instead of leaving on
/// their own (quick-ACK mode would otherwise last 16 segments).
#[test]
fn a_connection_that_answers_at_once_sends_no_pure_acks() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let mut buf = [0u8; 64];
    for round in 0..10 {
        let from = w.log.len();
        w.a.send(c, b"ping").unwrap();
        w.flush();
        // B's stack polls before its application answers, as with an
        // application on a thread of its own.
        w.now = w.ab.front().expect("ping on the wire").0;
        w.deliver(Dir::AtoB);
        w.flush();
        assert_eq!(w.b.recv(s, &mut buf), Ok(4));
        w.b.send(s, b"pong").unwrap();
        w.run_for(Duration::from_millis(100));
        assert_eq!(w.a.recv(c, &mut buf), Ok(4));
        let pure = w.segs(Dir::BtoA, from).filter(|l| l.len() == 0).count();
        // The first request is ACKed before the reply exists.
        assert!(round == 0 || pure == 0, "round {round}: {pure} pure ACKs");
    }
}

/// RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK
/// when an out-of-order segment arrives"; RFC 2018 §4: "The first SACK block
/// ... MUST specify the contiguous block of data containing the segment
/// which triggered this ACK".
#[test]
fn out_of_order_segment_is_acked_at_once_with_sack_of_newest_block_first() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let from = w.log.len();
    let mut n = 0;
    // Lose the 1st and 3rd of four segments.
    w.drop = Box::new(move |seen| {
        if seen.dir == Dir::AtoB && seen.payload_len > 0 {
            n += 1;
            return n == 1 || n == 3;
        }
        false
    });
    let data = pattern(4 * 1448, 9);
    let got = transfer(&mut w, c, s, &data);
    assert!(got == data);
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    let seg = |i: usize| SackBlock {
        left: datas[i].tcp().seq,
        right: datas[i].end(),
    };
    let acks: Vec<_> = w.segs(Dir::BtoA, from).collect();
    // Answer to segment 2 (arrives first): dup ACK of segment 1, SACK [2].
    let first = acks[0].tcp();
    assert_eq!(first.ack, datas[0].tcp().seq);
    assert_eq!(first.options.sack.as_slice(), &[seg(1)]);
    assert!(
        acks[0].at - datas[1].at < Duration::from_millis(1),
        "not delayed"
    );
    // Answer to segment 4: its block comes first, then the older one.
    let second = acks[1].tcp();
    assert_eq!(second.ack, datas[0].tcp().seq);
    assert_eq!(second.options.sack.as_slice(), &[seg(3), seg(1)]);
    assert!(
        acks[1].at - datas[3].at < Duration::from_millis(1),
        "not delayed"
    );
}

// ---------------------------------------------------------------- Nagle

/// RFC 9293 §3.7.4: "If there is unacknowledged data ... the sending TCP
/// buffers all user data ... until the outstanding data has been
/// acknowledged or until the TCP can send a full-sized segment".
#[test]
fn nagle_holds_second_small_write_until_ack() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    let from = w.log.len();
    w.a.send(c, b"first").unwrap();
    w.flush();
    w.a.send(c, b"second").unwrap();
    w.run_for(Duration::from_millis(200));
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    assert_eq!(datas.len(), 2);
    assert_eq!(datas[0].len(), 5);
    let ack = w
        .segs(Dir::BtoA, from)
        .find(|l| l.tcp().ack == datas[0].end())
        .unwrap();
    assert!(
        datas[1].at >= ack.at + ONE_WAY,
        "second write sent at {:?}, before the ACK ({:?}) arrived",
        datas[1].at,
        ack.at
    );
}

/// Minshall's form of Nagle (Linux, BSD): full segments in flight do not
/// hold a short one back, only an earlier short one does. A write that ends
/// in a partial segment leaves whole, rather than its last piece waiting a
/// round trip, or a delayed ACK where the peer waits for a second segment.
#[test]
fn nagle_sends_a_writes_short_last_segment_with_its_full_ones() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    let from = w.log.len();
    w.a.send(c, &pattern(3_000, 1)).unwrap();
    w.flush();
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    let lens: Vec<usize> = datas.iter().map(|l| l.len()).collect();
    assert_eq!(lens, [1448, 1448, 104], "the whole write left at once");
    assert!(datas.iter().all(|l| l.at == datas[0].at), "one burst");
}

/// A bulk sender keeps its segments full: while the send queue has no room
/// for another segment, the application has more to write, so a short
/// piece at the queue's end waits for the data the next ACK lets in.
#[test]
fn a_bulk_sender_with_a_full_queue_sends_only_full_segments() {
    let mut w = Link::with(
        |a| {
            // Not a whole number of segments, so the queue's end is short.
            a.tcp.send_buffer = 8 * 1024;
            a.tcp.send_buffer_max = 8 * 1024;
        },
        |_| {},
    );
    let (c, s) = connected(&mut w);
    let from = w.log.len();
    let data = pattern(300_000, 5);
    assert_eq!(transfer(&mut w, c, s, &data), data);
    let lens: Vec<usize> = w
        .segs(Dir::AtoB, from)
        .map(|l| l.len())
        .filter(|&n| n > 0)
        .collect();
    let short = lens[..lens.len() - 1].iter().filter(|&&n| n < 1448).count();
    assert_eq!(short, 0, "short segments before the last: {lens:?}");
}

/// Nagle holds a short segment for data to join it; once the application
/// has closed, none will, so the segment that carries the FIN goes at once
/// (Linux's `tcp_nagle_test` exempts it too).
#[test]
fn nagle_never_holds_the_segment_that_carries_the_fin() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    let from = w.log.len();
    w.a.send(c, b"first").unwrap();
    w.flush();
    w.a.send(c, b"second").unwrap();
    let now = w.now;
    w.a.shutdown(c, now).unwrap();
    w.flush();
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    assert_eq!(datas.len(), 2);
    assert!(
        datas[1].tcp().flags.fin(),
        "the second write carries the FIN"
    );
    assert_eq!(datas[1].at, datas[0].at, "sent before the first was ACKed");
}

#[test]
fn nodelay_sends_second_small_write_at_once() {
    let mut w = Link::with(|a| a.tcp.nodelay = true, |_| {});
    let (c, _s) = connected(&mut w);
    let from = w.log.len();
    w.a.send(c, b"first").unwrap();
    w.flush();
    w.a.send(c, b"second").unwrap();
    w.flush();
    let datas: Vec<_> = w.segs(Dir::AtoB, from).filter(|l| l.len() > 0).collect();
    assert_eq!(datas.len(), 2, "both small segments out without waiting");
    assert_eq!(datas[1].len(), 6);
    assert_eq!(datas[1].at, datas[0].at);
}

// ------------------------------------------------------- receiver SWS

/// RFC 9293 §3.8.6.2.2: the receiver keeps RCV.NXT+RCV.WND fixed until
/// "RCV.BUFF - RCV.USER - RCV.WND >= min( Fr * RCV.BUFF, Eff.snd.MSS )".
#[test]
fn receiver_sws_no_window_update_until_min_half_buffer_or_mss_read() {
    let mut w = Link::with(
        |_| {},
        |b| {
            b.tcp.recv_buffer = 10 * 1448;
            b.tcp.recv_buffer_max = 10 * 1448;
        },
    );
    let (c, s) = connected(&mut w);
    let data = pattern(40_000, 4);
    w.a.send(c, &data).unwrap();
    w.run_until(10_000, |w| w.b.recv_queue_len(s) == Ok(10 * 1448));
    // The last segment's ACK may be a delayed one.
    w.run_for(Duration::from_millis(50));
    let zero = w.segs(Dir::BtoA, 0).last().unwrap().tcp();
    assert_eq!(zero.window, 0, "full buffer: zero window");

    // Reading a few bytes must not announce a window (well before any
    // persist probe, which comes after an RTO of at least 200 ms).
    let from = w.log.len();
    let mut buf = vec![0u8; 2000];
    assert_eq!(w.b.recv(s, &mut buf[..100]), Ok(100));
    w.run_for(Duration::from_millis(50));
    let updates: Vec<_> = w.segs(Dir::BtoA, from).map(|l| l.tcp()).collect();
    assert!(
        updates.is_empty(),
        "window update after 100 bytes: {updates:?}"
    );

    // Once min(buffer/2, MSS) = 1448 bytes were read, the window opens at once.
    let from = w.log.len();
    assert_eq!(w.b.recv(s, &mut buf[..1348]), Ok(1348));
    w.flush();
    let update = w.segs(Dir::BtoA, from).next().expect("window update").tcp();
    assert!(update.window >= 1448, "{update:?}");
    w.run_for(Duration::from_millis(1));
    assert!(
        w.segs(Dir::AtoB, from).any(|l| l.len() > 0),
        "sender resumed"
    );
}

/// Same rule, for ACKs the receiver sends for other reasons: a persist probe
/// answered while less than min(buffer/2, MSS) was read must still show the
/// unmoved right edge (a zero window), or the sender sends a tiny segment.
#[test]
fn receiver_sws_probe_answer_keeps_right_edge_fixed() {
    let mut w = Link::with(
        |_| {},
        |b| {
            b.tcp.recv_buffer = 10 * 1448;
            b.tcp.recv_buffer_max = 10 * 1448;
        },
    );
    let (c, s) = connected(&mut w);
    let data = pattern(40_000, 4);
    w.a.send(c, &data).unwrap();
    w.run_until(10_000, |w| w.b.recv_queue_len(s) == Ok(10 * 1448));
    w.run_for(Duration::from_millis(1));
    let mut buf = vec![0u8; 100];
    assert_eq!(w.b.recv(s, &mut buf), Ok(100));
    let from = w.log.len();
    // The persist timer fires within a few RTOs; every answer keeps window 0.
    w.run_for(Duration::from_secs(2));
    let probes = w.segs(Dir::AtoB, from).count();
    assert!(probes >= 1, "no persist probe");
    let windows: Vec<u16> = w.segs(Dir::BtoA, from).map(|l| l.tcp().window).collect();
    assert!(
        windows.iter().all(|&x| x == 0),
        "windows advertised: {windows:?}"
    );
    let small: Vec<usize> = w
        .segs(Dir::AtoB, from)
        .map(|l| l.len())
        .filter(|&n| n > 0)
        .collect();
    assert!(small.is_empty(), "silly segments sent: {small:?}");
}

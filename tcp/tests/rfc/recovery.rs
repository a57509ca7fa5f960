//! Blind-attack defences (RFC 5961) and loss recovery: RACK-TLP (RFC 8985), NewReno (RFC 6582).

use std::time::Duration;

use super::common::{Dir, A, B};

use super::harness::*;
use ustack_tcp::wire::{Flags, TcpOptions, TcpRepr};
use ustack_tcp::{SeqNumber, State};

// ------------------------------------------------------------ RFC 5961

/// RFC 5961 §4.2: a SYN in a synchronized state, whatever its sequence
/// number, gets a challenge ACK; the connection is not reset.
#[test]
fn syn_in_established_gets_challenge_ack_and_connection_survives() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let rcv_nxt = w.segs(Dir::BtoA, 0).last().unwrap().tcp().ack;
    let b_nxt = w.segs(Dir::AtoB, 0).last().unwrap().tcp().ack;
    for seq in [rcv_nxt + 1000u32, rcv_nxt] {
        let syn = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq,
            ack: SeqNumber(0),
            flags: Flags::SYN,
            window: 1000,
            urgent: 0,
            options: TcpOptions::default(),
        };
        let from = w.log.len();
        w.inject_to_b(&forge(A, B, &syn, &[]));
        let replies: Vec<_> = w.segs(Dir::BtoA, from).map(|l| l.tcp()).collect();
        assert_eq!(replies.len(), 1, "{replies:?}");
        let r = replies[0];
        assert!(r.flags.ack() && !r.flags.rst() && !r.flags.syn(), "{r:?}");
        assert_eq!((r.seq, r.ack), (b_nxt, rcv_nxt), "challenge ACK");
        assert_eq!(w.b.state(s), Ok(State::Established));
    }
    let data = pattern(10_000, 5);
    assert!(transfer(&mut w, c, s, &data) == data);
}

// ---------------------------------------------------------- RFC 8985

/// RFC 8985 §6.2: RACK detects the loss of a retransmission by time
/// ("a retransmission ... is considered lost" once a later-sent segment is
/// delivered), so a lost retransmission costs no RTO (min 200 ms here).
#[test]
fn rack_repairs_lost_retransmission_without_rto() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    let isn_a = w.segs(Dir::AtoB, 0).next().unwrap().tcp().seq;
    let victim = isn_a + 1u32 + 30 * 1448usize;
    let mut seen_victim = 0;
    w.drop = Box::new(move |seen| {
        let hit = seen.dir == Dir::AtoB
            && seen.payload_len > 0
            && seen.tcp.is_some_and(|t| t.seq == victim);
        if hit {
            seen_victim += 1;
        }
        hit && seen_victim <= 2
    });
    let data = pattern(300_000, 6);
    let t0 = w.now;
    let from = w.log.len();
    assert!(transfer(&mut w, c, s, &data) == data);
    let took = w.now - t0;
    let sends = w
        .segs(Dir::AtoB, from)
        .filter(|l| l.len() > 0 && l.tcp().seq == victim)
        .count();
    assert!(
        sends >= 3,
        "segment and its retransmission lost: {sends} sends"
    );
    assert!(took < Duration::from_millis(100), "took {took:?}: an RTO?");
}

/// RFC 8985 §7: the tail loss probe "to trigger RACK-based loss detection
/// ... for tail losses" instead of waiting for the RTO.
#[test]
fn tlp_recovers_tail_loss_without_rto() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    // Warm up, so SRTT is known (the PTO is 2·SRTT).
    let warm = pattern(50_000, 7);
    assert!(transfer(&mut w, c, s, &warm) == warm);
    w.run_for(Duration::from_millis(100));
    let start = w.segs(Dir::AtoB, 0).last().unwrap().end();
    let tail = start + 17 * 1448usize;
    // Only the first transmission of each of the last three segments is lost.
    let mut lost = std::collections::HashSet::new();
    w.drop = Box::new(move |seen| {
        seen.dir == Dir::AtoB
            && seen.payload_len > 0
            && seen
                .tcp
                .is_some_and(|t| t.seq.distance(tail) >= 0 && lost.insert(t.seq.0))
    });
    let data = pattern(20 * 1448, 8);
    let t0 = w.now;
    let from = w.log.len();
    assert!(transfer(&mut w, c, s, &data) == data);
    let took = w.now - t0;
    let dropped = w.log[from..].iter().filter(|l| l.dropped).count();
    assert_eq!(dropped, 3, "the last three segments were lost once");
    assert!(took < Duration::from_millis(100), "took {took:?}: an RTO?");
}

// -------------------------------------------------- RFC 6582 NewReno

/// RFC 5681 §3.2 / RFC 6582 §3.2: without SACK, "the TCP MUST use the fast
/// retransmit algorithm ... after receiving 3 duplicate ACKs" instead of
/// waiting for the retransmission timer.
#[test]
fn newreno_fast_retransmit_after_three_dup_acks_without_sack() {
    let mut w = Link::with(|a| a.tcp.sack = false, |b| b.tcp.sack = false);
    let (c, s) = connected(&mut w);
    let syn = w.segs(Dir::AtoB, 0).next().unwrap().tcp();
    assert!(!syn.options.sack_permitted);
    let victim = syn.seq + 1u32 + 5 * 1448usize;
    let mut once = true;
    w.drop = Box::new(move |seen| {
        let hit = once && seen.dir == Dir::AtoB && seen.tcp.is_some_and(|t| t.seq == victim);
        if hit {
            once = false;
        }
        hit
    });
    let data = pattern(200_000, 10);
    let from = w.log.len();
    assert!(transfer(&mut w, c, s, &data) == data);
    let lost_at = w.log[from..].iter().find(|l| l.dropped).unwrap().at;
    let rtx = w
        .segs(Dir::AtoB, from)
        .find(|l| !l.dropped && l.len() > 0 && l.tcp().seq == victim)
        .expect("retransmission");
    // Duplicate ACKs B sent before the retransmission went out (plus one
    // one-way delay for them to reach A).
    let dups: Vec<_> = w
        .segs(Dir::BtoA, from)
        .filter(|l| l.at + ONE_WAY <= rtx.at && l.tcp().ack == victim && l.len() == 0)
        .collect();
    assert!(
        dups.len() >= 3,
        "{} duplicate ACKs before the retransmission",
        dups.len()
    );
    assert!(
        dups.iter().all(|l| l.tcp().options.sack.len == 0),
        "no SACK blocks"
    );
    let waited = rtx.at - lost_at;
    assert!(
        waited < Duration::from_millis(10),
        "retransmitted after {waited:?}"
    );
}

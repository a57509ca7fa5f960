//! Keep-alive (RFC 1122), the user timeout (RFC 9293), ISNs (RFC 6528) and TIME-WAIT.

use std::time::Duration;

use super::common::Dir;
use super::common::HostConfig;
use super::harness::*;

use ustack_tcp::{State, TcpError};

// ------------------------------------------------------ RFC 1122 keep-alive

fn keepalive_config(cfg: &mut HostConfig) {
    cfg.tcp.keepalive = Some(Duration::from_secs(10));
    cfg.tcp.keepalive_interval = Duration::from_secs(1);
    cfg.tcp.keepalive_probes = 3;
}

/// RFC 1122 §4.2.3.6: keep-alive packets are sent "only when no data or
/// acknowledgement packets have been received for the connection within an
/// interval"; a probe carries SEG.SEQ = SND.NXT-1 and no data.
#[test]
fn keepalive_probes_idle_connection_that_answers_and_stays_up() {
    let mut w = Link::with(keepalive_config, |_| {});
    let (c, _s) = connected(&mut w);
    let established = w.now;
    let isn = w.segs(Dir::AtoB, 0).next().unwrap().tcp().seq;
    let from = w.log.len();
    w.run_for(Duration::from_secs(35));
    assert_eq!(w.a.state(c), Ok(State::Established));
    let probes: Vec<_> = w.segs(Dir::AtoB, from).collect();
    assert_eq!(probes.len(), 3, "one probe per 10 s of idleness");
    for (i, p) in probes.iter().enumerate() {
        assert_eq!(p.tcp().seq, isn, "SEG.SEQ = SND.UNA - 1");
        assert_eq!(p.len(), 0);
        let idle = p.at - established;
        let want = Duration::from_secs(10 * (i as u64 + 1));
        // Idle time runs from the last segment A heard (the SYN-ACK), one
        // one-way delay before `established` was noted here.
        assert!(
            idle + Duration::from_millis(1) >= want && idle < want + Duration::from_millis(10),
            "probe {i} after {idle:?}"
        );
    }
    assert_eq!(w.segs(Dir::BtoA, from).count(), 3, "each probe answered");
}

#[test]
fn keepalive_gives_up_after_idle_plus_probes_when_peer_vanishes() {
    let mut w = Link::with(keepalive_config, |_| {});
    let (c, _s) = connected(&mut w);
    let established = w.now;
    w.drop = Box::new(|_| true);
    let from = w.log.len();
    w.run_until(100, |w| w.a.state(c) == Ok(State::Closed));
    assert!(matches!(w.a.error(c), Ok(Some(TcpError::TimedOut { .. }))));
    let took = w.now - established;
    assert!(
        took + Duration::from_millis(1) >= Duration::from_secs(13)
            && took < Duration::from_millis(13_010),
        "gave up after {took:?}, want 10 s idle + 3 x 1 s"
    );
    assert_eq!(
        w.segs(Dir::AtoB, from)
            .filter(|l| !l.tcp().flags.rst())
            .count(),
        3
    );
}

// ------------------------------------------------- RFC 9293 user timeout

/// RFC 9293 §3.8.4: "if data is not successfully delivered to the
/// destination within the timeout period, the TCP will abort".
#[test]
fn user_timeout_aborts_unacked_data_after_its_period() {
    within(Duration::from_secs(3), || {
        let mut w = Link::with(
            |a| a.tcp.user_timeout = Some(Duration::from_secs(2)),
            |_| {},
        );
        let (c, _s) = connected(&mut w);
        w.run_for(Duration::from_millis(10));
        w.drop = Box::new(|_| true);
        let t0 = w.now;
        w.a.send(c, b"into the void").unwrap();
        w.run_until(1000, |w| w.a.state(c) == Ok(State::Closed));
        assert!(matches!(w.a.error(c), Ok(Some(TcpError::TimedOut { .. }))));
        let took = w.now - t0;
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2_100),
            "timed out after {took:?}"
        );
    });
}

/// RFC 9293 §3.8.4: the user timeout is about undelivered data; a healthy
/// connection with nothing to send must not time out.
#[test]
fn user_timeout_does_not_fire_on_idle_connection() {
    within(Duration::from_secs(3), || {
        let mut w = Link::with(
            |a| a.tcp.user_timeout = Some(Duration::from_secs(2)),
            |_| {},
        );
        let (c, s) = connected(&mut w);
        w.run_for(Duration::from_secs(5));
        assert_eq!(w.a.error(c), Ok(None));
        assert_eq!(w.a.state(c), Ok(State::Established));
        assert_eq!(w.b.state(s), Ok(State::Established));
    });
}

// ------------------------------------------------------------ RFC 6528

/// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport,
/// secretkey), M a 4 µs timer: different tuples get unrelated ISNs, the same
/// tuple's ISN advances with the clock.
#[test]
fn isns_differ_per_tuple_and_advance_with_the_4us_clock() {
    let mut w = Link::new();
    let peer = super::common::Net::addr_b(81);
    let c1 = w.a.connect(w.now, peer, Some(40000)).unwrap();
    let c2 = w.a.connect(w.now, peer, Some(40001)).unwrap();
    w.flush();
    let syns: Vec<_> = w
        .segs(Dir::AtoB, 0)
        .filter(|l| is_syn(l))
        .map(|l| l.tcp())
        .collect();
    assert_eq!(syns.len(), 2);
    let d = syns[1].seq.distance(syns[0].seq).unsigned_abs();
    assert!(d > 1 << 20, "ISNs of neighbouring ports only {d} apart");
    // No listener on 81: both are refused; release the tuples.
    w.run_until(100, |w| {
        w.a.state(c1) == Ok(State::Closed) && w.a.state(c2) == Ok(State::Closed)
    });
    w.a.close(c1, w.now).unwrap();
    w.a.close(c2, w.now).unwrap();
    let t0 = syns[0];
    let first_at = w.segs(Dir::AtoB, 0).find(|l| is_syn(l)).unwrap().at;
    w.run_for(Duration::from_millis(1_234));
    let from = w.log.len();
    let later = w.now;
    w.a.connect(later, peer, Some(40000)).unwrap();
    w.flush();
    let again = w.segs(Dir::AtoB, from).find(|l| is_syn(l)).unwrap().tcp();
    let elapsed = (later - first_at).as_micros() as u32;
    assert_eq!(
        again.seq - t0.seq,
        elapsed / 4,
        "advanced by elapsed µs / 4"
    );
}

// -------------------------------------------------------- TIME-WAIT

/// RFC 9293 §3.10.7.4: "TIME-WAIT STATE: The only thing that can arrive in
/// this state is a retransmission of the remote FIN. Acknowledge it, and
/// restart the 2 MSL timeout."
#[test]
fn time_wait_acks_retransmitted_fin_and_restarts_2msl() {
    let mut w = Link::new();
    let (c, s) = connected(&mut w);
    w.a.shutdown(c, w.now).unwrap();
    w.run_until(100, |w| w.b.state(s) == Ok(State::CloseWait));
    w.b.shutdown(s, w.now).unwrap();
    w.run_until(100, |w| w.a.state(c) == Ok(State::TimeWait));
    w.run_for(Duration::from_millis(1));
    let entered = w.now;
    let fin = w
        .segs(Dir::BtoA, 0)
        .find(|l| l.tcp().flags.fin())
        .expect("B's FIN");
    let fin_bytes = fin.bytes.clone();
    let fin_end = fin.tcp().seq + 1u32;

    w.run_for(Duration::from_secs(30));
    assert_eq!(w.a.state(c), Ok(State::TimeWait));
    let from = w.log.len();
    w.inject_to_a(&fin_bytes);
    let replies: Vec<_> = w.segs(Dir::AtoB, from).map(|l| l.tcp()).collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].flags.ack() && !replies[0].flags.rst());
    assert_eq!(replies[0].ack, fin_end, "the FIN is acknowledged");
    let restarted = w.now;

    // 2·MSL (60 s) after entering TIME-WAIT, the restarted timer still runs...
    w.run_for(entered + Duration::from_secs(61) - w.now);
    assert_eq!(w.a.state(c), Ok(State::TimeWait), "2 MSL not restarted");
    // ...and ends 2·MSL after the retransmitted FIN.
    w.run_for(restarted + Duration::from_secs(61) - w.now);
    assert_eq!(w.a.state(c), Ok(State::Closed));
}

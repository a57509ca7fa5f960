//! Two TCBs joined back to back, for what the stack-level tests cannot
//! reach: ICMP errors and path MTU (RFC 1122 §4.2.3.9, RFC 1191, RFC 5927).

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use ustack_ipv4::icmp::IcmpError;

use super::*;
use crate::buffer::BufferPool;
use crate::cc::CongestionControl;
use crate::wire::TcpPacket;

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);

/// A segment as sent: TCP bytes and the super-frame segment payload (0
/// for an ordinary segment).
struct Sent {
    bytes: Vec<u8>,
    segment_payload: usize,
}

impl Sent {
    /// Size of the IPv4 datagram carrying it.
    fn ip_len(&self) -> usize {
        20 + self.bytes.len()
    }
    fn repr(&self) -> (TcpRepr, &[u8]) {
        let pkt = TcpPacket::new_checked(&self.bytes[..]).expect("valid segment");
        let repr = TcpRepr::parse(&pkt).expect("valid segment");
        let hl = pkt.header_len();
        (repr, &self.bytes[hl..])
    }
    fn payload_len(&self) -> usize {
        self.repr().1.len()
    }
}

fn transmit(tcb: &mut Tcb, now: Instant, max_segs: usize) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..10_000 {
        let room = if max_segs > 1 { 65536 } else { 1480 };
        match tcb.poll_transmit_segmented(now, &mut buf[..room], max_segs) {
            Some((len, segment_payload)) => out.push(Sent {
                bytes: buf[..len].to_vec(),
                segment_payload,
            }),
            None => break,
        }
    }
    out
}

fn deliver(tcb: &mut Tcb, cfg: &TcpConfig, now: Instant, seg: &Sent) {
    let (repr, payload) = seg.repr();
    tcb.prepare_recv(&mut BufferPool::new(usize::MAX), payload.len());
    tcb.handle_segment(cfg, now, &repr, payload);
}

struct Pair {
    cfg: TcpConfig,
    now: Instant,
    a: Tcb,
    b: Tcb,
    /// Bytes B has read.
    received: Vec<u8>,
    /// Every datagram A sent, as (IP length, segment payload).
    a_sent: Vec<(usize, usize)>,
}

impl Pair {
    /// A connects to B; returns once both are established.
    fn connected(mut cfg: TcpConfig) -> Pair {
        // Room for every test's data from the start.
        cfg.send_buffer = 256 << 10;
        cfg.recv_buffer = 256 << 10;
        let now = Instant::from_millis(1_000);
        let mut a = Tcb::connect(&cfg, A, B, SeqNumber(1_000), 7);
        let syn = transmit(&mut a, now, 1).remove(0);
        let b = Tcb::accept_syn(&cfg, B, A, SeqNumber(90_000), 9, &syn.repr().0);
        let mut p = Pair {
            cfg,
            now,
            a,
            b,
            received: Vec::new(),
            a_sent: Vec::new(),
        };
        p.settle(1);
        assert_eq!(p.a.state(), State::Established);
        assert_eq!(p.b.state(), State::Established);
        p
    }

    /// A's segments, each recorded; not delivered.
    fn a_transmit(&mut self, max_segs: usize) -> Vec<Sent> {
        let sent = transmit(&mut self.a, self.now, max_segs);
        self.a_sent
            .extend(sent.iter().map(|s| (s.ip_len(), s.segment_payload)));
        sent
    }

    /// Moves packets both ways (B reading all it gets) and serves timers due
    /// within 50 ms until nothing more happens.
    fn settle(&mut self, max_segs: usize) {
        for _ in 0..100_000 {
            let from_a = self.a_transmit(max_segs);
            let from_b = transmit(&mut self.b, self.now, 1);
            if from_a.is_empty() && from_b.is_empty() {
                let next = [self.a.poll_at(), self.b.poll_at()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= self.now + Duration::from_millis(50) => {
                        self.now = self.now.max(t);
                        self.a.on_timer(&self.cfg, self.now);
                        self.b.on_timer(&self.cfg, self.now);
                        continue;
                    }
                    _ => return,
                }
            }
            self.now += Duration::from_micros(100);
            for s in &from_a {
                deliver(&mut self.b, &self.cfg, self.now, s);
            }
            for s in &from_b {
                deliver(&mut self.a, &self.cfg, self.now, s);
            }
            let mut buf = [0u8; 8192];
            while let Ok(n) = self.b.recv(&mut buf) {
                if n == 0 {
                    break;
                }
                self.received.extend_from_slice(&buf[..n]);
            }
        }
        panic!("the connection never settled");
    }

    /// Serves A's timers until it gives up.
    fn a_until_closed(&mut self) {
        for _ in 0..1_000 {
            if self.a.state() == State::Closed {
                return;
            }
            let at = self.a.poll_at().expect("a timer while not closed");
            self.now = self.now.max(at);
            self.a.on_timer(&self.cfg, self.now);
            self.a_transmit(1);
        }
        panic!("A never gave up");
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn frag_needed(mtu: u16) -> IcmpError {
    IcmpError::FragNeeded { next_hop_mtu: mtu }
}

#[test]
fn errors_about_sequence_numbers_not_in_flight_are_ignored_rfc5927_4_1() {
    let mut p = Pair::connected(TcpConfig::default());
    let (cfg, now) = (p.cfg.clone(), p.now);
    // Nothing in flight: nothing can have caused an error.
    let una = p.a.snd_una;
    assert!(!p.a.on_icmp_error(&cfg, now, frag_needed(1200), una, 1500));
    p.a.send(&pattern(5_000)).unwrap();
    p.a_transmit(1);
    let (una, max) = (p.a.snd_una, p.a.snd_max);
    for seq in [una + u32::MAX, max, max + 1000u32, SeqNumber(12345)] {
        assert!(!p.a.on_icmp_error(&cfg, now, frag_needed(1200), seq, 1500));
        assert!(!p
            .a
            .on_icmp_error(&cfg, now, IcmpError::HostUnreachable, seq, 1500));
    }
    assert_eq!(p.a.path_mtu(), 1500);
    assert_eq!(p.a.soft_error, None);
    // In SYN-SENT only the ISS is in flight.
    let mut c = Tcb::connect(&cfg, A, B, SeqNumber(500), 1);
    let port = IcmpError::PortUnreachable;
    assert!(
        !c.on_icmp_error(&cfg, now, port, SeqNumber(500), 60),
        "SYN not sent yet"
    );
    transmit(&mut c, now, 1);
    assert!(!c.on_icmp_error(&cfg, now, port, SeqNumber(501), 60));
    assert_eq!(c.state(), State::SynSent);
}

/// Sends `len` bytes, loses the first flight to a router with a 1200-byte
/// MTU, and checks that what A sends from then on fits it.
fn frag_needed_shrinks_segments(cfg: TcpConfig, max_segs: usize) {
    let mut p = Pair::connected(cfg);
    let cfg = p.cfg.clone();
    // Grow cwnd past the initial window first.
    let warmup = pattern(100_000);
    p.a.send(&warmup).unwrap();
    p.settle(max_segs);
    assert!(
        p.received == warmup,
        "warmup: {} of {} bytes arrived, A sent {:?}",
        p.received.len(),
        warmup.len(),
        &p.a_sent[..p.a_sent.len().min(20)]
    );
    let (cwnd, ssthresh) = (p.a.cc.cwnd(), p.a.cc.ssthresh());

    // Whole segments only: a short last one would fit the router's MTU
    // and get through, which this router (it drops the whole flight) does
    // not model.
    let data = pattern(41 * p.a.eff_mss());
    p.a.send(&data).unwrap();
    let lost = p.a_transmit(max_segs);
    assert!(lost.iter().any(|s| s.payload_len() > 1200));
    let first = p.a.snd_una;
    assert!(p
        .a
        .on_icmp_error(&cfg, p.now, frag_needed(1200), first, 1500));
    assert_eq!(p.a.path_mtu(), 1200);
    assert_eq!(p.a.cc.cwnd(), cwnd, "no congestion response");
    assert_eq!(p.a.cc.ssthresh(), ssthresh);

    // The retransmissions go out at once, cut to the new size.
    p.a_sent.clear();
    let resent = p.a_transmit(max_segs);
    assert_eq!(resent.first().map(|s| s.repr().0.seq), Some(first));
    for s in &resent {
        deliver(&mut p.b, &cfg, p.now, s);
    }
    p.settle(max_segs);
    assert!(
        p.received[warmup.len()..] == data[..],
        "data did not arrive intact: {} of {} bytes",
        p.received.len() - warmup.len(),
        data.len()
    );
    assert!(!p.a_sent.is_empty());
    for &(ip_len, segment_payload) in &p.a_sent {
        if segment_payload == 0 {
            assert!(
                ip_len <= 1200,
                "a {ip_len}-byte datagram after the PMTU fell"
            );
        } else {
            // A super-frame: the device cuts it at segment_payload.
            let header = 40 + if p.a.ts_ok { 12 } else { 0 };
            assert!(
                header + segment_payload <= 1200,
                "super-frame cut at {segment_payload}"
            );
        }
    }
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.a.error(), None);
}

#[test]
fn frag_needed_lowers_the_mss_and_resends_what_no_longer_fits_rfc1191() {
    frag_needed_shrinks_segments(TcpConfig::default(), 1);
}

#[test]
fn frag_needed_lowers_the_mss_without_sack() {
    let cfg = TcpConfig {
        sack: false,
        ..TcpConfig::default()
    };
    frag_needed_shrinks_segments(cfg, 1);
}

#[test]
fn frag_needed_lowers_the_super_frame_segment_size() {
    frag_needed_shrinks_segments(TcpConfig::default(), 16);
}

#[test]
fn path_mtu_has_a_floor_and_is_never_raised() {
    let mut p = Pair::connected(TcpConfig::default());
    let cfg = p.cfg.clone();
    p.a.send(&pattern(10_000)).unwrap();
    p.a_transmit(1);
    let una = p.a.snd_una;
    assert!(p.a.on_icmp_error(&cfg, p.now, frag_needed(300), una, 1500));
    assert_eq!(p.a.path_mtu(), MIN_PATH_MTU);
    assert!(!p.a.on_icmp_error(&cfg, p.now, frag_needed(552), una, 1500));
    assert!(!p.a.on_icmp_error(&cfg, p.now, frag_needed(1400), una, 1500));
    assert_eq!(p.a.path_mtu(), MIN_PATH_MTU);
    for s in p.a_transmit(1) {
        assert!(s.ip_len() <= MIN_PATH_MTU);
    }
}

#[test]
fn without_a_next_hop_mtu_the_plateau_below_the_datagram_is_used_rfc1191_7() {
    let mut p = Pair::connected(TcpConfig::default());
    let cfg = p.cfg.clone();
    p.a.send(&pattern(10_000)).unwrap();
    p.a_transmit(1);
    let una = p.a.snd_una;
    assert!(p.a.on_icmp_error(&cfg, p.now, frag_needed(0), una, 1500));
    assert_eq!(p.a.path_mtu(), 1492);
    assert!(p.a.on_icmp_error(&cfg, p.now, frag_needed(0), una, 1492));
    assert_eq!(p.a.path_mtu(), 1006);
    // The next plateau, 508, is below the floor.
    assert!(p.a.on_icmp_error(&cfg, p.now, frag_needed(0), una, 1006));
    assert_eq!(p.a.path_mtu(), MIN_PATH_MTU);
}

#[test]
fn port_or_protocol_unreachable_fails_a_connect_at_once() {
    for err in [IcmpError::PortUnreachable, IcmpError::ProtocolUnreachable] {
        let cfg = TcpConfig::default();
        let now = Instant::from_millis(5);
        let mut c = Tcb::connect(&cfg, A, B, SeqNumber(500), 1);
        transmit(&mut c, now, 1);
        c.take_notify();
        assert!(c.on_icmp_error(&cfg, now, err, SeqNumber(500), 64));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.error(), Some(TcpError::ConnectionRefused(B)));
        assert!(c.take_notify(), "the application hears of it");
        assert_eq!(c.poll_at(), None);
    }
}

#[test]
fn host_unreachable_during_connect_is_reported_when_it_gives_up() {
    let cfg = TcpConfig::default();
    let mut now = Instant::from_millis(5);
    let mut c = Tcb::connect(&cfg, A, B, SeqNumber(500), 1);
    transmit(&mut c, now, 1);
    let host = IcmpError::HostUnreachable;
    assert!(c.on_icmp_error(&cfg, now, host, SeqNumber(500), 64));
    assert_eq!(c.state(), State::SynSent);
    assert_eq!(c.error(), None);
    let mut syns = 1;
    while c.state() != State::Closed {
        now = c.poll_at().expect("SYN timer");
        c.on_timer(&cfg, now);
        syns += transmit(&mut c, now, 1).len();
    }
    assert_eq!(syns, 1 + cfg.syn_retries as usize);
    let err = c.error().expect("an error");
    assert_eq!(
        err,
        TcpError::Unreachable {
            cause: host,
            retries: cfg.syn_retries
        }
    );
    assert_eq!(
        err.to_string(),
        "connection timed out: host unreachable (ICMP) after 6 retransmissions"
    );
}

#[test]
fn soft_errors_never_abort_an_established_connection_rfc1122_4_2_3_9() {
    let mut p = Pair::connected(TcpConfig::default());
    let cfg = p.cfg.clone();
    let errors = [
        IcmpError::NetUnreachable,
        IcmpError::HostUnreachable,
        IcmpError::ProtocolUnreachable,
        IcmpError::PortUnreachable,
        IcmpError::SourceRouteFailed,
        IcmpError::TimeExceeded,
        IcmpError::ParameterProblem,
    ];
    let mut expected = Vec::new();
    for err in errors {
        let chunk = pattern(20_000);
        p.a.send(&chunk).unwrap();
        let flight = p.a_transmit(1);
        let una = p.a.snd_una;
        assert!(p.a.on_icmp_error(&cfg, p.now, err, una, 1500));
        assert_eq!(p.a.state(), State::Established, "after {err:?}");
        assert_eq!(p.a.error(), None);
        for s in &flight {
            deliver(&mut p.b, &cfg, p.now, s);
        }
        p.settle(1);
        expected.extend_from_slice(&chunk);
        assert!(
            p.received == expected,
            "data did not arrive intact after {err:?}"
        );
        assert_eq!(p.a.soft_error, None, "forgotten once data is acknowledged");
    }

    // A soft error followed by silence: the timeout names it.
    p.a.send(&pattern(3_000)).unwrap();
    p.a_transmit(1);
    let una = p.a.snd_una;
    assert!(p
        .a
        .on_icmp_error(&cfg, p.now, IcmpError::NetUnreachable, una, 1500));
    p.a_until_closed();
    assert_eq!(
        p.a.error(),
        Some(TcpError::Unreachable {
            cause: IcmpError::NetUnreachable,
            retries: cfg.data_retries
        })
    );
}

#[test]
fn abort_after_a_retransmission_timeout_resets_from_snd_max() {
    let mut p = Pair::connected(TcpConfig::default());
    p.a.send(&pattern(20_000)).expect("send");
    let lost = p.a_transmit(1);
    assert!(!lost.is_empty());
    // A tail loss probe may come first; everything A sends is lost.
    for _ in 0..10 {
        let at = p.a.poll_at().expect("retransmission timer");
        p.now = p.now.max(at);
        p.a.on_timer(&p.cfg, p.now);
        if p.a.snd_nxt != p.a.snd_max {
            break;
        }
        p.a_transmit(1);
    }
    assert!(p.a.snd_nxt != p.a.snd_max, "the timeout rewound SND.NXT");
    let snd_max = p.a.snd_max;
    let rst = p.a.abort().expect("a RST for an established connection");
    assert!(rst.flags.rst());
    assert_eq!(rst.seq, snd_max, "never below what the peer may have");
}

/// A peer's retransmission (a lower SEG.SEQ than the segment the window was
/// last taken from) that acknowledges new data carries its current window:
/// the sender must take it, or SND.UNA plus the old window runs past the
/// peer's right edge (RFC 9293 §3.10.7.4 fifth step, as Linux applies it).
#[test]
fn a_new_ack_on_a_retransmission_updates_the_send_window() {
    let mut p = Pair::connected(TcpConfig::default());
    p.a.send(&pattern(200_000)).expect("queue data");
    let sent = p.a_transmit(1);
    assert!(sent.len() >= 4, "A sent {} segments", sent.len());
    for s in &sent[..2] {
        deliver(&mut p.b, &p.cfg, p.now, s);
    }
    let ack = transmit(&mut p.b, p.now, 1).pop().expect("B acknowledges");
    let (base, _) = ack.repr();
    let scale = p.a.snd_wscale;
    // Newest by sequence: a big window, acknowledging the first segment.
    let mss = sent[0].payload_len() as u32;
    let mut first = base;
    first.seq = base.seq + 1000u32;
    first.ack = SeqNumber(base.ack.0.wrapping_sub(mss));
    first.window = u16::MAX;
    p.a.handle_segment(&p.cfg, p.now, &first, &[]);
    // Then a retransmission from lower in B's stream: a new ACK, a small window.
    let mut second = base;
    second.window = ((4 * mss) >> scale) as u16;
    p.a.handle_segment(&p.cfg, p.now, &second, &[]);
    assert_eq!(p.a.snd_wnd, u32::from(second.window) << scale);
    let right_edge = second.ack + (u32::from(second.window) << scale);
    for s in p.a_transmit(1) {
        let (r, data) = s.repr();
        let end = r.seq + data.len() as u32;
        assert!(
            end.distance(right_edge) <= 0,
            "A sent up to {end:?}, past the window's edge {right_edge:?}"
        );
    }
}

/// A's segments up to its acknowledgment of `data` from B, whose segments
/// announce `window` (unscaled) in place of B's own where it is given.
fn answer_to(p: &mut Pair, data: &[u8], window: Option<u16>) -> Vec<(TcpRepr, usize)> {
    p.b.send(data).expect("B queues data");
    for s in transmit(&mut p.b, p.now, 1) {
        let (mut repr, payload) = s.repr();
        repr.window = window.unwrap_or(repr.window);
        p.a.prepare_recv(&mut BufferPool::new(usize::MAX), payload.len());
        p.a.handle_segment(&p.cfg, p.now, &repr, payload);
    }
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.extend(p.a_transmit(1).iter().map(|s| {
            let (r, d) = s.repr();
            (r, d.len())
        }));
        if sent.iter().any(|(r, _)| r.ack == p.b.snd_max) {
            return sent;
        }
        // The delayed-ACK timer, or a probe's.
        p.now = p.a.poll_at().expect("A owes an ACK");
        p.a.on_timer(&p.cfg, p.now);
    }
    panic!("A never acknowledged B's data: {sent:?}");
}

#[test]
fn segments_stay_inside_a_shrunk_peer_window_rfc9293_3_10_7_4() {
    let mut p = Pair::connected(TcpConfig::default());
    p.a.send(&pattern(200_000)).expect("queue data");
    let sent = p.a_transmit(1);
    assert!(sent.len() >= 4, "A sent {} segments", sent.len());
    let answer = answer_to(&mut p, b"first", None);
    let acks: Vec<_> = answer.iter().filter(|(_, len)| *len == 0).collect();
    assert!(!acks.is_empty(), "A answered with a pure ACK: {answer:?}");
    assert!(acks.iter().all(|(r, _)| r.seq == p.a.snd_max), "{acks:?}");

    // B acknowledges two segments and shrinks its window to one more, so
    // its right edge falls below what A has sent. A Linux peer then drops
    // a segment that starts past the edge, the ACK on it too.
    for s in &sent[..2] {
        deliver(&mut p.b, &p.cfg, p.now, s);
    }
    let (mut shrink, _) = transmit(&mut p.b, p.now, 1)
        .pop()
        .expect("B acknowledges")
        .repr();
    let mss = sent[0].payload_len() as u32;
    shrink.window = (mss >> p.a.snd_wscale) as u16;
    p.a.handle_segment(&p.cfg, p.now, &shrink, &[]);
    let right_edge = shrink.ack + (u32::from(shrink.window) << p.a.snd_wscale);
    assert!(p.a.snd_max.distance(right_edge) > 0, "the window shrank");

    // Two full segments draw an ACK at once (RFC 9293 §3.8.6.3), before
    // a probe could carry it.
    let pure = answer_to(&mut p, &pattern(2 * mss as usize), Some(shrink.window));
    assert!(pure.iter().any(|(_, len)| *len == 0), "{pure:?}");
    // Then a probe, as its timer fires.
    let probe = answer_to(&mut p, b"third", Some(shrink.window));
    assert!(probe.iter().any(|(_, len)| *len > 0), "{probe:?}");
    for (r, len) in pure.iter().chain(&probe) {
        let end = r.seq + *len as u32;
        assert!(
            r.seq.distance(right_edge) <= 0 && (*len == 0 || end.distance(right_edge) <= 0),
            "A sent {:?}+{len} past the edge {right_edge:?} (SND.MAX {:?})",
            r.seq,
            p.a.snd_max
        );
    }
}

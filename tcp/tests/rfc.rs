//! RFC conformance of the engine, checked on the wire: every test drives two
//! stacks over a simulated link and asserts on the segments they exchanged
//! (and on connection states), each against the RFC rule it names.
//!
//! The link here delivers one packet at a time with a 100 µs one-way delay
//! and 1 Gbit/s serialisation, polling the receiver after every packet, so a
//! receiver's per-segment behaviour (duplicate ACKs, immediate ACKs) is
//! visible, and every packet is logged with the time it was sent.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::{inspect, Dir, Seen, A, B};
use common::{Host, HostConfig};
use ustack_tcp::wire::{Flags, SackBlock, TcpOptions, TcpRepr};
use ustack_tcp::{ConnId, Instant, SeqNumber, State, TcpError, XorShiftRng};

const ONE_WAY: Duration = Duration::from_micros(100);
const START: Instant = Instant::from_millis(1_000);

/// One packet as it left a stack.
struct Logged {
    at: Instant,
    seen: Seen,
    dropped: bool,
    bytes: Vec<u8>,
}

impl Logged {
    fn tcp(&self) -> TcpRepr {
        self.seen.tcp.expect("a TCP segment")
    }
    fn len(&self) -> usize {
        self.seen.payload_len
    }
    fn end(&self) -> SeqNumber {
        self.tcp().seq + self.len()
    }
}

type DropHook = Box<dyn FnMut(&Seen) -> bool>;

/// Two stacks on a point-to-point link with delay and serialisation time.
struct Link {
    a: Host,
    b: Host,
    now: Instant,
    ab: VecDeque<(Instant, Vec<u8>)>,
    ba: VecDeque<(Instant, Vec<u8>)>,
    busy_ab: Instant,
    busy_ba: Instant,
    /// Returns true to lose the packet (it is still logged, as dropped).
    drop: DropHook,
    log: Vec<Logged>,
}

impl Link {
    fn new() -> Link {
        Link::with(|_| {}, |_| {})
    }

    fn with(fa: impl FnOnce(&mut HostConfig), fb: impl FnOnce(&mut HostConfig)) -> Link {
        let (mut ca, mut cb) = (common::config(A), common::config(B));
        fa(&mut ca);
        fb(&mut cb);
        Link {
            a: Host::new(ca, Box::new(XorShiftRng::new(1))),
            b: Host::new(cb, Box::new(XorShiftRng::new(2))),
            now: START,
            ab: VecDeque::new(),
            ba: VecDeque::new(),
            busy_ab: START,
            busy_ba: START,
            drop: Box::new(|_| false),
            log: Vec::new(),
        }
    }

    /// Polls both stacks and puts what they send on the wire.
    fn flush(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        self.a.poll(now, &mut |p| out.push((Dir::AtoB, p.to_vec())));
        self.b.poll(now, &mut |p| out.push((Dir::BtoA, p.to_vec())));
        for (dir, p) in out {
            self.put(dir, p);
        }
    }

    fn put(&mut self, dir: Dir, p: Vec<u8>) {
        let seen = inspect(dir, &p);
        let dropped = (self.drop)(&seen);
        if !dropped {
            // 1 Gbit/s: 8 ns per byte, at least 1 µs per packet.
            let ser = Duration::from_micros((p.len() as u64 * 8 / 1000).max(1));
            let (busy, q) = match dir {
                Dir::AtoB => (&mut self.busy_ab, &mut self.ab),
                Dir::BtoA => (&mut self.busy_ba, &mut self.ba),
            };
            *busy = (*busy).max(self.now) + ser;
            q.push_back((*busy + ONE_WAY, p.clone()));
        }
        self.log.push(Logged {
            at: self.now,
            seen,
            dropped,
            bytes: p,
        });
    }

    /// Sends what is due, then advances to the next event: the arrival of one
    /// packet (delivered alone) or a timer. False when nothing is pending.
    fn step(&mut self) -> bool {
        self.flush();
        let next_ab = self.ab.front().map(|x| x.0);
        let next_ba = self.ba.front().map(|x| x.0);
        let timer = [self.a.poll_at(), self.b.poll_at()]
            .into_iter()
            .flatten()
            .min();
        let arrival = [next_ab, next_ba].into_iter().flatten().min();
        match (arrival, timer) {
            (Some(t), tm) if tm.is_none_or(|tm| t <= tm) => {
                self.now = self.now.max(t);
                let dir = if next_ab == Some(t) {
                    Dir::AtoB
                } else {
                    Dir::BtoA
                };
                self.deliver(dir);
                true
            }
            (_, Some(tm)) => {
                self.now = self.now.max(tm);
                true
            }
            _ => false,
        }
    }

    fn deliver(&mut self, dir: Dir) {
        let now = self.now;
        let mut replies = Vec::new();
        match dir {
            Dir::AtoB => {
                let (_, p) = self.ab.pop_front().unwrap();
                self.b
                    .handle_packet(now, &p, &mut |r| replies.push(r.to_vec()));
                for r in replies {
                    self.put(Dir::BtoA, r);
                }
            }
            Dir::BtoA => {
                let (_, p) = self.ba.pop_front().unwrap();
                self.a
                    .handle_packet(now, &p, &mut |r| replies.push(r.to_vec()));
                for r in replies {
                    self.put(Dir::AtoB, r);
                }
            }
        }
    }

    /// Hands a forged packet to `b` as if it came from `a`, and sends B's output.
    fn inject_to_b(&mut self, pkt: &[u8]) {
        let mut replies = Vec::new();
        self.b
            .handle_packet(self.now, pkt, &mut |r| replies.push(r.to_vec()));
        for r in replies {
            self.put(Dir::BtoA, r);
        }
        self.flush();
    }

    fn inject_to_a(&mut self, pkt: &[u8]) {
        let mut replies = Vec::new();
        self.a
            .handle_packet(self.now, pkt, &mut |r| replies.push(r.to_vec()));
        for r in replies {
            self.put(Dir::AtoB, r);
        }
        self.flush();
    }

    fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&mut Link) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() && !done(self) {
                panic!(
                    "link went idle before the condition held (t={:?})",
                    self.now
                );
            }
        }
        assert!(
            done(self),
            "condition not reached in {max_steps} steps (t={:?})",
            self.now
        );
    }

    /// Runs everything that happens during the next `d`.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let (mut last, mut same) = (self.now, 0);
        while self.now < end {
            // A timer that stays due without anything happening is a livelock.
            same = if self.now == last { same + 1 } else { 0 };
            last = self.now;
            assert!(
                same < 100_000,
                "no progress at t={:?}: a timer keeps firing (A due {:?}, B due {:?})",
                self.now,
                self.a.poll_at(),
                self.b.poll_at()
            );
            self.flush();
            let next = [
                self.ab.front().map(|x| x.0),
                self.ba.front().map(|x| x.0),
                self.a.poll_at(),
                self.b.poll_at(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => self.now = end,
            }
        }
        self.flush();
    }

    /// Logged TCP segments in one direction, from log index `from`.
    fn segs(&self, dir: Dir, from: usize) -> impl DoubleEndedIterator<Item = &Logged> {
        self.log[from..]
            .iter()
            .filter(move |l| l.seen.dir == dir && l.seen.tcp.is_some())
    }
}

/// Connects A:40000 (client) to B:80 (server): (client, server) handles.
fn connected(w: &mut Link) -> (ConnId, ConnId) {
    let l = w.b.listen(80, 16).expect("listen");
    let c =
        w.a.connect(w.now, common::Net::addr_b(80), Some(40000))
            .expect("connect");
    let mut s = None;
    w.run_until(100, |w| {
        if s.is_none() {
            s = w.b.accept(l);
        }
        s.is_some() && w.a.state(c) == Ok(State::Established)
    });
    w.flush();
    (c, s.unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `data` from A to B while B reads; returns what B received.
fn transfer(w: &mut Link, c: ConnId, s: ConnId, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    w.run_until(1_000_000, |w| {
        if sent < data.len() {
            sent += w.a.send(c, &data[sent..]).unwrap_or(0);
        }
        while let Ok(k) = w.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    got
}

/// The largest amount of A's data ever outstanding, from the log: highest
/// sequence number A sent minus the highest B acknowledged at that moment.
fn max_in_flight(w: &Link, from: usize) -> usize {
    let (mut high, mut acked): (Option<SeqNumber>, Option<SeqNumber>) = (None, None);
    let mut max = 0;
    for l in &w.log[from..] {
        let Some(t) = l.seen.tcp else { continue };
        match l.seen.dir {
            Dir::AtoB if l.len() > 0 => {
                let end = t.seq + l.len();
                high = Some(high.map_or(end, |h| h.max(end)));
            }
            Dir::BtoA if t.flags.ack() => acked = Some(acked.map_or(t.ack, |a| a.max(t.ack))),
            _ => {}
        }
        if let (Some(h), Some(a)) = (high, acked) {
            max = max.max(h.distance(a).max(0) as usize);
        }
    }
    max
}

fn forge(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    repr: &TcpRepr,
    payload: &[u8],
) -> Vec<u8> {
    common::forge(src, dst, repr, payload)
}

/// Runs `f` on its own thread and fails if it has not finished within
/// `limit` of real time: an engine that never returns from `Stack::poll`
/// must fail the test rather than hang the suite. (A thread stuck that way
/// spins until the test binary exits.)
fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("no result after {limit:?}: livelock (Stack::poll never returns?)")
        }
    }
}

fn is_syn(l: &Logged) -> bool {
    l.seen.tcp.is_some_and(|t| t.flags.syn())
}

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
/// for at least every second full-sized segment".
#[test]
fn delayed_ack_for_one_segment_and_immediate_ack_for_two() {
    let mut w = Link::new();
    let (c, _s) = connected(&mut w);
    w.run_for(Duration::from_millis(10));

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
    w.run_for(Duration::from_millis(1));
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
    let peer = common::Net::addr_b(81);
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

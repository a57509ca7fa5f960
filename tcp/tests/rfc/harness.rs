//! The simulated link the RFC tests run on, and their helpers.

use std::collections::VecDeque;
use std::time::Duration;

use super::common::{inspect, Dir, Seen, A, B};
use super::common::{Host, HostConfig};
use ustack_tcp::wire::TcpRepr;
use ustack_tcp::{ConnId, Instant, SeqNumber, State, XorShiftRng};

pub(crate) const ONE_WAY: Duration = Duration::from_micros(100);
pub(crate) const START: Instant = Instant::from_millis(1_000);

/// One packet as it left a stack.
pub(crate) struct Logged {
    pub(crate) at: Instant,
    pub(crate) seen: Seen,
    pub(crate) dropped: bool,
    pub(crate) bytes: Vec<u8>,
}

impl Logged {
    pub(crate) fn tcp(&self) -> TcpRepr {
        self.seen.tcp.expect("a TCP segment")
    }
    pub(crate) fn len(&self) -> usize {
        self.seen.payload_len
    }
    pub(crate) fn end(&self) -> SeqNumber {
        self.tcp().seq + self.len()
    }
}

pub(crate) type DropHook = Box<dyn FnMut(&Seen) -> bool>;

/// Two stacks on a point-to-point link with delay and serialisation time.
pub(crate) struct Link {
    pub(crate) a: Host,
    pub(crate) b: Host,
    pub(crate) now: Instant,
    pub(crate) ab: VecDeque<(Instant, Vec<u8>)>,
    pub(crate) ba: VecDeque<(Instant, Vec<u8>)>,
    pub(crate) busy_ab: Instant,
    pub(crate) busy_ba: Instant,
    /// Returns true to lose the packet (it is still logged, as dropped).
    pub(crate) drop: DropHook,
    pub(crate) log: Vec<Logged>,
}

impl Link {
    pub(crate) fn new() -> Link {
        Link::with(|_| {}, |_| {})
    }

    pub(crate) fn with(fa: impl FnOnce(&mut HostConfig), fb: impl FnOnce(&mut HostConfig)) -> Link {
        let (mut ca, mut cb) = (super::common::config(A), super::common::config(B));
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
    pub(crate) fn flush(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        self.a.poll(now, &mut |p| out.push((Dir::AtoB, p.to_vec())));
        self.b.poll(now, &mut |p| out.push((Dir::BtoA, p.to_vec())));
        for (dir, p) in out {
            self.put(dir, p);
        }
    }

    pub(crate) fn put(&mut self, dir: Dir, p: Vec<u8>) {
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
    pub(crate) fn step(&mut self) -> bool {
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

    pub(crate) fn deliver(&mut self, dir: Dir) {
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
    pub(crate) fn inject_to_b(&mut self, pkt: &[u8]) {
        let mut replies = Vec::new();
        self.b
            .handle_packet(self.now, pkt, &mut |r| replies.push(r.to_vec()));
        for r in replies {
            self.put(Dir::BtoA, r);
        }
        self.flush();
    }

    pub(crate) fn inject_to_a(&mut self, pkt: &[u8]) {
        let mut replies = Vec::new();
        self.a
            .handle_packet(self.now, pkt, &mut |r| replies.push(r.to_vec()));
        for r in replies {
            self.put(Dir::AtoB, r);
        }
        self.flush();
    }

    pub(crate) fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&mut Link) -> bool) {
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
    pub(crate) fn run_for(&mut self, d: Duration) {
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
    pub(crate) fn segs(&self, dir: Dir, from: usize) -> impl DoubleEndedIterator<Item = &Logged> {
        self.log[from..]
            .iter()
            .filter(move |l| l.seen.dir == dir && l.seen.tcp.is_some())
    }
}

/// Connects A:40000 (client) to B:80 (server): (client, server) handles.
pub(crate) fn connected(w: &mut Link) -> (ConnId, ConnId) {
    let l = w.b.listen(80, 16).expect("listen");
    let c =
        w.a.connect(w.now, super::common::Net::addr_b(80), Some(40000))
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

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `data` from A to B while B reads; returns what B received.
pub(crate) fn transfer(w: &mut Link, c: ConnId, s: ConnId, data: &[u8]) -> Vec<u8> {
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
pub(crate) fn max_in_flight(w: &Link, from: usize) -> usize {
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

pub(crate) fn forge(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    repr: &TcpRepr,
    payload: &[u8],
) -> Vec<u8> {
    super::common::forge(src, dst, repr, payload)
}

/// Runs `f` on its own thread and fails if it has not finished within
/// `limit` of real time: an engine that never returns from `Stack::poll`
/// must fail the test rather than hang the suite. (A thread stuck that way
/// spins until the test binary exits.)
pub(crate) fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
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

pub(crate) fn is_syn(l: &Logged) -> bool {
    l.seen.tcp.is_some_and(|t| t.flags.syn())
}

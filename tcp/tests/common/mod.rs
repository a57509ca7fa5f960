//! A deterministic two-host network for engine tests: two `Stack`s, packet
//! queues between them, a virtual clock and a hook that may drop packets.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ustack_tcp::wire::{TcpPacket, TcpRepr};
use ustack_tcp::{Instant, Stack, StackConfig, XorShiftRng};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    AtoB,
    BtoA,
}

/// A parsed view of a packet on the wire, for hooks and assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub dir: Dir,
    pub tcp: Option<TcpRepr>,
    pub payload_len: usize,
}

pub fn inspect(dir: Dir, pkt: &[u8]) -> Seen {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let tcp = TcpPacket::new_checked(&pkt[ihl..]).ok();
    let repr = tcp.as_ref().and_then(|p| TcpRepr::parse(p).ok());
    Seen {
        dir,
        tcp: repr,
        payload_len: tcp.map_or(0, |p| p.payload().len()),
    }
}

type Hook = Box<dyn FnMut(&Seen, u64) -> bool>;

pub struct Net {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    a_to_b: VecDeque<Vec<u8>>,
    b_to_a: VecDeque<Vec<u8>>,
    /// Returns true to drop the packet; gets the packet and a running count.
    pub drop: Hook,
    pub log: Vec<Seen>,
    count: u64,
    /// One-way delay applied by advancing the clock when only packets are in flight.
    pub step_time: Duration,
}

pub fn config(addr: Ipv4Addr) -> StackConfig {
    StackConfig::new(addr, 1500)
}

impl Net {
    pub fn new() -> Net {
        Net::with_configs(config(A), config(B))
    }

    pub fn with_configs(ca: StackConfig, cb: StackConfig) -> Net {
        Net {
            a: Stack::new(ca, Box::new(XorShiftRng::new(1))),
            b: Stack::new(cb, Box::new(XorShiftRng::new(2))),
            now: Instant::from_millis(1_000),
            a_to_b: VecDeque::new(),
            b_to_a: VecDeque::new(),
            drop: Box::new(|_, _| false),
            log: Vec::new(),
            count: 0,
            step_time: Duration::from_micros(100),
        }
    }

    pub fn addr_b(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(B, port)
    }
    pub fn addr_a(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(A, port)
    }

    /// Polls both stacks and delivers everything in flight once; when nothing is
    /// in flight, jumps the clock to the next timer. Returns false when idle
    /// (no packets and no timers).
    pub fn step(&mut self) -> bool {
        self.flush();
        let in_flight = !self.a_to_b.is_empty() || !self.b_to_a.is_empty();
        if in_flight {
            self.now += self.step_time;
            let ab: Vec<_> = self.a_to_b.drain(..).collect();
            let ba: Vec<_> = self.b_to_a.drain(..).collect();
            for p in ab {
                let (q, now) = (&mut self.b_to_a, self.now);
                self.b
                    .handle_packet(now, &p, &mut |r| q.push_back(r.to_vec()));
            }
            for p in ba {
                let (q, now) = (&mut self.a_to_b, self.now);
                self.a
                    .handle_packet(now, &p, &mut |r| q.push_back(r.to_vec()));
            }
            self.flush();
            return true;
        }
        let next = [self.a.poll_at(), self.b.poll_at()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) => {
                self.now = self.now.max(t);
                true
            }
            None => false,
        }
    }

    fn flush(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        self.a.poll(now, &mut |p| out.push((Dir::AtoB, p.to_vec())));
        self.b.poll(now, &mut |p| out.push((Dir::BtoA, p.to_vec())));
        for (dir, p) in out {
            self.count += 1;
            let seen = inspect(dir, &p);
            let dropped = (self.drop)(&seen, self.count);
            self.log.push(seen);
            if dropped {
                continue;
            }
            match dir {
                Dir::AtoB => self.a_to_b.push_back(p),
                Dir::BtoA => self.b_to_a.push_back(p),
            }
        }
    }

    /// Steps until `done` holds; panics after `max_steps` or when idle.
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&mut Net) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() && !done(self) {
                panic!(
                    "network went idle before the condition held (t={:?})",
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

    /// Advances virtual time by `d`, running everything that happens meanwhile.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..1_000_000 {
            if self.now >= end {
                return;
            }
            self.flush();
            if !self.a_to_b.is_empty() || !self.b_to_a.is_empty() {
                self.step();
                continue;
            }
            let next = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            self.now = match next {
                Some(t) if t < end => self.now.max(t),
                _ => end,
            };
        }
    }
}

/// Builds an IPv4 packet carrying `repr` and `payload`, checksums filled.
pub fn forge(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    repr: &ustack_tcp::wire::TcpRepr,
    payload: &[u8],
) -> Vec<u8> {
    let hl = repr.header_len();
    let tcp_len = hl + payload.len();
    let mut buf = vec![0u8; 20 + tcp_len];
    {
        let mut t = ustack_tcp::wire::TcpPacket::new_unchecked(&mut buf[20..]);
        repr.emit(&mut t);
        t.payload_mut()[..payload.len()].copy_from_slice(payload);
        t.fill_checksum(src, dst);
    }
    let ip = ustack_ipv4::Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 6,
        payload_len: tcp_len,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    };
    ip.emit(&mut ustack_ipv4::Ipv4Packet::new_unchecked(&mut buf[..]));
    buf
}

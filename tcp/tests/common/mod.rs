//! A deterministic two-host network for engine tests: two `Host`s (IP layer and TCP), packet
//! queues between them, a virtual clock and a hook that may drop packets.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ustack_tcp::wire::{TcpPacket, TcpRepr};
use ustack_tcp::{ConnId, Instant, State, XorShiftRng};

#[path = "../support/host.rs"]
mod host;
pub use host::{Host, HostConfig};

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

/// What A's link does with TCP segmentation offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// A polls without offload: every packet is one wire segment.
    Off,
    /// A sends super-frames; the wire cuts them into segments (TSO/GSO),
    /// each of which the drop hook sees on its own.
    Segment,
    /// A sends super-frames and B receives them whole with their partial
    /// checksums trusted (GRO on B's side).
    Coalesce,
}

/// Cuts a super-frame into wire segments of `seg` payload bytes as Linux
/// GSO does: headers copied, IDs and sequence numbers advanced, FIN and PSH
/// on the last segment only, checksums finished. Panics unless the frame's
/// partial checksum, finished over the whole frame, is its true checksum.
pub fn gso_segment(frame: &[u8], seg: usize) -> Vec<Vec<u8>> {
    use ustack_ipv4::{checksum, Ipv4Packet, Ipv4Repr};
    let ip = Ipv4Packet::new_checked(frame).expect("super-frame IPv4 header");
    let ip_repr = Ipv4Repr::parse(&ip).expect("super-frame IPv4 header");
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let tcp = &frame[ihl..];
    let finished = !checksum::fold(checksum::sum(tcp, 0));
    let mut copy = tcp.to_vec();
    let mut t = TcpPacket::new_unchecked(&mut copy[..]);
    t.fill_checksum(ip_repr.src_addr, ip_repr.dst_addr);
    assert_eq!(
        finished.to_be_bytes(),
        [copy[16], copy[17]],
        "partial checksum does not finish to the true one"
    );
    let thl = usize::from(tcp[12] >> 4) * 4;
    let payload = &tcp[thl..];
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let chunks: Vec<&[u8]> = payload.chunks(seg).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut out = vec![0u8; 20 + thl + chunk.len()];
            out[20..20 + thl].copy_from_slice(&tcp[..thl]);
            out[20 + thl..].copy_from_slice(chunk);
            let s = seq.wrapping_add((i * seg) as u32);
            out[24..28].copy_from_slice(&s.to_be_bytes());
            if i != last {
                out[20 + 13] &= !0x09; // FIN and PSH
            }
            let mut t = TcpPacket::new_unchecked(&mut out[20..]);
            t.fill_checksum(ip_repr.src_addr, ip_repr.dst_addr);
            let repr = Ipv4Repr {
                payload_len: thl + chunk.len(),
                ident: ip_repr.ident.wrapping_add(i as u16),
                ..ip_repr
            };
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
            out
        })
        .collect()
}

pub struct Net {
    pub a: Host,
    pub b: Host,
    pub now: Instant,
    /// Packets in flight, each with whether its checksum is to be trusted.
    a_to_b: VecDeque<(Vec<u8>, bool)>,
    b_to_a: VecDeque<(Vec<u8>, bool)>,
    pub a_offload: Offload,
    /// Super-frames A handed its link (counted before any cutting).
    pub a_super_frames: u64,
    /// Returns true to drop the packet; gets the packet and a running count.
    pub drop: Hook,
    pub log: Vec<Seen>,
    count: u64,
    /// One-way delay applied by advancing the clock when only packets are in flight.
    pub step_time: Duration,
}

pub fn config(addr: Ipv4Addr) -> HostConfig {
    HostConfig::new(addr, 1500)
}

impl Net {
    pub fn new() -> Net {
        Net::with_configs(config(A), config(B))
    }

    pub fn with_configs(ca: HostConfig, cb: HostConfig) -> Net {
        Net {
            a: Host::new(ca, Box::new(XorShiftRng::new(1))),
            b: Host::new(cb, Box::new(XorShiftRng::new(2))),
            now: Instant::from_millis(1_000),
            a_to_b: VecDeque::new(),
            b_to_a: VecDeque::new(),
            drop: Box::new(|_, _| false),
            a_offload: Offload::Off,
            a_super_frames: 0,
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
            // What a stack sends while it handles a packet goes on the wire
            // (and in the log) like what it sends when polled.
            let mut replies = Vec::new();
            let now = self.now;
            for (p, trusted) in ab {
                let tx = &mut |r: &[u8]| replies.push((Dir::BtoA, r.to_vec(), false));
                if trusted {
                    self.b.handle_packet_trusted(now, &p, tx);
                } else {
                    self.b.handle_packet(now, &p, tx);
                }
            }
            for (p, _) in ba {
                self.a.handle_packet(now, &p, &mut |r| {
                    replies.push((Dir::AtoB, r.to_vec(), false))
                });
            }
            self.put_on_wire(replies);
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
        let offload = self.a_offload;
        let mut supers = 0;
        if offload == Offload::Off {
            self.a
                .poll(now, &mut |p| out.push((Dir::AtoB, p.to_vec(), false)));
        } else {
            self.a.poll_segmented(now, &mut |p, seg| {
                if seg == 0 {
                    out.push((Dir::AtoB, p.to_vec(), false));
                    return;
                }
                supers += 1;
                match offload {
                    Offload::Coalesce => out.push((Dir::AtoB, p.to_vec(), true)),
                    _ => out.extend(
                        gso_segment(p, usize::from(seg))
                            .into_iter()
                            .map(|s| (Dir::AtoB, s, false)),
                    ),
                }
            });
        }
        self.a_super_frames += supers;
        self.b
            .poll(now, &mut |p| out.push((Dir::BtoA, p.to_vec(), false)));
        self.put_on_wire(out);
    }

    /// Logs each packet, lets the drop hook judge it, and queues the rest.
    fn put_on_wire(&mut self, out: Vec<(Dir, Vec<u8>, bool)>) {
        for (dir, p, trusted) in out {
            self.count += 1;
            let seen = inspect(dir, &p);
            let dropped = (self.drop)(&seen, self.count);
            self.log.push(seen);
            if dropped {
                continue;
            }
            match dir {
                Dir::AtoB => self.a_to_b.push_back((p, trusted)),
                Dir::BtoA => self.b_to_a.push_back((p, trusted)),
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
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    ip.emit(&mut ustack_ipv4::Ipv4Packet::new_unchecked(&mut buf[..]));
    buf
}

/// Connects A (client, port 40000) to a listener on B:80 and returns the
/// (client, server) handles once both are established.
pub fn connected(net: &mut Net) -> (ConnId, ConnId) {
    let l = net.b.listen(80, 16).expect("listen");
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40000))
        .expect("connect");
    let mut s = None;
    net.run_until(100, |n| {
        if s.is_none() {
            s = n.b.accept(l);
        }
        s.is_some() && n.a.state(c) == Ok(State::Established)
    });
    (c, s.expect("accepted"))
}

//! A whole host (`IpStack<Tcp>`, B) with a listener on port 80 and one or
//! more connections from a peer host (A) established by a real handshake,
//! then a sequence of operations: arbitrary packets, mutated and replayed
//! live segments, forged segments relative to a live connection, fragments,
//! ICMP errors quoting what B sent, the two hosts exchanging packets, time
//! advancing by arbitrary amounts, and application reads, writes, shutdowns,
//! closes, aborts, accepts and connects. After every step: no panic, both
//! hosts' `Tcp::check_invariants` (sequence space, rings, table), the
//! connection count within `max_connections`, reassembly memory within its
//! budget, and every connection's queues within the configured buffers.
//!
//! SYN cookies do not exist in ustack yet, so there is no cookie path here:
//! SYNs beyond the backlog or `max_connections` are dropped.
#![no_main]

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_fuzz::{deliver, fix_checksums, host, poll, A, B};
use ustack_ipv4::{IpStack, Ipv4Packet};
use ustack_tcp::{ConnId, Instant, ListenerId, Tcp, TcpConfig};

/// Captured packets kept per direction for mutation and replay.
const HISTORY: usize = 32;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    preset: u8,
    conns: u8,
    ops: Vec<Op<'a>>,
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    /// Arbitrary bytes to B; `addressed` writes A→B addresses, `fix` the checksums.
    Raw {
        bytes: &'a [u8],
        addressed: bool,
        fix: bool,
    },
    /// A TCP segment on a live connection, seq and ack offset from the last
    /// ones A sent on it, with raw options and a payload.
    Forge {
        conn: u8,
        flags: u8,
        seq_off: i16,
        ack_off: i16,
        window: u16,
        options: &'a [u8],
        payload: u16,
        fix: bool,
    },
    /// A captured A→B packet with bytes changed.
    Mutate {
        index: u8,
        edits: Vec<(u8, u8)>,
        fix: bool,
    },
    /// A captured A→B packet again, unchanged.
    Replay {
        index: u8,
    },
    /// A captured A→B packet cut into fragments of `unit` × 8 bytes, the
    /// ones selected by `mask` delivered, in order or reversed.
    Fragment {
        index: u8,
        unit: u8,
        mask: u32,
        reverse: bool,
    },
    /// An ICMP error to B quoting a packet B sent.
    Icmp {
        index: u8,
        msg_type: u8,
        code: u8,
        rest: u32,
        quote: u8,
    },
    /// Both hosts poll and deliver what is in flight, `rounds` times.
    Exchange {
        rounds: u8,
    },
    /// Lose what is in flight towards B or towards A.
    Lose {
        to_b: bool,
    },
    /// The clock moves on by `micros << shift`; both hosts poll.
    Advance {
        micros: u32,
        shift: u8,
    },
    Send {
        conn: u8,
        server: bool,
        len: u16,
    },
    Recv {
        conn: u8,
        server: bool,
        len: u16,
    },
    Shutdown {
        conn: u8,
        server: bool,
    },
    Close {
        conn: u8,
        server: bool,
    },
    Abort {
        conn: u8,
        server: bool,
    },
    Accept,
    Connect {
        port: u16,
    },
}

struct World {
    a: IpStack<Tcp>,
    b: IpStack<Tcp>,
    now: Instant,
    to_a: Vec<Vec<u8>>,
    to_b: Vec<Vec<u8>>,
    seen_a: VecDeque<Vec<u8>>,
    seen_b: VecDeque<Vec<u8>>,
    /// Client handles (on A) and server handles (on B).
    clients: Vec<ConnId>,
    servers: Vec<ConnId>,
    listener: ListenerId,
    tcp: TcpConfig,
    max_connections: usize,
    out: Vec<Vec<u8>>,
}

fn remember(seen: &mut VecDeque<Vec<u8>>, p: &[u8]) {
    if seen.len() == HISTORY {
        seen.pop_front();
    }
    seen.push_back(p.to_vec());
}

impl World {
    fn new(preset: u8) -> World {
        // Small rings: they fill up (zero windows, blocked sends) and cost
        // little to allocate per input.
        let buffer = [2048, 4096, 16384][usize::from(preset % 3)];
        let small_mtu = preset & 0x04 != 0;
        let mtu = if small_mtu { 576 } else { 1500 };
        let tcp = TcpConfig {
            mss: (mtu - 40) as u16,
            send_buffer: buffer,
            send_buffer_max: buffer * 4,
            recv_buffer: buffer,
            recv_buffer_max: buffer * 4,
            timestamps: preset & 0x08 == 0,
            sack: preset & 0x10 == 0,
            window_scaling: preset & 0x20 == 0,
            nodelay: preset & 0x40 != 0,
            keepalive: (preset & 0x80 != 0).then_some(Duration::from_secs(10)),
            ..TcpConfig::default()
        };
        let max_connections = 4 + usize::from(preset >> 5 & 3);
        let a = host(A, mtu, 16, tcp.clone(), 1);
        let mut b = host(B, mtu, max_connections, tcp.clone(), 2);
        let listener = b.listen(80, 4).expect("listen");
        World {
            a,
            b,
            now: Instant::from_millis(1_000),
            to_a: Vec::new(),
            to_b: Vec::new(),
            seen_a: VecDeque::new(),
            seen_b: VecDeque::new(),
            clients: Vec::new(),
            servers: Vec::new(),
            listener,
            tcp,
            max_connections,
            out: Vec::new(),
        }
    }

    /// One packet to B; what B sends at once goes in flight towards A.
    fn deliver_to_b(&mut self, pkt: &[u8]) {
        self.out.clear();
        deliver(&mut self.b, self.now, pkt, &mut self.out);
        for p in self.out.drain(..) {
            remember(&mut self.seen_b, &p);
            self.to_a.push(p);
        }
    }

    fn poll_both(&mut self) {
        self.out.clear();
        poll(&mut self.a, self.now, &mut self.out);
        for p in self.out.drain(..) {
            remember(&mut self.seen_a, &p);
            self.to_b.push(p);
        }
        poll(&mut self.b, self.now, &mut self.out);
        for p in self.out.drain(..) {
            remember(&mut self.seen_b, &p);
            self.to_a.push(p);
        }
    }

    fn exchange(&mut self) {
        self.poll_both();
        self.now += Duration::from_micros(100);
        for p in std::mem::take(&mut self.to_b) {
            self.deliver_to_b(&p);
        }
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.to_a) {
            deliver(&mut self.a, self.now, &p, &mut out);
        }
        for p in out {
            remember(&mut self.seen_a, &p);
            self.to_b.push(p);
        }
        self.accept();
    }

    fn accept(&mut self) {
        while let Some(c) = self.b.accept(self.listener) {
            self.servers.push(c);
        }
    }

    fn conn(&self, i: u8, server: bool) -> Option<(bool, ConnId)> {
        let list = if server { &self.servers } else { &self.clients };
        if list.is_empty() {
            return None;
        }
        Some((server, list[usize::from(i) % list.len()]))
    }

    fn stack(&mut self, server: bool) -> &mut IpStack<Tcp> {
        if server {
            &mut self.b
        } else {
            &mut self.a
        }
    }

    fn captured(&self, index: u8) -> Option<Vec<u8>> {
        let n = self.seen_a.len();
        (n > 0).then(|| self.seen_a[usize::from(index) % n].clone())
    }

    fn check(&self) {
        for (name, h) in [("B", &self.b), ("A", &self.a)] {
            if let Err(e) = h.check_invariants() {
                panic!("host {name}: {e}");
            }
            let frag = h.reassembly();
            assert!(
                frag.memory() <= frag.config().budget,
                "host {name} reassembly over budget"
            );
        }
        assert!(self.b.connection_count() <= self.max_connections);
        for (h, ids) in [(&self.b, &self.servers), (&self.a, &self.clients)] {
            for &id in ids {
                if let Ok(n) = h.send_queue_len(id) {
                    assert!(n <= self.tcp.send_buffer_max, "send queue {n}");
                }
                if let Ok(n) = h.recv_queue_len(id) {
                    assert!(n <= self.tcp.recv_buffer_max, "receive queue {n}");
                }
                let _ = (h.state(id), h.error(id), h.at_eof(id), h.send_space(id));
            }
        }
    }
}

/// An IPv4 header from A to B in front of `l4`, with `protocol`.
fn ip_packet(protocol: u8, ident: u16, frag: (bool, u16), l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    let repr = ustack_ipv4::Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol,
        payload_len: l4.len(),
        ttl: 64,
        ident,
        dont_frag: false,
        more_frags: frag.0,
        frag_offset: frag.1,
        dscp_ecn: 0,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(l4);
    p
}

fn run(w: &mut World, op: Op<'_>) {
    match op {
        Op::Raw {
            bytes,
            addressed,
            fix,
        } => {
            let mut bytes = bytes.to_vec();
            if addressed && bytes.len() >= 20 {
                bytes[12..16].copy_from_slice(&A.octets());
                bytes[16..20].copy_from_slice(&B.octets());
            }
            if fix {
                fix_checksums(&mut bytes);
            }
            w.deliver_to_b(&bytes);
        }
        Op::Forge {
            conn,
            flags,
            seq_off,
            ack_off,
            window,
            options,
            payload,
            fix,
        } => {
            let Some((_, id)) = w.conn(conn, false) else {
                return;
            };
            let Ok(local) = w.a.local_addr(id) else {
                return;
            };
            // The last segment A sent on this connection gives seq and ack.
            let last = w.seen_a.iter().rev().find(|p| {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                p.len() >= ihl + 20 && p[ihl..ihl + 2] == local.port().to_be_bytes()
            });
            let Some(last) = last else { return };
            let ihl = usize::from(last[0] & 0x0f) * 4;
            let t = &last[ihl..];
            let seq =
                u32::from_be_bytes([t[4], t[5], t[6], t[7]]).wrapping_add(seq_off as i32 as u32);
            let ack =
                u32::from_be_bytes([t[8], t[9], t[10], t[11]]).wrapping_add(ack_off as i32 as u32);
            let opts = &options[..options.len().min(40)];
            let hl = 20 + opts.len().div_ceil(4) * 4;
            let mut seg = vec![0u8; hl + usize::from(payload % 3000)];
            seg[0..4].copy_from_slice(&t[0..4]);
            seg[4..8].copy_from_slice(&seq.to_be_bytes());
            seg[8..12].copy_from_slice(&ack.to_be_bytes());
            seg[12] = ((hl / 4) as u8) << 4;
            seg[13] = flags;
            seg[14..16].copy_from_slice(&window.to_be_bytes());
            seg[20..20 + opts.len()].copy_from_slice(opts);
            for (i, b) in seg[hl..].iter_mut().enumerate() {
                *b = i as u8;
            }
            let mut p = ip_packet(6, 7, (false, 0), &seg);
            if fix {
                fix_checksums(&mut p);
            }
            w.deliver_to_b(&p);
        }
        Op::Mutate { index, edits, fix } => {
            let Some(mut p) = w.captured(index) else {
                return;
            };
            for (at, x) in edits {
                let at = usize::from(at) % p.len();
                p[at] ^= x;
            }
            if fix {
                fix_checksums(&mut p);
            }
            w.deliver_to_b(&p);
        }
        Op::Replay { index } => {
            if let Some(p) = w.captured(index) {
                w.deliver_to_b(&p);
            }
        }
        Op::Fragment {
            index,
            unit,
            mask,
            reverse,
        } => {
            let Some(p) = w.captured(index) else { return };
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let payload = &p[ihl..];
            let unit = usize::from(unit % 32 + 1) * 8;
            let ident = u16::from_be_bytes([p[4], p[5]]) ^ 0x5a5a;
            let mut frags: Vec<Vec<u8>> = payload
                .chunks(unit)
                .enumerate()
                .filter(|(i, _)| *i >= 32 || mask & (1 << i) == 0)
                .map(|(i, c)| {
                    let more = (i + 1) * unit < payload.len();
                    ip_packet(p[9], ident, (more, (i * unit) as u16), c)
                })
                .collect();
            if reverse {
                frags.reverse();
            }
            for f in frags {
                w.deliver_to_b(&f);
            }
        }
        Op::Icmp {
            index,
            msg_type,
            code,
            rest,
            quote,
        } => {
            let n = w.seen_b.len();
            if n == 0 {
                return;
            }
            let sent = &w.seen_b[usize::from(index) % n];
            let q = &sent[..sent.len().min(20 + usize::from(quote % 64))];
            let mut icmp = vec![msg_type % 16, code % 16, 0, 0];
            icmp.extend_from_slice(&rest.to_be_bytes());
            icmp.extend_from_slice(q);
            let mut p = ip_packet(1, 9, (false, 0), &icmp);
            fix_checksums(&mut p);
            w.deliver_to_b(&p);
        }
        Op::Exchange { rounds } => {
            for _ in 0..rounds % 8 + 1 {
                w.exchange();
            }
        }
        Op::Lose { to_b } => {
            if to_b {
                w.to_b.clear();
            } else {
                w.to_a.clear();
            }
        }
        Op::Advance { micros, shift } => {
            w.now += Duration::from_micros(u64::from(micros) << (shift % 12));
            w.poll_both();
        }
        Op::Send { conn, server, len } => {
            let Some((s, id)) = w.conn(conn, server) else {
                return;
            };
            let data = vec![0xabu8; usize::from(len)];
            let _ = w.stack(s).send(id, &data);
        }
        Op::Recv { conn, server, len } => {
            let Some((s, id)) = w.conn(conn, server) else {
                return;
            };
            let mut buf = vec![0u8; usize::from(len)];
            if let Ok(n) = w.stack(s).recv(id, &mut buf) {
                assert!(n <= buf.len());
            }
        }
        Op::Shutdown { conn, server } => {
            let Some((s, id)) = w.conn(conn, server) else {
                return;
            };
            let now = w.now;
            let _ = w.stack(s).shutdown(id, now);
        }
        Op::Close { conn, server } => {
            let Some((s, id)) = w.conn(conn, server) else {
                return;
            };
            let now = w.now;
            let _ = w.stack(s).close(id, now);
        }
        Op::Abort { conn, server } => {
            let Some((s, id)) = w.conn(conn, server) else {
                return;
            };
            let _ = w.stack(s).abort(id);
        }
        Op::Accept => w.accept(),
        Op::Connect { port } => {
            let port = if port % 2 == 0 { 80 } else { port };
            let now = w.now;
            if let Ok(id) = w.a.connect(now, SocketAddrV4::new(B, port), None) {
                w.clients.push(id);
            }
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let mut w = World::new(input.preset);
    let n = usize::from(input.conns % 3) + 1;
    for i in 0..n {
        let id =
            w.a.connect(w.now, SocketAddrV4::new(B, 80), Some(40000 + i as u16))
                .expect("connect");
        w.clients.push(id);
    }
    for _ in 0..20 {
        w.exchange();
        if w.servers.len() == n {
            break;
        }
    }
    assert_eq!(w.servers.len(), n, "handshakes completed");
    w.check();
    for op in input.ops {
        run(&mut w, op);
        w.check();
    }
});

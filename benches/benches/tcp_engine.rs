//! The TCP engine per segment, in segments/s: the receive path for in-order
//! full-sized data (`Stack::handle_packet` on the receiver: IPv4 and TCP
//! parse, checksum, connection lookup, reassembly into the receive buffer)
//! and the ACK-processing path (`Stack::handle_packet` of a pure ACK on the
//! sender: RTT and congestion-control update, freeing acknowledged bytes).
//!
//! Sequence numbers must advance, so nothing is replayed: every iteration is a
//! real bulk transfer between two stacks, packets handed between them in
//! batches by this file, with a virtual clock. The receiver answers every
//! second segment, so each ACK covers two full segments. Only the
//! `handle_packet` calls of the path under test are timed (per group of two
//! segments, or per batch of ACKs, less the cost of reading the clock); the
//! sender's output, the receiver's `poll`, the receiving application's reads
//! and the other path are not. ustack only: smoltcp's `Interface::poll` does
//! receive and transmit in one call, so it has no equivalent of these paths.
//! Every received byte is compared with what the sender wrote, so the
//! measured path is the one that delivers data.

use core::net::SocketAddrV4;
use core::time::Duration;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ustack_benches::{pattern, CLIENT_ADDR, SERVER_ADDR, SERVER_PORT};
use ustack_tcp::{ConnId, Instant, Stack, StackConfig, State, XorShiftRng};

const MTU: usize = 1500;
/// IPv4 (20) + TCP (20) + timestamp option (12): a full segment carries 1448 bytes.
const FULL_PAYLOAD: usize = MTU - 20 - 20 - 12;
/// Period of the byte stream: prime, so no segment or buffer size divides it.
const PERIOD: usize = 65_521;
const TICK: Duration = Duration::from_micros(5);
/// Data segments the receiver takes before it answers.
const ACK_EVERY: usize = 2;

/// What reading the clock twice costs, subtracted from every timed region
/// (small batches of two segments would otherwise carry it).
fn clock_cost() -> Duration {
    (0..10_000)
        .map(|_| {
            let start = std::time::Instant::now();
            black_box(start).elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO)
}

/// Packets in flight one way, reused so that steady state allocates nothing
/// outside the stacks.
#[derive(Default)]
struct Queue {
    packets: Vec<Vec<u8>>,
    len: usize,
}

impl Queue {
    fn push(&mut self, p: &[u8]) {
        if self.len == self.packets.len() {
            self.packets.push(Vec::with_capacity(MTU));
        }
        let slot = &mut self.packets[self.len];
        slot.clear();
        slot.extend_from_slice(p);
        self.len += 1;
    }

    fn as_slice(&self) -> &[Vec<u8>] {
        &self.packets[..self.len]
    }
}

/// TCP payload length of an IPv4 packet this stack emitted (no IP options).
fn tcp_payload_len(p: &[u8]) -> usize {
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let tcp_header = usize::from(p[20 + 12] >> 4) * 4;
    total - 20 - tcp_header
}

/// A sender (the server) and a receiver (the client) with one established
/// connection, and what each path has cost so far.
struct Engine {
    sender: Stack,
    receiver: Stack,
    s_conn: ConnId,
    r_conn: ConnId,
    now: Instant,
    to_receiver: Queue,
    to_sender: Queue,
    source: Vec<u8>,
    sent: u64,
    received: u64,
    /// Payload bytes carried by the data segments handed to the receiver.
    delivered_payload: u64,
    app_buf: Vec<u8>,
    /// Time in the receiver's `handle_packet` on data segments, and their count.
    rx_time: Duration,
    rx_segments: u64,
    /// Time in the sender's `handle_packet` on ACKs, and their count.
    ack_time: Duration,
    acks: u64,
    clock_cost: Duration,
}

impl Engine {
    fn new() -> Engine {
        let mut sender = Stack::new(
            StackConfig::new(SERVER_ADDR, MTU),
            Box::new(XorShiftRng::new(0x5eed_0001)),
        );
        let mut receiver = Stack::new(
            StackConfig::new(CLIENT_ADDR, MTU),
            Box::new(XorShiftRng::new(0x5eed_0002)),
        );
        let listener = sender.listen(SERVER_PORT, 4).expect("listen");
        let now = Instant::from_micros(1_000_000);
        let r_conn = receiver
            .connect(now, SocketAddrV4::new(SERVER_ADDR, SERVER_PORT), None)
            .expect("connect");
        let mut e = Engine {
            sender,
            receiver,
            s_conn: r_conn,
            r_conn,
            now,
            to_receiver: Queue::default(),
            to_sender: Queue::default(),
            source: pattern(PERIOD),
            sent: 0,
            received: 0,
            delivered_payload: 0,
            app_buf: vec![0; 256 * 1024],
            rx_time: Duration::ZERO,
            rx_segments: 0,
            ack_time: Duration::ZERO,
            acks: 0,
            clock_cost: clock_cost(),
        };
        let mut accepted = None;
        for _ in 0..1000 {
            if accepted.is_none() {
                accepted = e.sender.accept(listener);
            }
            if accepted.is_some() && e.receiver.state(r_conn) == Ok(State::Established) {
                break;
            }
            e.step(false);
        }
        e.s_conn = accepted.expect("handshake did not complete");
        assert_eq!(e.receiver.state(r_conn), Ok(State::Established));
        e
    }

    /// One round: the sender's application writes what fits and the sender
    /// transmits; the receiver takes the data (timed), its application reads
    /// and checks it, it answers; the sender takes the ACKs (timed).
    fn step(&mut self, data: bool) {
        self.now += TICK;
        let now = self.now;
        if data {
            loop {
                let off = (self.sent % PERIOD as u64) as usize;
                match self.sender.send(self.s_conn, &self.source[off..]) {
                    Ok(n) if n > 0 => self.sent += n as u64,
                    _ => break,
                }
            }
        }
        let mut moved = false;
        let q = &mut self.to_receiver;
        q.len = 0;
        self.sender.poll(now, &mut |p: &[u8]| q.push(p));

        // Receive path: what the sender sent, in order, `ACK_EVERY` segments
        // at a time, each group answered before the next: one ACK per two
        // full segments, as a delayed-ACK receiver does (RFC 9293 §3.8.6.3).
        let mut sink = |_: &[u8]| panic!("receiver answered data at once");
        let mut took = Duration::ZERO;
        let q = &mut self.to_sender;
        q.len = 0;
        for group in self.to_receiver.as_slice().chunks(ACK_EVERY) {
            let start = std::time::Instant::now();
            for p in group {
                self.receiver.handle_packet(now, black_box(p), &mut sink);
            }
            took += start.elapsed().saturating_sub(self.clock_cost);
            self.receiver.poll(now, &mut |p: &[u8]| q.push(p));
        }
        if data {
            for p in self.to_receiver.as_slice() {
                let n = tcp_payload_len(p);
                assert_eq!(n, FULL_PAYLOAD, "data segments must be full-sized");
                self.delivered_payload += n as u64;
            }
            self.rx_time += took;
            self.rx_segments += self.to_receiver.len as u64;
        }
        moved |= self.to_receiver.len > 0;
        self.read_and_check();

        let q = &mut self.to_sender;
        self.receiver.poll(now, &mut |p: &[u8]| q.push(p));

        // ACK path: everything the receiver answered, in one batch.
        let mut sink = |_: &[u8]| panic!("sender answered an ACK at once");
        let start = std::time::Instant::now();
        for p in self.to_sender.as_slice() {
            self.sender.handle_packet(now, black_box(p), &mut sink);
        }
        let took = start.elapsed().saturating_sub(self.clock_cost);
        if data {
            for p in self.to_sender.as_slice() {
                assert_eq!(tcp_payload_len(p), 0, "receiver sent data");
            }
            self.ack_time += took;
            self.acks += self.to_sender.len as u64;
        }
        moved |= self.to_sender.len > 0;

        if !moved {
            ustack_benches::jump_to_next_timer(&mut self.now, [&self.sender, &self.receiver]);
        }
    }

    /// The receiving application reads everything and compares it with the
    /// stream the sender wrote.
    fn read_and_check(&mut self) {
        loop {
            let n = match self.receiver.recv(self.r_conn, &mut self.app_buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            let mut got = &self.app_buf[..n];
            while !got.is_empty() {
                let off = (self.received % PERIOD as u64) as usize;
                let k = got.len().min(PERIOD - off);
                assert!(
                    got[..k] == self.source[off..off + k],
                    "wrong bytes at stream offset {}",
                    self.received
                );
                self.received += k as u64;
                got = &got[k..];
            }
        }
    }

    /// Runs the transfer until at least `count` more data segments (or ACKs)
    /// have gone through the path under test and returns its time, scaled to
    /// exactly `count`.
    fn measure(&mut self, count: u64, ack_path: bool) -> Duration {
        let (t0, n0) = self.path(ack_path);
        let mut steps = 0u64;
        while self.path(ack_path).1 - n0 < count {
            self.step(true);
            steps += 1;
            assert!(steps < 100 * count + 10_000, "transfer stalled");
        }
        let (t1, n1) = self.path(ack_path);
        // Everything handed to the receiver was delivered, byte-exact.
        assert_eq!(self.received, self.delivered_payload);
        assert!(self.received > 0);
        (t1 - t0).mul_f64(count as f64 / (n1 - n0) as f64)
    }

    fn path(&self, ack_path: bool) -> (Duration, u64) {
        if ack_path {
            (self.ack_time, self.acks)
        } else {
            (self.rx_time, self.rx_segments)
        }
    }
}

fn bench_tcp_engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_engine");
    group.throughput(Throughput::Elements(1));
    let mut engine = Engine::new();
    // Slow start over, and a check that the path works before timing it.
    engine.measure(2000, false);
    let sent_acks = engine.acks;
    assert!(sent_acks > 0, "no ACKs came back");
    group.bench_function(BenchmarkId::new("rx_data_segment", "ustack"), |b| {
        b.iter_custom(|iters| engine.measure(iters, false))
    });
    let mut engine = Engine::new();
    engine.measure(2000, false);
    group.bench_function(BenchmarkId::new("ack", "ustack"), |b| {
        b.iter_custom(|iters| engine.measure(iters, true))
    });
    eprintln!(
        "tcp_engine: {} data segments, {} ACKs ({:.2} segments per ACK)",
        engine.rx_segments,
        engine.acks,
        engine.rx_segments as f64 / engine.acks.max(1) as f64
    );
    group.finish();
}

criterion_group!(benches, bench_tcp_engine);
criterion_main!(benches);

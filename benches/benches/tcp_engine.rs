//! The TCP engine per segment, in segments/s, for ustack and smoltcp 0.14 on
//! the same traffic: the receive path for in-order full-sized data
//! (`rx_data_segment`) and the ACK-processing path (`ack`).
//!
//! Sequence numbers must advance, so nothing is replayed: every iteration is a
//! real bulk transfer between two stacks of the same kind, a sender (the
//! server, 10.0.0.1:80) and a receiver (the client, 10.0.0.2), with packets
//! handed between them in batches by this file and a virtual clock. One
//! driver ([`Engine`]) runs both stacks through the same steps; only the
//! calls behind [`Pair`] differ. Per step: the sending application writes
//! what fits, the sender transmits; the receiver takes the data segments two
//! at a time and answers each pair, so each ACK covers two full segments (as
//! a delayed-ACK receiver does, RFC 9293 §3.8.6.3); the receiving application
//! reads and every byte is compared with what was written; the sender takes
//! the ACKs. Only the input calls of the path under test are timed (per group
//! of two segments, or per batch of ACKs, less the cost of reading the
//! clock); the transmit side, the application's reads and the other path are
//! not.
//!
//! What one timed call does, on each side:
//!
//! - ustack: `IpStack::handle_packet(now, packet, info, tx)`. Parses the IPv4 header
//!   and verifies its checksum, parses the TCP header and options and
//!   verifies the TCP checksum over the pseudo-header, looks the connection
//!   up by 4-tuple, and runs RFC 9293 segment processing: PAWS and
//!   timestamps, the acceptability test, for data the copy into the receive
//!   ring and the delayed-ACK decision, for an ACK the RTT sample, RACK, CUBIC
//!   and freeing the acknowledged bytes of the send ring. It may only answer
//!   through `tx`, which panics here: nothing is sent inside the timed region.
//! - smoltcp: `Interface::poll_ingress_single(now, device, sockets)`, its
//!   one-packet ingress (no egress, unlike `Interface::poll`). The device
//!   hands over the same kind of packet by reference, without a copy. It
//!   parses the IPv4 header and verifies its checksum, parses TCP and
//!   verifies its checksum (the device announces checksum verification),
//!   finds the socket (`accepts`) and runs `tcp::Socket::process`:
//!   timestamps, the acceptability test, for data the copy into the receive
//!   ring and the delayed-ACK timer, for an ACK the RTT estimate and freeing
//!   the acknowledged bytes. A reply at once would go to the device's
//!   transmit token, which panics here too.
//!
//! The traffic is the same on both: IPv4 without options, TCP with the
//! timestamp option, 1448-byte payloads in 1500-byte packets, pure ACKs in
//! 52-byte packets (both asserted), two segments per ACK (the ratio is
//! printed), send and receive buffers of 181 full segments (see
//! [`SOCKET_BUFFER`]), window scaling, and every checksum verified (ustack's
//! default; smoltcp's default device capabilities). Differences that remain,
//! each costing ustack, not smoltcp: ustack's ACK path runs RACK (RFC 8985)
//! besides its congestion control, and ustack looks the connection up in a
//! table keyed by 4-tuple where smoltcp asks its one socket whether it
//! `accepts` the segment.
//!
//! smoltcp runs twice: `smoltcp` with its default of no congestion control
//! (its ACK path updates no congestion window), and `smoltcp_cubic` with its
//! CUBIC (feature `socket-tcp-cubic`, `set_congestion_control(Cubic)`): the
//! baseline for the ACK path, where ustack runs RFC 9438 CUBIC too.

use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use ustack_benches::{host_with, pattern, Stack, CLIENT_ADDR, SERVER_ADDR, SERVER_PORT};
use ustack_ipv4::{DeviceCaps, RxInfo, TxPacket};
use ustack_tcp::{ConnId, Instant, ListenerId, State};

const MTU: usize = 1500;
/// IPv4 (20) + TCP (20) + timestamp option (12): a full segment carries 1448 bytes.
const FULL_PAYLOAD: usize = MTU - 20 - 20 - 12;
/// Period of the byte stream: prime, so no segment or buffer size divides it.
const PERIOD: usize = 65_521;
/// Virtual microseconds per step.
const TICK_US: u64 = 5;
/// Data segments the receiver takes before it answers.
const ACK_EVERY: usize = 2;
/// Send and receive buffer of every connection: as many whole segments as
/// fit in ustack's default of 256 KiB (181, 262,088 bytes), so that every
/// data segment is full-sized on both stacks. smoltcp would otherwise cut
/// one segment short in two places: a segment never spans the wrap of its
/// send ring (with 256 KiB, 56 bytes before it), and it has no sender-side
/// silly-window avoidance (with 256 KiB of receive window it fills the last
/// 56 bytes with a small segment). With a whole number of segments (and a
/// window scale that divides 1448) both fall on segment boundaries.
const SOCKET_BUFFER: usize = FULL_PAYLOAD * (256 * 1024 / FULL_PAYLOAD);
/// Where the virtual clock starts, in microseconds.
const START_US: u64 = 1_000_000;

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
    /// Appends a packet of `len` bytes that `fill` writes.
    fn push_with<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        if self.len == self.packets.len() {
            self.packets.push(Vec::with_capacity(MTU));
        }
        let slot = &mut self.packets[self.len];
        slot.clear();
        slot.resize(len, 0);
        self.len += 1;
        fill(slot)
    }

    /// Appends a packet a stack sends, gathered from its parts.
    fn push_tx(&mut self, p: &TxPacket<'_>) {
        self.push_with(p.len(), |slot| p.copy_to(slot));
    }

    fn as_slice(&self) -> &[Vec<u8>] {
        &self.packets[..self.len]
    }
}

/// TCP payload length of an IPv4 packet either stack emitted (no IP options).
fn tcp_payload_len(p: &[u8]) -> usize {
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let tcp_header = usize::from(p[20 + 12] >> 4) * 4;
    total - 20 - tcp_header
}

/// Two stacks of one kind, a sender and a receiver, and the calls the
/// [`Engine`] makes on them. Times are virtual microseconds.
trait Pair {
    /// Whether both ends of the connection are established (the sender
    /// accepts it first if it can).
    fn established(&mut self) -> bool;
    /// The sending application writes; returns the bytes taken.
    fn send(&mut self, data: &[u8]) -> usize;
    /// The receiving application reads; returns the bytes read.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Everything the sender has to transmit now, into `q` (not timed).
    fn sender_output(&mut self, now: u64, q: &mut Queue);
    /// Everything the receiver has to transmit now, into `q` (not timed).
    fn receiver_output(&mut self, now: u64, q: &mut Queue);
    /// The receive path: the receiver takes one packet. Panics if it answers
    /// at once.
    fn receiver_input(&mut self, now: u64, packet: &[u8]);
    /// The ACK path: the sender takes one packet. Panics if it answers at once.
    fn sender_input(&mut self, now: u64, packet: &[u8]);
    /// The earliest timer of either stack.
    fn next_timer(&mut self, now: u64) -> Option<u64>;
}

/// ustack: two [`Stack`]s.
struct UstackPair {
    sender: Stack,
    receiver: Stack,
    listener: ListenerId,
    s_conn: Option<ConnId>,
    r_conn: ConnId,
}

impl UstackPair {
    fn new() -> UstackPair {
        let host = |addr, seed| {
            host_with(addr, DeviceCaps::ip(MTU), seed, |cfg| {
                // Fixed, as smoltcp's are: auto-tuning would grow them to
                // 16 MiB, and a step would then move megabytes, more than
                // the L2 cache holds, so that every packet is a cache miss.
                cfg.tcp.send_buffer = SOCKET_BUFFER;
                cfg.tcp.send_buffer_max = SOCKET_BUFFER;
                cfg.tcp.recv_buffer = SOCKET_BUFFER;
                cfg.tcp.recv_buffer_max = SOCKET_BUFFER;
            })
        };
        let mut sender = host(SERVER_ADDR, 0x5eed_0001);
        let mut receiver = host(CLIENT_ADDR, 0x5eed_0002);
        let listener = sender.listen(SERVER_PORT, 4).expect("listen");
        let r_conn = receiver
            .connect(
                Instant::from_micros(START_US),
                SocketAddrV4::new(SERVER_ADDR, SERVER_PORT),
                None,
            )
            .expect("connect");
        UstackPair {
            sender,
            receiver,
            listener,
            s_conn: None,
            r_conn,
        }
    }

    fn s_conn(&self) -> ConnId {
        self.s_conn.expect("connection not accepted yet")
    }
}

impl Pair for UstackPair {
    fn established(&mut self) -> bool {
        if self.s_conn.is_none() {
            self.s_conn = self.sender.accept(self.listener);
        }
        self.s_conn.is_some() && self.receiver.state(self.r_conn) == Ok(State::Established)
    }

    fn send(&mut self, data: &[u8]) -> usize {
        let id = self.s_conn();
        self.sender.send(id, data).unwrap_or(0)
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.receiver.recv(self.r_conn, buf).unwrap_or(0)
    }

    fn sender_output(&mut self, now: u64, q: &mut Queue) {
        let now = Instant::from_micros(now);
        self.sender.poll(now, &mut |p| q.push_tx(p));
    }

    fn receiver_output(&mut self, now: u64, q: &mut Queue) {
        let now = Instant::from_micros(now);
        self.receiver.poll(now, &mut |p| q.push_tx(p));
    }

    // Out of line (for both stacks alike), so that a profiler or callgrind
    // (`--toggle-collect='*receiver_input*'`) can single out the timed calls.
    #[inline(never)]
    fn receiver_input(&mut self, now: u64, packet: &[u8]) {
        let mut sink = |_: &TxPacket<'_>| panic!("receiver answered data at once");
        let now = Instant::from_micros(now);
        self.receiver
            .handle_packet(now, packet, RxInfo::default(), &mut sink);
    }

    #[inline(never)]
    fn sender_input(&mut self, now: u64, packet: &[u8]) {
        let mut sink = |_: &TxPacket<'_>| panic!("sender answered an ACK at once");
        let now = Instant::from_micros(now);
        self.sender
            .handle_packet(now, packet, RxInfo::default(), &mut sink);
    }

    fn next_timer(&mut self, _now: u64) -> Option<u64> {
        [self.sender.poll_at(), self.receiver.poll_at()]
            .into_iter()
            .flatten()
            .min()
            .map(Instant::total_micros)
    }
}

/// The virtual clock in milliseconds, for smoltcp's timestamp generator
/// (a plain `fn() -> u32`).
static SMOL_MS: AtomicU32 = AtomicU32::new(0);

fn smol_tsval() -> u32 {
    SMOL_MS.load(Ordering::Relaxed)
}

/// smoltcp's device for one call: `rx` is the packet the next receive hands
/// over (by reference), `tx` the queue a transmit appends to. Without a `tx`
/// the transmit token panics, as ustack's `tx` closure does.
struct BenchDevice<'a> {
    rx: Option<&'a [u8]>,
    tx: Option<&'a mut Queue>,
}

struct PacketRx<'a>(&'a [u8]);

impl RxToken for PacketRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

struct QueueTx<'a>(Option<&'a mut Queue>);

impl TxToken for QueueTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.0 {
            Some(q) => q.push_with(len, f),
            None => panic!("smoltcp answered a packet at once"),
        }
    }
}

impl Device for BenchDevice<'_> {
    type RxToken<'b>
        = PacketRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = QueueTx<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        _now: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.take()?;
        Some((PacketRx(packet), QueueTx(self.tx.as_deref_mut())))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(QueueTx(self.tx.as_deref_mut()))
    }

    /// IP medium, MTU 1500, and the default checksum capabilities: compute
    /// and verify every IPv4 and TCP checksum.
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}

fn smol_now(us: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(us as i64)
}

/// smoltcp: two `Interface`s with one `tcp::Socket` each.
struct SmolPair {
    sender: Interface,
    receiver: Interface,
    s_sockets: SocketSet<'static>,
    r_sockets: SocketSet<'static>,
    s_sock: SocketHandle,
    r_sock: SocketHandle,
}

impl SmolPair {
    /// smoltcp's default: no congestion control.
    fn new() -> SmolPair {
        SmolPair::with_cc(tcp::CongestionControl::None)
    }

    /// smoltcp with its CUBIC (`socket-tcp-cubic`), so that its ACK path
    /// updates a congestion window as ustack's does.
    fn new_cubic() -> SmolPair {
        SmolPair::with_cc(tcp::CongestionControl::Cubic)
    }

    fn with_cc(cc: tcp::CongestionControl) -> SmolPair {
        SMOL_MS.store((START_US / 1000) as u32, Ordering::Relaxed);
        let iface = |addr, seed| {
            let mut dev = BenchDevice { rx: None, tx: None };
            let mut config = Config::new(HardwareAddress::Ip);
            config.random_seed = seed;
            let mut iface = Interface::new(config, &mut dev, smol_now(START_US));
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::Ipv4(addr), 24))
                    .expect("one address fits")
            });
            iface
        };
        let sender = iface(SERVER_ADDR, 0x5eed_0001);
        let mut receiver = iface(CLIENT_ADDR, 0x5eed_0002);
        let socket = || {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            );
            // RFC 7323 timestamps, as ustack sends them: the same 12 option
            // bytes in every segment.
            s.set_tsval_generator(Some(smol_tsval));
            s.set_congestion_control(cc);
            s
        };
        let mut listener = socket();
        listener.listen(SERVER_PORT).expect("listen");
        let mut s_sockets = SocketSet::new(vec![]);
        let s_sock = s_sockets.add(listener);
        let mut connecting = socket();
        connecting
            .connect(
                receiver.context(),
                (IpAddress::Ipv4(SERVER_ADDR), SERVER_PORT),
                49_152,
            )
            .expect("connect");
        let mut r_sockets = SocketSet::new(vec![]);
        let r_sock = r_sockets.add(connecting);
        SmolPair {
            sender,
            receiver,
            s_sockets,
            r_sockets,
            s_sock,
            r_sock,
        }
    }
}

/// Everything `iface` has to send, into `q`: `poll_egress` until it reports
/// nothing more, as `Interface::poll` does.
fn smol_egress(iface: &mut Interface, sockets: &mut SocketSet<'_>, now: u64, q: &mut Queue) {
    SMOL_MS.store((now / 1000) as u32, Ordering::Relaxed);
    let mut dev = BenchDevice {
        rx: None,
        tx: Some(q),
    };
    while iface.poll_egress(smol_now(now), &mut dev, sockets) == PollResult::SocketStateChanged {}
}

impl Pair for SmolPair {
    fn established(&mut self) -> bool {
        let est = |s: &SocketSet, h| s.get::<tcp::Socket>(h).state() == tcp::State::Established;
        est(&self.s_sockets, self.s_sock) && est(&self.r_sockets, self.r_sock)
    }

    fn send(&mut self, data: &[u8]) -> usize {
        let s = self.s_sockets.get_mut::<tcp::Socket>(self.s_sock);
        s.send_slice(data).unwrap_or(0)
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let s = self.r_sockets.get_mut::<tcp::Socket>(self.r_sock);
        s.recv_slice(buf).unwrap_or(0)
    }

    fn sender_output(&mut self, now: u64, q: &mut Queue) {
        smol_egress(&mut self.sender, &mut self.s_sockets, now, q);
    }

    fn receiver_output(&mut self, now: u64, q: &mut Queue) {
        smol_egress(&mut self.receiver, &mut self.r_sockets, now, q);
    }

    // Out of line (for both stacks alike), so that a profiler or callgrind
    // (`--toggle-collect='*receiver_input*'`) can single out the timed calls.
    #[inline(never)]
    fn receiver_input(&mut self, now: u64, packet: &[u8]) {
        let mut dev = BenchDevice {
            rx: Some(packet),
            tx: None,
        };
        self.receiver
            .poll_ingress_single(smol_now(now), &mut dev, &mut self.r_sockets);
    }

    #[inline(never)]
    fn sender_input(&mut self, now: u64, packet: &[u8]) {
        let mut dev = BenchDevice {
            rx: Some(packet),
            tx: None,
        };
        self.sender
            .poll_ingress_single(smol_now(now), &mut dev, &mut self.s_sockets);
    }

    fn next_timer(&mut self, now: u64) -> Option<u64> {
        [
            self.sender.poll_at(smol_now(now), &self.s_sockets),
            self.receiver.poll_at(smol_now(now), &self.r_sockets),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.total_micros().max(0) as u64)
    }
}

/// A [`Pair`] with an established connection, the virtual clock, the
/// queues between the two stacks and what each path has cost so far.
struct Engine<P: Pair> {
    pair: P,
    now: u64,
    to_receiver: Queue,
    to_sender: Queue,
    source: Vec<u8>,
    sent: u64,
    received: u64,
    /// Payload bytes carried by the data segments handed to the receiver.
    delivered_payload: u64,
    app_buf: Vec<u8>,
    /// Time in the receiver's input on data segments, and their count.
    rx_time: Duration,
    rx_segments: u64,
    /// Time in the sender's input on ACKs, and their count.
    ack_time: Duration,
    acks: u64,
    clock_cost: Duration,
}

impl<P: Pair> Engine<P> {
    fn new(pair: P) -> Engine<P> {
        let mut e = Engine {
            pair,
            now: START_US,
            to_receiver: Queue::default(),
            to_sender: Queue::default(),
            source: pattern(PERIOD),
            sent: 0,
            received: 0,
            delivered_payload: 0,
            app_buf: vec![0; SOCKET_BUFFER],
            rx_time: Duration::ZERO,
            rx_segments: 0,
            ack_time: Duration::ZERO,
            acks: 0,
            clock_cost: clock_cost(),
        };
        for _ in 0..1000 {
            if e.pair.established() {
                return e;
            }
            e.step(false);
        }
        panic!("handshake did not complete");
    }

    /// One round: the sender's application writes what fits and the sender
    /// transmits; the receiver takes the data (timed), its application reads
    /// and checks it, it answers; the sender takes the ACKs (timed).
    fn step(&mut self, data: bool) {
        self.now += TICK_US;
        let now = self.now;
        if data {
            loop {
                let off = (self.sent % PERIOD as u64) as usize;
                match self.pair.send(&self.source[off..]) {
                    0 => break,
                    n => self.sent += n as u64,
                }
            }
        }
        let mut moved = false;
        self.to_receiver.len = 0;
        self.pair.sender_output(now, &mut self.to_receiver);

        // Receive path: what the sender sent, in order, `ACK_EVERY` segments
        // at a time, each group answered before the next: one ACK per two
        // full segments, as a delayed-ACK receiver does (RFC 9293 §3.8.6.3).
        let mut took = Duration::ZERO;
        self.to_sender.len = 0;
        for group in self.to_receiver.as_slice().chunks(ACK_EVERY) {
            let start = std::time::Instant::now();
            for p in group {
                self.pair.receiver_input(now, black_box(p));
            }
            took += start.elapsed().saturating_sub(self.clock_cost);
            self.pair.receiver_output(now, &mut self.to_sender);
        }
        if data {
            for p in self.to_receiver.as_slice() {
                let n = tcp_payload_len(p);
                assert_eq!(p.len(), MTU, "data packets must be full-sized");
                assert_eq!(n, FULL_PAYLOAD, "data segments must be full-sized");
                self.delivered_payload += n as u64;
            }
            self.rx_time += took;
            self.rx_segments += self.to_receiver.len as u64;
        }
        moved |= self.to_receiver.len > 0;
        self.read_and_check();

        self.pair.receiver_output(now, &mut self.to_sender);

        // ACK path: everything the receiver answered, in one batch.
        let start = std::time::Instant::now();
        for p in self.to_sender.as_slice() {
            self.pair.sender_input(now, black_box(p));
        }
        let took = start.elapsed().saturating_sub(self.clock_cost);
        if data {
            for p in self.to_sender.as_slice() {
                assert_eq!(tcp_payload_len(p), 0, "receiver sent data");
                assert_eq!(p.len(), 20 + 32, "ACKs carry the timestamp option only");
            }
            self.ack_time += took;
            self.acks += self.to_sender.len as u64;
        }
        moved |= self.to_sender.len > 0;

        if !moved {
            if let Some(at) = self.pair.next_timer(now) {
                self.now = self.now.max(at);
            }
        }
    }

    /// The receiving application reads everything and compares it with the
    /// stream the sender wrote.
    fn read_and_check(&mut self) {
        loop {
            let n = match self.pair.recv(&mut self.app_buf) {
                0 => break,
                n => n,
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

/// One path of one stack, on a fresh connection past slow start.
fn bench_path<P: Pair>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    stack: &str,
    make: fn() -> P,
    ack_path: bool,
) {
    let mut engine = Engine::new(make());
    // Slow start over, and a check that the path works before timing it.
    engine.measure(2000, false);
    assert!(engine.acks > 0, "{stack}: no ACKs came back");
    let name = if ack_path { "ack" } else { "rx_data_segment" };
    group.bench_function(BenchmarkId::new(name, stack), |b| {
        b.iter_custom(|iters| engine.measure(iters, ack_path))
    });
    eprintln!(
        "tcp_engine {name}/{stack}: {} data segments, {} ACKs ({:.2} segments per ACK)",
        engine.rx_segments,
        engine.acks,
        engine.rx_segments as f64 / engine.acks.max(1) as f64
    );
}

fn bench_tcp_engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_engine");
    group.throughput(Throughput::Elements(1));
    for ack_path in [false, true] {
        bench_path(&mut group, "ustack", UstackPair::new, ack_path);
        bench_path(&mut group, "smoltcp", SmolPair::new, ack_path);
        bench_path(&mut group, "smoltcp_cubic", SmolPair::new_cubic, ack_path);
    }
    group.finish();
}

/// Both stacks in alternating slices of `SLICE` segments (or ACKs), the
/// order swapped every round, for `rounds` rounds per path; prints the
/// median and quartiles of the per-round ratios. On a shared VM whose speed
/// drifts over seconds, criterion's runs one after another measure the
/// drift as much as the stacks; slices of a few milliseconds side by side
/// see the same machine.
fn interleaved(rounds: usize) {
    const SLICE: u64 = 20_000;
    for ack_path in [false, true] {
        let (name, base) = if ack_path {
            ("ack", "smoltcp_cubic")
        } else {
            ("rx_data_segment", "smoltcp")
        };
        let mut us = Engine::new(UstackPair::new());
        let mut smol = Engine::new(if ack_path {
            SmolPair::new_cubic()
        } else {
            SmolPair::new()
        });
        us.measure(2000, false);
        smol.measure(2000, false);
        let mut ratios = Vec::with_capacity(rounds);
        let (mut t_us, mut t_smol) = (Duration::ZERO, Duration::ZERO);
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = us.measure(SLICE, ack_path);
                (a, smol.measure(SLICE, ack_path))
            } else {
                let b = smol.measure(SLICE, ack_path);
                (us.measure(SLICE, ack_path), b)
            };
            t_us += a;
            t_smol += b;
            ratios.push(a.as_secs_f64() / b.as_secs_f64());
        }
        ratios.sort_by(f64::total_cmp);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        let per = |t: Duration| t.as_secs_f64() * 1e9 / (SLICE as f64 * rounds as f64);
        println!(
            "tcp_engine {name}: ustack {:.1} ns, {base} {:.1} ns; ustack/{base} median {:.3} (quartiles {:.3}-{:.3}) over {rounds} interleaved rounds of {SLICE}",
            per(t_us),
            per(t_smol),
            q(0.5),
            q(0.25),
            q(0.75)
        );
    }
}

criterion_group!(benches, bench_tcp_engine);

fn main() {
    // `USTACK_ENGINE_INTERLEAVED=ROUNDS cargo bench --bench tcp_engine`:
    // the paired measurement above instead of criterion's.
    if let Ok(v) = std::env::var("USTACK_ENGINE_INTERLEAVED") {
        interleaved(v.parse().unwrap_or(100));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

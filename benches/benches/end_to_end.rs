//! Bulk TCP throughput through two whole stacks: 16 MiB per iteration from
//! the server (10.0.0.1:80) to the client (10.0.0.2) on one thread with a
//! virtual clock, 256 KiB socket buffers on both sides, checksums computed
//! and verified, at two MTUs: 1500 (`bulk_16MiB`, Ethernet-sized segments)
//! and 65535 (`bulk_16MiB_mtu65535`, few big segments, as over loopback);
//! both stacks take their MSS from the MTU. Every byte crosses both
//! applications' buffers, both TCP engines, IPv4 emit/parse and both
//! checksums, so this is each stack's single-core ceiling.
//!
//! `ustack`: two [`ustack_tcp::Stack`]s over the in-memory pipe
//! ([`PipePair`]). `smoltcp`: two smoltcp `Interface`s, one socket each,
//! joined by a pair of smoltcp `Loopback` devices (one per direction), run
//! twice: `smoltcp` with its default of no congestion control and
//! `smoltcp_cubic` with its CUBIC (ustack runs CUBIC by default). The
//! loopback is told to announce the pipe's MTU and full checksumming, like
//! the pipe; on its own it would skip checksums, which would compare
//! different work.
//!
//! `ustack_in_place` and `smoltcp_in_place`: the receiving application is
//! lent the receive ring's bytes (`Stack::recv_with`, smoltcp's
//! `Socket::recv`) instead of copying them out, one pass over each byte
//! fewer on both: what receiving straight into a waiting application's
//! buffer would save.
//!
//! `USTACK_E2E_INTERLEAVED=ROUNDS` runs every variant in turn, one transfer
//! each per round, and prints the median of the per-round ratios: the
//! figure to trust on a machine whose speed drifts (see `interleaved`).

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use ustack_benches::{pattern, PipePair, Read, CLIENT_ADDR, SERVER_ADDR, SERVER_PORT};

const MTU: usize = 1500;
/// The largest IPv4 packet: few, big segments, as on a loopback device.
const BIG_MTU: usize = 65535;
/// Packets each direction of the pipe holds: more than a full receive window
/// of segments, so the pipe itself never drops.
const PIPE_CAPACITY: usize = 256;
const TRANSFER_LEN: u64 = 16 << 20;
/// The sending application's buffer, written over and over.
const SOURCE_LEN: usize = 64 * 1024;
/// Send and receive buffer of every socket, on both stacks.
const SOCKET_BUFFER: usize = 256 * 1024;

fn bench_end_to_end(c: &mut Criterion) {
    let source = pattern(SOURCE_LEN);
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Bytes(TRANSFER_LEN));
    // One iteration is tens of milliseconds; criterion's minimum of ten
    // samples keeps a short run short.
    group.sample_size(10);
    for (name, mtu) in [("bulk_16MiB", MTU), ("bulk_16MiB_mtu65535", BIG_MTU)] {
        bench_mtu(&mut group, name, mtu, &source);
    }
    group.finish();
}

/// ustack's pair at `mtu`, with the same fixed buffers as smoltcp's: they
/// would otherwise grow (auto-tuning) past what the pipe holds and measure
/// its drops.
fn pipe_pair(mtu: usize) -> PipePair {
    PipePair::with_config(mtu, PIPE_CAPACITY, |c| {
        c.tcp.send_buffer = SOCKET_BUFFER;
        c.tcp.send_buffer_max = SOCKET_BUFFER;
        c.tcp.recv_buffer = SOCKET_BUFFER;
        c.tcp.recv_buffer_max = SOCKET_BUFFER;
    })
    .unwrap_or_else(|e| panic!("setup: {e}"))
}

/// Both stacks at one MTU (the MSS follows it on both).
fn bench_mtu(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mtu: usize,
    source: &[u8],
) {
    let mut pair = pipe_pair(mtu);
    let mut smol = SmolPair::new(mtu, tcp::CongestionControl::None);
    let mut smol_cubic = SmolPair::new(mtu, tcp::CongestionControl::Cubic);
    for (id, read) in [
        ("ustack", Read::Copy),
        ("ustack_in_place", Read::InPlace),
        ("ustack_posted", Read::Posted),
    ] {
        group.bench_function(BenchmarkId::new(name, id), |b| {
            b.iter(|| ustack_transfer(&mut pair, source, read))
        });
    }
    for (id, cubic, read) in [
        ("smoltcp", false, Read::Copy),
        ("smoltcp_cubic", true, Read::Copy),
        ("smoltcp_in_place", false, Read::InPlace),
    ] {
        let pair = if cubic { &mut smol_cubic } else { &mut smol };
        group.bench_function(BenchmarkId::new(name, id), |b| {
            b.iter(|| assert_eq!(pair.transfer(TRANSFER_LEN, source, read), TRANSFER_LEN))
        });
    }

    let (server, client) = pair.link_stats();
    eprintln!(
        "end_to_end, MTU {mtu}: server sent {} packets ({} dropped), client sent {} packets ({} dropped)",
        server.tx_packets, server.tx_dropped, client.tx_packets, client.tx_dropped
    );
}

/// One 16 MiB transfer over ustack's pipe, checked whole.
fn ustack_transfer(pair: &mut PipePair, source: &[u8], read: Read) {
    let mut delivered = 0u64;
    let received = pair
        .transfer_reading(TRANSFER_LEN, source, read, |chunk| {
            delivered += black_box(chunk).len() as u64;
        })
        .unwrap_or_else(|e| panic!("transfer: {e}"));
    // A stalled or short transfer must fail the run, not look fast.
    assert_eq!((received, delivered), (TRANSFER_LEN, TRANSFER_LEN));
}

/// Every variant at both MTUs, one 16 MiB transfer each in turn (the order
/// rotated every round) for `rounds` rounds; prints the median and
/// quartiles of the per-round throughput ratios. On a shared VM whose speed
/// drifts over seconds, criterion's runs one after another measure the drift
/// as much as the stacks; transfers of a few milliseconds side by side see
/// the same machine.
fn interleaved(rounds: usize, source: &[u8]) {
    for (name, mtu) in [("bulk_16MiB", MTU), ("bulk_16MiB_mtu65535", BIG_MTU)] {
        let mut pair = pipe_pair(mtu);
        let mut smol = SmolPair::new(mtu, tcp::CongestionControl::None);
        let mut smol_cubic = SmolPair::new(mtu, tcp::CongestionControl::Cubic);
        // [ustack, ustack in place, smoltcp, smoltcp CUBIC, smoltcp in
        // place, ustack posted]
        let mut secs: Vec<[f64; 6]> = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut t = [0.0; 6];
            for k in 0..6 {
                let which = (k + round) % 6;
                let start = std::time::Instant::now();
                match which {
                    0 => ustack_transfer(&mut pair, source, Read::Copy),
                    1 => ustack_transfer(&mut pair, source, Read::InPlace),
                    2 => assert_eq!(
                        smol.transfer(TRANSFER_LEN, source, Read::Copy),
                        TRANSFER_LEN
                    ),
                    3 => assert_eq!(
                        smol_cubic.transfer(TRANSFER_LEN, source, Read::Copy),
                        TRANSFER_LEN
                    ),
                    4 => assert_eq!(
                        smol.transfer(TRANSFER_LEN, source, Read::InPlace),
                        TRANSFER_LEN
                    ),
                    _ => ustack_transfer(&mut pair, source, Read::Posted),
                }
                t[which] = start.elapsed().as_secs_f64();
            }
            secs.push(t);
        }
        let gib_s = |i: usize| {
            let total: f64 = secs.iter().map(|t| t[i]).sum();
            TRANSFER_LEN as f64 * rounds as f64 / total / f64::from(1u32 << 30)
        };
        let ratio = |us: usize, base: usize| {
            let mut r: Vec<f64> = secs.iter().map(|t| t[base] / t[us]).collect();
            r.sort_by(f64::total_cmp);
            let q = |f: f64| r[((r.len() - 1) as f64 * f).round() as usize];
            format!("{:.2}x ({:.2}-{:.2})", q(0.5), q(0.25), q(0.75))
        };
        println!(
            "end_to_end {name}: GiB/s ustack {:.2}, in place {:.2}, posted {:.2}; smoltcp {:.2}, CUBIC {:.2}, in place {:.2}",
            gib_s(0),
            gib_s(1),
            gib_s(5),
            gib_s(2),
            gib_s(3),
            gib_s(4)
        );
        println!(
            "end_to_end {name}: ustack/smoltcp {}, ustack/smoltcp_cubic {}, in place/in place {}, posted/smoltcp {}, posted/ustack {} (median, quartiles, {rounds} interleaved rounds)",
            ratio(0, 2),
            ratio(0, 3),
            ratio(1, 4),
            ratio(5, 2),
            ratio(5, 0)
        );
    }
}

/// One side's view of the two loopback queues: it receives from one and
/// transmits into the other, so two interfaces can talk.
struct Crossed<'a> {
    rx: &'a mut Loopback,
    tx: &'a mut Loopback,
    mtu: usize,
}

impl Device for Crossed<'_> {
    type RxToken<'b>
        = <Loopback as Device>::RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = <Loopback as Device>::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, _) = self.rx.receive(now)?;
        Some((rx, self.tx.transmit(now)?))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.tx.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// The smoltcp counterpart of [`PipePair`]: two interfaces, an established
/// connection, a virtual clock.
struct SmolPair {
    server: Interface,
    client: Interface,
    server_sockets: SocketSet<'static>,
    client_sockets: SocketSet<'static>,
    server_sock: SocketHandle,
    client_sock: SocketHandle,
    to_client: Loopback,
    to_server: Loopback,
    now: Instant,
    app_buf: Vec<u8>,
    stream_pos: u64,
    mtu: usize,
}

impl SmolPair {
    /// Both sockets run congestion controller `cc`: smoltcp's default
    /// `None`, or its `Cubic` (feature `socket-tcp-cubic`) as ustack does.
    fn new(mtu: usize, cc: tcp::CongestionControl) -> SmolPair {
        let (mut to_client, mut to_server) = (Loopback::new(Medium::Ip), Loopback::new(Medium::Ip));
        let now = Instant::from_secs(1);
        let iface = |addr, rx: &mut Loopback, tx: &mut Loopback| {
            let mut dev = Crossed { rx, tx, mtu };
            let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::Ipv4(addr), 24))
                    .expect("one address fits")
            });
            iface
        };
        let server = iface(SERVER_ADDR, &mut to_server, &mut to_client);
        let mut client = iface(CLIENT_ADDR, &mut to_client, &mut to_server);
        let socket = || {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            );
            s.set_congestion_control(cc);
            s
        };
        let (mut server_sockets, mut client_sockets) =
            (SocketSet::new(vec![]), SocketSet::new(vec![]));
        let mut listener = socket();
        listener.listen(SERVER_PORT).expect("listen");
        let server_sock = server_sockets.add(listener);
        let mut connecting = socket();
        connecting
            .connect(
                client.context(),
                (IpAddress::Ipv4(SERVER_ADDR), SERVER_PORT),
                49_152,
            )
            .expect("connect");
        let client_sock = client_sockets.add(connecting);
        let mut pair = SmolPair {
            server,
            client,
            server_sockets,
            client_sockets,
            server_sock,
            client_sock,
            to_client,
            to_server,
            now,
            app_buf: vec![0; 64 * 1024],
            stream_pos: 0,
            mtu,
        };
        for _ in 0..10_000 {
            let established =
                |s: &SocketSet, h| s.get::<tcp::Socket>(h).state() == tcp::State::Established;
            if established(&pair.server_sockets, server_sock)
                && established(&pair.client_sockets, client_sock)
            {
                return pair;
            }
            pair.step();
        }
        panic!("smoltcp handshake did not complete");
    }

    /// Polls both interfaces once; when neither had anything to do, jumps
    /// the clock to the earliest timer, as [`PipePair::step`] does.
    fn step(&mut self) {
        self.now += Duration::from_micros(5);
        let mut dev = Crossed {
            rx: &mut self.to_server,
            tx: &mut self.to_client,
            mtu: self.mtu,
        };
        self.server
            .poll(self.now, &mut dev, &mut self.server_sockets);
        let mut dev = Crossed {
            rx: &mut self.to_client,
            tx: &mut self.to_server,
            mtu: self.mtu,
        };
        self.client
            .poll(self.now, &mut dev, &mut self.client_sockets);
    }

    fn idle(&mut self) {
        let next = [
            self.server.poll_at(self.now, &self.server_sockets),
            self.client.poll_at(self.now, &self.client_sockets),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next {
            if at > self.now {
                self.now = at;
            }
        }
    }

    /// Moves `len` bytes from server to client, the source written over and
    /// over from where the last transfer stopped. Returns the bytes received.
    fn transfer(&mut self, len: u64, source: &[u8], read: Read) -> u64 {
        let (mut sent, mut received) = (0u64, 0u64);
        let mut idle = 0;
        while received < len {
            let mut progress = false;
            let server = self.server_sockets.get_mut::<tcp::Socket>(self.server_sock);
            while sent < len && server.can_send() {
                let offset = ((self.stream_pos + sent) % source.len() as u64) as usize;
                let want = (len - sent).min((source.len() - offset) as u64) as usize;
                match server.send_slice(&source[offset..offset + want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        sent += n as u64;
                        progress = true;
                    }
                }
            }
            let client = self.client_sockets.get_mut::<tcp::Socket>(self.client_sock);
            loop {
                let got = match read {
                    Read::Copy => client.recv_slice(&mut self.app_buf).inspect(|&n| {
                        black_box(&self.app_buf[..n]);
                    }),
                    Read::InPlace => client.recv(|b| {
                        let n = black_box(&*b).len();
                        (n, n)
                    }),
                    Read::Posted => unreachable!("smoltcp has no posted receive buffers"),
                };
                let Ok(n @ 1..) = got else { break };
                received += n as u64;
                progress = true;
            }
            self.step();
            if progress {
                idle = 0;
            } else {
                idle += 1;
                self.idle();
                assert!(
                    idle < 100_000,
                    "smoltcp transfer stalled at {received} of {len}"
                );
            }
        }
        self.stream_pos += len;
        received
    }
}

criterion_group!(benches, bench_end_to_end);

fn main() {
    // `USTACK_E2E_INTERLEAVED=ROUNDS cargo bench --bench end_to_end`: the
    // paired measurement above instead of criterion's.
    if let Ok(v) = std::env::var("USTACK_E2E_INTERLEAVED") {
        interleaved(v.parse().unwrap_or(30), &pattern(SOURCE_LEN));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

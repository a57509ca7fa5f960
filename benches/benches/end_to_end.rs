//! Bulk TCP throughput through two whole stacks: 16 MiB per iteration from
//! the server (10.0.0.1:80) to the client (10.0.0.2) on one thread with a
//! virtual clock, 256 KiB socket buffers on both sides, checksums computed
//! and verified, at two MTUs: 1500 (`bulk_16MiB`, Ethernet-sized segments)
//! and 65535 (`bulk_16MiB_mtu65535`, few big segments, as over loopback);
//! both stacks take their MSS from the MTU. Every byte crosses both applications' buffers, both
//! TCP engines, IPv4 emit/parse and both checksums, so this is each stack's
//! single-core ceiling.
//!
//! `ustack`: two [`ustack_tcp::Stack`]s over the in-memory pipe
//! ([`PipePair`]). `smoltcp`: two smoltcp `Interface`s, one socket each,
//! joined by a pair of smoltcp `Loopback` devices (one per direction). The
//! loopback is told to announce the pipe's MTU and full checksumming, like
//! the pipe; on its own it would skip checksums, which would compare
//! different work.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use ustack_benches::{pattern, PipePair, CLIENT_ADDR, SERVER_ADDR, SERVER_PORT};

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

/// Both stacks at one MTU (the MSS follows it on both).
fn bench_mtu(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mtu: usize,
    source: &[u8],
) {
    // Both stacks with the same fixed buffers: ustack's would otherwise grow
    // (auto-tuning) past what the pipe holds and measure its drops.
    let mut pair = PipePair::with_config(mtu, PIPE_CAPACITY, |c| {
        c.tcp.send_buffer = SOCKET_BUFFER;
        c.tcp.send_buffer_max = SOCKET_BUFFER;
        c.tcp.recv_buffer = SOCKET_BUFFER;
        c.tcp.recv_buffer_max = SOCKET_BUFFER;
    })
    .unwrap_or_else(|e| panic!("setup: {e}"));
    let mut smol = SmolPair::new(mtu);
    group.bench_function(BenchmarkId::new(name, "ustack"), |b| {
        b.iter(|| {
            let mut delivered = 0u64;
            let received = pair
                .transfer(TRANSFER_LEN, source, |chunk| {
                    delivered += black_box(chunk).len() as u64;
                })
                .unwrap_or_else(|e| panic!("transfer: {e}"));
            // A stalled or short transfer must fail the run, not look fast.
            assert_eq!((received, delivered), (TRANSFER_LEN, TRANSFER_LEN));
        })
    });
    group.bench_function(BenchmarkId::new(name, "smoltcp"), |b| {
        b.iter(|| assert_eq!(smol.transfer(TRANSFER_LEN, source), TRANSFER_LEN))
    });

    let (server, client) = pair.link_stats();
    eprintln!(
        "end_to_end, MTU {mtu}: server sent {} packets ({} dropped), client sent {} packets ({} dropped)",
        server.tx_packets, server.tx_dropped, client.tx_packets, client.tx_dropped
    );
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
    fn new(mtu: usize) -> SmolPair {
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
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            )
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
    fn transfer(&mut self, len: u64, source: &[u8]) -> u64 {
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
            while let Ok(n @ 1..) = client.recv_slice(&mut self.app_buf) {
                black_box(&self.app_buf[..n]);
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
criterion_main!(benches);

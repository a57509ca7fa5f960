//! # ustack-benches
//!
//! Criterion benchmarks of each ustack layer (checksum, IPv4 header, TCP wire
//! format, HTTP responder) and of two whole stacks talking over an in-memory
//! link. The benchmarks themselves live in `benches/`; this library holds the
//! shared harness, [`PipePair`], so that its own test can check that what the
//! end-to-end benchmark measures is a real, byte-exact transfer.
//!
//! Nothing here is used by the stack itself. Below: `ustack-link` (the pipe),
//! `ustack-ipv4` (the IP layer) and `ustack-tcp` (the engines).

#![warn(missing_docs)]

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use ustack_ipv4::{DeviceCaps, IpConfig, IpStack, Ipv4Subnet};
use ustack_link::{pipe, Link, LinkStats, PipeEnd, TxPacket};
use ustack_tcp::{ConnId, Instant, State, Tcp, TcpError, TcpLayerConfig, XorShiftRng, MAX_POSTED};

/// A whole host: the IP layer carrying TCP.
pub type Stack = IpStack<Tcp>;

/// A host at `addr`/24 on a device that can do `caps`, its MSS following
/// the MTU (the default caps it at 1460), as smoltcp derives its own from
/// the device's MTU; `seed` makes its ISNs and timestamps reproducible.
pub fn host(addr: Ipv4Addr, caps: DeviceCaps, seed: u64) -> Stack {
    host_with(addr, caps, seed, |_| {})
}

/// [`host`] with the TCP configuration adjusted by `tune`.
pub fn host_with(
    addr: Ipv4Addr,
    caps: DeviceCaps,
    seed: u64,
    tune: impl FnOnce(&mut TcpLayerConfig),
) -> Stack {
    let mut cfg = TcpLayerConfig::default();
    cfg.tcp.mss = caps.mtu.saturating_sub(40).min(usize::from(u16::MAX)) as u16;
    tune(&mut cfg);
    let tcp = Tcp::new(cfg, Box::new(XorShiftRng::new(seed)));
    let subnet = Ipv4Subnet::new(addr, 24).expect("a /24");
    IpStack::new(IpConfig::new(subnet), caps, tcp)
}

/// Address of the side that listens and, in the bulk benchmark, sends.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Address of the side that connects and receives.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Port the server listens on.
pub const SERVER_PORT: u16 = 80;

/// Virtual time that passes on every [`PipePair::step`].
const TICK: Duration = Duration::from_micros(5);
/// Steps in a row without a byte delivered or a packet moved after which a
/// transfer is declared stuck. Long enough to cover the largest RTO backoff
/// the stacks could reach in a healthy run, since idle steps jump to the next
/// timer anyway.
const MAX_IDLE_STEPS: u32 = 10_000;

/// Two hosts ([`Stack`]s) joined by an in-memory [`pipe`], with one established
/// connection between them, driven by a virtual clock on one thread.
pub struct PipePair {
    server: Stack,
    client: Stack,
    server_end: PipeEnd,
    client_end: PipeEnd,
    /// The accepted connection on the server.
    pub server_conn: ConnId,
    /// The connecting side's connection.
    pub client_conn: ConnId,
    now: Instant,
    /// One packet taken off a pipe end before the stack sees it: the stack's
    /// transmit closure needs the same end mutably, so the two cannot overlap.
    packet: Vec<u8>,
    /// Where the receiving application reads to.
    app_buf: Vec<u8>,
    /// [`Read::Posted`]'s buffers while the application holds them.
    spare: Vec<Box<[u8]>>,
    /// Bytes moved by earlier transfers: where the next one resumes the pattern.
    stream_pos: u64,
}

/// Why a [`PipePair`] could not be set up or a transfer did not finish.
#[derive(Debug)]
pub enum HarnessError {
    /// A socket call failed with something other than `WouldBlock`.
    Tcp(&'static str, TcpError),
    /// Nothing moved for `MAX_IDLE_STEPS` (10,000) steps in a row.
    Stalled {
        /// The phase that stalled: "handshake" or "transfer".
        what: &'static str,
        /// Bytes the client application had received (0 in the handshake).
        done: u64,
        /// Bytes the transfer was to move (0 in the handshake).
        wanted: u64,
        /// The server connection's state, if it was still known.
        server: Option<State>,
        /// The client connection's state, if it was still known.
        client: Option<State>,
    },
    /// The receiver saw end of stream before the transfer was complete.
    EarlyEof {
        /// Bytes received before the end of stream.
        done: u64,
        /// Bytes the transfer was to move.
        wanted: u64,
    },
}

impl core::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HarnessError::Tcp(call, e) => write!(f, "{call} failed: {e}"),
            HarnessError::Stalled {
                what,
                done,
                wanted,
                server,
                client,
            } => write!(
                f,
                "{what} stalled after {done} of {wanted} bytes for {MAX_IDLE_STEPS} steps \
                 (server {server:?}, client {client:?})"
            ),
            HarnessError::EarlyEof { done, wanted } => {
                write!(f, "end of stream after {done} of {wanted} bytes")
            }
        }
    }
}

impl std::error::Error for HarnessError {}

/// How the receiving application of [`PipePair::transfer_reading`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `Stack::recv` into the application's own buffer: one copy out of the
    /// receive ring, as `read(2)` makes.
    Copy,
    /// `Stack::recv_with`: the application is lent the ring's bytes in
    /// place, no copy out of the ring.
    InPlace,
    /// `Tcp::post_recv`: the application keeps [`MAX_POSTED`] buffers of
    /// [`POSTED_BUF`] bytes posted, and in-order data is copied from the
    /// pipe's queue slot straight into them (`Tcp::take_recv` hands them
    /// back), skipping the receive ring.
    Posted,
}

/// Size of each buffer [`Read::Posted`] posts: eight of them hold 512 KiB,
/// more than the benches' receive windows.
pub const POSTED_BUF: usize = 64 * 1024;

impl PipePair {
    /// Builds both stacks and the pipe (each direction queues `capacity`
    /// packets of `mtu` bytes) and completes a handshake from the client to
    /// [`SERVER_PORT`].
    pub fn new(mtu: usize, capacity: usize) -> Result<PipePair, HarnessError> {
        PipePair::with_config(mtu, capacity, |_| {})
    }

    /// [`PipePair::new`] with both stacks' TCP configuration adjusted by `tune`.
    pub fn with_config(
        mtu: usize,
        capacity: usize,
        tune: impl Fn(&mut TcpLayerConfig),
    ) -> Result<PipePair, HarnessError> {
        let (server_end, client_end) = pipe(mtu, capacity);
        let mut server = host_with(SERVER_ADDR, server_end.caps(), 0x5eed_0001, &tune);
        let mut client = host_with(CLIENT_ADDR, client_end.caps(), 0x5eed_0002, &tune);
        let listener = server
            .listen(SERVER_PORT, 4)
            .map_err(|e| HarnessError::Tcp("listen", e))?;
        let now = Instant::from_micros(1_000_000);
        let client_conn = client
            .connect(now, SocketAddrV4::new(SERVER_ADDR, SERVER_PORT), None)
            .map_err(|e| HarnessError::Tcp("connect", e))?;
        let mut pair = PipePair {
            server,
            client,
            server_end,
            client_end,
            // Replaced as soon as the handshake completes.
            server_conn: client_conn,
            client_conn,
            now,
            packet: vec![0; mtu],
            app_buf: vec![0; 64 * 1024],
            spare: (0..MAX_POSTED)
                .map(|_| vec![0; POSTED_BUF].into_boxed_slice())
                .collect(),
            stream_pos: 0,
        };
        let mut accepted = None;
        let mut idle = 0;
        while accepted.is_none() || pair.client.state(client_conn) != Ok(State::Established) {
            if accepted.is_none() {
                accepted = pair.server.accept(listener);
            }
            if pair.step() {
                idle = 0;
            } else {
                idle += 1;
                if idle > MAX_IDLE_STEPS {
                    return Err(HarnessError::Stalled {
                        what: "handshake",
                        done: 0,
                        wanted: 0,
                        server: None,
                        client: pair.client.state(client_conn).ok(),
                    });
                }
            }
        }
        if let Some(id) = accepted {
            pair.server_conn = id;
        }
        Ok(pair)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The server stack, for its counters and socket calls.
    pub fn server(&mut self) -> &mut Stack {
        &mut self.server
    }

    /// The client stack, for its counters and socket calls.
    pub fn client(&mut self) -> &mut Stack {
        &mut self.client
    }

    /// Counters of the server's and the client's pipe end (drops show up in
    /// `tx_dropped`).
    pub fn link_stats(&self) -> (LinkStats, LinkStats) {
        (self.server_end.stats(), self.client_end.stats())
    }

    /// Advances the clock, hands each stack the packets waiting at its end
    /// of the pipe, then lets each stack send what it has. Returns whether
    /// any packet moved. When nothing did, the clock jumps to the earliest
    /// timer instead, as a real runtime would sleep until then.
    pub fn step(&mut self) -> bool {
        self.now += TICK;
        let now = self.now;
        let mut moved = false;
        moved |= pump(
            &mut self.server,
            &mut self.server_end,
            &mut self.packet,
            now,
        );
        moved |= pump(
            &mut self.client,
            &mut self.client_end,
            &mut self.packet,
            now,
        );
        if !moved {
            jump_to_next_timer(&mut self.now, [&self.server, &self.client]);
        }
        moved
    }

    /// Moves `len` bytes from the server to the client over the established
    /// connection: the server application writes `source` over and over (from
    /// where the previous transfer stopped, so the stream stays one periodic
    /// pattern), the client application reads and hands every chunk to
    /// `sink`. Returns the bytes received, which is `len` on success.
    pub fn transfer(
        &mut self,
        len: u64,
        source: &[u8],
        sink: impl FnMut(&[u8]),
    ) -> Result<u64, HarnessError> {
        self.transfer_reading(len, source, Read::Copy, sink)
    }

    /// [`PipePair::transfer`], the client reading the way `read` says.
    pub fn transfer_reading(
        &mut self,
        len: u64,
        source: &[u8],
        read: Read,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<u64, HarnessError> {
        assert!(!source.is_empty(), "transfer source must not be empty");
        let (mut sent, mut received) = (0u64, 0u64);
        let mut idle = 0;
        while received < len {
            let mut progress = false;
            while sent < len {
                let offset = self.source_offset(sent, source.len());
                let want = (len - sent).min((source.len() - offset) as u64) as usize;
                match self
                    .server
                    .send(self.server_conn, &source[offset..offset + want])
                {
                    Ok(0) | Err(TcpError::WouldBlock) => break,
                    Ok(n) => {
                        sent += n as u64;
                        progress = true;
                    }
                    Err(e) => return Err(HarnessError::Tcp("server send", e)),
                }
            }
            loop {
                let got = match read {
                    Read::Copy => self
                        .client
                        .recv(self.client_conn, &mut self.app_buf)
                        .inspect(|&n| sink(&self.app_buf[..n])),
                    Read::InPlace => self.client.recv_with(self.client_conn, |b| {
                        sink(b);
                        b.len()
                    }),
                    Read::Posted => self.take_posted(&mut sink),
                };
                match got {
                    Ok(0) => {
                        return Err(HarnessError::EarlyEof {
                            done: received,
                            wanted: len,
                        })
                    }
                    Ok(n) => {
                        received += n as u64;
                        progress = true;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => return Err(HarnessError::Tcp("client recv", e)),
                }
            }
            progress |= self.step();
            if progress {
                idle = 0;
            } else {
                idle += 1;
                if idle > MAX_IDLE_STEPS {
                    return Err(HarnessError::Stalled {
                        what: "transfer",
                        done: received,
                        wanted: len,
                        server: self.server.state(self.server_conn).ok(),
                        client: self.client.state(self.client_conn).ok(),
                    });
                }
            }
        }
        if read == Read::Posted {
            // Every byte was taken: the buffers left are empty. Taking them
            // back lets the next transfer read another way.
            while let Ok(Some(f)) = self.client.unpost_recv(self.client_conn) {
                self.spare.push(f.buf);
            }
        }
        self.stream_pos = self.stream_pos.wrapping_add(len);
        Ok(received)
    }

    /// [`Read::Posted`]: posts the spare buffers, then hands the oldest
    /// filled one to `sink` and keeps it for the next post.
    fn take_posted(&mut self, sink: &mut impl FnMut(&[u8])) -> Result<usize, TcpError> {
        while let Some(buf) = self.spare.pop() {
            if let Err(r) = self.client.post_recv(self.client_conn, buf) {
                self.spare.push(r.buf);
                break;
            }
        }
        let f = self.client.take_recv(self.client_conn)?;
        sink(f.data());
        let n = f.len;
        if !f.buf.is_empty() {
            self.spare.push(f.buf);
        }
        Ok(n)
    }

    fn source_offset(&self, sent: u64, period: usize) -> usize {
        (self.stream_pos.wrapping_add(sent) % period as u64) as usize
    }
}

/// Delivers every packet queued for `stack` at `end`, then polls it; both
/// write their output back into `end`. Returns whether any packet came in or
/// went out.
fn pump(stack: &mut Stack, end: &mut PipeEnd, packet: &mut [u8], now: Instant) -> bool {
    let mut moved = false;
    loop {
        // The packet is lent from the pipe's queue (no copy); replies go
        // out through the pipe's own send.
        let got = end.recv_with(packet, &mut |pkt, info, tx| {
            stack.handle_packet(now, pkt, info, &mut |p| {
                if let Err(e) = tx(p) {
                    panic!("pipe refused a {}-byte packet: {e}", p.len());
                }
            });
        });
        match got {
            Ok(true) => moved = true,
            Ok(false) => break,
            Err(e) => panic!("pipe receive failed: {e}"),
        }
    }
    stack.poll(now, &mut |p| {
        moved = true;
        send(end, p);
    });
    moved
}

/// Sends one packet into the pipe. A packet the pipe refuses is larger than
/// the MTU, a stack bug: fail loudly rather than measure a stall. (A full
/// queue is not refused; it is a drop, counted in [`LinkStats::tx_dropped`].)
fn send(end: &mut PipeEnd, packet: &TxPacket<'_>) {
    if let Err(e) = end.send(packet) {
        panic!("pipe refused a {}-byte packet: {e}", packet.len());
    }
}

/// When nothing moved, a virtual clock jumps to the stacks' earliest timer,
/// as a real runtime would sleep until it.
pub fn jump_to_next_timer(now: &mut Instant, stacks: [&Stack; 2]) {
    if let Some(at) = stacks.iter().filter_map(|s| s.poll_at()).min() {
        if at > *now {
            *now = at;
        }
    }
}

/// A deterministic, non-constant source buffer for [`PipePair::transfer`].
/// Give it a length (ideally a prime) that is not a multiple of any segment or
/// buffer size, so that a misplaced or repeated chunk shows up as a mismatch.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 8)) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves 1 MiB (in two transfers, so the resume offset is exercised too)
    /// and compares every received byte with the periodic source.
    #[test]
    fn pipe_pair_transfer_is_byte_exact() {
        const PERIOD: usize = 65_521;
        let source = pattern(PERIOD);
        let mut pair = PipePair::new(1500, 256).expect("handshake");
        let mut pos = 0usize;
        let mut mismatch = None;
        for len in [300_001u64, (1 << 20) - 300_001] {
            let got = pair
                .transfer(len, &source, |chunk| {
                    for &b in chunk {
                        if mismatch.is_none() && b != source[pos % PERIOD] {
                            mismatch = Some(pos);
                        }
                        pos += 1;
                    }
                })
                .expect("transfer");
            assert_eq!(got, len);
        }
        assert_eq!(mismatch, None, "first wrong byte at stream offset");
        assert_eq!(pos, 1 << 20);
        let (server, client) = pair.link_stats();
        // Data segments must be full-sized: 1 MiB is 725 segments of 1448 bytes
        // (MSS 1460 less 12 bytes of timestamp option), plus a few for the handshake.
        assert!((725..800).contains(&server.tx_packets), "{server:?}");
        assert!(client.tx_packets > 0, "{client:?}");
    }
}

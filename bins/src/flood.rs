//! Spoofed SYNs for the SYN-flood benchmark and test: a raw IPv4 socket
//! with `IP_HDRINCL` sends SYNs from an address that never answers (on a
//! TUN device's subnet, the kernel hands the stack's SYN-ACKs to nobody).
//! Only for traffic inside a namespace the caller made.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use ustack_ipv4::{Ipv4Packet, Ipv4Repr};
use ustack_tcp::wire::{Flags, TcpOptions, TcpPacket, TcpRepr};
use ustack_tcp::SeqNumber;

/// Sends SYNs that look like Linux's (MSS, SACK-permitted, timestamps,
/// window scale) from `src` and random ports to `dst`.
pub struct SynFlooder {
    sock: Socket,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    to: SockAddr,
    buf: Vec<u8>,
    state: u64,
}

impl SynFlooder {
    /// A raw socket in the calling thread's network namespace (needs
    /// CAP_NET_RAW).
    pub fn new(src: Ipv4Addr, dst: SocketAddrV4, seed: u64) -> io::Result<SynFlooder> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
        sock.set_header_included_v4(true)?;
        Ok(SynFlooder {
            sock,
            src,
            dst,
            to: SockAddr::from(SocketAddrV4::new(*dst.ip(), 0)),
            buf: vec![0; 80],
            state: seed | 1,
        })
    }

    fn next(&mut self) -> u64 {
        // xorshift64: spread ports and sequence numbers, nothing more.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Sends one SYN from a random port with a random ISN.
    pub fn send_one(&mut self) -> io::Result<()> {
        let r = self.next();
        let syn = TcpRepr {
            src_port: 1024 + (r % 64_000) as u16,
            dst_port: self.dst.port(),
            seq: SeqNumber((r >> 32) as u32),
            ack: SeqNumber(0),
            flags: Flags::SYN,
            window: 64_240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(((r >> 16) as u32, 0)),
                ..TcpOptions::default()
            },
        };
        let tcp_len = syn.header_len();
        let len = 20 + tcp_len;
        {
            let mut t = TcpPacket::new_unchecked(&mut self.buf[20..len]);
            syn.emit(&mut t);
            t.fill_checksum(self.src, *self.dst.ip());
        }
        let ip = Ipv4Repr {
            src_addr: self.src,
            dst_addr: *self.dst.ip(),
            protocol: 6,
            payload_len: tcp_len,
            ttl: 64,
            ident: r as u16,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: 0,
        };
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut self.buf[..len]));
        self.sock.send_to(&self.buf[..len], &self.to)?;
        Ok(())
    }

    /// Sends SYNs at about `rate` per second for `duration` or until `stop`;
    /// returns how many were sent. Sends that fail with ENOBUFS (the
    /// device queue is full) are not counted.
    pub fn run(&mut self, rate: u64, duration: Duration, stop: &AtomicBool) -> io::Result<u64> {
        let start = Instant::now();
        let mut sent = 0u64;
        const BATCH: u64 = 256;
        while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            for _ in 0..BATCH {
                match self.send_one() {
                    Ok(()) => sent += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => return Err(e),
                }
            }
            // Pace: sleep until the batch is due.
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
            }
        }
        Ok(sent)
    }
}

/// One `GET /` on a fresh connection to `addr` (from the calling thread's
/// namespace), every step bounded by `timeout`; Ok when `Hello World!`
/// came back, with the time it took.
pub fn hello(addr: SocketAddrV4, timeout: Duration) -> io::Result<Duration> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect_timeout(&addr.into(), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n")?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    if got.ends_with(b"Hello World!") {
        Ok(start.elapsed())
    } else {
        Err(io::Error::other("unexpected answer"))
    }
}

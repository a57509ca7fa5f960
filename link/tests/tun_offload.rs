//! Privileged tests of the TUN offloads (virtio-net header, TSO4, GRO)
//! against the real kernel, each inside its own network namespace. They
//! need root; set `USTACK_SKIP_PRIVILEGED=1` to skip them elsewhere.
#![cfg(feature = "tun")]

#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use common::{wait_readable, NetNs};
use ustack_link::{Link, RxInfo, TunConfig, TunLink, TxPacket, MAX_PACKET_LEN};

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const CWR: u8 = 0x80;

/// Ones' complement sum of `data` added to `sum`, folded (RFC 1071).
fn sum16(mut sum: u32, data: &[u8]) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, l4_len: usize) -> u16 {
    let mut ph = [0u8; 12];
    ph[0..4].copy_from_slice(&src.octets());
    ph[4..8].copy_from_slice(&dst.octets());
    ph[9] = 6;
    ph[10..12].copy_from_slice(&(l4_len as u16).to_be_bytes());
    sum16(0, &ph)
}

struct Seg<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &'a [u8],
    payload: &'a [u8],
    ip_id: u16,
}

impl Seg<'_> {
    /// The IPv4 packet; its TCP checksum complete, or only the pseudo-header
    /// sum (Linux CHECKSUM_PARTIAL) when `partial`.
    fn build(&self, partial: bool) -> Vec<u8> {
        let tcp_hl = 20 + self.opts.len();
        assert_eq!(tcp_hl % 4, 0);
        let len = 20 + tcp_hl + self.payload.len();
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&self.src.ip().octets());
        p[16..20].copy_from_slice(&self.dst.ip().octets());
        let ip_sum = !sum16(0, &p[..20]);
        p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        t[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..12].copy_from_slice(&self.ack.to_be_bytes());
        t[12] = ((tcp_hl / 4) as u8) << 4;
        t[13] = self.flags;
        t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        t[20..tcp_hl].copy_from_slice(self.opts);
        t[tcp_hl..].copy_from_slice(self.payload);
        let pseudo = pseudo_sum(*self.src.ip(), *self.dst.ip(), len - 20);
        let csum = if partial {
            pseudo
        } else {
            !sum16(u32::from(pseudo), t)
        };
        t[16..18].copy_from_slice(&csum.to_be_bytes());
        p
    }
}

/// A received TCP/IPv4 packet, parsed.
struct Tcp<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    flags: u8,
    hl: usize,
    payload: &'a [u8],
}

fn parse(p: &[u8]) -> Option<Tcp<'_>> {
    if p.len() < 40 || p[0] != 0x45 || p[9] != 6 {
        return None;
    }
    let t = &p[20..];
    let hl = usize::from(t[12] >> 4) * 4;
    Some(Tcp {
        src: SocketAddrV4::new(
            Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            u16::from_be_bytes([t[0], t[1]]),
        ),
        dst: SocketAddrV4::new(
            Ipv4Addr::new(p[16], p[17], p[18], p[19]),
            u16::from_be_bytes([t[2], t[3]]),
        ),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        flags: t[13],
        hl,
        payload: t.get(hl..)?,
    })
}

/// Sends `p` as an ordinary packet.
fn send(link: &mut TunLink, p: &[u8]) {
    link.send(&TxPacket::new(&[p])).expect("send");
}

/// Sends `p` as a super-frame of `seg`-byte segments, its headers and its
/// payload in separate parts (`hl` bytes of headers), as a stack would.
fn send_superframe(link: &mut TunLink, p: &[u8], hl: usize, seg: u16) {
    let (headers, payload) = p.split_at(hl);
    let (a, b) = payload.split_at(payload.len() / 2);
    link.send(&TxPacket {
        parts: &[&headers[..7], &headers[7..], a, b],
        segment: Some(seg),
        partial_checksum: false,
    })
    .expect("send super-frame");
}

/// Receives from `link` for up to `timeout`, showing each packet to `each`
/// (with what the link said about it) until it returns true.
fn pump(
    link: &mut TunLink,
    timeout: Duration,
    mut each: impl FnMut(&mut TunLink, &[u8], RxInfo) -> bool,
) -> bool {
    let fd = link.poll_fd().expect("a TUN link has a poll fd");
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; link.caps().max_rx_len()];
    loop {
        while let Some(got) = link.recv(&mut buf).expect("recv failed") {
            if each(link, &buf[..got.len], got.info) {
                return true;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        wait_readable(fd, left.as_millis().clamp(1, 50) as i32);
    }
}

fn tun(name: &str, host: Ipv4Addr, offload: bool) -> TunLink {
    TunLink::create(&TunConfig {
        name: name.into(),
        host_addr: host,
        prefix_len: 24,
        mtu: 1500,
        offload,
    })
    .expect("create TUN device")
}

/// The stack's side of a kernel TCP connection over an offloading TUN: a
/// 30 000-byte super-frame goes up to the kernel socket intact, and the
/// kernel's 300 000 bytes come down in GSO super-frames larger than the
/// MTU, their checksums vouched for.
#[test]
fn tun_offload_tso_and_gro_with_a_kernel_tcp_socket() {
    const TEST: &str = "tun_offload_tso_and_gro_with_a_kernel_tcp_socket";
    let Some(ns) = NetNs::create(TEST, "tso") else {
        return;
    };
    ns.run(|| {
        let host = Ipv4Addr::new(10, 9, 0, 1);
        let us = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 2), 40000);
        let mut link = tun("ustk0", host, true);
        assert_eq!(link.caps().tso_max, MAX_PACKET_LEN, "TUNSETOFFLOAD refused");
        let listener = TcpListener::bind((host, 0)).expect("bind listener");
        let them = match listener.local_addr().expect("listener addr") {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("unexpected listener address {other}"),
        };

        // Handshake, offering MSS 1460 and window scale 7.
        let isn: u32 = 1000;
        let seg = |seq, ack, flags, payload| Seg {
            src: us,
            dst: them,
            seq,
            ack,
            flags,
            opts: &[],
            payload,
            ip_id: 0,
        };
        let syn = Seg {
            opts: &[2, 4, 0x05, 0xb4, 1, 3, 3, 7],
            ..seg(isn, 0, SYN, &[])
        };
        send(&mut link, &syn.build(false));
        let mut irs = None;
        pump(&mut link, Duration::from_secs(2), |_, p, _| {
            match parse(p) {
                Some(t) if t.src == them && t.flags & (SYN | ACK) == SYN | ACK => {
                    irs = Some(t.seq);
                    true
                }
                _ => false,
            }
        });
        let irs = irs.expect("no SYN-ACK within 2 s");
        let mut rcv_nxt = irs.wrapping_add(1);
        send(&mut link, &seg(isn + 1, rcv_nxt, ACK, &[]).build(false));
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

        // TSO: one super-frame of 30 000 bytes, cut at 1460.
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        let sf = seg(isn + 1, rcv_nxt, ACK | PSH, &data).build(true);
        send_superframe(&mut link, &sf, 40, 1460);
        assert_eq!(link.tun_stats().tx_gso, 1);
        assert_eq!(link.stats().tx_packets, 3);
        let mut got = vec![0u8; data.len()];
        conn.read_exact(&mut got)
            .expect("kernel socket reads the super-frame's bytes");
        assert!(got == data, "super-frame payload corrupted");
        let snd_nxt = isn + 1 + data.len() as u32;

        // GRO/GSO from the kernel: it sends 300 000 bytes; we ACK as they come.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let expect = big.clone();
        let writer = std::thread::spawn(move || {
            conn.write_all(&big).expect("kernel socket write");
            conn
        });
        let mut received = Vec::with_capacity(expect.len());
        let mut largest = 0;
        let mut untrusted = 0;
        let mut unlabelled_gro = 0;
        let done = pump(&mut link, Duration::from_secs(5), |link, p, info| {
            let Some(t) = parse(p) else { return false };
            if t.src != them || t.dst != us {
                return false;
            }
            assert_eq!(t.flags & RST, 0, "kernel reset the connection");
            largest = largest.max(p.len());
            if info.checksum.needs_verify() {
                untrusted += 1;
            }
            if p.len() > 1500 && info.gro_segment.is_none() {
                unlabelled_gro += 1;
            }
            if t.seq == rcv_nxt && !t.payload.is_empty() {
                received.extend_from_slice(t.payload);
                rcv_nxt = rcv_nxt.wrapping_add(t.payload.len() as u32);
                send(link, &seg(snd_nxt, rcv_nxt, ACK, &[]).build(false));
            }
            received.len() >= expect.len()
        });
        assert!(
            done,
            "got {} of {} bytes within 5 s",
            received.len(),
            expect.len()
        );
        assert!(received == expect, "kernel's bytes corrupted");
        let stats = link.tun_stats();
        println!("largest packet from the kernel: {largest} bytes; {stats:?}");
        assert!(
            largest > 1500 && stats.rx_gso > 0,
            "no GSO super-frame from the kernel (largest packet {largest} bytes, {stats:?})"
        );
        assert_eq!(
            untrusted, 0,
            "kernel TCP packets without a vouched checksum"
        );
        assert_eq!(
            unlabelled_gro, 0,
            "super-frames without their gso_size in RxInfo::gro_segment"
        );
        assert_eq!(stats.rx_dropped, 0);
        drop(writer.join().expect("writer thread"));
    });
}

/// A super-frame routed on through a TUN device without offloads is cut by
/// the kernel into MTU-sized segments exactly as `Link::send` of a super-frame promises:
/// headers (options included) copied, sequence numbers, lengths, IDs and
/// both checksums fixed up, CWR on the first segment, FIN and PSH on the
/// last. This also proves the partial checksum convention: a wrong
/// pseudo-header sum would show up in the segments' TCP checksums.
#[test]
fn tun_offload_superframe_is_segmented_when_forwarded() {
    const TEST: &str = "tun_offload_superframe_is_segmented_when_forwarded";
    let Some(ns) = NetNs::create(TEST, "gso") else {
        return;
    };
    ns.run(|| {
        // /proc/sys/net belongs to the network namespace of whoever opens it.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        let mut a = tun("ustk0", Ipv4Addr::new(10, 9, 0, 1), true);
        let mut b = tun("ustk1", Ipv4Addr::new(10, 8, 0, 1), false);
        assert_eq!(a.caps().tso_max, MAX_PACKET_LEN);
        assert_eq!(a.caps().max_rx_len(), MAX_PACKET_LEN);
        assert_eq!(b.caps().tso_max, 0);
        assert_eq!(b.caps().max_rx_len(), 1500);

        let src = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 2), 5555);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 8, 0, 2), 6666);
        let opts = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]; // NOP NOP TS 7 9
        let payload: Vec<u8> = (0..10_500u32).map(|i| (i * 7 % 256) as u8).collect();
        let seq0: u32 = 0xffff_f000; // wraps inside the frame
        let sf = Seg {
            src,
            dst,
            seq: seq0,
            ack: 77,
            flags: ACK | PSH | FIN | CWR,
            opts: &opts,
            payload: &payload,
            ip_id: 0x4000,
        }
        .build(true);
        send_superframe(&mut a, &sf, 52, 1000);
        assert_eq!(a.tun_stats().tx_gso, 1);

        let mut segs: Vec<Vec<u8>> = Vec::new();
        pump(&mut b, Duration::from_secs(2), |_, p, info| {
            assert_eq!(
                info,
                RxInfo::default(),
                "a link without offload vouches for nothing"
            );
            if parse(p).is_some_and(|t| t.dst == dst) {
                segs.push(p.to_vec());
            }
            segs.len() == 11
        });
        assert_eq!(segs.len(), 11, "expected 11 segments, got {}", segs.len());
        let mut joined = Vec::new();
        for (i, p) in segs.iter().enumerate() {
            let t = parse(p).unwrap();
            let last = i == 10;
            let want = if last { 500 } else { 1000 };
            assert_eq!(t.payload.len(), want, "segment {i} size");
            assert_eq!(t.hl, 32, "segment {i} lost its options");
            assert_eq!(&p[40..52], &opts, "segment {i} options");
            assert_eq!(t.seq, seq0.wrapping_add(1000 * i as u32), "segment {i} seq");
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(p[8], 63, "forwarded: TTL decremented");
            assert_eq!(sum16(0, &p[..20]), 0xffff, "segment {i} IPv4 checksum");
            let pseudo = pseudo_sum(*t.src.ip(), *t.dst.ip(), p.len() - 20);
            assert_eq!(
                sum16(u32::from(pseudo), &p[20..]),
                0xffff,
                "segment {i} TCP checksum"
            );
            let fl = t.flags;
            assert_eq!(fl & CWR != 0, i == 0, "segment {i}: CWR only on the first");
            assert_eq!(
                fl & (FIN | PSH) != 0,
                last,
                "segment {i}: FIN/PSH only on the last"
            );
            assert_ne!(fl & ACK, 0);
            joined.extend_from_slice(t.payload);
        }
        assert!(joined == payload, "payload reassembled wrong");
        let ids: Vec<u16> = segs
            .iter()
            .map(|p| u16::from_be_bytes([p[4], p[5]]))
            .collect();
        println!("IPv4 IDs of the segments: {ids:?}");
    });
}

/// Offload requested on a device, plain `send` still works and a too-short
/// receive buffer drops (and counts) a packet instead of handing up a cut one.
#[test]
fn tun_offload_plain_packets_and_short_buffers() {
    use std::net::UdpSocket;
    const TEST: &str = "tun_offload_plain_packets_and_short_buffers";
    let Some(ns) = NetNs::create(TEST, "plain") else {
        return;
    };
    ns.run(|| {
        let host = Ipv4Addr::new(10, 9, 0, 1);
        let peer = Ipv4Addr::new(10, 9, 0, 2);
        let mut link = tun("ustk0", host, true);
        let sock = UdpSocket::bind((host, 0)).expect("bind UDP socket");
        let fd = link.poll_fd().unwrap();

        // A 1000-byte datagram into a 100-byte buffer: dropped, counted.
        sock.send_to(&[7u8; 1000], (peer, 9)).expect("send");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut small = [0u8; 100];
        while link.tun_stats().rx_dropped == 0 && Instant::now() < deadline {
            if let Some(got) = link.recv(&mut small).expect("recv") {
                // Only unrelated small packets (none expected) may come up.
                assert!(got.len < 100, "a truncated packet came up");
            }
            wait_readable(fd, 20);
        }
        assert_eq!(link.tun_stats().rx_dropped, 1);

        // Then a full-size buffer gets the next one whole; UDP checksums of a
        // local sender are left partial with TUN_F_CSUM, so it is trusted.
        sock.send_to(&[8u8; 1000], (peer, 9)).expect("send");
        let mut trusted = false;
        let found = pump(&mut link, Duration::from_secs(2), |_, p, info| {
            trusted = info.checksum == ustack_link::RxChecksum::Partial;
            p.len() == 1028 && p[9] == 17
        });
        assert!(found, "no 1028-byte UDP packet");
        assert!(trusted, "kernel UDP checksum not vouched for");

        // Device -> host through `send` with the all-zero header.
        let port = sock.local_addr().unwrap().port();
        let mut udp = vec![0u8; 8 + 5];
        udp[0..2].copy_from_slice(&9u16.to_be_bytes());
        udp[2..4].copy_from_slice(&port.to_be_bytes());
        udp[4..6].copy_from_slice(&13u16.to_be_bytes());
        udp[8..].copy_from_slice(b"hello");
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(33u16).to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&peer.octets());
        p[16..20].copy_from_slice(&host.octets());
        let s = !sum16(0, &p);
        p[10..12].copy_from_slice(&s.to_be_bytes());
        link.send(&TxPacket::new(&[&p, &udp])).expect("send");
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 64];
        let (n, _) = sock.recv_from(&mut got).expect("datagram from the TUN");
        assert_eq!(&got[..n], b"hello");
        // send still refuses more than the MTU.
        assert!(link.send(&TxPacket::new(&[&[0x45; 1501]])).is_err());
        // ...and a super-frame without TSO is a configuration error.
        let mut plain = tun("ustk9", Ipv4Addr::new(10, 7, 0, 1), false);
        assert!(matches!(
            plain.send(&TxPacket {
                parts: &[&p],
                segment: Some(1000),
                partial_checksum: false,
            }),
            Err(ustack_link::LinkError::InvalidConfig(_))
        ));
    });
}

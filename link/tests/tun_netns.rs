//! Privileged tests against the real kernel, each inside its own network
//! namespace so that nothing leaks onto the host. They need root; set
//! `USTACK_SKIP_PRIVILEGED=1` to skip them elsewhere.
#![cfg(any(feature = "tun", feature = "raw"))]
// The helpers below serve both tests; with one backend some go unused.
#![cfg_attr(not(all(feature = "tun", feature = "raw")), allow(dead_code))]

#[allow(dead_code)]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{wait_readable, NetNs};
use ustack_link::{Link, TxPacket, MAX_PACKET_LEN};

/// Calls `recv` on `link` until `want` accepts a packet or `timeout`
/// passes; every packet seen is also shown to `each`.
fn recv_until(
    link: &mut impl Link,
    timeout: Duration,
    mut each: impl FnMut(&[u8]),
    mut want: impl FnMut(&[u8]) -> bool,
) -> bool {
    let fd = link.poll_fd().expect("an OS link has a poll fd");
    let deadline = Instant::now() + timeout;
    // Not just caps().max_rx_len(): a raw socket on loopback may see GSO
    // packets beyond the MTU.
    assert!(link.caps().max_rx_len() <= MAX_PACKET_LEN);
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        while let Some(p) = link.recv(&mut buf).expect("recv failed") {
            let n = p.len;
            each(&buf[..n]);
            if want(&buf[..n]) {
                return true;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        wait_readable(fd, left.as_millis().max(1) as i32);
    }
}

/// RFC 1071 Internet checksum over `chunks`, which must all be of even
/// length except the last (ustack-ipv4's, the one in ustack).
fn checksum(chunks: &[&[u8]]) -> u16 {
    use ustack_ipv4::checksum::{fold, sum};
    !fold(chunks.iter().fold(0, |acc, c| sum(c, acc)))
}

/// A 20-byte IPv4 header with a valid checksum.
fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&[&h]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

fn src_addr(p: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(p[12], p[13], p[14], p[15])
}

fn dst_addr(p: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(p[16], p[17], p[18], p[19])
}

/// The transport header of an IPv4 packet.
fn l4(p: &[u8]) -> &[u8] {
    &p[usize::from(p[0] & 0x0f) * 4..]
}

#[cfg(feature = "tun")]
#[test]
fn tun_carries_packets_both_ways_and_vanishes_on_drop() {
    use std::net::UdpSocket;
    use ustack_link::{LinkError, TunConfig, TunLink};

    const TEST: &str = "tun_carries_packets_both_ways_and_vanishes_on_drop";
    const DEV: &str = "ustk0";
    let Some(ns) = NetNs::create(TEST, "tun") else {
        return;
    };
    let host = Ipv4Addr::new(10, 9, 0, 1);
    let peer = Ipv4Addr::new(10, 9, 0, 2);

    let ns_name = ns.name.clone();
    ns.run(move || {
        let cfg = TunConfig {
            name: DEV.into(),
            host_addr: host,
            prefix_len: 24,
            mtu: 1400,
            offload: false,
        };
        let mut link = TunLink::create(&cfg).expect("create TUN device");
        assert_eq!(link.name(), DEV);
        assert_eq!(link.caps(), ustack_link::DeviceCaps::ip(1400));
        assert!(
            common::link_exists(&ns_name, DEV),
            "{DEV} missing while held"
        );

        // A second open of the same device is refused while we hold it.
        match TunLink::create(&cfg) {
            Err(e @ LinkError::Busy { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "TUN device ustk0: busy — another process holds it"
                )
            }
            other => panic!("expected Busy, got {other:?}"),
        }

        // Host -> device: the kernel routes a datagram for 10.9.0.2 into the TUN.
        let sock = UdpSocket::bind((host, 0)).expect("bind UDP socket");
        sock.send_to(b"ustack", (peer, 9))
            .expect("send UDP datagram");
        let found = recv_until(
            &mut link,
            Duration::from_secs(2),
            |_| {},
            |p| p[0] >> 4 == 4 && p[9] == 17 && src_addr(p) == host && dst_addr(p) == peer,
        );
        assert!(
            found,
            "no UDP packet 10.9.0.1 -> 10.9.0.2 on the TUN within 2 s"
        );
        assert!(link.stats().rx_packets >= 1);

        // Device -> host: a datagram we write is delivered to the UDP socket.
        let port = sock.local_addr().expect("local addr").port();
        let mut udp = [0u8; 8 + 5];
        udp[0..2].copy_from_slice(&9u16.to_be_bytes());
        udp[2..4].copy_from_slice(&port.to_be_bytes());
        udp[4..6].copy_from_slice(&13u16.to_be_bytes());
        udp[8..].copy_from_slice(b"hello"); // checksum 0: none (RFC 768)
                                            // Header and datagram in separate parts: one writev gathers them.
        let header = ipv4_header(peer, host, 17, udp.len());
        link.send(&TxPacket::new(&[&header, &udp[..8], &udp[8..]]))
            .expect("send into TUN");
        assert_eq!(link.stats().tx_packets, 1);
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 64];
        let (n, from) = sock
            .recv_from(&mut got)
            .expect("datagram written to the TUN");
        assert_eq!(&got[..n], b"hello");
        assert_eq!(from, (peer, 9).into());
        // `link` drops here, closing the fd.
    });

    // Closing the fd of a non-persistent TUN device removes it.
    let gone = (0..20).any(|_| {
        let gone = !ns.has_link(DEV);
        if !gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        gone
    });
    assert!(gone, "{DEV} still exists after the TunLink was dropped");
}

#[cfg(feature = "raw")]
#[test]
fn raw_link_gets_syn_ack_and_never_its_own_packets() {
    use std::net::{SocketAddrV4, TcpListener};
    use ustack_link::{RawConfig, RawLink};

    const TEST: &str = "raw_link_gets_syn_ack_and_never_its_own_packets";
    let Some(ns) = NetNs::create(TEST, "raw") else {
        return;
    };

    ns.run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind listener");
        let remote = match listener.local_addr().expect("listener addr") {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("unexpected listener address {other}"),
        };
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40123);
        let mut link = RawLink::open(&RawConfig {
            local,
            remote,
            mtu: 1500,
        })
        .expect("open raw link");

        let isn: u32 = 0x1234_5678;
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&local.port().to_be_bytes());
        tcp[2..4].copy_from_slice(&remote.port().to_be_bytes());
        tcp[4..8].copy_from_slice(&isn.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02; // SYN
        tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&local.ip().octets());
        pseudo[4..8].copy_from_slice(&remote.ip().octets());
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
        let sum = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        // Header and segment in separate parts: one sendmsg gathers them.
        let header = ipv4_header(*local.ip(), *remote.ip(), 6, tcp.len());
        link.send(&TxPacket::new(&[&header, &tcp]))
            .expect("send SYN");

        let mut ours = 0usize;
        let mut note_ours = |p: &[u8]| {
            if u16::from_be_bytes([l4(p)[0], l4(p)[1]]) == local.port() {
                ours += 1;
            }
        };
        let got_syn_ack = recv_until(&mut link, Duration::from_secs(2), &mut note_ours, |p| {
            let t = l4(p);
            let src_port = u16::from_be_bytes([t[0], t[1]]);
            let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
            src_port == remote.port() && t[13] & 0x12 == 0x12 && ack == isn.wrapping_add(1)
        });
        assert!(got_syn_ack, "no SYN-ACK from {remote} within 2 s");

        // The kernel answers that SYN-ACK with a RST from port 40123 (no
        // kernel socket owns it): our direction, so it must not show up.
        recv_until(
            &mut link,
            Duration::from_millis(300),
            &mut note_ours,
            |_| false,
        );
        assert_eq!(ours, 0, "received {ours} packet(s) sent from our own port");
        assert_eq!(link.stats().tx_packets, 1);
    });
}

/// Loopback hands a raw socket 64 KB super-packets, and a receive queue of
/// the default 208 KiB (`net.core.rmem_default`) holds three. With it, the
/// kernel retransmitted 5,600-6,500 segments of every 64 MB it echoed to a
/// release raw-client (one in eight), and two runs in four ended in a reset
/// or a timeout; with the larger queue, 0-2. The queue is what this checks:
/// it holds on any machine, where the losses depend on its speed.
#[cfg(feature = "raw")]
#[test]
fn raw_link_queues_many_super_packets() {
    use std::net::SocketAddrV4;
    use ustack_link::{RawConfig, RawLink};

    const TEST: &str = "raw_link_queues_many_super_packets";
    let Some(ns) = NetNs::create(TEST, "rawq") else {
        return;
    };
    let queue = ns.run(|| {
        let link = RawLink::open(&RawConfig {
            local: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40124),
            remote: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80),
            mtu: 1500,
        })
        .expect("open raw link");
        let fd = link.poll_fd().expect("a raw link has a descriptor");
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live, exclusively borrowed and sized
        // for SO_RCVBUF's int; `fd` is the link's open socket.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value
    });
    // The kernel reports twice what was asked (room for its bookkeeping).
    assert!(
        queue >= 4 << 20,
        "the raw socket's receive queue is {queue} bytes"
    );
}

/// What overflows the raw socket's queue while the link reads nothing is
/// counted in `rx_dropped`, and only what its filter took: a flood of
/// segments for its 4-tuple from a second raw link, over loopback.
#[cfg(feature = "raw")]
#[test]
fn raw_link_counts_kernel_drops_of_a_full_queue() {
    use std::net::SocketAddrV4;
    use ustack_link::{RawConfig, RawLink};

    const TEST: &str = "raw_link_counts_kernel_drops_of_a_full_queue";
    const SENT: u64 = 20_000;
    let Some(ns) = NetNs::create(TEST, "rawdrop") else {
        return;
    };
    let (stats, read) = ns.run(|| {
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40125);
        let remote = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 81);
        let open = |local, remote| {
            RawLink::open(&RawConfig {
                local,
                remote,
                mtu: 1500,
            })
            .expect("open raw link")
        };
        let mut link = open(local, remote);
        let mut flooder = open(remote, local);
        let mut segment = [0u8; 20 + 1000];
        segment[0..2].copy_from_slice(&remote.port().to_be_bytes());
        segment[2..4].copy_from_slice(&local.port().to_be_bytes());
        segment[12] = 5 << 4;
        segment[13] = 0x10; // ACK
        let header = ipv4_header(*remote.ip(), *local.ip(), 6, segment.len());
        for i in 0..SENT {
            flooder
                .send(&TxPacket::new(&[&header, &segment]))
                .unwrap_or_else(|e| panic!("segment {i}: {e}"));
        }
        let read = common::drain(&mut link, SENT);
        (link.stats(), read)
    });
    println!(
        "raw: {SENT} sent, {read} read, {} dropped",
        stats.rx_dropped
    );
    assert!(read > 0 && read < SENT, "{read} of {SENT} read");
    assert!(stats.rx_dropped > 0, "no drop counted: {stats:?}");
    // Whatever the kernel answers travels the other way: the filter turns
    // it away uncounted, so read + dropped is exactly what was sent.
    assert_eq!(read + stats.rx_dropped, SENT, "{stats:?}");
}

/// What overflows the TUN device's queue while the link reads nothing is
/// counted in `rx_dropped`: the kernel's TX drops of the interface.
#[cfg(feature = "tun")]
#[test]
fn tun_counts_kernel_drops_of_a_full_queue() {
    use std::net::UdpSocket;
    use ustack_link::{TunConfig, TunLink};

    const TEST: &str = "tun_counts_kernel_drops_of_a_full_queue";
    const SENT: u64 = 5_000;
    let Some(ns) = NetNs::create(TEST, "tundrop") else {
        return;
    };
    let (stats, read) = ns.run(|| {
        let host = Ipv4Addr::new(10, 9, 1, 1);
        let mut link = TunLink::create(&TunConfig {
            name: "ustk1".into(),
            host_addr: host,
            prefix_len: 24,
            mtu: 1500,
            offload: true,
        })
        .expect("create TUN device");
        let sock = UdpSocket::bind((host, 0)).expect("bind UDP socket");
        for i in 0..SENT {
            sock.send_to(&[0x5a; 1000], (Ipv4Addr::new(10, 9, 1, 2), 9))
                .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        }
        let read = common::drain(&mut link, SENT);
        (link.stats(), read)
    });
    println!(
        "tun: {SENT} sent, {read} read, {} dropped",
        stats.rx_dropped
    );
    // The queue (txqueuelen, 500 packets) holds a tenth of the flood.
    assert!(read > 0 && read < SENT, "{read} of {SENT} read");
    assert!(stats.rx_dropped > 0, "no drop counted: {stats:?}");
    // Each datagram read or counted once (a few IPv6 neighbour discovery
    // packets of the new interface may be among either).
    assert!(
        (SENT * 9 / 10..=SENT + 8).contains(&(read + stats.rx_dropped)),
        "{read} read + {} dropped of {SENT}",
        stats.rx_dropped
    );
}

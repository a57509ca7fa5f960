//! The AF_PACKET backend against the kernel over a veth pair, each end in a
//! namespace of its own: what the kernel drops because the link did not
//! read in time reaches [`LinkStats::rx_dropped`]. Needs root; set
//! `USTACK_SKIP_PRIVILEGED=1` to skip it elsewhere.
#![cfg(feature = "afpacket")]

#[allow(dead_code)]
mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;

use common::NetNs;
use ustack_link::{AfPacketConfig, AfPacketLink, Link, LinkStats, RingConfig};

const STACK: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// Far more than either receive path holds: a 256 KiB ring takes some 230
/// of these frames, the 8 MiB socket queue a few thousand.
const SENT: u64 = 20_000;

fn ip(ns: &NetNs, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", &ns.name])
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "`ip -n {} {}` failed: {}",
        ns.name,
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `veth-a` (no address: the link brings its own) in `a`, `veth-b` with
/// 10.1.0.1/24 in `b`.
fn veth_pair(a: &NetNs, b: &NetNs) {
    ip(
        a,
        &[
            "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", &b.name,
        ],
    );
    ip(a, &["link", "set", "veth-a", "up"]);
    ip(b, &["addr", "add", "10.1.0.1/24", "dev", "veth-b"]);
    ip(b, &["link", "set", "veth-b", "up"]);
}

/// Opens the link on `veth-a` in `a` with `rings`, floods it from `b` with
/// [`SENT`] UDP datagrams while it reads nothing, then drains it. Returns
/// the stats after the drain and after a second read of them.
fn flood_unread(tag: &str, rings: Option<RingConfig>) -> Option<(LinkStats, LinkStats)> {
    let test = format!("afpacket_kernel_drops_{tag}");
    let a = NetNs::create(&test, &format!("{tag}-a"))?;
    let b = NetNs::create(&test, &format!("{tag}-b"))?;
    veth_pair(&a, &b);
    let mut link = a.run(move || {
        AfPacketLink::open(&AfPacketConfig {
            iface: "veth-a".into(),
            addr: STACK,
            prefix_len: 24,
            gateway: None,
            mtu: None,
            rings,
        })
        .expect("open AF_PACKET on veth-a")
    });
    // A permanent neighbour entry: no ARP exchange, nothing but the flood.
    let (dst, mac) = (STACK.to_string(), link.mac().to_string());
    ip(
        &b,
        &[
            "neigh",
            "replace",
            &dst,
            "lladdr",
            &mac,
            "dev",
            "veth-b",
            "nud",
            "permanent",
        ],
    );
    b.run(|| {
        let sock = UdpSocket::bind((PEER, 0)).expect("bind UDP");
        let payload = [0x5au8; 1000];
        for i in 0..SENT {
            sock.send_to(&payload, (STACK, 9))
                .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        }
    });
    common::drain(&mut link, SENT);
    Some((link.stats(), link.stats()))
}

fn assert_drops_counted(tag: &str, rings: Option<RingConfig>) {
    let Some((stats, again)) = flood_unread(tag, rings) else {
        return;
    };
    let LinkStats {
        rx_packets,
        rx_dropped,
        ..
    } = stats;
    println!("{tag}: {SENT} sent, {rx_packets} read, {rx_dropped} dropped by the kernel");
    assert!(rx_packets > 0, "{tag}: nothing received: {stats:?}");
    assert!(
        rx_dropped > 0 && rx_packets < SENT,
        "{tag}: {SENT} sent unread, no drop counted: {stats:?}"
    );
    // Everything sent was either read or counted, once (the filter takes
    // nothing else); the kernel's veth and backlog may drop some before the
    // socket, never near a tenth here.
    let seen = rx_packets + rx_dropped;
    assert!(
        (SENT * 9 / 10..=SENT).contains(&seen),
        "{tag}: {rx_packets} read + {rx_dropped} dropped of {SENT}: {stats:?}"
    );
    // The kernel resets its counter when read; the link's total stays.
    assert_eq!(again.rx_dropped, rx_dropped, "{tag}: the count moved");
}

#[test]
fn afpacket_counts_kernel_drops_of_a_full_receive_ring() {
    let rings = RingConfig {
        rx_bytes: 256 << 10,
        ..RingConfig::default()
    };
    assert_drops_counted("ring", Some(rings));
}

#[test]
fn afpacket_counts_kernel_drops_of_a_full_socket_queue() {
    assert_drops_counted("queue", None);
}

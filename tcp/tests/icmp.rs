//! ICMP errors reaching TCP through the IP layer (RFC 1122 §4.2.3.9,
//! RFC 1191, RFC 5927): path-MTU discovery, a refused connect, and quotes
//! that must be ignored.

mod common;

use std::net::Ipv4Addr;

use common::{Dir, Net, A, B};
use ustack_ipv4::icmp::{msg_type, IcmpPacket};
use ustack_ipv4::{Ipv4Packet, Ipv4Repr};
use ustack_tcp::{SeqNumber, State, TcpError};

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);

/// An ICMP error from ROUTER to A quoting a TCP segment A sent to B:
/// `sport` → `dport` with sequence number `seq`, `len` bytes long.
fn icmp_to_a(
    msg: (u8, u8),
    rest: u32,
    sport: u16,
    dport: u16,
    seq: SeqNumber,
    len: u16,
) -> Vec<u8> {
    let quoted = Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol: 6,
        payload_len: usize::from(len) - 20,
        ttl: 63,
        ident: 9,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    let mut quote = vec![0u8; 28];
    quoted.emit(&mut Ipv4Packet::new_unchecked(&mut quote[..]));
    quote[20..22].copy_from_slice(&sport.to_be_bytes());
    quote[22..24].copy_from_slice(&dport.to_be_bytes());
    quote[24..28].copy_from_slice(&seq.0.to_be_bytes());
    let mut icmp = vec![msg.0, msg.1, 0, 0];
    icmp.extend_from_slice(&rest.to_be_bytes());
    icmp.extend_from_slice(&quote);
    IcmpPacket::new_unchecked(&mut icmp[..]).fill_checksum();
    let outer = Ipv4Repr {
        src_addr: ROUTER,
        dst_addr: A,
        protocol: 1,
        payload_len: icmp.len(),
        ttl: 64,
        ident: 10,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    let mut pkt = vec![0u8; outer.buffer_len()];
    outer.emit(&mut Ipv4Packet::new_unchecked(&mut pkt[..]));
    pkt[20..].copy_from_slice(&icmp);
    pkt
}

fn inject_into_a(net: &mut Net, pkt: &[u8]) {
    let now = net.now;
    net.a.handle_packet(now, pkt, &mut |_| {});
}

/// The first A→B segment carrying data: its sequence number.
fn first_data_seq(net: &Net) -> SeqNumber {
    net.log
        .iter()
        .find(|s| s.dir == Dir::AtoB && s.payload_len > 0)
        .and_then(|s| s.tcp)
        .expect("A sent data")
        .seq
}

#[test]
fn fragmentation_needed_lowers_the_path_mtu_and_the_transfer_goes_on() {
    let mut net = Net::new();
    // A path with a 1000-byte hop that drops what does not fit, silently
    // but for the ICMP error the test sends in the router's name.
    net.drop = Box::new(|s, _| {
        s.dir == Dir::AtoB && s.tcp.map_or(0, |t| t.header_len()) + s.payload_len + 20 > 1000
    });
    let l = net.b.listen(80, 4).unwrap();
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40000))
        .unwrap();
    let mut server = None;
    net.run_until(100, |n| {
        server = server.or_else(|| n.b.accept(l));
        server.is_some() && n.a.state(c) == Ok(State::Established)
    });
    let s = server.unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = net.a.send(c, &data).unwrap();
    net.step();
    let seq = first_data_seq(&net);
    inject_into_a(
        &mut net,
        &icmp_to_a((msg_type::DEST_UNREACHABLE, 4), 1000, 40000, 80, seq, 1500),
    );
    assert_eq!(net.a.stats().tcp_icmp_applied, 1);
    assert_eq!(net.a.path_mtu(c), Ok(1000));

    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    net.run_until(200_000, |n| {
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        if let Ok(k) = n.a.send(c, &data[sent.min(data.len())..]) {
            let _ = k;
        }
        got.len() >= sent
    });
    assert_eq!(&got[..sent], &data[..sent]);
    let after: Vec<_> = net
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.payload_len > 0)
        .skip_while(|x| x.tcp.map(|t| t.seq) != Some(seq) || x.payload_len > 948)
        .collect();
    assert!(
        after.iter().all(|x| x.payload_len <= 960),
        "a segment still exceeds the path MTU"
    );
}

#[test]
fn a_quote_outside_the_window_is_ignored() {
    let mut net = Net::new();
    let l = net.b.listen(80, 4).unwrap();
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40001))
        .unwrap();
    net.run_until(100, |n| n.a.state(c) == Ok(State::Established));
    let _ = net.b.accept(l);
    let far = SeqNumber(first_syn_seq(&net).0.wrapping_add(1 << 30));
    inject_into_a(
        &mut net,
        &icmp_to_a((msg_type::DEST_UNREACHABLE, 4), 600, 40001, 80, far, 1500),
    );
    inject_into_a(
        &mut net,
        &icmp_to_a((msg_type::DEST_UNREACHABLE, 3), 0, 40001, 80, far, 60),
    );
    // No connection on that tuple at all.
    inject_into_a(
        &mut net,
        &icmp_to_a((msg_type::DEST_UNREACHABLE, 3), 0, 555, 80, far, 60),
    );
    assert_eq!(net.a.stats().tcp_icmp_ignored, 3);
    assert_eq!(net.a.path_mtu(c), Ok(1500));
    assert_eq!(net.a.state(c), Ok(State::Established));
}

fn first_syn_seq(net: &Net) -> SeqNumber {
    net.log
        .iter()
        .find(|s| s.dir == Dir::AtoB && s.tcp.is_some_and(|t| t.flags.syn()))
        .and_then(|s| s.tcp)
        .expect("A sent a SYN")
        .seq
}

#[test]
fn port_unreachable_refuses_a_connect_in_syn_sent() {
    let mut net = Net::new();
    net.drop = Box::new(|s, _| s.dir == Dir::AtoB);
    let c = net
        .a
        .connect(net.now, Net::addr_b(81), Some(40002))
        .unwrap();
    net.step();
    let iss = first_syn_seq(&net);
    inject_into_a(
        &mut net,
        &icmp_to_a((msg_type::DEST_UNREACHABLE, 3), 0, 40002, 81, iss, 60),
    );
    assert_eq!(
        net.a.error(c),
        Ok(Some(TcpError::ConnectionRefused(Net::addr_b(81))))
    );
    assert_eq!(net.a.state(c), Ok(State::Closed));
}

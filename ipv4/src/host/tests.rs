use super::*;
use crate::icmp::msg_type;
use crate::{checksum, RxChecksum};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const TOY: u8 = 253; // RFC 3692 experimental protocol number

/// A transport that records what reaches it and sends what it is told.
#[derive(Default)]
struct Toy {
    iface: Option<Interface>,
    received: Vec<(Ipv4Repr, Vec<u8>, RxInfo)>,
    errors: Vec<(IcmpError, Ipv4Repr, Vec<u8>)>,
    to_send: Vec<(Vec<u8>, bool, Option<Tso>)>,
    /// Foreign destinations it captures.
    captures: Vec<Ipv4Addr>,
}

impl Transport for Toy {
    fn attach(&mut self, iface: &Interface) {
        self.iface = Some(*iface);
    }
    fn handles(&self, protocol: u8) -> bool {
        protocol == TOY
    }
    fn receive<O: IpSend>(&mut self, _: Instant, ip: &Ipv4Repr, p: &[u8], i: RxInfo, _: &mut O) {
        self.received.push((*ip, p.to_vec(), i));
    }
    fn icmp_error(&mut self, _: Instant, err: IcmpError, q: &Ipv4Repr, qp: &[u8]) {
        self.errors.push((err, *q, qp.to_vec()));
    }
    fn poll<O: IpSend>(&mut self, _: Instant, out: &mut O) {
        for (data, dont_frag, tso) in self.to_send.drain(..) {
            let (a, b) = data.split_at(data.len() / 2);
            out.send(&Outgoing {
                src: US,
                dst: PEER,
                protocol: TOY,
                payload: &[a, b],
                dont_frag,
                dscp_ecn: 0,
                tso,
                partial_checksum: false,
            });
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        None
    }
    fn takes_foreign_dst(&self, dst: Ipv4Addr, protocol: u8) -> bool {
        protocol == TOY && self.captures.contains(&dst)
    }
}

fn host(mtu: usize) -> IpStack<Toy> {
    let subnet = Ipv4Subnet::new(US, 24).unwrap();
    IpStack::new(IpConfig::new(subnet), DeviceCaps::ip(mtu), Toy::default())
}

fn packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        ident: 7,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    buf[20..].copy_from_slice(payload);
    buf
}

fn icmp_message(msg_type: u8, code: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(data);
    IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
    m
}

/// Runs one packet in and collects every packet out, each gathered whole.
fn input(h: &mut IpStack<Toy>, pkt: &[u8], info: RxInfo) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    h.handle_packet(Instant::ZERO, pkt, info, &mut |p| {
        out.push(p.parts.concat());
    });
    out
}

fn poll(h: &mut IpStack<Toy>) -> Vec<(Vec<u8>, Option<u16>)> {
    let mut out = Vec::new();
    h.poll(Instant::ZERO, &mut |p| {
        out.push((p.parts.concat(), p.segment))
    });
    out
}

#[test]
fn transport_learns_its_interface() {
    let h = host(1500);
    let iface = h.transport().iface.expect("attached");
    assert_eq!((iface.addr(), iface.caps.mtu), (US, 1500));
}

#[test]
fn echo_request_is_answered() {
    let mut h = host(1500);
    let req = icmp_message(msg_type::ECHO_REQUEST, 0, 0x1234_0007, b"ping data");
    let out = input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &req),
        RxInfo::default(),
    );
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let r = Ipv4Repr::parse(&ip).unwrap();
    assert_eq!(
        (r.src_addr, r.dst_addr, r.protocol),
        (US, PEER, protocol::ICMP)
    );
    let reply = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(reply.msg_type(), msg_type::ECHO_REPLY);
    assert_eq!((reply.echo_ident(), reply.echo_seq_no()), (0x1234, 7));
    assert_eq!(reply.data(), b"ping data");
    assert!(reply.verify_checksum());
    assert_eq!(h.ip_stats().icmp_echo_answered, 1);
}

#[test]
fn bad_icmp_is_counted_not_answered() {
    let mut h = host(1500);
    let mut req = icmp_message(msg_type::ECHO_REQUEST, 0, 1, b"x");
    req[8] ^= 0xff;
    assert!(input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &req),
        RxInfo::default()
    )
    .is_empty());
    assert!(input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &[8, 0]),
        RxInfo::default()
    )
    .is_empty());
    assert_eq!(h.ip_stats().icmp_rx_errors, 2);
}

#[test]
fn destination_and_source_filtering() {
    let mut h = host(1500);
    let other = Ipv4Addr::new(10, 0, 0, 3);
    input(&mut h, &packet(PEER, other, TOY, b"x"), RxInfo::default());
    for src in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 0, 0, 255),
    ] {
        input(&mut h, &packet(src, US, TOY, b"x"), RxInfo::default());
    }
    input(&mut h, &packet(PEER, US, 99, b"x"), RxInfo::default());
    input(&mut h, &[0x45, 0, 0], RxInfo::default());
    let s = h.ip_stats();
    assert_eq!(
        (
            s.rx_not_for_us,
            s.rx_bad_source,
            s.rx_unknown_protocol,
            s.rx_bad_header
        ),
        (1, 4, 1, 1)
    );
    assert!(h.transport().received.is_empty());
}

#[test]
fn transport_gets_its_datagrams_with_the_device_info() {
    let mut h = host(1500);
    let info = RxInfo {
        checksum: RxChecksum::Partial,
        gro_segment: Some(1448),
    };
    input(&mut h, &packet(PEER, US, TOY, b"hello"), info);
    let (repr, payload, got) = &h.transport().received[0];
    assert_eq!(
        (repr.src_addr, payload.as_slice(), *got),
        (PEER, &b"hello"[..], info)
    );
    assert_eq!(h.ip_stats().rx_delivered, 1);
}

#[test]
fn icmp_error_reaches_the_transport_that_sent_the_datagram() {
    let mut h = host(1500);
    let sent = packet(US, PEER, TOY, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let err = icmp_message(msg_type::DEST_UNREACHABLE, 4, 1280, &sent[..28]);
    input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &err),
        RxInfo::default(),
    );
    let (e, quoted, bytes) = &h.transport().errors[0];
    assert_eq!(*e, IcmpError::FragNeeded { next_hop_mtu: 1280 });
    assert_eq!((quoted.dst_addr, quoted.payload_len), (PEER, 10));
    assert_eq!(bytes.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);

    // A quote of a datagram we did not send, or of another protocol.
    let forged = packet(PEER, US, TOY, &[0; 8]);
    let err = icmp_message(msg_type::DEST_UNREACHABLE, 3, 0, &forged);
    input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &err),
        RxInfo::default(),
    );
    let udp = packet(US, PEER, protocol::UDP, &[0; 8]);
    let err = icmp_message(msg_type::TIME_EXCEEDED, 0, 0, &udp);
    input(
        &mut h,
        &packet(PEER, US, protocol::ICMP, &err),
        RxInfo::default(),
    );
    assert_eq!(h.transport().errors.len(), 1);
    assert_eq!(h.ip_stats().icmp_errors_ignored, 2);
}

#[test]
fn sends_gather_lists_with_a_header_and_fresh_ids() {
    let mut h = host(1500);
    h.transport_mut()
        .to_send
        .push((b"abcdef".to_vec(), true, None));
    h.transport_mut()
        .to_send
        .push((b"ghij".to_vec(), true, None));
    let out = poll(&mut h);
    let ids: Vec<u16> = out
        .iter()
        .map(|(p, _)| Ipv4Packet::new_checked(&p[..]).unwrap().ident())
        .collect();
    assert_eq!(ids[1], ids[0].wrapping_add(1));
    let ip = Ipv4Packet::new_checked(&out[0].0[..]).unwrap();
    let r = Ipv4Repr::parse(&ip).unwrap();
    assert!(r.dont_frag && ip.verify_checksum());
    assert_eq!(
        (r.src_addr, r.dst_addr, ip.payload()),
        (US, PEER, &b"abcdef"[..])
    );
}

#[test]
fn too_long_with_df_is_dropped_and_counted() {
    let mut h = host(576);
    h.transport_mut().to_send.push((vec![0; 600], true, None));
    assert!(poll(&mut h).is_empty());
    assert_eq!(h.ip_stats().tx_too_long, 1);
}

#[test]
fn tso_super_frames_pass_whole_and_take_one_id_per_segment() {
    let subnet = Ipv4Subnet::new(US, 24).unwrap();
    let caps = DeviceCaps {
        tso_max: 65535,
        ..DeviceCaps::ip(1500)
    };
    let mut h = IpStack::new(IpConfig::new(subnet), caps, Toy::default());
    let tso = Tso {
        segment: 1000,
        segments: 4,
    };
    h.transport_mut()
        .to_send
        .push((vec![1; 4000], true, Some(tso)));
    h.transport_mut().to_send.push((vec![2; 100], true, None));
    let out = poll(&mut h);
    assert_eq!(
        (out[0].0.len(), out[0].1, out[1].1),
        (4020, Some(1000), None)
    );
    let id = |p: &[u8]| Ipv4Packet::new_checked(p).unwrap().ident();
    assert_eq!(id(&out[1].0), id(&out[0].0).wrapping_add(4));
}

#[test]
fn large_echo_is_reassembled_and_answered_in_fragments() {
    let mut h = host(1500);
    let data: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let req = icmp_message(msg_type::ECHO_REQUEST, 0, 0x0001_0001, &data);
    let whole = packet(PEER, US, protocol::ICMP, &req);
    let repr = Ipv4Repr::parse(&Ipv4Packet::new_checked(&whole[..]).unwrap()).unwrap();
    let mut frags = Vec::new();
    frag::fragment(&repr, &req, 1500, |hdr, part| {
        frags.push([&hdr[..], part].concat())
    })
    .unwrap();
    assert_eq!(frags.len(), 3);
    let mut out = Vec::new();
    for f in frags.iter().rev() {
        out.extend(input(&mut h, f, RxInfo::default()));
    }
    assert_eq!(h.ip_stats().rx_reassembled, 1);
    assert_eq!(
        out.len(),
        3,
        "the 4028-byte reply leaves in three fragments"
    );
    let mut reply = vec![0u8; 8 + data.len()];
    for f in &out {
        assert!(f.len() <= 1500);
        let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert!(ip.verify_checksum() && !ip.dont_frag());
        let at = usize::from(ip.frag_offset());
        reply[at..at + ip.payload().len()].copy_from_slice(ip.payload());
    }
    assert_eq!(checksum::fold(checksum::sum(&reply, 0)), 0xffff);
    let reply = IcmpPacket::new_checked(&reply[..]).unwrap();
    assert_eq!(
        (reply.msg_type(), reply.data()),
        (msg_type::ECHO_REPLY, &data[..])
    );
    assert_eq!(h.ip_stats().tx_fragments, 3);
}

#[test]
fn a_fragment_flood_stays_in_budget_while_pings_are_answered() {
    let subnet = Ipv4Subnet::new(US, 24).unwrap();
    let mut cfg = IpConfig::new(subnet);
    cfg.frag.budget = 256 << 10;
    let mut h = IpStack::new(cfg, DeviceCaps::ip(1500), Toy::default());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut answered = 0;
    for i in 0..20_000u32 {
        let r = next();
        let len = 8 * (1 + (r % 180) as usize);
        let frag = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1 + (r >> 8) as u8 % 200),
            dst_addr: US,
            protocol: [protocol::ICMP, protocol::TCP, protocol::UDP][(r >> 16) as usize % 3],
            payload_len: len,
            ttl: 64,
            ident: (r >> 24) as u16,
            dont_frag: false,
            more_frags: r & (1 << 40) != 0,
            frag_offset: ((r >> 41) as u16 % 8000) * 8,
            dscp_ecn: 0,
        };
        let mut pkt = vec![0u8; frag.buffer_len()];
        frag.emit(&mut Ipv4Packet::new_unchecked(&mut pkt[..]));
        input(&mut h, &pkt, RxInfo::default());
        assert!(h.reassembly().memory() <= 256 << 10, "over budget at {i}");
        if i % 100 == 0 {
            let req = icmp_message(msg_type::ECHO_REQUEST, 0, i, b"still here?");
            answered += input(
                &mut h,
                &packet(PEER, US, protocol::ICMP, &req),
                RxInfo::default(),
            )
            .len();
        }
    }
    assert_eq!(answered, 200, "every ping during the flood was answered");
    assert!(
        h.reassembly().stats().evicted > 0,
        "the flood hit the budget"
    );
}

#[test]
fn foreign_destinations_reach_a_transport_only_when_it_captures_them() {
    let mut h = host(1500);
    let far = Ipv4Addr::new(192, 0, 2, 80);
    let other = Ipv4Addr::new(192, 0, 2, 81);
    // Without capture, a packet to another address is not for us.
    input(&mut h, &packet(PEER, far, TOY, b"a"), RxInfo::default());
    assert!(h.transport().received.is_empty());
    assert_eq!(h.ip_stats().rx_not_for_us, 1);

    h.transport_mut().captures = vec![far, Ipv4Addr::BROADCAST];
    input(&mut h, &packet(PEER, far, TOY, b"b"), RxInfo::default());
    input(&mut h, &packet(PEER, other, TOY, b"c"), RxInfo::default());
    // Broadcast is never captured, whatever the transport says.
    input(
        &mut h,
        &packet(PEER, Ipv4Addr::BROADCAST, TOY, b"d"),
        RxInfo::default(),
    );
    let got: Vec<_> = h
        .transport()
        .received
        .iter()
        .map(|(ip, p, _)| (ip.dst_addr, p.clone()))
        .collect();
    assert_eq!(got, vec![(far, b"b".to_vec())]);
    assert_eq!(h.ip_stats().rx_not_for_us, 3);

    // ICMP echo is answered for our own address only.
    let req = icmp_message(msg_type::ECHO_REQUEST, 0, 1, b"x");
    let out = input(
        &mut h,
        &packet(PEER, far, protocol::ICMP, &req),
        RxInfo::default(),
    );
    assert!(out.is_empty());
    assert_eq!(h.ip_stats().icmp_echo_answered, 0);
}

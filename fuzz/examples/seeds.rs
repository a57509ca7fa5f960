//! Writes the checked-in seed corpus, `fuzz/corpus/<target>/seed-*`: real
//! packets (a SYN, an ACK with timestamps and SACK, an RST, an ICMP echo
//! request and errors, a fragment pair, a header with options, an ARP
//! request), HTTP requests and a chunked body, and for the structured
//! targets the same wrapped in their `arbitrary` input layout.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use ustack_fuzz::{forge, A, B};
use ustack_ipv4::{checksum, Ipv4Packet, Ipv4Repr};
use ustack_tcp::wire::{Flags, SackBlock, SackBlocks, TcpOptions, TcpRepr};
use ustack_tcp::SeqNumber;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
}

/// The `arbitrary` tag selecting variant `k` of an enum of `n` variants.
fn tag(k: u64, n: u64) -> [u8; 4] {
    (k << 32).div_ceil(n).min(u64::from(u32::MAX)).to_le_bytes()[..4]
        .try_into()
        .expect("four bytes")
}

fn syn() -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNumber(0x3e1f_5a9c),
        ack: SeqNumber(0),
        flags: Flags::SYN,
        window: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x0098_a5e1, 0)),
            sack: SackBlocks::default(),
        },
    }
}

fn ack_ts_sack() -> TcpRepr {
    let mut sack = SackBlocks::default();
    sack.push(SackBlock {
        left: SeqNumber(2000),
        right: SeqNumber(3000),
    });
    sack.push(SackBlock {
        left: SeqNumber(4000),
        right: SeqNumber(5000),
    });
    TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNumber(0x3e1f_5a9d),
        ack: SeqNumber(1000),
        flags: Flags::ACK | Flags::PSH,
        window: 502,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some((0x0098_a600, 0x1234_5678)),
            sack,
            ..TcpOptions::default()
        },
    }
}

fn ipv4(protocol: u8, ident: u16, more: bool, offset: u16, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol,
        payload_len: l4.len(),
        ttl: 64,
        ident,
        dont_frag: !more && offset == 0,
        more_frags: more,
        frag_offset: offset,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(l4);
    p
}

fn icmp(msg_type: u8, code: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An IPv4 header with a record-route option (IHL 8).
fn with_options(l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x48, 0, 0, 0, 0, 9, 0, 0, 64, 6, 0, 0];
    p.extend_from_slice(&A.octets());
    p.extend_from_slice(&B.octets());
    p.extend_from_slice(&[7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(l4);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::checksum(&p[..32]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn arp(op: u16, sender: (u8, Ipv4Addr), target: ([u8; 6], Ipv4Addr), dst: [u8; 6]) -> Vec<u8> {
    let smac = [2, 0, 0, 0, 0, sender.0];
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&smac);
    f.extend_from_slice(&sender.1.octets());
    f.extend_from_slice(&target.0);
    f.extend_from_slice(&target.1.octets());
    f
}

/// `data` with the 1- or 2-byte zero length `arbitrary` reads from the end
/// for an empty collection in front of it.
fn empty_len_at_end(mut data: Vec<u8>) -> Vec<u8> {
    data.push(0);
    if data.len() > 257 {
        data.push(0);
    }
    data
}

const GET: &[u8] =
    b"GET /bytes/300 HTTP/1.1\r\nHost: 10.0.0.2\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const POST_HEAD: &[u8] =
    b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
const CHUNKED: &[u8] =
    b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: yes\r\n\r\n";
const HEAD10: &[u8] = b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";

fn main() {
    let syn_pkt = forge(A, B, &syn(), &[]);
    let ack_pkt = forge(A, B, &ack_ts_sack(), b"GET / HTTP/1.1\r\n\r\n");
    let rst_pkt = forge(A, B, &TcpRepr::rst(40000, 80, SeqNumber(7)), &[]);
    let echo = icmp(8, 0, 0x1234_0001, b"abcdefghijklmnopqrstuvwabcdefghi");
    let unreach = icmp(3, 3, 0, &syn_pkt[..28]);
    let frag_needed = icmp(3, 4, 576, &ack_pkt[..48]);
    // A 48-byte TCP segment in two fragments: 24 bytes, then 24.
    let l4 = &ack_pkt[20..68];
    let frag1 = ipv4(6, 77, true, 0, &l4[..24]);
    let frag2 = ipv4(6, 77, false, 24, &l4[24..]);
    let opts = with_options(&syn_pkt[20..]);

    for (name, p) in [
        ("syn", &syn_pkt),
        ("ack-ts-sack", &ack_pkt),
        ("echo", &ipv4(1, 5, false, 0, &echo)),
        ("frag1", &frag1),
        ("frag2", &frag2),
        ("options", &opts),
    ] {
        write("ipv4_header", name, p);
    }
    write("icmp", "echo", &echo);
    write("icmp", "port-unreachable", &unreach);
    write("icmp", "frag-needed", &frag_needed);
    write("icmp", "time-exceeded", &icmp(11, 0, 0, &ack_pkt[..28]));

    let addrs: Vec<u8> = A.octets().into_iter().chain(B.octets()).collect();
    for (name, p) in [
        ("syn", &syn_pkt),
        ("ack-ts-sack", &ack_pkt),
        ("rst", &rst_pkt),
    ] {
        write("tcp_header", name, &[&addrs[..], &p[20..]].concat());
    }

    for (name, h) in [
        ("get", GET),
        ("post-chunked", POST_HEAD),
        ("head-http10", HEAD10),
    ] {
        write("http_head", name, &[&[32u8][..], h].concat());
    }

    // http_chunked: limit, then the body; the empty split list's length last.
    write(
        "http_chunked",
        "body",
        &empty_len_at_end([&[64u8][..], CHUNKED].concat()),
    );
    write(
        "http_chunked",
        "last-chunk",
        &empty_len_at_end(b"\x10 0\r\n\r\n"[..].to_vec()),
    );

    // http_conn: max_header_bytes, max_headers, eof, no steps, the stream.
    let conn = |eof: u8, stream: &[u8]| [&[0x00, 0x20, 32, eof, 0][..], stream].concat();
    write("http_conn", "get", &conn(1, GET));
    write(
        "http_conn",
        "pipelined",
        &conn(0, &[GET, POST_HEAD, CHUNKED, HEAD10].concat()),
    );

    // ethernet_arp: limits, then ops (a continue byte before each): a
    // request for us, a packet to send, a reply; frame lengths from the end.
    let ours = Ipv4Addr::new(10, 1, 0, 2);
    let request = arp(
        1,
        (1, Ipv4Addr::new(10, 1, 0, 1)),
        ([0; 6], ours),
        [0xff; 6],
    );
    let reply = arp(
        2,
        (3, Ipv4Addr::new(10, 1, 0, 3)),
        ([2, 0, 0, 0, 0, 2], ours),
        [2, 0, 0, 0, 0, 2],
    );
    let mut e = vec![16, 4, 8, 3];
    e.push(1);
    e.extend_from_slice(&tag(0, 3));
    e.extend_from_slice(&request);
    e.push(1);
    e.extend_from_slice(&tag(1, 3));
    e.extend_from_slice(&[3, 60]);
    e.push(1);
    e.extend_from_slice(&tag(0, 3));
    e.extend_from_slice(&reply);
    e.push(0);
    e.push(reply.len() as u8);
    e.push(request.len() as u8);
    write("ethernet_arp", "request-send-reply", &e);

    // vnet_header: header, segment size, MTU, fix, the packet. A partial
    // checksum to finish (NEEDS_CSUM from byte 20, field at 16), and a GSO
    // TCPv4 super-frame header.
    let mut partial = ack_pkt.clone();
    let pseudo = checksum::fold(checksum::pseudo_header_sum(
        A,
        B,
        6,
        (partial.len() - 20) as u16,
    ));
    partial[36..38].copy_from_slice(&pseudo.to_be_bytes());
    let vnet = |flags: u8, gso: u8, hdr_len: u16, gso_size: u16| {
        let mut h = vec![flags, gso];
        for v in [hdr_len, gso_size, 20, 16] {
            h.extend_from_slice(&v.to_ne_bytes());
        }
        h
    };
    let tail = |seg: u16, mtu: u16| [seg.to_le_bytes(), mtu.to_le_bytes()].concat();
    write(
        "vnet_header",
        "needs-csum",
        &[vnet(1, 0, 0, 0), tail(1460, 1500), vec![0], partial.clone()].concat(),
    );
    write(
        "vnet_header",
        "gso-tcpv4",
        &[vnet(1, 1, 52, 8), tail(8, 1500), vec![0], partial].concat(),
    );
    write(
        "vnet_header",
        "data-valid",
        &[vnet(2, 0, 0, 0), tail(0, 0), vec![1], syn_pkt.clone()].concat(),
    );

    // ipv4_reassembly: budget, timeout, max fragments, then fragments
    // (datagram, offset in 8-byte units, length, more, no wrong length).
    let frag = |d: u8, off: u16, len: u16, more: bool| {
        let mut f = vec![1];
        f.extend_from_slice(&tag(0, 3));
        f.push(d);
        f.extend_from_slice(&off.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.push(u8::from(more));
        f.push(0);
        f
    };
    let mut r = vec![0x00, 0x10, 0x30, 0x75, 16];
    r.extend(frag(0, 0, 24, true));
    r.extend(frag(0, 3, 24, false));
    write("ipv4_reassembly", "pair", &r);
    let mut r = vec![0x00, 0x01, 0x30, 0x75, 4];
    r.extend(frag(1, 2, 16, false));
    r.extend(frag(1, 0, 16, true));
    r.extend(frag(1, 1, 8, true)); // overlap
    r.extend([1].iter().chain(&tag(1, 3)).chain(&[0x30, 0x75]));
    r.extend(frag(2, 0, 16, true));
    write("ipv4_reassembly", "reordered-overlap-timeout", &r);

    // stack: preset, connections, then operations (see the target's `Op`).
    const N: u64 = 16;
    let op = |k: u64, fields: &[u8]| [&[1u8][..], &tag(k, N), fields].concat();
    let s = [
        vec![0x00, 1],
        op(9, &[0, 0, 200, 0]), // A sends 200 bytes
        op(6, &[3]),            // exchange
        op(10, &[0, 1, 0, 1]),  // B reads
        op(9, &[0, 1, 0, 16]),  // B sends 4096
        op(6, &[3]),
        op(8, &[0x40, 0x42, 0x0f, 0, 0]), // one second passes
        op(12, &[0, 0]),                  // A closes
        op(6, &[7]),
    ]
    .concat();
    write("stack", "exchange-close", &s);
    let s = [
        vec![0x1d, 2],
        op(9, &[1, 0, 0xb0, 0x04]), // A sends 1200 bytes
        op(7, &[1]),                // lost on the way to B
        op(8, &[0x20, 0xa1, 0x07, 0, 0]),
        op(4, &[0, 20, 0x55, 0x55, 0x55, 0x55, 1]), // fragments, reversed
        op(5, &[0, 3, 4, 0, 0, 2, 0x40, 28]),       // frag needed, MTU 576
        op(3, &[1]),                                // replay
        op(6, &[4]),
        op(14, &[]),
        op(15, &[0x50, 0]),
        op(6, &[2]),
    ]
    .concat();
    write("stack", "loss-fragments-icmp", &s);
}

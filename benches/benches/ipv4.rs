//! IPv4 header work per packet for a full-sized (1500-byte) TCP packet:
//! validate and parse (header checksum included), and emit (checksum filled),
//! by ustack and by smoltcp on the same bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, Ipv4Packet as SmolPacket, Ipv4Repr as SmolRepr};
use ustack_benches::{pattern, CLIENT_ADDR, SERVER_ADDR};
use ustack_ipv4::{protocol, Ipv4Packet, Ipv4Repr};

const PACKET_LEN: usize = 1500;

fn repr() -> Ipv4Repr {
    Ipv4Repr {
        src_addr: SERVER_ADDR,
        dst_addr: CLIENT_ADDR,
        protocol: protocol::TCP,
        payload_len: PACKET_LEN - Ipv4Repr::HEADER_LEN,
        ttl: 64,
        ident: 0x1234,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
}

fn smol_repr() -> SmolRepr {
    SmolRepr {
        src_addr: SERVER_ADDR,
        dst_addr: CLIENT_ADDR,
        next_header: IpProtocol::Tcp,
        payload_len: PACKET_LEN - Ipv4Repr::HEADER_LEN,
        hop_limit: 64,
    }
}

fn bench_ipv4(c: &mut Criterion) {
    let repr = repr();
    let smol = smol_repr();
    // Compute and verify header checksums, as ustack always does.
    let caps = ChecksumCapabilities::default();
    let mut packet = pattern(PACKET_LEN);
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut packet[..]));
    // What is measured must be the success path for both: check it once up front.
    let parsed = Ipv4Packet::new_checked(&packet[..])
        .and_then(|p| Ipv4Repr::parse(&p))
        .expect("emitted header must parse");
    assert_eq!(parsed, repr);
    let smol_parsed = SmolPacket::new_checked(&packet[..])
        .and_then(|p| SmolRepr::parse(&p, &caps))
        .expect("smoltcp must accept the same header");
    assert_eq!(smol_parsed, smol);

    let mut group = c.benchmark_group("ipv4");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("parse_1500", "ustack"), |b| {
        b.iter(|| {
            let p = Ipv4Packet::new_checked(black_box(&packet[..])).ok()?;
            Ipv4Repr::parse(&p).ok()
        })
    });
    group.bench_function(BenchmarkId::new("parse_1500", "smoltcp"), |b| {
        b.iter(|| {
            let p = SmolPacket::new_checked(black_box(&packet[..])).ok()?;
            SmolRepr::parse(&p, &caps).ok()
        })
    });
    let mut out = packet.clone();
    group.bench_function(BenchmarkId::new("emit_1500", "ustack"), |b| {
        b.iter(|| {
            let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
            black_box(&repr).emit(&mut p);
            black_box(&mut out);
        })
    });
    group.bench_function(BenchmarkId::new("emit_1500", "smoltcp"), |b| {
        b.iter(|| {
            let mut p = SmolPacket::new_unchecked(&mut out[..]);
            black_box(&smol).emit(&mut p, &caps);
            black_box(&mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ipv4);
criterion_main!(benches);

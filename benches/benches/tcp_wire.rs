//! TCP header work per full-sized data segment (1460-byte payload, with the
//! timestamp and two SACK blocks a loss-recovering bulk flow carries):
//! validate, verify the checksum and parse; and emit plus fill the checksum.
//! Both touch every payload byte through the checksum. smoltcp does the same
//! on the same bytes; its `TcpRepr::emit` also copies the payload into place
//! (ustack's leaves the payload where the caller wrote it), about one memcpy
//! of 1460 bytes more.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, TcpControl, TcpPacket as SmolPacket, TcpRepr as SmolRepr, TcpSeqNumber,
    TcpTimestampRepr,
};
use ustack_benches::{pattern, CLIENT_ADDR, SERVER_ADDR};
use ustack_tcp::wire::{Flags, SackBlock, SackBlocks, TcpOptions, TcpPacket, TcpRepr};
use ustack_tcp::SeqNumber;

const PAYLOAD_LEN: usize = 1460;
const SACK: [(u32, u32); 2] = [(3_000_000, 3_002_920), (3_005_840, 3_008_760)];
const TIMESTAMPS: (u32, u32) = (123_456, 654_321);

fn repr() -> TcpRepr {
    let mut sack = SackBlocks::default();
    for (left, right) in SACK {
        sack.push(SackBlock {
            left: SeqNumber(left),
            right: SeqNumber(right),
        });
    }
    TcpRepr {
        src_port: 80,
        dst_port: 49_152,
        seq: SeqNumber(1_000_000),
        ack: SeqNumber(2_999_000),
        flags: Flags::ACK | Flags::PSH,
        window: 512,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(TIMESTAMPS),
            sack,
            ..TcpOptions::default()
        },
    }
}

fn smol_repr(payload: &[u8]) -> SmolRepr<'_> {
    SmolRepr {
        src_port: 80,
        dst_port: 49_152,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(1_000_000),
        ack_number: Some(TcpSeqNumber(2_999_000)),
        window_len: 512,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [Some(SACK[0]), Some(SACK[1]), None],
        timestamp: Some(TcpTimestampRepr::new(TIMESTAMPS.0, TIMESTAMPS.1)),
        payload,
    }
}

fn bench_tcp_wire(c: &mut Criterion) {
    let repr = repr();
    let header_len = repr.header_len();
    let mut segment = pattern(header_len + PAYLOAD_LEN);
    {
        let mut p = TcpPacket::new_unchecked(&mut segment[..]);
        repr.emit(&mut p);
        p.fill_checksum(SERVER_ADDR, CLIENT_ADDR);
    }
    // The measured path must be the success path, with the options intact.
    let p = TcpPacket::new_checked(&segment[..]).expect("emitted segment must be valid");
    assert!(p.verify_checksum(SERVER_ADDR, CLIENT_ADDR));
    assert_eq!(TcpRepr::parse(&p), Ok(repr));
    assert_eq!(p.payload().len(), PAYLOAD_LEN);

    let (src, dst) = (IpAddress::Ipv4(SERVER_ADDR), IpAddress::Ipv4(CLIENT_ADDR));
    let caps = ChecksumCapabilities::default();
    let payload = segment[header_len..].to_vec();
    let smol = smol_repr(&payload);
    let parsed = SmolPacket::new_checked(&segment[..])
        .and_then(|p| SmolRepr::parse(&p, &src, &dst, &caps))
        .expect("smoltcp must accept the same segment");
    assert_eq!(parsed, smol);
    // smoltcp lays the options out more tightly (48 header bytes, not 52), so
    // it emits into a buffer of its own size.
    let mut smol_out = vec![0u8; smol.buffer_len()];

    let mut group = c.benchmark_group("tcp_wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("parse_1460_ts_sack", "ustack"), |b| {
        b.iter(|| {
            let p = TcpPacket::new_checked(black_box(&segment[..])).ok()?;
            if !p.verify_checksum(SERVER_ADDR, CLIENT_ADDR) {
                return None;
            }
            TcpRepr::parse(&p).ok()
        })
    });
    group.bench_function(BenchmarkId::new("parse_1460_ts_sack", "smoltcp"), |b| {
        b.iter(|| {
            let p = SmolPacket::new_checked(black_box(&segment[..])).ok()?;
            SmolRepr::parse(&p, &src, &dst, &caps)
                .ok()
                .map(|r| r.seq_number)
        })
    });
    let mut out = segment.clone();
    group.bench_function(BenchmarkId::new("emit_1460_ts_sack", "ustack"), |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut out[..]);
            black_box(&repr).emit(&mut p);
            p.fill_checksum(SERVER_ADDR, CLIENT_ADDR);
            black_box(&mut out);
        })
    });
    group.bench_function(BenchmarkId::new("emit_1460_ts_sack", "smoltcp"), |b| {
        b.iter(|| {
            let mut p = SmolPacket::new_unchecked(&mut smol_out[..]);
            black_box(&smol).emit(&mut p, &src, &dst, &caps);
            black_box(&mut smol_out);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tcp_wire);
criterion_main!(benches);

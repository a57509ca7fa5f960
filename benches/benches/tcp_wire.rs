//! TCP header work per full-sized data segment (1460-byte payload, with the
//! timestamp and SACK options a loss-recovering bulk flow carries): validate,
//! verify the checksum and parse; and emit plus fill the checksum. Both touch
//! every payload byte through the checksum.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ustack_benches::{pattern, CLIENT_ADDR, SERVER_ADDR};
use ustack_tcp::wire::{Flags, SackBlock, SackBlocks, TcpOptions, TcpPacket, TcpRepr};
use ustack_tcp::SeqNumber;

const PAYLOAD_LEN: usize = 1460;

fn repr() -> TcpRepr {
    let mut sack = SackBlocks::default();
    for (left, right) in [(3_000_000, 3_002_920), (3_005_840, 3_008_760)] {
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
            timestamps: Some((123_456, 654_321)),
            sack,
            ..TcpOptions::default()
        },
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

    let mut group = c.benchmark_group("tcp_wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_1460_ts_sack", |b| {
        b.iter(|| {
            let p = TcpPacket::new_checked(black_box(&segment[..])).ok()?;
            if !p.verify_checksum(SERVER_ADDR, CLIENT_ADDR) {
                return None;
            }
            TcpRepr::parse(&p).ok()
        })
    });
    let mut out = segment.clone();
    group.bench_function("emit_1460_ts_sack", |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut out[..]);
            black_box(&repr).emit(&mut p);
            p.fill_checksum(SERVER_ADDR, CLIENT_ADDR);
            black_box(&mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tcp_wire);
criterion_main!(benches);

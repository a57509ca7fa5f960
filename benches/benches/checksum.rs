//! RFC 1071 Internet checksum throughput: ustack's, smoltcp's
//! (`smoltcp::wire::checksum::data`) and a plain copy of the same buffer.
//! All three read every byte once, so the copy is the memory-bandwidth
//! reference a checksum should come close to.
//!
//! Sizes: 20 B (an IPv4 header), 64 B and 128 B (TCP headers with options,
//! pure ACKs, small segments: ustack's short path), 1500 B (a full packet)
//! and 64 KiB (the lanes' steady state).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ustack_benches::pattern;
use ustack_ipv4::checksum::checksum;

fn bench_checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for (name, len) in [
        ("20", 20),
        ("64", 64),
        ("128", 128),
        ("1500", 1500),
        ("64KiB", 64 * 1024),
    ] {
        let data = pattern(len);
        // Both compute the same sum; `data` is the folded sum, not complemented.
        assert_eq!(checksum(&data), !smoltcp::wire::checksum::data(&data));
        let mut copy = vec![0u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("ustack", name), &data, |b, data| {
            b.iter(|| checksum(black_box(data)))
        });
        group.bench_with_input(BenchmarkId::new("smoltcp", name), &data, |b, data| {
            b.iter(|| smoltcp::wire::checksum::data(black_box(data)))
        });
        group.bench_with_input(BenchmarkId::new("memcpy", name), &data, |b, data| {
            b.iter(|| {
                copy.copy_from_slice(black_box(data));
                black_box(&mut copy);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_checksum);
criterion_main!(benches);

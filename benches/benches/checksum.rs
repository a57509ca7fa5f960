//! RFC 1071 Internet checksum throughput, next to a plain copy of the same
//! buffer: both read every byte once, so the copy is the memory-bandwidth
//! reference the checksum should come close to.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ustack_benches::pattern;
use ustack_ipv4::checksum::checksum;

fn bench_checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for (name, len) in [("64", 64), ("1500", 1500), ("64KiB", 64 * 1024)] {
        let data = pattern(len);
        let mut copy = vec![0u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("checksum", name), &data, |b, data| {
            b.iter(|| checksum(black_box(data)))
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

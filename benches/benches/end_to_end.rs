//! Bulk TCP throughput through two whole stacks: 16 MiB per iteration from
//! the server (10.0.0.1:80) to the client (10.0.0.2) over an in-memory pipe
//! (MTU 1500) on one thread with a virtual clock. Every byte crosses both
//! applications' buffers, both TCP engines, IPv4 emit/parse, both checksums
//! and the pipe's copies, so this is the stack's single-core ceiling.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ustack_benches::{pattern, PipePair};

const MTU: usize = 1500;
/// Packets each direction of the pipe holds: more than a full receive window
/// of segments, so the pipe itself never drops.
const PIPE_CAPACITY: usize = 256;
const TRANSFER_LEN: u64 = 16 << 20;
/// The sending application's buffer, written over and over.
const SOURCE_LEN: usize = 64 * 1024;

fn bench_end_to_end(c: &mut Criterion) {
    let source = pattern(SOURCE_LEN);
    let mut pair = PipePair::new(MTU, PIPE_CAPACITY).unwrap_or_else(|e| panic!("setup: {e}"));

    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Bytes(TRANSFER_LEN));
    // One iteration is tens of milliseconds; criterion's minimum of ten
    // samples keeps a short run short.
    group.sample_size(10);
    group.bench_function("bulk_16MiB", |b| {
        b.iter(|| {
            let mut delivered = 0u64;
            let received = pair
                .transfer(TRANSFER_LEN, &source, |chunk| {
                    delivered += black_box(chunk).len() as u64;
                })
                .unwrap_or_else(|e| panic!("transfer: {e}"));
            // A stalled or short transfer must fail the run, not look fast.
            assert_eq!((received, delivered), (TRANSFER_LEN, TRANSFER_LEN));
        })
    });
    group.finish();

    let (server, client) = pair.link_stats();
    eprintln!(
        "end_to_end: server sent {} packets ({} dropped), client sent {} packets ({} dropped)",
        server.tx_packets, server.tx_dropped, client.tx_packets, client.tx_dropped
    );
}

criterion_group!(benches, bench_end_to_end);
criterion_main!(benches);

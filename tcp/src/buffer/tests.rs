//! Rings, growth and the pool.

use proptest::prelude::*;

use super::*;

#[test]
fn wraps_and_preserves_order() {
    let mut r = RingBuffer::new(8);
    assert_eq!(r.write(b"abcdef"), 6);
    let mut out = [0u8; 4];
    assert_eq!(r.read(&mut out), 4);
    assert_eq!(&out, b"abcd");
    assert_eq!(r.write(b"ghijklmn"), 6);
    assert_eq!(r.free(), 0);
    let mut all = [0u8; 8];
    assert_eq!(r.peek(0, &mut all), 8);
    assert_eq!(&all, b"efghijkl");
    let mut mid = [0u8; 3];
    assert_eq!(r.peek(2, &mut mid), 3);
    assert_eq!(&mid, b"ghi");
    r.consume(8);
    assert!(r.is_empty());
}

#[test]
fn write_with_uses_contiguous_space_only() {
    let mut r = RingBuffer::new(8);
    r.write(b"123456");
    r.consume(4);
    let n = r.write_with(|free| {
        assert_eq!(free.len(), 2);
        free.copy_from_slice(b"78");
        2
    });
    assert_eq!(n, 2);
    assert_eq!(r.write_with(|free| free.len()), 4);
    assert_eq!(r.len(), 8);
}

#[test]
fn read_with_sees_contiguous_run_and_consumes_what_it_returns() {
    let mut r = RingBuffer::new(8);
    r.write(b"abcdefgh");
    r.consume(6);
    r.write(b"ij");
    assert_eq!(
        r.read_with(|d| {
            assert_eq!(d, b"gh");
            1
        }),
        1
    );
    assert_eq!(r.read_with(|d| d.len()), 1);
    assert_eq!(
        r.read_with(|d| {
            assert_eq!(d, b"ij");
            2
        }),
        2
    );
    assert!(r.is_empty());
}

#[test]
fn write_at_holds_data_until_committed() {
    let mut r = RingBuffer::new(8);
    r.write(b"abcdef");
    r.consume(5);
    assert_eq!(r.write_at(2, b"XYZW"), 4);
    assert_eq!(r.len(), 1);
    assert_eq!(r.write(b"gh"), 2);
    r.commit(4);
    let mut out = [0u8; 8];
    assert_eq!(r.read(&mut out), 7);
    assert_eq!(&out[..7], b"fghXYZW");
    assert_eq!(r.write_at(8, b"x"), 0, "beyond capacity");
}

#[test]
fn out_of_order_data_survives_the_reader_emptying_the_buffer() {
    let mut r = RingBuffer::new(16);
    r.write(b"abc");
    r.write_at(2, b"fg");
    let mut out = [0u8; 3];
    assert_eq!(r.read(&mut out), 3, "reader drains everything contiguous");
    r.write(b"de");
    r.commit(2);
    let mut rest = [0u8; 4];
    assert_eq!(r.read(&mut rest), 4);
    assert_eq!(&rest, b"defg");
}

#[test]
fn peek_past_end_copies_nothing() {
    let mut r = RingBuffer::new(4);
    r.write(b"ab");
    assert_eq!(r.peek(2, &mut [0u8; 4]), 0);
    assert_eq!(r.peek(5, &mut [0u8; 4]), 0);
}

#[test]
fn storage_comes_and_goes_with_the_data() {
    let mut pool = BufferPool::new(1 << 20);
    let mut r = RingBuffer::unallocated(8192);
    assert_eq!(
        (r.storage_bytes(), r.free()),
        (0, 8192),
        "window without memory"
    );
    assert_eq!(r.write(b"x"), 0, "nothing is stored without storage");
    r.attach(pool.take(r.capacity()).unwrap()).unwrap();
    assert_eq!(pool.allocated(), 8192);
    r.write(b"abc");
    assert!(r.detach().is_none(), "storage with queued bytes stays");
    r.consume(3);
    let s = r.detach().unwrap();
    assert_eq!((r.storage_bytes(), r.capacity()), (0, 8192));
    pool.give(s);
    assert_eq!(pool.held_bytes(), 8192, "pooled for the next taker");
    let again = pool.take(8192).unwrap();
    assert_eq!(
        (pool.held_bytes(), pool.allocated()),
        (0, 8192),
        "recycled, not allocated"
    );
    r.attach(again).unwrap();
    assert_eq!(r.peek(0, &mut [0u8; 8]), 0, "old bytes are not readable");
}

#[test]
fn growth_keeps_queued_and_out_of_order_bytes_in_place() {
    let mut r = RingBuffer::new(8);
    r.write(b"abcdef");
    r.consume(5);
    r.write(b"gh");
    r.write_at(2, b"XY"); // wraps: head 5, "fgh" queued, gap of 2, then XY
    let old = r.grow_into(16, Some(vec![0; 16].into_boxed_slice()));
    assert_eq!(old.len(), 8);
    assert_eq!(r.capacity(), 16);
    r.write(b"ij");
    r.commit(2);
    r.write_at(0, b"more");
    r.commit(4);
    let mut out = [0u8; 16];
    assert_eq!(r.read(&mut out), 11);
    assert_eq!(&out[..11], b"fghijXYmore");
}

#[test]
fn budget_is_never_exceeded_and_pressure_is_reported() {
    let mut pool = BufferPool::new(64 * 1024);
    let mut held = Vec::new();
    while let Some(b) = pool.take(8192) {
        held.push(b);
        assert!(pool.allocated() <= pool.budget());
    }
    assert_eq!(held.len(), 8);
    assert!(pool.under_pressure());
    assert!(!pool.may_grow(1));
    assert_eq!(pool.stats().refused, 1);
    assert_eq!(pool.stats().pressure_events, 1);
    for b in held.drain(..) {
        pool.give(b);
    }
    assert!(!pool.under_pressure());
    assert!(pool.held_bytes() <= pool.budget() / 8, "pool bounded");
}

#[test]
fn pooled_storage_of_another_size_is_freed_to_make_room() {
    let mut pool = BufferPool::new(64 * 1024);
    let small = pool.take(4096).unwrap();
    pool.give(small);
    assert_eq!(pool.held_bytes(), 4096);
    let big = pool.take(60 * 1024).unwrap();
    assert_eq!(big.len(), 64 * 1024, "sizes round up to a power of two");
    assert_eq!((pool.held_bytes(), pool.allocated()), (0, 64 * 1024));
    assert!(pool.take(4096).is_none(), "the budget is spent");
}

/// Operations on a ring and on the model it must agree with.
#[derive(Debug, Clone)]
enum Op {
    Write(Vec<u8>),
    WriteAt(usize, Vec<u8>),
    Commit(usize),
    Consume(usize),
    Grow,
    GrowInPlace(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let data = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        data.clone().prop_map(Op::Write),
        (0usize..64, data).prop_map(|(o, d)| Op::WriteAt(o, d)),
        (0usize..40).prop_map(Op::Commit),
        (0usize..40).prop_map(Op::Consume),
        Just(Op::Grow),
        (1usize..16).prop_map(Op::GrowInPlace),
    ]
}

proptest! {
    /// The ring, grown at random points, holds what a plain queue holds,
    /// and bytes placed past the end come out where they were put.
    #[test]
    fn ring_with_growth_matches_a_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut r = RingBuffer::unallocated(16);
        r.attach(vec![0; 64].into_boxed_slice()).unwrap();
        let mut readable: std::collections::VecDeque<Option<u8>> = Default::default();
        // Bytes past the end, by offset; None where nothing was written.
        let mut future: Vec<Option<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Write(d) => {
                    let n = r.write(&d);
                    prop_assert_eq!(n, d.len().min(r.capacity() - readable.len()));
                    readable.extend(d[..n].iter().map(|&b| Some(b)));
                    future.drain(..n.min(future.len()));
                }
                Op::WriteAt(off, d) => {
                    let n = r.write_at(off, &d);
                    let room = r.capacity() - readable.len();
                    prop_assert_eq!(n, if off >= room { 0 } else { d.len().min(room - off) });
                    if future.len() < off + n {
                        future.resize(off + n, None);
                    }
                    for (i, &b) in d[..n].iter().enumerate() {
                        future[off + i] = Some(b);
                    }
                }
                Op::Commit(n) => {
                    let n = n.min(r.capacity() - readable.len());
                    r.commit(n);
                    future.resize(future.len().max(n), None);
                    readable.extend(future.drain(..n));
                }
                Op::Consume(n) => {
                    r.consume(n);
                    readable.drain(..n.min(readable.len()));
                }
                Op::Grow => {
                    let limit = r.capacity() * 2;
                    let bigger = vec![0; ring_size(limit)].into_boxed_slice();
                    let old = r.grow_into(limit, Some(bigger));
                    prop_assert!(old.len() >= limit / 2);
                    prop_assert_eq!(r.capacity(), limit);
                }
                Op::GrowInPlace(more) => {
                    let before = r.capacity();
                    let old = r.grow_into(before + more, None);
                    prop_assert!(old.is_empty());
                    prop_assert!(r.capacity() == before || r.capacity() == before + more);
                    prop_assert!(r.capacity() <= r.storage_bytes());
                }
            }
            prop_assert_eq!(r.len(), readable.len());
            let mut all = vec![0u8; r.len()];
            r.peek(0, &mut all);
            for (got, want) in all.iter().zip(&readable) {
                if let Some(w) = want {
                    prop_assert_eq!(got, w);
                }
            }
        }
    }
}

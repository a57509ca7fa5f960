//! Proves that a `PipeEnd` allocates nothing per packet once its queues have
//! been as deep as they get (a slot's buffer is allocated on first use).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ustack_link::{pipe, pipe_tso, Link, RxChecksum, TxPacket};

/// Counts allocations made by the current thread only, so that the test
/// harness's own threads cannot disturb the count.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; see the impl's comment.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_state_send_recv_does_not_allocate() {
    let (mut a, mut b) = pipe(1500, 64);
    let packet = [0x45u8; 1500];
    let mut buf = [0u8; 1500];

    // Warm-up: fill and drain once, including a drop on a full queue.
    for _ in 0..65 {
        a.send(&TxPacket::new(&[&packet])).unwrap();
    }
    while b.recv(&mut buf).unwrap().is_some() {}
    b.send(&TxPacket::new(&[&packet])).unwrap();
    assert!(a.recv(&mut buf).unwrap().is_some());

    // The counter does see this thread's allocations.
    let probe = allocations();
    drop(std::hint::black_box(Box::new(7u8)));
    assert!(allocations() > probe, "allocation counter is not counting");

    let before = allocations();
    for i in 0..10_000usize {
        let len = 40 + i % 1400;
        // Headers and payload in separate parts, as a stack sends them.
        a.send(&TxPacket::new(&[&packet[..40], &packet[40..len]]))
            .unwrap();
        assert_eq!(b.recv(&mut buf).unwrap().map(|p| p.len), Some(len));
        b.send(&TxPacket::new(&[&packet[..len]])).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap().map(|p| p.len), Some(len));
    }
    let after = allocations();

    assert_eq!(after - before, 0, "pipe allocated in steady state");
    assert_eq!(b.stats().rx_packets, 64 + 10_000);
    assert_eq!(a.stats().tx_dropped, 1);
}

/// A TCP/IPv4 super-frame of `len` bytes whose checksum field holds the
/// pseudo-header sum, as a TSO `send` wants it.
fn superframe(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    p[16..20].copy_from_slice(&[10, 0, 0, 1]);
    p[32] = 5 << 4;
    p[33] = 0x10;
    let mut sum = 0u32;
    for w in p[12..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    sum += 6 + (len as u32 - 20);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[36..38].copy_from_slice(&(sum as u16).to_be_bytes());
    p
}

#[test]
fn steady_state_superframes_do_not_allocate() {
    let (mut a, mut b) = pipe_tso(1500, 8, 65535);
    let frames: Vec<Vec<u8>> = [65535, 40_000, 3000, 40]
        .iter()
        .map(|&n| superframe(n))
        .collect();
    let packet = [0x45u8; 1500];
    let mut buf = vec![0u8; 65535];
    // Warm-up: the two slots the loop below keeps in flight.
    a.send(&TxPacket::new(&[&packet])).unwrap();
    a.send(&TxPacket::new(&[&packet])).unwrap();
    while b.recv(&mut buf).unwrap().is_some() {}

    let before = allocations();
    for i in 0..1000usize {
        let sf = &frames[i % frames.len()];
        a.send(&TxPacket {
            parts: &[&sf[..40], &sf[40..]],
            segment: Some(1460),
            partial_checksum: false,
        })
        .unwrap();
        a.send(&TxPacket::new(&[&packet])).unwrap();
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(got.len, sf.len());
        assert_eq!(got.info.checksum, RxChecksum::Partial);
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(got.len, 1500);
        assert_eq!(got.info.checksum, RxChecksum::Unverified);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "pipe allocated in steady state");
}

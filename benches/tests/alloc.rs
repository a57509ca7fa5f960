//! Zero heap allocations per packet in steady state: two stacks over the
//! in-memory pipe, warmed up with 4 MB at a time until their buffers have
//! stopped growing (buffers and RACK's records grow by doubling: a few
//! allocations per connection lifetime, none per packet), then 16 MB more
//! with every allocation counted. Any allocation in the measured phase fails the test;
//! with `USTACK_ALLOC_BACKTRACE=1` the first few are printed with a backtrace
//! so the call site can be found.
//!
//! One test in this file on purpose: the counter is global, and a second test
//! running on another thread would be counted too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ustack_benches::{pattern, PipePair, Read};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BACKTRACES_LEFT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while a backtrace is being captured: it allocates itself.
    static IN_BACKTRACE: Cell<bool> = const { Cell::new(false) };
}

impl Counting {
    fn record(&self) {
        if !COUNTING.load(Ordering::Relaxed) {
            return;
        }
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        let take = BACKTRACES_LEFT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        // `try_with`: the thread-local may already be gone during thread exit.
        if take && IN_BACKTRACE.try_with(|b| !b.replace(true)).unwrap_or(false) {
            COUNTING.store(false, Ordering::Relaxed);
            eprintln!(
                "allocation in steady state:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            COUNTING.store(true, Ordering::Relaxed);
            IN_BACKTRACE.with(|b| b.set(false));
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counting around
// it does not touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.record();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.record();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.record();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MTU: usize = 1500;
const WARM_UP: u64 = 4_000_000;
const MAX_WARM_UP_ROUNDS: usize = 32;
const MEASURED: u64 = 16_000_000;

/// The receiver reading with `recv`, then on a fresh pair taking data in
/// buffers it posts, hands back and posts again.
#[test]
fn steady_state_bulk_transfer_allocates_nothing() {
    steady_state_allocates_nothing(Read::Copy);
    steady_state_allocates_nothing(Read::Posted);
}

fn steady_state_allocates_nothing(read: Read) {
    BACKTRACES_LEFT.store(0, Ordering::Relaxed);
    let source = pattern(65_521);
    // Buffers auto-tune up to 1 MiB: the pipe's virtual RTT is so short
    // that growth to the 16 MiB default would take hundreds of MB.
    let mut pair = PipePair::with_config(MTU, 256, |c| {
        c.tcp.recv_buffer_max = 1 << 20;
        c.tcp.send_buffer_max = 1 << 20;
    })
    .expect("handshake over the pipe");
    let mut sink = 0u64;
    // Warm up until three rounds in a row allocate nothing: growth is over.
    let mut settled = false;
    let mut quiet = 0;
    for round in 0..MAX_WARM_UP_ROUNDS {
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        pair.transfer_reading(WARM_UP, &source, read, |c| sink += c.len() as u64)
            .expect("warm-up transfer");
        COUNTING.store(false, Ordering::Relaxed);
        quiet = if ALLOCATIONS.load(Ordering::Relaxed) == 0 {
            quiet + 1
        } else {
            0
        };
        if quiet == 3 {
            eprintln!(
                "growth over after {} MB; buffers {} + {} bytes",
                (round + 1) * 4,
                pair.server().buffer_memory(),
                pair.client().buffer_memory()
            );
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "still allocating after {MAX_WARM_UP_ROUNDS} warm-up rounds"
    );
    ALLOCATIONS.store(0, Ordering::Relaxed);
    let (server_before, client_before) = pair.link_stats();

    // The counter itself must work: one box, one allocation.
    COUNTING.store(true, Ordering::Relaxed);
    drop(std::hint::black_box(Box::new(7u64)));
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        1,
        "counting allocator is not counting"
    );

    if std::env::var_os("USTACK_ALLOC_BACKTRACE").is_some() {
        BACKTRACES_LEFT.store(5, Ordering::Relaxed);
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let result = pair.transfer_reading(MEASURED, &source, read, |c| sink += c.len() as u64);
    COUNTING.store(false, Ordering::Relaxed);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);

    assert_eq!(result.expect("measured transfer"), MEASURED);
    let (server, client) = pair.link_stats();
    let packets = (server.tx_packets - server_before.tx_packets)
        + (client.tx_packets - client_before.tx_packets);
    eprintln!(
        "{read:?}: {MEASURED} bytes, {packets} packets, {allocations} allocations ({:.4} per packet)",
        allocations as f64 / packets as f64
    );
    assert_eq!(
        allocations, 0,
        "heap allocations in steady state; rerun with USTACK_ALLOC_BACKTRACE=1 -- --nocapture"
    );
}

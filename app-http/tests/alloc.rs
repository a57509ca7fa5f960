//! A keep-alive client that sends its next request a round trip after the
//! last response costs the responder no heap allocation per request: the
//! connection keeps its buffers for [`BUFFER_LINGER`] between requests,
//! and gives them back only once it has been idle that long.
//!
//! One test in this file on purpose: the counter is global, and a second test
//! running on another thread would be counted too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ustack_http::{HttpConfig, HttpConn, BUFFER_LINGER};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counting around
// it does not touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
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

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// One request and its whole response, driven as the runtime does, with
/// `poll_timeout` after every call. Returns the response's length.
fn exchange(conn: &mut HttpConn, now: Duration, out: &mut [u8]) -> usize {
    assert_eq!(conn.on_recv(GET), GET.len());
    conn.poll_timeout(now);
    let mut sent = 0;
    loop {
        let n = conn.poll_send(out);
        conn.poll_timeout(now);
        if n == 0 {
            return sent;
        }
        sent += n;
    }
}

#[test]
fn keep_alive_requests_a_round_trip_apart_allocate_nothing() {
    let mut conn = HttpConn::new(&HttpConfig::default());
    let mut out = vec![0u8; 64 * 1024];
    let rtt = Duration::from_micros(300);
    let mut now = Duration::from_secs(1);
    assert!(exchange(&mut conn, now, &mut out) > 0, "answered");

    COUNTING.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for _ in 0..1_000 {
        now += rtt;
        answered += usize::from(exchange(&mut conn, now, &mut out) > 0);
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(answered, 1_000);
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations over 1,000 keep-alive requests"
    );

    // Idle past the linger: the buffers go back, and the next request
    // takes them anew.
    assert!(conn.buffer_bytes() > 0);
    now += BUFFER_LINGER;
    conn.poll_timeout(now);
    assert_eq!(conn.buffer_bytes(), 0, "idle: no buffer held");
    COUNTING.store(true, Ordering::Relaxed);
    now += rtt;
    assert!(exchange(&mut conn, now, &mut out) > 0);
    COUNTING.store(false, Ordering::Relaxed);
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > 0,
        "the counter counts"
    );
}

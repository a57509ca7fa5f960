//! Making freed ring storage leave the process.
//!
//! The TCP layer gives idle ring storage back (`BufferPool::give` frees what
//! it does not pool), but with glibc's default tuning that does not lower
//! the process's RSS. glibc serves blocks from 128 KiB up with `mmap`, and
//! each time one is freed it raises that threshold to the freed size (up to
//! 32 MiB), and its trim threshold to twice that. After the first large ring
//! is freed, every later ring of that size comes from the heap and stays
//! resident when freed: a server that once ran a 4 MiB-window download keeps
//! 4 MiB more RSS than it uses, for good, and a soak's leak check sees a step.
//!
//! [`return_freed_memory`] pins both thresholds at glibc's initial values,
//! which turns the dynamic adjustment off: rings of 128 KiB and up are
//! mapped on their own and unmapped on free. Smaller rings come from the
//! heap, where the pool recycles them. On other C libraries it does nothing.

use std::sync::Once;

/// glibc's initial `M_MMAP_THRESHOLD` (and `M_TRIM_THRESHOLD`).
const THRESHOLD: libc::c_int = 128 * 1024;

/// Pins glibc's mmap and trim thresholds, once per process (see the module
/// docs). [`crate::new_stack`] calls it; a program that builds its stack
/// another way may call it first thing.
pub fn return_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(pin_thresholds);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn pin_thresholds() {
    for param in [libc::M_MMAP_THRESHOLD, libc::M_TRIM_THRESHOLD] {
        // SAFETY: mallopt only changes the allocator's tuning; both
        // parameters take a byte count and the value is in range.
        if unsafe { libc::mallopt(param, THRESHOLD) } == 0 {
            tracing::debug!(param, "mallopt refused a threshold");
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn pin_thresholds() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        crate::child::rss_kib(std::process::id()).unwrap_or(0)
    }

    fn touched(n: usize) -> Box<[u8]> {
        let mut b = vec![0u8; n].into_boxed_slice();
        for page in b.chunks_mut(4096) {
            page[0] = std::hint::black_box(1);
        }
        b
    }

    /// The case glibc's dynamic threshold gets wrong: the second ring of a
    /// size, freed, must leave RSS too.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_freed_ring_leaves_rss_every_time() {
        return_freed_memory();
        const RING: usize = 16 << 20;
        for round in 0..3 {
            let ring = touched(RING);
            let held = rss_kib();
            drop(ring);
            let after = rss_kib();
            // Other test threads allocate meanwhile; 16 MiB dwarfs them.
            assert!(
                held.saturating_sub(after) >= (RING as u64 / 1024) * 3 / 4,
                "round {round}: RSS {held} KiB with the ring, {after} KiB after freeing it"
            );
        }
    }
}

//! # ustack — the runtime
//!
//! The imperative shell around the sans-I/O layers: it owns a `ustack-link`
//! device, reads the clock, sleeps in `poll(2)` until a packet arrives or the
//! stack's next timer is due, and moves packets between the device and the
//! [`Stack`]: the `ustack-ipv4` IP layer carrying `ustack-tcp`. Applications
//! (the HTTP server, the nc-like client) plug in through [`App`] and see
//! only TCP's socket API.
//!
//! Below: `ustack-link` (TUN, raw socket, AF_PACKET, pipe). Above: the
//! `tun-server` and `raw-client` binaries. It does not parse packets or run
//! IP or TCP itself.
//!
//! Also here: [`proxy`] (tun-proxy's routing, relay and SOCKS5 client),
//! [`rst_guard`] (the nftables rule that keeps the host kernel from
//! resetting raw-socket flows) and [`netns`] (throw-away network namespaces
//! for privileged tests and benchmarks).

#![warn(missing_docs)]

pub mod child;
pub mod event_loop;
pub mod flood;
pub mod http_server;
pub mod linkopts;
pub mod malloc;
pub mod netns;
pub mod proxy;
pub mod rst_guard;
pub mod socket;
pub mod stats_file;

pub use event_loop::{run, App, Clock, Control, Outcome, RuntimeError, Shutdown};

use ustack_ipv4::{DeviceCaps, IpConfig, IpStack, Ipv4Subnet};
use ustack_tcp::{Tcp, TcpLayerConfig, XorShiftRng};

/// The host the binaries run: the IP layer of one interface carrying TCP.
/// It dereferences to [`Tcp`], whose socket API applications use.
pub type Stack = IpStack<Tcp>;

/// A [`Stack`] at `subnet` over a device that can do `caps`, its RNG seeded
/// from the OS. Also makes freed ring storage leave the process
/// ([`malloc::return_freed_memory`]).
pub fn new_stack(subnet: Ipv4Subnet, caps: DeviceCaps, tcp: TcpLayerConfig) -> Stack {
    malloc::return_freed_memory();
    let tcp = Tcp::new(tcp, Box::new(XorShiftRng::new(os_seed())));
    IpStack::new(IpConfig::new(subnet), caps, tcp)
}

/// Seeds the stack's RNG from the OS (the only place randomness enters).
pub fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ u64::from(std::process::id()) << 32
        }
    }
}

/// Sets up `tracing` output on stderr, filtered by `RUST_LOG`, else `default`
/// (e.g. "info"; "trace" shows every packet and state change). Colour only
/// when stderr is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>), so logs written to files stay plain text.
pub fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Makes the C allocator hand every large block (128 KiB and up) straight
/// back to the kernel when it is freed, so the process's RSS follows what the
/// TCP buffer pool counts. Long-running servers call it once at start.
///
/// Without it, glibc raises its mmap threshold each time such a block is
/// freed (up to 32 MiB), and later ring storage comes from the main heap,
/// where freed pages stay resident: RSS then steps up by whole ring sizes
/// while the pool's count stays flat, which reads as a leak. Setting the
/// threshold explicitly turns that adjustment off (mallopt(3)). Only glibc
/// has the knob; elsewhere this does nothing.
pub fn return_freed_buffers_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; M_MMAP_THRESHOLD with
    // a value below its 32 MiB maximum is always accepted, and calling it
    // while other threads allocate is allowed (glibc takes its arena locks).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

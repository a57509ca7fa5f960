//! Buffers that follow the path: receive auto-tuning and a send buffer that
//! follows cwnd, over the simulator's long fast path, against buffers held
//! at their initial size on the same path.

#[path = "sim/mod.rs"]
mod sim;

use std::time::Duration;

use sim::driver::{run, Scenario};
use sim::link::LinkConfig;

/// 50 ms of RTT over a 2 Gbit/s bottleneck: a fixed 64 KiB window would
/// carry 10.5 Mbit/s. Receive auto-tuning and a send buffer that follows
/// cwnd (both from their defaults) must go far beyond.
#[test]
fn buffers_grow_over_a_long_path_when_the_application_keeps_up() {
    let path = LinkConfig {
        delay: Duration::from_millis(25),
        rate_bps: Some(2_000_000_000),
        queue_bytes: 32 << 20,
        ..LinkConfig::default()
    };
    let mut sc = Scenario::new(11).symmetric(path);
    let bytes = 48u64 << 20;
    sc.bytes_a_to_b = bytes;
    sc.max_time = Duration::from_secs(120);
    let o = run(&sc).unwrap_or_else(|f| panic!("{}: {}", f.reason, f.state));
    let mbps = o.goodput_a_to_b(bytes) * 8.0 / 1e6;
    println!("48 MiB over 50 ms RTT: {mbps:.0} Mbit/s");
    assert!(
        mbps > 200.0,
        "{mbps:.0} Mbit/s: buffers did not follow the path"
    );
}

/// The same path with buffers held at their initial size: what auto-tuning
/// is measured against (and proof the path, not the simulator, was the limit).
#[test]
fn fixed_initial_buffers_are_window_limited_on_the_same_path() {
    let path = LinkConfig {
        delay: Duration::from_millis(25),
        rate_bps: Some(2_000_000_000),
        queue_bytes: 32 << 20,
        ..LinkConfig::default()
    };
    let mut sc = Scenario::new(11).symmetric(path);
    let bytes = 2u64 << 20;
    sc.bytes_a_to_b = bytes;
    sc.tcp.recv_buffer_max = sc.tcp.recv_buffer;
    sc.tcp.send_buffer_max = sc.tcp.send_buffer;
    let o = run(&sc).unwrap_or_else(|f| panic!("{}: {}", f.reason, f.state));
    let mbps = o.goodput_a_to_b(bytes) * 8.0 / 1e6;
    println!("2 MiB over 50 ms RTT with fixed 64 KiB buffers: {mbps:.1} Mbit/s");
    assert!(mbps < 11.0, "{mbps:.1} Mbit/s through a 64 KiB window");
}

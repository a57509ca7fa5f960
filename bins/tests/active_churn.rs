//! The active-open side of connection churn: an application on the stack
//! opens and closes connections to a kernel server, closing first, so every
//! connection leaves this stack a TIME-WAIT record. Records never count
//! against the connection limit, so a limit of 100 connections sustains
//! about 100 connections a second for longer than TIME-WAIT lasts (60 s):
//! past the 68 a second at which a table holding TIME-WAIT would fill, and
//! long enough that the first records expire while new ones arrive.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ustack::socket::TcpStream;
use ustack_tcp::TcpLayerConfig;

/// 6,500 connections at 100 a second: 65 s.
const N: usize = 6_500;

#[test]
fn closing_first_a_hundred_times_a_second_for_over_a_minute_through_a_table_of_a_hundred() {
    let Some(ns) = common::netns("active-churn") else {
        return;
    };
    let cfg = TcpLayerConfig {
        max_connections: 100,
        ..TcpLayerConfig::default()
    };
    let net = common::tun_stack_in(&ns, cfg);
    // The kernel server (in the namespace, as this thread is): reads each
    // connection to its end, then closes — the second to close.
    let server = std::net::TcpListener::bind("10.0.0.1:9000").expect("kernel listen");
    std::thread::spawn(move || {
        for s in server.incoming().take(N) {
            let Ok(mut s) = s else { continue };
            let mut sink = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read_to_end(&mut sink);
        }
    });
    let to = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 9000));
    let started = Instant::now();
    for i in 0..N {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stalled at #{i}"
        );
        let mut s = TcpStream::connect_timeout(&net, to, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connection #{i}: {e}"));
        s.write_all(b"hello").expect("write");
        // Dropping closes: this side's FIN goes first.
        drop(s);
        // About 100 connections a second, whatever each one took.
        let due = started + Duration::from_millis(10 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    assert!(
        started.elapsed() > Duration::from_secs(61),
        "ran faster than planned: TIME-WAIT never expired"
    );
}

//! The active-open side of connection churn: an application on the stack
//! opens and closes connections to a kernel server, closing first, so every
//! connection leaves this stack a TIME-WAIT record. Records never count
//! against the connection limit, so a limit of 100 connections sustains
//! three times as many opened and closed within one TIME-WAIT period.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ustack::socket::TcpStream;
use ustack_tcp::TcpLayerConfig;

#[test]
fn closing_first_three_hundred_times_through_a_table_of_a_hundred() {
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
        for s in server.incoming().take(300) {
            let Ok(mut s) = s else { continue };
            let mut sink = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read_to_end(&mut sink);
        }
    });
    let to = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 9000));
    let started = Instant::now();
    for i in 0..300 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stalled at #{i}"
        );
        let mut s = TcpStream::connect_timeout(&net, to, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connection #{i}: {e}"));
        s.write_all(b"hello").expect("write");
        // Dropping closes: this side's FIN goes first.
        drop(s);
        // About 100 connections a second: past the 68/s at which a table
        // holding TIME-WAIT for 60 s would fill up.
        std::thread::sleep(Duration::from_millis(10));
    }
}

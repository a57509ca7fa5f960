//! Buffer memory that follows use: storage only while data is queued, and
//! a stack-wide budget that pressure keeps and that is never exceeded.
//! (Growth over a long path: `autotune.rs`.)

mod common;

use std::time::Duration;

use common::Net;
use ustack_tcp::{ConnId, ListenerId, State};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn connect(net: &mut Net, l: ListenerId, port: u16) -> (ConnId, ConnId) {
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(port))
        .expect("connect");
    let mut s = None;
    net.run_until(1_000, |n| {
        if s.is_none() {
            s = n.b.accept(l);
        }
        s.is_some() && n.a.state(c) == Ok(State::Established)
    });
    (c, s.expect("accepted"))
}

/// Sends `data` from A over every connection in `conns` while B reads
/// everything, checking the stacks' invariants (budget, no reneged window)
/// after every step. Returns what B read on each.
fn transfer_all(net: &mut Net, conns: &[(ConnId, ConnId)], data: &[u8]) -> Vec<Vec<u8>> {
    let mut sent = vec![0; conns.len()];
    let mut got = vec![Vec::new(); conns.len()];
    let mut buf = vec![0u8; 1 << 16];
    let mut done = |n: &mut Net| {
        for (i, &(c, s)) in conns.iter().enumerate() {
            sent[i] += n.a.send(c, &data[sent[i]..]).unwrap_or(0);
            while let Ok(k) = n.b.recv(s, &mut buf) {
                if k == 0 {
                    break;
                }
                got[i].extend_from_slice(&buf[..k]);
            }
        }
        n.a.check_invariants().expect("sender invariants");
        n.b.check_invariants().expect("receiver invariants");
        got.iter().all(|g| g.len() == data.len())
    };
    net.run_until(2_000_000, &mut done);
    got
}

#[test]
fn idle_and_half_open_connections_hold_no_buffer_memory() {
    let mut net = Net::new();
    let l = net.b.listen(80, 16).expect("listen");
    net.a
        .connect(net.now, Net::addr_b(80), Some(40001))
        .expect("connect");
    // The SYN reaches B; its SYN-ACK is not yet answered.
    net.step();
    net.step();
    assert_eq!(net.b.connection_count(), 1);
    assert_eq!(
        net.b.buffer_memory(),
        0,
        "a half-open connection holds none"
    );

    net.run_until(100, |n| n.b.accept(l).is_some());
    let (c, s) = connect(&mut net, l, 40002);
    let data = pattern(300_000, 1);
    let got = transfer_all(&mut net, &[(c, s)], &data);
    assert!(got[0] == data);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.a.connection_buffer_memory(c), Ok(0), "sender idle");
    assert_eq!(net.b.connection_buffer_memory(s), Ok(0), "receiver idle");
    assert_eq!(
        net.b.buffer_memory(),
        net.b.pooled_buffer_memory(),
        "only pooled storage is left"
    );
    // The storage comes back for the next burst, and both ways.
    let reply = pattern(5_000, 2);
    assert_eq!(net.b.send(s, &reply), Ok(5_000));
    assert!(net.b.connection_buffer_memory(s).unwrap() > 0);
    let mut buf = vec![0u8; 8192];
    let mut back = Vec::new();
    net.run_until(1_000, |n| {
        if let Ok(k) = n.a.recv(c, &mut buf) {
            back.extend_from_slice(&buf[..k]);
        }
        back.len() == reply.len()
    });
    assert!(back == reply);
}

/// Many connections, a budget far below what they would like: the budget
/// holds at every step, pressure is reported, windows are never reneged
/// (checked by the invariants), and every byte still arrives.
#[test]
fn budget_is_never_exceeded_with_many_connections_under_pressure() {
    let budget = 1 << 20;
    let mut ca = common::config(common::A);
    ca.buffer_budget = budget;
    let mut cb = common::config(common::B);
    cb.buffer_budget = budget;
    let mut net = Net::with_configs(ca, cb);
    net.step_time = Duration::from_millis(5);
    let l = net.b.listen(80, 64).expect("listen");
    let conns: Vec<_> = (0..40).map(|i| connect(&mut net, l, 41000 + i)).collect();
    let data = pattern(400_000, 4);
    let got = transfer_all(&mut net, &conns, &data);
    assert!(
        got.iter().all(|g| *g == data),
        "data intact on every connection"
    );
    for (name, host) in [("A", &net.a), ("B", &net.b)] {
        let st = host.stats();
        println!(
            "{name}: pressure events {}, refused {}, rx dropped {}",
            st.tcp_mem_pressure_events, st.tcp_mem_refused, st.tcp_mem_rx_dropped
        );
        assert!(host.buffer_memory() <= budget);
    }
    assert!(
        net.a.stats().tcp_mem_pressure_events + net.b.stats().tcp_mem_pressure_events > 0,
        "40 connections x 64 KiB x 2 must press a 1 MiB budget"
    );
}

/// The send buffer grows with what may be in flight, and a receiver that
/// offers a small window caps that: bytes past its window would only wait
/// in the sender's memory (and out of its cache).
#[test]
fn send_buffer_stays_near_twice_the_peers_window() {
    let window = 64 << 10;
    let ca = common::config(common::A);
    let mut cb = common::config(common::B);
    cb.tcp.recv_buffer = window;
    cb.tcp.recv_buffer_max = window;
    let mut net = Net::with_configs(ca, cb);
    let l = net.b.listen(80, 4).expect("listen");
    let (c, s) = connect(&mut net, l, 41000);
    let data = pattern(8 << 20, 7);
    let (mut sent, mut got, mut peak) = (0, Vec::new(), 0);
    let mut buf = vec![0u8; 1 << 16];
    net.run_until(2_000_000, |n| {
        sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        peak = peak.max(n.a.buffer_sizes(c).map_or(0, |(send, _)| send));
        got.len() == data.len()
    });
    assert!(got == data, "data intact");
    println!("send buffer at most {peak} B for a {window} B window");
    assert!(
        peak <= 2 * window,
        "{peak} B of send buffer for a {window} B window"
    );
}

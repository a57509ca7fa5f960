//! TIME-WAIT as records beside the connection table, between two engines on
//! a simulated wire: server-closed connections never hold table slots, a
//! 4-tuple reopens with a newer SYN (RFC 6191), and `connect` steers clear
//! of 4-tuples in TIME-WAIT (RFC 6056).

mod common;

use std::time::Duration;

use common::{config, Net, A, B};
use ustack_tcp::{ConnId, State};

/// One request-response where the server (B) closes first: B's side ends in
/// TIME-WAIT, the client's in CLOSED.
fn server_closed_exchange(net: &mut Net, l: ustack_tcp::ListenerId, port: Option<u16>) {
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), port)
        .expect("connect");
    let mut s: Option<ConnId> = None;
    net.run_until(200, |n| {
        if s.is_none() {
            s = n.b.accept(l);
        }
        s.is_some() && n.a.state(c) == Ok(State::Established)
    });
    let s = s.expect("accepted");
    net.b.send(s, b"response").unwrap();
    net.b.close(s, net.now).unwrap();
    let mut buf = [0u8; 64];
    net.run_until(200, |n| matches!(n.a.recv(c, &mut buf), Ok(0)));
    net.a.close(c, net.now).unwrap();
    net.run_until(200, |n| {
        n.a.state(c).is_err() && n.b.connection_count() == 0
    });
}

#[test]
fn server_closed_connections_never_fill_the_table() {
    let mut cb = config(B);
    cb.max_connections = 2;
    let mut net = Net::with_configs(config(A), cb);
    let l = net.b.listen(80, 16).unwrap();
    // Twenty sequential connections through a table of two: each leaves a
    // TIME-WAIT record, none keeps a slot.
    for _ in 0..20 {
        server_closed_exchange(&mut net, l, None);
    }
    assert_eq!(net.b.connection_count(), 0);
    assert_eq!(net.b.time_wait_count(), 20);
    assert_eq!(net.b.time_wait_stats().entered, 20);
    assert_eq!(net.b.stats().tcp_syn_dropped, 0);
    net.run_for(Duration::from_secs(61));
    assert_eq!(net.b.time_wait_count(), 0);
}

#[test]
fn at_the_record_bound_the_oldest_record_goes() {
    let mut cb = config(B);
    cb.max_time_wait = 3;
    let mut net = Net::with_configs(config(A), cb);
    let l = net.b.listen(80, 16).unwrap();
    for port in 40_001..=40_005 {
        server_closed_exchange(&mut net, l, Some(port));
    }
    assert_eq!(net.b.time_wait_count(), 3);
    assert_eq!(net.b.time_wait_stats().evicted, 2);
    // The evicted ones were the oldest: 40001's 4-tuple is free again, so a
    // SYN on it is a plain new connection, not a reopen.
    server_closed_exchange(&mut net, l, Some(40_001));
    assert_eq!(net.b.time_wait_stats().reopened, 0);
    // 40005's record is still there: its SYN reopens it.
    server_closed_exchange(&mut net, l, Some(40_005));
    assert_eq!(net.b.time_wait_stats().reopened, 1);
}

#[test]
fn a_newer_syn_reopens_a_4_tuple_in_time_wait() {
    let mut net = Net::new();
    let l = net.b.listen(80, 16).unwrap();
    server_closed_exchange(&mut net, l, Some(40_000));
    assert_eq!(net.b.time_wait_count(), 1);
    net.run_for(Duration::from_secs(1));
    // The same 4-tuple again: the client's timestamp clock (one offset per
    // 4-tuple) has moved on, so B's record admits the SYN.
    server_closed_exchange(&mut net, l, Some(40_000));
    assert_eq!(net.b.time_wait_stats().reopened, 1);
    assert_eq!(net.b.time_wait_stats().syn_refused, 0);
    assert_eq!(
        net.b.time_wait_count(),
        1,
        "the new incarnation's TIME-WAIT"
    );
}

#[test]
fn connect_skips_ports_whose_4_tuple_is_in_time_wait() {
    let mut ca = config(A);
    ca.ephemeral_ports = (50_000, 50_003);
    let mut net = Net::with_configs(ca, config(B));
    let l = net.b.listen(80, 16).unwrap();
    let mut used = Vec::new();
    // A is the side that closes first here, so A holds the records.
    for _ in 0..4 {
        let c = net.a.connect(net.now, Net::addr_b(80), None).unwrap();
        used.push(net.a.local_addr(c).unwrap().port());
        let mut s = None;
        net.run_until(200, |n| {
            if s.is_none() {
                s = n.b.accept(l);
            }
            s.is_some() && n.a.state(c) == Ok(State::Established)
        });
        net.a.close(c, net.now).unwrap();
        let s = s.unwrap();
        net.run_until(200, |n| n.b.at_eof(s) == Ok(true));
        net.b.close(s, net.now).unwrap();
        net.run_until(200, |n| n.a.connection_count() == 0);
    }
    used.sort_unstable();
    assert_eq!(used, [50_000, 50_001, 50_002, 50_003], "no port reused");
    assert_eq!(net.a.time_wait_count(), 4);
    // Every port's 4-tuple is in TIME-WAIT: nothing to pick from.
    assert!(net.a.connect(net.now, Net::addr_b(80), None).is_err());
    net.run_for(Duration::from_secs(61));
    assert!(net.a.connect(net.now, Net::addr_b(80), None).is_ok());
}

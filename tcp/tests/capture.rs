//! Any-address capture: B captures connections A makes to addresses that
//! are not B's (as a TUN device routed to them would deliver them).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::{Dir, Net, B};
use ustack_ipv4::Ipv4Subnet;
use ustack_tcp::{CaptureFilter, CaptureRequest, State, TcpError};

const FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

fn far(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(FAR, port)
}

fn capturing(net: &mut Net, filter: CaptureFilter) {
    net.b.capture(filter, 8);
}

/// Runs until B has a captured SYN to answer.
fn next_request(net: &mut Net) -> CaptureRequest {
    let mut req = None;
    net.run_until(100, |n| {
        req = req.or_else(|| n.b.capture_next());
        req.is_some()
    });
    req.unwrap()
}

#[test]
fn captured_connection_speaks_from_the_original_destination() {
    let mut net = Net::new();
    capturing(
        &mut net,
        CaptureFilter::any().subnet(Ipv4Subnet::new(FAR, 24).unwrap()),
    );
    let c = net.a.connect(net.now, far(80), None).unwrap();
    let req = next_request(&mut net);
    assert_eq!(req.local, far(80));
    assert_eq!(req.remote, net.a.local_addr(c).unwrap());
    // No SYN-ACK before the application answers; retransmitted SYNs wait.
    net.run_for(std::time::Duration::from_millis(1500));
    assert_eq!(net.a.state(c), Ok(State::SynSent));
    assert_eq!(
        net.b.capture_next(),
        None,
        "a retransmitted SYN is no new request"
    );

    let s = net.b.capture_accept(net.now, req).unwrap();
    net.run_until(100, |n| {
        n.a.state(c) == Ok(State::Established) && n.b.state(s) == Ok(State::Established)
    });
    assert_eq!(net.b.local_addr(s), Ok(far(80)));
    assert_eq!(net.b.peer_addr(s), Ok(req.remote));
    net.a.send(c, b"hello").unwrap();
    net.b.send(s, b"world").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    net.run_until(100, |n| {
        if let Ok(k) = n.b.recv(s, &mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
        got == b"hello"
    });
    net.run_until(100, |n| n.a.recv(c, &mut buf) == Ok(5));
    assert_eq!(&buf[..5], b"world");
    // A's connection to far:80 got established, so B's segments came from
    // far:80; none came from any other port.
    assert!(net
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA)
        .all(|x| x.tcp.is_some_and(|t| t.src_port == 80)));
    assert_eq!(net.b.ip_stats().rx_not_for_us, 0);
}

#[test]
fn refused_request_gives_the_client_a_connection_refused() {
    let mut net = Net::new();
    capturing(&mut net, CaptureFilter::any());
    let c = net.a.connect(net.now, far(9), None).unwrap();
    let req = next_request(&mut net);
    assert!(net.b.capture_refuse(req));
    net.run_until(100, |n| n.a.state(c) == Ok(State::Closed));
    assert_eq!(
        net.a.error(c),
        Ok(Some(TcpError::ConnectionRefused(far(9))))
    );
    assert!(!net.b.capture_refuse(req), "a request is answered once");
    assert_eq!(
        net.b.capture_accept(net.now, req),
        Err(TcpError::InvalidHandle)
    );
}

#[test]
fn syns_the_filter_does_not_take_are_reset_and_counted() {
    let mut net = Net::new();
    capturing(
        &mut net,
        CaptureFilter::any()
            .subnet(Ipv4Subnet::new(FAR, 32).unwrap())
            .ports(80..=80),
    );
    let wrong_port = net.a.connect(net.now, far(81), None).unwrap();
    net.run_until(100, |n| n.a.state(wrong_port) == Ok(State::Closed));
    assert_eq!(
        net.a.error(wrong_port),
        Ok(Some(TcpError::ConnectionRefused(far(81))))
    );
    assert_eq!(net.b.stats().tcp_no_listener, 1);
    assert!(net.b.capture_next().is_none());

    // An address outside the filter does not even reach TCP.
    let other = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 8), 80);
    let c = net.a.connect(net.now, other, None).unwrap();
    net.run_for(std::time::Duration::from_millis(100));
    assert_eq!(net.a.state(c), Ok(State::SynSent));
    assert!(net.b.ip_stats().rx_not_for_us >= 1);
    assert!(net.b.capture_next().is_none());
}

#[test]
fn ordinary_listeners_keep_their_own_address_and_capture_takes_the_rest() {
    let mut net = Net::new();
    let l = net.b.listen(80, 8).unwrap();
    capturing(&mut net, CaptureFilter::any());
    let own = net
        .a
        .connect(net.now, SocketAddrV4::new(B, 80), None)
        .unwrap();
    let captured = net.a.connect(net.now, far(80), None).unwrap();
    let req = next_request(&mut net);
    assert_eq!(req.local, far(80), "the listener on B:80 is not far:80");
    net.b.capture_accept(net.now, req).unwrap();
    let mut accepted = None;
    net.run_until(100, |n| {
        accepted = accepted.or_else(|| n.b.accept(l));
        accepted.is_some()
            && n.a.state(own) == Ok(State::Established)
            && n.a.state(captured) == Ok(State::Established)
    });
    assert_eq!(
        net.b.local_addr(accepted.unwrap()),
        Ok(SocketAddrV4::new(B, 80))
    );
}

#[test]
fn unanswered_requests_are_bounded_by_the_backlog() {
    let mut net = Net::new();
    net.b.capture(CaptureFilter::any(), 2);
    let conns: Vec<_> = (0..4)
        .map(|i| net.a.connect(net.now, far(1000 + i), None).unwrap())
        .collect();
    net.run_for(std::time::Duration::from_millis(50));
    assert_eq!(net.b.stats().tcp_syn_dropped, 2);
    let a = net.b.capture_next().unwrap();
    let b = net.b.capture_next().unwrap();
    assert!(net.b.capture_next().is_none());
    assert_ne!(a, b);
    net.b.check_invariants().unwrap();
    // Stopping capture refuses what is left unanswered.
    assert_eq!(net.b.stop_capture(), 2);
    net.run_for(std::time::Duration::from_millis(50));
    let refused = conns
        .iter()
        .filter(|&&c| matches!(net.a.error(c), Ok(Some(TcpError::ConnectionRefused(_)))))
        .count();
    assert_eq!(refused, 2);
}

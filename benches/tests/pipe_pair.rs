//! Two whole stacks over the in-memory pipe link: 10 MB each way at once,
//! byte-exact, and every way a connection can end.

use ustack_benches::Stack;
use ustack_benches::{pattern, PipePair};
use ustack_tcp::{ConnId, State, TcpError};

const MTU: usize = 1500;

/// Pumps both directions until each side has received everything; returns
/// what the client and the server received.
fn both_ways(p: &mut PipePair, up: &[u8], down: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (c, s) = (p.client_conn, p.server_conn);
    let (mut up_sent, mut down_sent) = (0, 0);
    let (mut at_client, mut at_server) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    for _ in 0..5_000_000 {
        if up_sent < up.len() {
            up_sent += p.client().send(c, &up[up_sent..]).unwrap_or(0);
        }
        if down_sent < down.len() {
            down_sent += p.server().send(s, &down[down_sent..]).unwrap_or(0);
        }
        drain(p.server(), s, &mut buf, &mut at_server);
        drain(p.client(), c, &mut buf, &mut at_client);
        if at_server.len() == up.len() && at_client.len() == down.len() {
            return (at_client, at_server);
        }
        p.step();
    }
    panic!(
        "transfer stalled: server got {} of {}, client {} of {}",
        at_server.len(),
        up.len(),
        at_client.len(),
        down.len()
    );
}

/// Reads everything available; returns true at end of stream.
fn drain(stack: &mut Stack, id: ConnId, buf: &mut [u8], into: &mut Vec<u8>) -> bool {
    loop {
        match stack.recv(id, buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

fn run_until(p: &mut PipePair, mut done: impl FnMut(&mut PipePair) -> bool) {
    for _ in 0..1_000_000 {
        if done(p) {
            return;
        }
        p.step();
    }
    panic!("condition not reached");
}

fn pair_after_exchange(len: usize) -> PipePair {
    let mut p = PipePair::new(MTU, 256).expect("connect over the pipe");
    let up = pattern(len);
    let down: Vec<u8> = pattern(len).iter().map(|b| b ^ 0x5a).collect();
    let (at_client, at_server) = both_ways(&mut p, &up, &down);
    assert!(at_server == up, "client->server stream differs");
    assert!(at_client == down, "server->client stream differs");
    p
}

#[test]
fn ten_megabytes_each_way_at_once_then_client_closes_first() {
    let mut p = pair_after_exchange(10 << 20);
    let (c, s) = (p.client_conn, p.server_conn);
    let now = p.now();
    p.client().shutdown(c, now).unwrap();
    let mut buf = [0u8; 64];
    let mut sink = Vec::new();
    run_until(&mut p, |p| drain(p.server(), s, &mut buf, &mut sink));
    let now = p.now();
    p.server().close(s, now).unwrap();
    run_until(&mut p, |p| {
        p.client().state(c) == Ok(State::TimeWait) && p.server().connection_count() == 0
    });
    // 2*MSL later the client's TIME-WAIT ends too.
    run_until(&mut p, |p| p.client().state(c) == Ok(State::Closed));
}

#[test]
fn server_closes_first_and_client_sees_end_of_stream() {
    let mut p = pair_after_exchange(1 << 20);
    let (c, s) = (p.client_conn, p.server_conn);
    let now = p.now();
    p.server().send(s, b"last words").unwrap();
    p.server().close(s, now).unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    run_until(&mut p, |p| drain(p.client(), c, &mut buf, &mut got));
    assert_eq!(got, b"last words");
    let now = p.now();
    p.client().close(c, now).unwrap();
    // The server closed first: its TIME-WAIT is a record, not a connection.
    run_until(&mut p, |p| {
        p.client().connection_count() == 0
            && p.server().connection_count() == 0
            && p.server().time_wait_count() == 1
    });
    run_until(&mut p, |p| p.server().time_wait_count() == 0);
}

#[test]
fn simultaneous_close_ends_in_time_wait_on_both_sides() {
    let mut p = pair_after_exchange(1 << 20);
    let (c, s) = (p.client_conn, p.server_conn);
    let now = p.now();
    p.client().shutdown(c, now).unwrap();
    p.server().shutdown(s, now).unwrap();
    run_until(&mut p, |p| {
        p.client().state(c) == Ok(State::TimeWait) && p.server().state(s) == Ok(State::TimeWait)
    });
}

#[test]
fn half_close_keeps_the_other_direction_flowing() {
    let mut p = PipePair::new(MTU, 256).expect("connect");
    let (c, s) = (p.client_conn, p.server_conn);
    let now = p.now();
    p.client().send(c, b"GET").unwrap();
    p.client().shutdown(c, now).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut req = Vec::new();
    run_until(&mut p, |p| drain(p.server(), s, &mut buf, &mut req));
    assert_eq!(req, b"GET");
    let reply = pattern(3 << 20);
    let mut sent = 0;
    let mut got = Vec::new();
    run_until(&mut p, |p| {
        if sent < reply.len() {
            sent += p.server().send(s, &reply[sent..]).unwrap_or(0);
            if sent == reply.len() {
                let now = p.now();
                p.server().close(s, now).unwrap();
            }
        }
        drain(p.client(), c, &mut buf, &mut got)
    });
    assert!(got == reply);
}

#[test]
fn abort_resets_the_peer() {
    let mut p = pair_after_exchange(1 << 20);
    let (c, s) = (p.client_conn, p.server_conn);
    p.client().abort(c).unwrap();
    run_until(&mut p, |p| p.server().state(s) == Ok(State::Closed));
    assert_eq!(p.server().error(s), Ok(Some(TcpError::ConnectionReset)));
    assert_eq!(
        p.client().state(c),
        Err(TcpError::InvalidHandle),
        "aborted handle is released"
    );
}

#[test]
fn closing_with_unread_data_resets_the_peer() {
    let mut p = PipePair::new(MTU, 256).expect("connect");
    let (c, s) = (p.client_conn, p.server_conn);
    p.client().send(c, b"never read").unwrap();
    run_until(&mut p, |p| p.server().recv_queue_len(s) == Ok(10));
    let now = p.now();
    p.server().close(s, now).unwrap();
    run_until(&mut p, |p| p.client().state(c) == Ok(State::Closed));
    assert_eq!(p.client().error(c), Ok(Some(TcpError::ConnectionReset)));
}

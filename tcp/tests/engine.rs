//! Two engines on a deterministic simulated wire: handshakes, transfers,
//! every way of closing, resets and retransmission (RFC 9293).

mod common;

use std::time::Duration;

use common::{connected, Dir, Net};
use ustack_tcp::{ConnId, State, TcpError};

/// Sequence number of A's last segment on the wire: B's RCV.NXT once idle.
fn next_seq_from_a(net: &Net) -> ustack_tcp::SeqNumber {
    net.log
        .iter()
        .rev()
        .find(|x| x.dir == Dir::AtoB)
        .and_then(|x| x.tcp)
        .expect("A has sent a segment")
        .seq
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Moves `a_data` from A to B and `b_data` from B to A concurrently; returns what each side received.
fn exchange(
    net: &mut Net,
    c: ConnId,
    s: ConnId,
    a_data: &[u8],
    b_data: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (mut a_sent, mut b_sent) = (0, 0);
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    net.run_until(2_000_000, |n| {
        if a_sent < a_data.len() {
            if let Ok(k) = n.a.send(c, &a_data[a_sent..]) {
                a_sent += k;
            }
        }
        if b_sent < b_data.len() {
            if let Ok(k) = n.b.send(s, &b_data[b_sent..]) {
                b_sent += k;
            }
        }
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            at_b.extend_from_slice(&buf[..k]);
        }
        while let Ok(k) = n.a.recv(c, &mut buf) {
            if k == 0 {
                break;
            }
            at_a.extend_from_slice(&buf[..k]);
        }
        at_b.len() == a_data.len() && at_a.len() == b_data.len()
    });
    (at_a, at_b)
}

#[test]
fn three_way_handshake_establishes_both_ends() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    assert_eq!(net.a.state(c), Ok(State::Established));
    assert_eq!(net.b.state(s), Ok(State::Established));
    assert_eq!(net.b.peer_addr(s), Ok(Net::addr_a(40000)));
    // SYN, SYN-ACK, ACK: exactly three segments, the first two carrying MSS.
    let segs: Vec<_> = net
        .log
        .iter()
        .filter_map(|s| s.tcp.map(|t| (s.dir, t)))
        .collect();
    assert_eq!(segs.len(), 3, "{segs:?}");
    assert!(segs[0].1.flags.syn() && !segs[0].1.flags.ack());
    assert!(segs[1].1.flags.syn() && segs[1].1.flags.ack() && segs[1].0 == Dir::BtoA);
    assert_eq!(segs[0].1.options.mss, Some(1460));
    assert_eq!(segs[1].1.ack, segs[0].1.seq + 1u32);
}

#[test]
fn megabytes_both_ways_arrive_byte_exact() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    let up = pattern(3 << 20, 7);
    let down = pattern(2 << 20, 99);
    let (at_a, at_b) = exchange(&mut net, c, s, &up, &down);
    assert!(at_b == up, "A->B stream corrupted");
    assert!(at_a == down, "B->A stream corrupted");
    // Full segments: MSS 1460 less the 12 bytes of the timestamps option
    // (RFC 9293 §3.7.1: options come out of the MSS).
    let biggest = net.log.iter().map(|s| s.payload_len).max().unwrap();
    assert_eq!(biggest, 1448);
}

#[test]
fn client_closes_first_server_ends_in_closed_client_in_time_wait() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.a.shutdown(c, net.now).unwrap();
    net.run_until(100, |n| {
        n.b.at_eof(s) == Ok(true) && n.a.state(c) == Ok(State::FinWait2)
    });
    assert_eq!(net.b.state(s), Ok(State::CloseWait));
    assert_eq!(net.a.state(c), Ok(State::FinWait2));
    net.b.close(s, net.now).unwrap();
    net.run_until(100, |n| {
        n.a.state(c) == Ok(State::TimeWait) && n.b.connection_count() == 0
    });
    // TIME-WAIT lasts 2*MSL, then the connection is CLOSED.
    net.run_for(Duration::from_secs(59));
    assert_eq!(net.a.state(c), Ok(State::TimeWait));
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.a.state(c), Ok(State::Closed));
}

#[test]
fn server_closes_first_and_orphan_time_wait_is_reaped() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.b.send(s, b"bye").unwrap();
    net.b.close(s, net.now).unwrap();
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    net.run_until(100, |n| {
        while let Ok(k) = n.a.recv(c, &mut buf) {
            if k == 0 {
                return true;
            }
            got.extend_from_slice(&buf[..k]);
        }
        false
    });
    assert_eq!(got, b"bye");
    net.a.close(c, net.now).unwrap();
    net.run_until(100, |n| n.a.connection_count() == 0);
    // The server's TIME-WAIT is a record outside the connection table.
    assert_eq!(net.b.connection_count(), 0, "no TCB kept for TIME-WAIT");
    assert_eq!(net.b.time_wait_count(), 1, "server holds TIME-WAIT");
    net.run_for(Duration::from_secs(59));
    assert_eq!(net.b.time_wait_count(), 1, "2 × MSL is not over");
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.b.time_wait_count(), 0, "TIME-WAIT expired");
    assert_eq!(net.b.time_wait_stats().expired, 1);
}

#[test]
fn simultaneous_close_goes_through_closing_to_time_wait() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.a.shutdown(c, net.now).unwrap();
    net.b.shutdown(s, net.now).unwrap();
    let mut saw_closing = false;
    net.run_until(100, |n| {
        saw_closing |= n.a.state(c) == Ok(State::Closing) || n.b.state(s) == Ok(State::Closing);
        n.a.state(c) == Ok(State::TimeWait) && n.b.state(s) == Ok(State::TimeWait)
    });
    assert!(saw_closing, "both FINs crossed: each side passes CLOSING");
}

#[test]
fn half_close_lets_the_other_side_keep_sending() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.a.send(c, b"request").unwrap();
    net.a.shutdown(c, net.now).unwrap();
    net.run_until(100, |n| {
        n.b.recv_queue_len(s) == Ok(7) && n.b.state(s) == Ok(State::CloseWait)
    });
    let mut req = [0u8; 16];
    assert_eq!(net.b.recv(s, &mut req), Ok(7));
    assert_eq!(
        net.b.recv(s, &mut req),
        Ok(0),
        "end of stream after the FIN"
    );
    let reply = pattern(200_000, 3);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    net.run_until(100_000, |n| {
        if sent < reply.len() {
            sent += n.b.send(s, &reply[sent..]).unwrap_or(0);
            if sent == reply.len() {
                n.b.close(s, n.now).unwrap();
            }
        }
        loop {
            match n.a.recv(c, &mut buf) {
                Ok(0) => return true,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(_) => return false,
            }
        }
    });
    assert!(got == reply);
}

#[test]
fn connect_to_closed_port_is_refused_by_rst() {
    let mut net = Net::new();
    let c = net.a.connect(net.now, Net::addr_b(81), None).unwrap();
    net.run_until(10, |n| n.a.state(c) == Ok(State::Closed));
    assert_eq!(
        net.a.error(c),
        Ok(Some(TcpError::ConnectionRefused(Net::addr_b(81))))
    );
    assert!(net.b.stats().tcp_rst_sent >= 1);
}

#[test]
fn lost_syn_is_retransmitted_after_initial_rto() {
    let mut net = Net::new();
    net.drop = Box::new(|seen, _| {
        seen.tcp.is_some_and(|t| t.flags.syn() && !t.flags.ack())
            && seen.dir == Dir::AtoB
            && !seen_twice()
    });
    fn seen_twice() -> bool {
        use std::cell::Cell;
        thread_local!(static N: Cell<u32> = const { Cell::new(0) });
        N.with(|n| {
            n.set(n.get() + 1);
            n.get() > 1
        })
    }
    let start = net.now;
    let (c, _) = connected(&mut net);
    assert_eq!(net.a.state(c), Ok(State::Established));
    let waited = net.now - start;
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1100),
        "{waited:?}"
    );
}

#[test]
fn unanswered_syn_times_out_with_a_clear_error() {
    let mut net = Net::new();
    net.drop = Box::new(|seen, _| seen.dir == Dir::AtoB);
    let c = net.a.connect(net.now, Net::addr_b(80), None).unwrap();
    net.run_until(1000, |n| n.a.state(c) == Ok(State::Closed));
    assert_eq!(net.a.error(c), Ok(Some(TcpError::TimedOut { retries: 6 })));
    let syns = net
        .log
        .iter()
        .filter(|s| s.tcp.is_some_and(|t| t.flags.syn()))
        .count();
    assert_eq!(syns, 7, "one SYN plus six retransmissions with backoff");
    assert!(net.now - ustack_tcp::Instant::from_millis(1000) >= Duration::from_secs(127));
}

#[test]
fn data_survives_periodic_loss_both_directions() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.drop = Box::new(|_, count| count % 17 == 0);
    let up = pattern(300_000, 1);
    let down = pattern(300_000, 2);
    let (at_a, at_b) = exchange(&mut net, c, s, &up, &down);
    let first_diff = |x: &[u8], y: &[u8]| x.iter().zip(y).position(|(a, b)| a != b);
    assert!(
        at_b == up,
        "A->B differs at byte {:?} of {}",
        first_diff(&at_b, &up),
        up.len()
    );
    assert!(
        at_a == down,
        "B->A differs at byte {:?} of {}",
        first_diff(&at_a, &down),
        down.len()
    );
}

/// RFC 8985 §7 sends one tail loss probe and then waits for the RTO; ustack
/// keeps probing with doubling waits (see `Tcb::update_tlp`), so a flight
/// whose ACKs are all lost is recovered in milliseconds, not 200 ms, and the
/// probes stay few.
#[test]
fn unanswered_tail_probes_repeat_with_backoff_until_the_rto() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    // An RTT sample first: the probe timeout is 2·SRTT, at least 2 ms.
    let warm = pattern(20_000, 3);
    exchange(&mut net, c, s, &warm, &[]);

    let probes = Rc::new(RefCell::new(Vec::new()));
    let ack_loss = Rc::new(RefCell::new(true));
    let (log, lossy) = (probes.clone(), ack_loss.clone());
    let mut highest = None::<ustack_tcp::SeqNumber>;
    net.drop = Box::new(move |seen, n| {
        let Some(t) = seen.tcp else { return false };
        if seen.dir == Dir::BtoA {
            return *lossy.borrow();
        }
        if seen.payload_len > 0 {
            let end = t.seq + seen.payload_len;
            match highest {
                Some(h) if end.distance(h) >= 0 => log.borrow_mut().push(n),
                _ => highest = Some(end),
            }
        }
        false
    });
    net.a.send(c, &pattern(4_000, 4)).expect("send");
    // Less than the 200 ms minimum RTO: only probes can resend in here.
    net.run_for(Duration::from_millis(150));
    let sent = probes.borrow().len();
    assert!(
        (3..=8).contains(&sent),
        "{sent} probes in 150 ms of lost ACKs (expected a few, doubling apart)"
    );
    *ack_loss.borrow_mut() = false;
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    net.run_until(10_000, |n| {
        while let Ok(k @ 1..) = n.b.recv(s, &mut buf) {
            got += k;
        }
        got == 4_000 && n.a.send_queue_len(c) == Ok(0)
    });
}

#[test]
fn in_window_rst_with_wrong_sequence_gets_challenge_ack_rfc5961() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    // Forge a RST from A's port towards B, inside B's window but not at RCV.NXT.
    let rcv_nxt_at_b = next_seq_from_a(&net);
    let forged = forge(
        common::A,
        common::B,
        40000,
        80,
        rcv_nxt_at_b + 1000u32,
        ustack_tcp::wire::Flags::RST,
    );
    let mut replies = Vec::new();
    net.b
        .handle_packet(net.now, &forged, &mut |p| replies.push(p.to_vec()));
    net.b.poll(net.now, &mut |p| replies.push(p.to_vec()));
    assert_eq!(net.b.state(s), Ok(State::Established), "not reset");
    let acks: Vec<_> = replies
        .iter()
        .filter_map(|p| common::inspect(Dir::BtoA, p).tcp)
        .collect();
    assert!(
        acks.iter().any(|t| t.flags.ack() && !t.flags.rst()),
        "challenge ACK sent"
    );
    // An exact-sequence RST does reset.
    let exact = forge(
        common::A,
        common::B,
        40000,
        80,
        rcv_nxt_at_b,
        ustack_tcp::wire::Flags::RST,
    );
    net.b.handle_packet(net.now, &exact, &mut |_| {});
    assert_eq!(net.b.error(s), Ok(Some(TcpError::ConnectionReset)));
    let _ = c;
}

#[test]
fn close_with_unread_data_resets_the_peer() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    net.a.send(c, b"unread").unwrap();
    net.run_until(100, |n| n.b.recv_queue_len(s) == Ok(6));
    net.b.close(s, net.now).unwrap();
    net.run_until(100, |n| n.a.state(c) == Ok(State::Closed));
    assert_eq!(net.a.error(c), Ok(Some(TcpError::ConnectionReset)));
}

#[test]
fn zero_window_is_probed_and_transfer_resumes() {
    let mut cb = common::config(common::B);
    cb.tcp.recv_buffer = 64 * 1024;
    cb.tcp.recv_buffer_max = 64 * 1024;
    let mut net = Net::with_configs(common::config(common::A), cb);
    let (c, s) = connected(&mut net);
    let data = pattern(200_000, 5);
    let mut sent = 0;
    // Fill B's receive buffer without reading. With window scaling the
    // window's last bytes round down to a zero field (RFC 7323 §2.3).
    net.run_until(10_000, |n| {
        sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        n.b.recv_queue_len(s).is_ok_and(|q| q >= 64 * 1024 - 8)
    });
    // Lose every window update B sends while it drains, so only the persist
    // timer's probes can restart the transfer.
    net.drop = Box::new(|seen, _| {
        seen.dir == Dir::BtoA
            && seen.payload_len == 0
            && seen
                .tcp
                .is_some_and(|t| t.window > 0 && t.window < 65535 / 2 + 1 || t.window == 65535)
    });
    let mut buf = vec![0u8; 70_000];
    let mut got = Vec::new();
    let k = net.b.recv(s, &mut buf).unwrap();
    got.extend_from_slice(&buf[..k]);
    net.drop = Box::new(|_, _| false);
    net.run_until(100_000, |n| {
        sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    assert!(got == data);
}

#[test]
fn listen_backlog_bounds_pending_connections() {
    let mut net = Net::new();
    // Without SYN cookies (tests/syncookies.rs has the default, Auto).
    let opts = ustack_tcp::ListenOptions {
        backlog: 2,
        syn_cookies: ustack_tcp::SynCookies::Never,
    };
    let l = net.b.listen_with(80, opts).unwrap();
    let cs: Vec<_> = (0..4)
        .map(|i| {
            net.a
                .connect(net.now, Net::addr_b(80), Some(41000 + i))
                .unwrap()
        })
        .collect();
    net.run_for(Duration::from_millis(50));
    let established = cs
        .iter()
        .filter(|&&c| net.a.state(c) == Ok(State::Established))
        .count();
    assert_eq!(established, 2, "only backlog-many handshakes complete");
    assert!(net.b.stats().tcp_syn_dropped >= 2);
    // Accepting makes room; the retransmitted SYNs then get through.
    while net.b.accept(l).is_some() {}
    net.run_for(Duration::from_secs(2));
    let established = cs
        .iter()
        .filter(|&&c| net.a.state(c) == Ok(State::Established))
        .count();
    assert_eq!(established, 4);
}

#[test]
fn simultaneous_open_establishes_both_ends() {
    let mut net = Net::new();
    let a = net
        .a
        .connect(net.now, Net::addr_b(5000), Some(6000))
        .unwrap();
    let b = net
        .b
        .connect(net.now, Net::addr_a(6000), Some(5000))
        .unwrap();
    net.run_until(1000, |n| {
        n.a.state(a) == Ok(State::Established) && n.b.state(b) == Ok(State::Established)
    });
    let (at_a, at_b) = exchange(&mut net, a, b, b"ping", b"pong");
    assert_eq!((&at_a[..], &at_b[..]), (&b"pong"[..], &b"ping"[..]));
}

#[test]
fn ack_for_listener_without_connection_gets_rst_rfc9293_3_10_7_2() {
    let mut net = Net::new();
    net.b.listen(80, 4).unwrap();
    let stray = forge(
        common::A,
        common::B,
        40000,
        80,
        ustack_tcp::SeqNumber(5),
        ustack_tcp::wire::Flags::ACK,
    );
    let mut out = Vec::new();
    net.b
        .handle_packet(net.now, &stray, &mut |p| out.push(p.to_vec()));
    let rst = common::inspect(Dir::BtoA, &out[0]).tcp.unwrap();
    assert!(rst.flags.rst());
    assert_eq!(
        rst.seq,
        ustack_tcp::SeqNumber(77),
        "RST carries SEQ = SEG.ACK"
    );
}

#[test]
fn ping_is_answered() {
    let mut net = Net::new();
    let mut pkt = vec![0u8; 28 + 8];
    let total = pkt.len() as u16;
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&total.to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 1;
    pkt[12..16].copy_from_slice(&common::A.octets());
    pkt[16..20].copy_from_slice(&common::B.octets());
    let c = ustack_ipv4::checksum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt[20] = 8;
    pkt[24..28].copy_from_slice(&[0, 1, 0, 7]);
    pkt[28..].copy_from_slice(b"pingdata");
    let c = ustack_ipv4::checksum::checksum(&pkt[20..]);
    pkt[22..24].copy_from_slice(&c.to_be_bytes());
    let mut out = Vec::new();
    net.b
        .handle_packet(net.now, &pkt, &mut |p| out.push(p.to_vec()));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][20], 0, "echo reply");
    assert_eq!(&out[0][28..], b"pingdata");
}

/// Builds an IPv4+TCP packet with valid checksums.
fn forge(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: ustack_tcp::SeqNumber,
    flags: ustack_tcp::wire::Flags,
) -> Vec<u8> {
    let repr = ustack_tcp::wire::TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq,
        ack: ustack_tcp::SeqNumber(77),
        flags,
        window: 1000,
        urgent: 0,
        options: ustack_tcp::wire::TcpOptions::default(),
    };
    common::forge(src, dst, &repr, &[])
}

#[test]
fn challenge_acks_are_rate_limited_rfc5961_7() {
    let mut net = Net::new();
    let (_c, s) = connected(&mut net);
    let rcv_nxt_at_b = next_seq_from_a(&net);
    let mut acks = 0;
    for i in 0..100u32 {
        let forged = forge(
            common::A,
            common::B,
            40000,
            80,
            rcv_nxt_at_b + (1000 + i),
            ustack_tcp::wire::Flags::RST,
        );
        net.b.handle_packet(net.now, &forged, &mut |_| {});
        net.b.poll(net.now, &mut |p| {
            if common::inspect(Dir::BtoA, p)
                .tcp
                .is_some_and(|t| t.flags.ack())
            {
                acks += 1;
            }
        });
    }
    assert_eq!(net.b.state(s), Ok(State::Established));
    assert_eq!(
        acks, 10,
        "100 forged RSTs in one instant draw 10 challenge ACKs"
    );
}

/// Data segments A sends in its first burst after `idle` without sending:
/// sends 150 kB, lets one round of packets happen, then lets it all arrive.
fn first_burst_after_idle(net: &mut Net, c: ConnId, s: ConnId, idle: Duration) -> usize {
    net.run_for(idle);
    let mark = net.log.len();
    let data = pattern(150_000, 9);
    let mut sent = net.a.send(c, &data).expect("send");
    net.step();
    let burst = net.log[mark..]
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.payload_len > 0)
        .count();
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    net.run_until(100_000, |n| {
        if sent < data.len() {
            sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        }
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            got += k;
        }
        got == data.len()
    });
    burst
}

#[test]
fn cwnd_restarts_from_the_initial_window_after_an_idle_rto_rfc5681_4_1() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    // Grow cwnd well past the initial window (10 segments of 1448 bytes).
    let data = pattern(2_000_000, 1);
    let (_, at_b) = exchange(&mut net, c, s, &data, &[]);
    assert_eq!(at_b.len(), data.len());
    // Idle for less than an RTO (200 ms at least): the window stands.
    let short = first_burst_after_idle(&mut net, c, s, Duration::from_millis(50));
    assert!(short > 10, "burst of {short} segments after a short pause");
    // Idle for more than an RTO: the restart window, min(IW, cwnd).
    let long = first_burst_after_idle(&mut net, c, s, Duration::from_secs(2));
    assert!(long <= 10, "burst of {long} segments after an idle RTO");
    assert!(
        long > 1,
        "burst of {long} segments: the restart window is the IW"
    );
}

/// `send` takes all of `min(len, send_space())` even when the free space
/// wraps around the end of the send ring (it used to stop at the wrap).
#[test]
fn send_takes_all_of_send_space_across_the_ring_wrap() {
    let mut net = Net::new();
    let (c, s) = connected(&mut net);
    let first = pattern(1000, 1);
    assert_eq!(net.a.send(c, &first), Ok(1000));
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    net.run_until(1000, |n| {
        if let Ok(k) = n.b.recv(s, &mut buf) {
            got += k;
        }
        got == 1000 && n.a.send_queue_len(c) == Ok(0)
    });
    // The ring's write position is now 1000 bytes in: its free space runs
    // to the end and on from the start.
    let space = net.a.send_space(c).expect("send space");
    let data = pattern(space + 10, 2);
    assert_eq!(net.a.send(c, &data), Ok(space));
    assert_eq!(net.a.send_space(c), Ok(0));
    let mut received = Vec::new();
    net.run_until(1_000_000, |n| {
        while let Ok(k) = n.b.recv(s, &mut buf) {
            if k == 0 {
                break;
            }
            received.extend_from_slice(&buf[..k]);
        }
        received.len() >= space
    });
    assert_eq!(received, data[..space]);
}

/// A whole host can move to another thread (the runtime and the socket
/// layer above run it on one of their own).
#[test]
fn a_host_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let net = Net::new();
    assert_send(&*net.a);
}

#[test]
fn unlisten_refuses_new_syns_and_resets_unaccepted_connections() {
    let mut net = Net::new();
    let l = net.b.listen(80, 16).expect("listen");
    let waiting = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40001))
        .unwrap();
    net.run_until(100, |n| n.a.state(waiting) == Ok(State::Established));
    assert_eq!(net.b.connection_count(), 1, "queued, never accepted");
    assert_eq!(net.b.unlisten(l), 1);
    assert_eq!(net.b.unlisten(l), 0, "already closed");
    net.run_until(100, |n| n.a.state(waiting) == Ok(State::Closed));
    assert_eq!(net.a.error(waiting), Ok(Some(TcpError::ConnectionReset)));
    let late = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40002))
        .unwrap();
    net.run_until(100, |n| n.a.state(late) == Ok(State::Closed));
    assert_eq!(
        net.a.error(late),
        Ok(Some(TcpError::ConnectionRefused(Net::addr_b(80))))
    );
    assert_eq!(net.b.accept(l), None);
}

#[test]
fn abort_all_resets_handles_and_orphans_and_active_count_ignores_time_wait() {
    let mut net = Net::new();
    let l = net.b.listen(80, 16).expect("listen");
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for port in 40010..40013 {
        let c = net.a.connect(net.now, Net::addr_b(80), Some(port)).unwrap();
        net.run_until(100, |n| {
            if let Some(s) = n.b.accept(l) {
                servers.push(s);
            }
            n.a.state(c) == Ok(State::Established) && servers.len() == clients.len() + 1
        });
        clients.push(c);
    }
    // One finished cleanly (B ends in TIME-WAIT), one orphaned with unsent
    // data still queued, one held by the application.
    net.b.shutdown(servers[0], net.now).unwrap();
    net.a.close(clients[0], net.now).unwrap();
    net.run_until(100, |n| n.b.state(servers[0]) == Ok(State::TimeWait));
    net.b.send(servers[1], &pattern(300_000, 7)).unwrap();
    net.b.close(servers[1], net.now).unwrap();
    assert_eq!(net.b.connection_count(), 3);
    assert_eq!(net.b.active_connection_count(), 2, "TIME-WAIT is done");

    let rst_before = net.b.stats().tcp_rst_sent;
    assert_eq!(net.b.abort_all(), 2, "TIME-WAIT is dropped without a RST");
    assert_eq!(net.b.connection_count(), 0);
    assert_eq!(net.b.active_connection_count(), 0);
    assert_eq!(net.b.state(servers[2]), Err(TcpError::InvalidHandle));
    net.run_until(1000, |n| {
        n.a.state(clients[1]) == Ok(State::Closed) && n.a.state(clients[2]) == Ok(State::Closed)
    });
    assert_eq!(net.a.error(clients[1]), Ok(Some(TcpError::ConnectionReset)));
    assert_eq!(net.a.error(clients[2]), Ok(Some(TcpError::ConnectionReset)));
    assert!(
        net.b.stats().tcp_rst_sent >= rst_before + 2,
        "one RST per synchronized connection"
    );
    // The listener is still there.
    let again = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40020))
        .unwrap();
    net.run_until(100, |n| n.a.state(again) == Ok(State::Established));
}

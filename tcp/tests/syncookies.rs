//! SYN cookies (RFC 4987 §3.6) and the table-full policy, between two
//! engines and against forged segments.

mod common;

use std::time::Duration;

use common::{config, forge, inspect, Dir, Net, A, B};
use ustack_tcp::wire::{Flags, TcpOptions, TcpRepr};
use ustack_tcp::{ConnId, ListenOptions, ListenerId, SeqNumber, State, SynCookies, TcpError};

fn cookie_listener(net: &mut Net, mode: SynCookies, backlog: usize) -> ListenerId {
    let opts = ListenOptions {
        backlog,
        syn_cookies: mode,
    };
    net.b.listen_with(80, opts).expect("listen")
}

/// Connects A to B's listener by hand (the cookie SYN-ACK leaves B
/// straight from its input path, which `Net` does not log); returns both
/// handles and every TCP header B sent.
fn connect(net: &mut Net, l: ListenerId, port: u16) -> (ConnId, ConnId, Vec<TcpRepr>) {
    let c = net
        .a
        .connect(net.now, Net::addr_b(80), Some(port))
        .expect("connect");
    let mut from_b = Vec::new();
    for _ in 0..10 {
        let now = net.now;
        let mut to_b = Vec::new();
        net.a.poll(now, &mut |p| to_b.push(p.to_vec()));
        let mut to_a = Vec::new();
        for p in &to_b {
            net.b.handle_packet(now, p, &mut |r| to_a.push(r.to_vec()));
        }
        net.b.poll(now, &mut |r| to_a.push(r.to_vec()));
        for p in &to_a {
            from_b.extend(inspect(Dir::BtoA, p).tcp);
            net.a.handle_packet(now, p, &mut |r| to_b.push(r.to_vec()));
        }
        net.now += Duration::from_millis(1);
        if net.a.state(c) == Ok(State::Established) && to_b.is_empty() && to_a.is_empty() {
            break;
        }
    }
    let s = net.b.accept(l).expect("accepted");
    assert_eq!(net.a.state(c), Ok(State::Established));
    (c, s, from_b)
}

fn syn_ack(from_b: &[TcpRepr]) -> TcpRepr {
    *from_b
        .iter()
        .find(|t| t.flags.syn() && t.flags.ack())
        .expect("a SYN-ACK")
}

/// Sends `len` bytes from `from` on A's `c` to B's `s` (or back), returns
/// what arrived and the most B had in flight unacknowledged towards A.
fn transfer_b_to_a(net: &mut Net, s: ConnId, c: ConnId, len: usize) -> (Vec<u8>, u32) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let start = net.log.len();
    for _ in 0..200_000 {
        if got.len() == len {
            break;
        }
        if sent < len {
            sent += net.b.send(s, &data[sent..]).unwrap_or(0);
        }
        let mut buf = [0u8; 65536];
        while let Ok(n) = net.a.recv(c, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        net.step();
    }
    // Largest SEQ + LEN - last ACK seen from A: what B dared to send.
    let (mut acked, mut in_flight) = (None::<SeqNumber>, 0u32);
    for seen in &net.log[start..] {
        let Some(t) = seen.tcp else { continue };
        match seen.dir {
            Dir::AtoB => acked = Some(t.ack),
            Dir::BtoA => {
                if let Some(a) = acked {
                    let end = t.seq + seen.payload_len;
                    in_flight = in_flight.max(end.distance(a).max(0) as u32);
                }
            }
        }
    }
    assert_eq!(got, data, "the stream arrives intact");
    (got, in_flight)
}

fn big_window_net(timestamps: bool) -> Net {
    let mut ca = config(A);
    ca.tcp.recv_buffer = 4 << 20;
    ca.tcp.timestamps = timestamps;
    let mut cb = config(B);
    cb.tcp.send_buffer = 4 << 20;
    Net::with_configs(ca, cb)
}

#[test]
fn forced_cookies_carry_window_scale_and_sack_in_the_timestamp() {
    let mut net = big_window_net(true);
    let l = cookie_listener(&mut net, SynCookies::Always, 8);
    let (c, s, from_b) = connect(&mut net, l, 40000);
    let st = net.b.stats().clone();
    assert_eq!((st.tcp_syncookies_sent, st.tcp_syncookies_ok), (1, 1));
    assert_eq!(net.b.connection_count(), 1, "no state before the third ACK");
    let sa = syn_ack(&from_b);
    assert!(sa.options.window_scale.is_some() && sa.options.sack_permitted);
    assert!(sa.options.timestamps.is_some());
    // A advertises 4 MiB through a shift: B must have restored it to send
    // more than an unscaled 64 KiB window at a time.
    let (_, in_flight) = transfer_b_to_a(&mut net, s, c, 2 << 20);
    assert!(
        in_flight > 65535,
        "B sent at most {in_flight} bytes unacknowledged"
    );
    // And A to B.
    assert_eq!(net.a.send(c, b"ping"), Ok(4));
    let mut buf = [0u8; 16];
    let mut n = 0;
    net.run_until(100, |net| {
        n = net.b.recv(s, &mut buf).unwrap_or(0);
        n > 0
    });
    assert_eq!(&buf[..n], b"ping");
}

#[test]
fn without_timestamps_the_cookie_offers_no_window_scale_or_sack() {
    let mut net = big_window_net(false);
    let l = cookie_listener(&mut net, SynCookies::Always, 8);
    let (c, s, from_b) = connect(&mut net, l, 40000);
    let sa = syn_ack(&from_b);
    assert_eq!(sa.options.window_scale, None);
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamps, None);
    assert!(sa.options.mss.is_some());
    let (_, in_flight) = transfer_b_to_a(&mut net, s, c, 512 << 10);
    assert!(
        in_flight <= 65535,
        "window scale was lost: {in_flight} in flight"
    );
}

#[test]
fn auto_mode_switches_to_cookies_when_the_backlog_is_full() {
    let mut net = Net::new();
    let l = cookie_listener(&mut net, SynCookies::Auto, 1);
    // The first SYN reaches B; its SYN-ACK waits in B until the next step.
    let first = net
        .a
        .connect(net.now, Net::addr_b(80), Some(40000))
        .expect("connect");
    let now = net.now;
    net.a
        .poll(now, &mut |p| net.b.handle_packet(now, p, &mut |_| {}));
    assert_eq!(net.b.connection_count(), 1, "first SYN got a TCB");
    assert_eq!(net.b.stats().tcp_syncookies_sent, 0);
    // The backlog (1) is now taken: the next SYN is answered with a cookie.
    let (c2, _, _) = connect(&mut net, l, 40001);
    assert_eq!(net.b.stats().tcp_syncookies_ok, 1);
    assert_eq!(net.a.state(c2), Ok(State::Established));
    // The first completes too, and both reach the accept queue.
    net.run_until(2000, |n| n.a.state(first) == Ok(State::Established));
    net.run_for(Duration::from_millis(10));
    assert!(net.b.accept(l).is_some(), "both were queued");
}

/// A forged client: SYN to B, B's answer, and what the third ACK would be.
fn forged_handshake(net: &mut Net, port: u16, ts: bool) -> (TcpRepr, TcpRepr) {
    let syn = TcpRepr {
        src_port: port,
        dst_port: 80,
        seq: SeqNumber(1000),
        ack: SeqNumber(0),
        flags: Flags::SYN,
        window: 65535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: ts.then_some((5000, 0)),
            ..TcpOptions::default()
        },
    };
    let mut out = Vec::new();
    net.b
        .handle_packet(net.now, &forge(A, B, &syn, &[]), &mut |p| {
            out.push(p.to_vec())
        });
    net.b.poll(net.now, &mut |p| out.push(p.to_vec()));
    let sa = out
        .iter()
        .filter_map(|p| inspect(Dir::BtoA, p).tcp)
        .find(|t| t.flags.syn() && t.flags.ack())
        .expect("SYN-ACK");
    let ack = TcpRepr {
        seq: SeqNumber(1001),
        ack: sa.seq + 1u32,
        flags: Flags::ACK | Flags::PSH,
        window: 512,
        options: TcpOptions {
            timestamps: sa.options.timestamps.map(|(v, _)| (5001, v)),
            ..TcpOptions::default()
        },
        ..syn
    };
    (sa, ack)
}

fn deliver(net: &mut Net, repr: &TcpRepr, payload: &[u8]) -> Vec<TcpRepr> {
    let mut out = Vec::new();
    let pkt = forge(A, B, repr, payload);
    net.b
        .handle_packet(net.now, &pkt, &mut |p| out.push(p.to_vec()));
    net.b.poll(net.now, &mut |p| out.push(p.to_vec()));
    out.iter()
        .filter_map(|p| inspect(Dir::BtoA, p).tcp)
        .collect()
}

#[test]
fn data_in_the_cookie_ack_is_kept() {
    let mut net = Net::new();
    let l = cookie_listener(&mut net, SynCookies::Always, 8);
    let (_, ack) = forged_handshake(&mut net, 41000, true);
    let replies = deliver(&mut net, &ack, b"GET / HTTP/1.1\r\n\r\n");
    let s = net.b.accept(l).expect("the cookie made a connection");
    assert_eq!(net.b.state(s), Ok(State::Established));
    let mut buf = [0u8; 64];
    let n = net.b.recv(s, &mut buf).expect("data");
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
    assert!(replies.iter().all(|r| !r.flags.rst()));
    // The window the peer sent is scaled by the shift the cookie restored.
    let _ = net.b.send(s, &[7u8; 100_000]);
    let mut sent = 0;
    net.b.poll(net.now, &mut |p| {
        sent += inspect(Dir::BtoA, p).payload_len;
    });
    assert!(sent > 0, "B sends into the restored window");
}

#[test]
fn forged_or_stale_cookies_are_dropped_and_counted() {
    let mut net = Net::new();
    let l = cookie_listener(&mut net, SynCookies::Always, 8);
    let (_, ack) = forged_handshake(&mut net, 41000, false);
    let wrong = TcpRepr {
        ack: ack.ack + 1u32,
        ..ack
    };
    let replies = deliver(&mut net, &wrong, b"x");
    assert!(replies.is_empty(), "no RST for a bad cookie: {replies:?}");
    assert_eq!(net.b.stats().tcp_syncookies_failed, 1);
    assert_eq!(net.b.connection_count(), 0);
    // Three counter periods later the right cookie is stale.
    net.now += Duration::from_secs(3 * 64);
    deliver(&mut net, &ack, b"x");
    assert_eq!(net.b.stats().tcp_syncookies_failed, 2);
    assert!(net.b.accept(l).is_none());
}

#[test]
fn without_cookies_in_use_a_stray_ack_still_gets_a_rst() {
    let mut net = Net::new();
    let _l = cookie_listener(&mut net, SynCookies::Auto, 8);
    let stray = TcpRepr {
        src_port: 41000,
        dst_port: 80,
        seq: SeqNumber(1),
        ack: SeqNumber(99),
        flags: Flags::ACK,
        window: 512,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let replies = deliver(&mut net, &stray, &[]);
    assert!(replies.iter().any(|r| r.flags.rst()), "RFC 9293 §3.10.7.2");
    assert_eq!(net.b.stats().tcp_syncookies_failed, 0);
}

#[test]
fn full_table_evicts_the_connection_idle_longest() {
    let mut cb = config(B);
    cb.max_connections = 3;
    let mut net = Net::with_configs(config(A), cb);
    let l = cookie_listener(&mut net, SynCookies::Auto, 8);
    let mut pairs = Vec::new();
    for port in 40000..40003 {
        let (c, s, _) = connect(&mut net, l, port);
        pairs.push((c, s));
        net.run_for(Duration::from_secs(1));
    }
    assert_eq!(
        net.b.stats().tcp_syncookies_sent,
        0,
        "room for the first three"
    );
    // Traffic on the first one: the second is now the one idle longest.
    let (c0, s0) = pairs[0];
    net.a.send(c0, b"hi").expect("send");
    net.run_for(Duration::from_secs(1));
    let mut buf = [0u8; 8];
    assert_eq!(net.b.recv(s0, &mut buf), Ok(2));
    while net.b.poll_ready().is_some() {}

    let (c3, s3, _) = connect(&mut net, l, 40003);
    assert_eq!(net.b.stats().tcp_syncookies_ok, 1, "table full: a cookie");
    assert_eq!(net.b.stats().tcp_evicted, 1);
    assert_eq!(net.b.connection_count(), 3);
    assert_eq!(net.b.state(s3), Ok(State::Established));
    assert_eq!(net.a.state(c3), Ok(State::Established));
    let (c1, s1) = pairs[1];
    // B's application hears of it; A's side was reset.
    assert_eq!(net.b.poll_ready(), Some(s1));
    assert_eq!(net.b.state(s1), Err(TcpError::InvalidHandle));
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.a.error(c1), Ok(Some(TcpError::ConnectionReset)));
    for &(c, s) in [pairs[0], pairs[2]].iter() {
        assert_eq!(net.a.state(c), Ok(State::Established));
        assert_eq!(net.b.state(s), Ok(State::Established));
    }
    net.b.check_invariants().expect("invariants");
}

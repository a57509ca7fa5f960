//! The blocking sockets (`ustack::socket`) against the kernel's TCP over a
//! TUN device in a namespace of the test's own: an echo server on the stack
//! that a std::net client talks to, a client on the stack talking to a
//! kernel server, and the errors std users expect.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use common::NetNs;
use ustack::socket::{NetStack, TcpListener, TcpStream};
use ustack_tcp::TcpLayerConfig;

/// A stack at 10.0.0.2 on tun0 (host side 10.0.0.1/24) in `ns`.
fn stack_in(ns: &NetNs) -> NetStack {
    common::tun_stack_in(ns, TcpLayerConfig::default())
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn echo_server_on_the_stack_serves_a_kernel_client() {
    let Some(ns) = common::netns("sock-echo") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7).expect("bind");
    let server = std::thread::spawn(move || {
        let (stream, peer) = listener.accept().expect("accept");
        assert_eq!(peer.ip(), Ipv4Addr::new(10, 0, 0, 1));
        // Echo until the client half-closes, then half-close back.
        let (mut r, mut w) = (&stream, &stream);
        let n = std::io::copy(&mut r, &mut w).expect("echo");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        n
    });
    let data = pattern(2_000_000);
    let mut client = std::net::TcpStream::connect("10.0.0.2:7").expect("kernel connect");
    let writer = {
        let mut c = client.try_clone().expect("clone");
        let data = data.clone();
        std::thread::spawn(move || {
            c.write_all(&data).expect("write");
            c.shutdown(Shutdown::Write).expect("half-close");
        })
    };
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("read echo");
    writer.join().expect("writer");
    assert_eq!(server.join().expect("server"), data.len() as u64);
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
}

#[test]
fn client_on_the_stack_talks_to_a_kernel_server_and_sees_refusal() {
    let Some(ns) = common::netns("sock-client") else {
        return;
    };
    let net = stack_in(&ns);
    let kernel = std::net::TcpListener::bind("10.0.0.1:9000").expect("kernel listen");
    let server = std::thread::spawn(move || {
        let (mut s, _) = kernel.accept().expect("kernel accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        s.write_all(&buf).expect("write");
    });
    let addr: SocketAddr = "10.0.0.1:9000".parse().unwrap();
    let mut s = TcpStream::connect(&net, addr).expect("connect");
    assert_eq!(s.peer_addr().unwrap(), addr);
    assert_eq!(s.local_addr().unwrap().ip(), Ipv4Addr::new(10, 0, 0, 2));
    s.set_nodelay(true).unwrap();
    s.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    server.join().unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "EOF after the server closed"
    );

    // A closed port: the kernel answers with a RST.
    let err = TcpStream::connect(&net, "10.0.0.1:9001".parse().unwrap())
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // A read timeout on a silent connection reads as WouldBlock, as std's.
    let quiet = std::net::TcpListener::bind("10.0.0.1:9002").unwrap();
    let s = TcpStream::connect(&net, "10.0.0.1:9002".parse().unwrap()).unwrap();
    let _held = quiet.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let err = (&s).read(&mut [0u8; 8]).err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
}

#[test]
fn writing_after_shutdown_is_a_broken_pipe_and_a_reset_is_reported() {
    let Some(ns) = common::netns("sock-errors") else {
        return;
    };
    let net = stack_in(&ns);
    let kernel = std::net::TcpListener::bind("10.0.0.1:9100").expect("kernel listen");
    let s = TcpStream::connect(&net, "10.0.0.1:9100".parse().unwrap()).unwrap();
    let (peer, _) = kernel.accept().unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let err = (&s).write(b"late").err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");

    // The kernel closes with unread data pending on its side: a RST.
    let s2 = TcpStream::connect(&net, "10.0.0.1:9100".parse().unwrap()).unwrap();
    let (peer2, _) = kernel.accept().unwrap();
    (&s2).write_all(b"unread").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(peer2);
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let err = (&s2).read(&mut [0u8; 8]).err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    drop(peer);
    // The stack stops when the last handle goes.
    drop((s, s2));
    net.stop();
}

/// A kernel client's upload read on the stack through posted buffers:
/// every byte in order, and end of stream as a buffer handed back empty.
#[test]
fn posted_receive_buffers_take_a_kernel_upload_to_the_end() {
    let Some(ns) = common::netns("sock-posted") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7).expect("bind");
    let data = pattern(8_000_000);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect("10.0.0.2:7").expect("kernel connect");
            c.write_all(&data).expect("write");
        })
    };
    let (s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut posted = 0;
    for _ in 0..4 {
        s.post_recv(vec![0; 32 * 1024].into_boxed_slice())
            .expect("post");
        posted += 1;
    }
    let err = (&s).read(&mut [0u8; 8]).expect_err("read while posted");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let mut got = Vec::with_capacity(data.len());
    loop {
        let f = s.take_recv().expect("take_recv");
        if f.len == 0 {
            if f.buf.is_empty() {
                break;
            }
            posted -= 1;
            continue;
        }
        got.extend_from_slice(f.data());
        // The buffer goes back at once; past the end of stream it is refused.
        match s.post_recv(f.buf) {
            Ok(()) => {}
            Err(r) => {
                assert_eq!(r.reason, ustack_tcp::Refusal::Ended, "{}", r.reason);
                posted -= 1;
            }
        }
    }
    writer.join().expect("writer");
    assert_eq!(posted, 0, "every posted buffer came back");
    assert!(
        got == data,
        "{} of {} bytes, or out of order",
        got.len(),
        data.len()
    );
}

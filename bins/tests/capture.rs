//! Any-address capture through the blocking sockets: networks routed into a
//! TUN device in the test's namespace, kernel clients connecting to
//! addresses there, and the stack taking them with their original
//! destination.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::Duration;

use common::NetNs;
use ustack::socket::{CaptureListener, NetStack};
use ustack_ipv4::Ipv4Subnet;
use ustack_tcp::{CaptureFilter, TcpLayerConfig};

/// A stack at 10.0.0.2 on tun0 (host side 10.0.0.1/24) in `ns`, with
/// 192.0.2.0/24 and 198.51.100.0/24 routed into the device.
fn stack_in(ns: &NetNs) -> NetStack {
    let net = common::tun_stack_in(ns, TcpLayerConfig::default());
    for net in ["192.0.2.0/24", "198.51.100.0/24"] {
        ns.ip(&["route", "add", net, "dev", "tun0"]).expect("route");
    }
    net
}

#[test]
fn capture_takes_routed_destinations_and_refuses_the_rest() {
    let Some(ns) = common::netns("capture") else {
        return;
    };
    let net = stack_in(&ns);
    let filter = CaptureFilter::any()
        .subnet(Ipv4Subnet::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap())
        .ports(80..=80)
        .ports(9..=9);
    let capture = CaptureListener::bind(&net, filter).expect("capture");
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let pending = capture.next_timeout(Duration::from_secs(20)).expect("next");
            seen.push(pending.local_addr());
            if pending.local_addr().port() == 9 {
                pending.refuse();
                continue;
            }
            let mut s = pending.accept().expect("accept");
            let mut req = Vec::new();
            s.read_to_end(&mut req).expect("read");
            let local = s.local_addr().expect("local_addr");
            s.write_all(format!("{local} got {}", req.len()).as_bytes())
                .expect("write");
            s.shutdown(Shutdown::Write).expect("shutdown");
        }
        (seen, capture)
    });

    let timeout = Duration::from_secs(10);
    let to = |a: &str| a.parse::<SocketAddr>().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&to("192.0.2.7:80"), timeout)
        .expect("connect to a captured address");
    assert_eq!(c.peer_addr().unwrap(), to("192.0.2.7:80"));
    c.write_all(&[7u8; 5000]).expect("send");
    c.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = String::new();
    c.read_to_string(&mut reply).expect("reply");
    assert_eq!(reply, "192.0.2.7:80 got 5000");

    // Refused by the application: the client hears "connection refused".
    let e = std::net::TcpStream::connect_timeout(&to("192.0.2.9:9"), timeout).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    let (seen, _capture) = server.join().expect("server");
    assert_eq!(seen, vec![to("192.0.2.7:80"), to("192.0.2.9:9")]);
    // Outside the filter (port, then network): refused by TCP itself, or
    // not answered at all.
    let e = std::net::TcpStream::connect_timeout(&to("192.0.2.7:81"), timeout).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    let e = std::net::TcpStream::connect_timeout(&to("198.51.100.1:80"), Duration::from_secs(2))
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::TimedOut,
        "not captured, not answered: {e}"
    );
}

//! An HTTP/1.0 client on ustack over a TUN device, with the blocking
//! sockets: it fetches a page from a kernel server on the device's host side.
//! As root: `python3 -m http.server 8000 &`, then
//! `cargo run --example http_client -- 10.0.0.1:8000 /`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ustack::socket::{NetStack, TcpStream};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{TunConfig, TunLink};

/// Fetches `path` from `server` with a stack at 10.0.0.2 on a new `tun0`
/// (host side 10.0.0.1/24); returns the whole response, head and body.
pub fn fetch(server: SocketAddr, path: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let tun = TunConfig {
        name: "tun0".into(),
        host_addr: Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        offload: true,
    };
    let subnet = Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 2), 24).ok_or("bad prefix")?;
    let stack = NetStack::spawn(TunLink::create(&tun)?, subnet, Default::default())?;
    let mut stream = TcpStream::connect_timeout(&stack, server, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {server}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response)
}

#[allow(dead_code)] // the tests call `fetch`, not `main`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args
        .next()
        .unwrap_or_else(|| "10.0.0.1:8000".into())
        .parse()?;
    let path = args.next().unwrap_or_else(|| "/".into());
    let response = fetch(server, &path)?;
    std::io::stdout().write_all(&response)?;
    Ok(())
}

//! A TCP echo server on ustack over a TUN device, with the tokio sockets.
//! As root: `cargo run --example echo_tokio`, then `nc 10.0.0.2 7`.

use std::net::Ipv4Addr;
use ustack::socket::{tokio::TcpListener, NetStack};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{TunConfig, TunLink};

// The README shows the body of `main` as it stands here (tests/async_sockets.rs
// checks it), one line per step: rustfmt would spread `tun` over seven.
#[rustfmt::skip]
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tun = TunConfig { name: "tun0".into(), host_addr: Ipv4Addr::new(10, 0, 0, 1), prefix_len: 24, mtu: 1500, offload: true };
    let subnet = Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 2), 24).ok_or("bad prefix")?;
    let stack = NetStack::spawn(TunLink::create(&tun)?, subnet, Default::default())?;
    let listener = TcpListener::bind(&stack, 7)?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (mut reader, mut writer) = tokio::io::split(stream);
            tokio::io::copy(&mut reader, &mut writer).await
        });
    }
}

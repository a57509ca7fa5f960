//! The AF_PACKET section's network: a namespace `ustack-tuna-PID` holding
//! the server ends of two veth pairs whose other ends are in the client
//! namespace. ustack's `tun-server --link afpacket` owns 10.0.5.2 on
//! `veth-au` (client end `veth-cu`, 10.0.5.1/24) and smoltcp's `RawSocket`
//! server owns 10.0.6.2 on `veth-as` (client end `veth-cs`, 10.0.6.1/24).
//! The kernel there holds no address, so it neither answers nor resets
//! their flows. The kernel baseline is the TUN section's veth pair
//! (`veth-c`/`veth-k`, the kernel serving in `ustack-tunk-PID`).
//!
//! ustack's link reads the virtio-net header (`PACKET_VNET_HDR`), so it
//! takes the partial checksums and GSO super-packets a veth carries and
//! its pair keeps the veth defaults. smoltcp's `RawSocket` reads plain
//! frames of at most the MTU and checks every checksum: with the defaults
//! the client's segments reach it with partial checksums and not even a
//! handshake completes. So the client's end of smoltcp's pair gets
//! [`SMOL_OFFLOADS_OFF`] (checksum offload off, which takes TSO with it;
//! the kernel then segments in software before the veth, GSO), and nothing
//! else changes.

use std::net::Ipv4Addr;

use ustack::netns::NetNs;

use crate::server::{ns_command, run_checked, Server, SERVER_CPU};

/// ustack's address on `veth-au`.
pub const USTACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 5, 2);
/// smoltcp's address on `veth-as`.
pub const SMOL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 6, 2);
/// The interface smoltcp's role binds to.
pub const SMOL_IFACE: &str = "veth-as";
/// What `ethtool -K veth-cs` turns off on the client's end of smoltcp's
/// pair: transmit checksum offload (and with it TSO), without which the
/// raw socket gets segments whose checksum the kernel left partial.
pub const SMOL_OFFLOADS_OFF: &[&str] = &["tx", "off"];

/// The section's namespace and its two servers (dropped servers first).
pub struct AfPacket {
    pub ustack: Server,
    pub smoltcp: Server,
    pub ns: NetNs,
}

/// Builds the veth pairs and starts both servers.
pub fn setup(client: &NetNs, tun_server: &str, me: &str) -> Result<AfPacket, String> {
    if std::process::Command::new("ethtool")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(
            "`ethtool` is not installed (apt install ethtool): the AF_PACKET \
                    section turns off offloads on smoltcp's veth pair"
                .into(),
        );
    }
    let ns = NetNs::create("tuna").map_err(|e| e.to_string())?;
    for (c, s, addr) in [
        ("veth-cu", "veth-au", "10.0.5.1/24"),
        ("veth-cs", "veth-as", "10.0.6.1/24"),
    ] {
        let e = |e: ustack::netns::NetNsError| e.to_string();
        client
            .ip(&[
                "link",
                "add",
                c,
                "type",
                "veth",
                "peer",
                "name",
                s,
                "netns",
                ns.name(),
            ])
            .map_err(e)?;
        client.ip(&["addr", "add", addr, "dev", c]).map_err(e)?;
        client.ip(&["link", "set", c, "up"]).map_err(e)?;
        ns.ip(&["link", "set", s, "up"]).map_err(e)?;
    }
    run_checked(
        std::process::Command::new("ip")
            .args(["netns", "exec", client.name(), "ethtool", "-K", "veth-cs"])
            .args(SMOL_OFFLOADS_OFF),
    )?;
    let ustack = Server::spawn(
        "ustack tun-server --link afpacket",
        ns_command(ns.name(), tun_server, SERVER_CPU)
            .args(["--link", "afpacket", "--iface", "veth-au", "--prefix", "24"])
            .arg("--addr")
            .arg(USTACK_ADDR.to_string())
            .env("RUST_LOG", "warn"),
    )?;
    let smoltcp = Server::spawn(
        "smoltcp RawSocket server",
        ns_command(ns.name(), me, SERVER_CPU).env(crate::ROLE_ENV, "smoltcp-afpacket"),
    )?;
    Ok(AfPacket {
        ustack,
        smoltcp,
        ns,
    })
}

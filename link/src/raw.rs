//! A raw IPv4 TCP socket (`AF_INET, SOCK_RAW, IPPROTO_TCP`) with
//! `IP_HDRINCL`, filtered down to one TCP flow by a classic BPF program.
//!
//! The kernel's own TCP stack still sees every packet of the flow: it will
//! answer segments for a port no kernel socket owns with a RST. The runtime
//! must stop that (for example an nftables rule dropping outgoing RSTs from
//! the local port), or use a TUN device instead.
//!
//! On loopback (both ends on this host) Linux never finishes TCP checksums
//! (CHECKSUM_PARTIAL: the field holds only the pseudo-header sum) and the
//! raw socket sees the packet as is, so every packet comes up
//! [`RxChecksum::Partial`]; loopback cannot corrupt a packet, so nothing is
//! lost by not verifying it. Loopback also hands the socket unsegmented GSO
//! packets of up to 64 KiB whatever the MSS: there, pass a
//! [`MAX_PACKET_LEN`](crate::MAX_PACKET_LEN)-byte receive buffer, more than
//! [`DeviceCaps::max_rx_len`] says (the link has no TSO to send with).

use std::io::{self, IoSlice, Read};
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use ustack_ipv4::{DeviceCaps, Ipv4Packet, RxChecksum, RxInfo, RxPacket, TxPacket};

use crate::{
    check_parts, is_queue_full, no_tso, Link, LinkError, LinkStats, MAX_TX_PARTS, MIN_IPV4_MTU,
};

/// Firewall mark (SO_MARK) on every packet a [`RawLink`] sends ("ustc").
pub const PACKET_MARK: u32 = 0x7573_7463;

/// Which flow a [`RawLink`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawConfig {
    /// Our end: the address and port the stack sends from.
    pub local: SocketAddrV4,
    /// The peer.
    pub remote: SocketAddrV4,
    /// Largest IPv4 packet to send or expect.
    pub mtu: u16,
}

/// One TCP flow over a raw socket. The stack writes whole IPv4 packets,
/// header included; `recv` yields whole IPv4 packets of the flow as sent by
/// the peer, header included, and never our own outgoing packets.
#[derive(Debug)]
pub struct RawLink {
    socket: Socket,
    /// `raw socket <local><-><remote>`: both the name and the error label.
    name: String,
    mtu: usize,
    stats: LinkStats,
    /// Both ends are on this host, so packets cross the loopback device
    /// and come up with partial checksums.
    loopback: bool,
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
const BPF_AND: u16 = 0x50;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;

/// Offsets into the IPv4 header (RFC 791, section 3.1). A raw `AF_INET`
/// socket's filter sees the packet from the first byte of the IP header.
mod ip {
    pub const VERSION_IHL: u32 = 0;
    pub const FLAGS_FRAG_OFFSET: u32 = 6;
    pub const PROTOCOL: u32 = 9;
    pub const SRC_ADDR: u32 = 12;
    pub const DST_ADDR: u32 = 16;
}

/// Offsets into the TCP header (RFC 9293, section 3.1), from its start.
mod tcp {
    pub const SRC_PORT: u32 = 0;
    pub const DST_PORT: u32 = 2;
}

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Instructions in [`flow_filter`].
pub(crate) const FLOW_FILTER_LEN: usize = 18;

/// A classic BPF program that accepts exactly the packets of the flow
/// `remote -> local`: IPv4, protocol TCP, source `remote`, destination
/// `local`, first fragment only. Every other packet, our own outgoing
/// packets (`local -> remote`) included, is rejected.
pub(crate) fn flow_filter(
    local: SocketAddrV4,
    remote: SocketAddrV4,
) -> [libc::sock_filter; FLOW_FILTER_LEN] {
    const ACCEPT: usize = FLOW_FILTER_LEN - 2;
    const REJECT: usize = FLOW_FILTER_LEN - 1;
    // A conditional jump at index `at` skips `jt`/`jf` instructions; this
    // jumps to REJECT when the test is false (or true, for `reject_if`).
    const fn to_reject(at: usize) -> u8 {
        (REJECT - at - 1) as u8
    }
    let prog = [
        /* 0 */ stmt(BPF_LD | BPF_B | BPF_ABS, ip::VERSION_IHL),
        /* 1 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0xf0),
        /* 2 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x40, 0, to_reject(2)),
        /* 3 */ stmt(BPF_LD | BPF_B | BPF_ABS, ip::PROTOCOL),
        /* 4 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::IPPROTO_TCP as u32,
            0,
            to_reject(4),
        ),
        /* 5 */ stmt(BPF_LD | BPF_W | BPF_ABS, ip::SRC_ADDR),
        /* 6 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            u32::from(*remote.ip()),
            0,
            to_reject(6),
        ),
        /* 7 */ stmt(BPF_LD | BPF_W | BPF_ABS, ip::DST_ADDR),
        /* 8 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            u32::from(*local.ip()),
            0,
            to_reject(8),
        ),
        // A non-first fragment carries no TCP header where we would look.
        /* 9 */
        stmt(BPF_LD | BPF_H | BPF_ABS, ip::FLAGS_FRAG_OFFSET),
        /* 10 */ jump(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, to_reject(10), 0),
        // X = 4 * IHL: the TCP header starts after any IP options.
        /* 11 */
        stmt(BPF_LDX | BPF_B | BPF_MSH, ip::VERSION_IHL),
        /* 12 */ stmt(BPF_LD | BPF_H | BPF_IND, tcp::SRC_PORT),
        /* 13 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            remote.port() as u32,
            0,
            to_reject(13),
        ),
        /* 14 */ stmt(BPF_LD | BPF_H | BPF_IND, tcp::DST_PORT),
        /* 15 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            local.port() as u32,
            0,
            to_reject(15),
        ),
        /* 16 = ACCEPT */ stmt(BPF_RET | BPF_K, u32::MAX),
        /* 17 = REJECT */ stmt(BPF_RET | BPF_K, 0),
    ];
    debug_assert!(prog[ACCEPT].code == BPF_RET | BPF_K && prog[ACCEPT].k == u32::MAX);
    prog
}

fn to_socket2(prog: &[libc::sock_filter]) -> Vec<SockFilter> {
    prog.iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

fn validate(cfg: &RawConfig) -> Result<(), LinkError> {
    if cfg.local.ip() == cfg.remote.ip() && cfg.local.port() == cfg.remote.port() {
        return Err(LinkError::InvalidConfig(format!(
            "raw link {} -> {}: local and remote are the same address and port, so our \
             own outgoing packets would match the incoming-flow filter",
            cfg.local, cfg.remote
        )));
    }
    if cfg.local.port() == 0 || cfg.remote.port() == 0 {
        return Err(LinkError::InvalidConfig(format!(
            "raw link {} -> {}: port 0 is not a valid TCP port",
            cfg.local, cfg.remote
        )));
    }
    if usize::from(cfg.mtu) < MIN_IPV4_MTU {
        return Err(LinkError::InvalidConfig(format!(
            "raw link {} -> {}: MTU {} is below the IPv4 minimum of {MIN_IPV4_MTU}",
            cfg.local, cfg.remote, cfg.mtu
        )));
    }
    Ok(())
}

fn os_error(device: &str, op: &'static str, source: io::Error) -> LinkError {
    match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) if op == "open" => LinkError::PermissionDenied {
            device: device.to_owned(),
            capability: "CAP_NET_RAW",
        },
        _ => LinkError::Io {
            device: device.to_owned(),
            op,
            source,
        },
    }
}

impl RawLink {
    /// Opens the raw socket, installs the flow filter and makes it non-blocking.
    pub fn open(cfg: &RawConfig) -> Result<RawLink, LinkError> {
        validate(cfg)?;
        let name = format!("raw socket {}<->{}", cfg.local, cfg.remote);
        let label = name.as_str();
        let err = |op| move |e| os_error(label, op, e);

        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))
            .map_err(|e| os_error(&name, "open", e))?;
        // From creation on, the socket receives every TCP packet the host
        // sees. Shut that off first, drop what queued meanwhile, and only
        // then open the filter to our flow: no stray packet survives.
        let reject_all = [SockFilter::new(BPF_RET | BPF_K, 0, 0, 0)];
        socket
            .attach_filter(&reject_all)
            .map_err(err("attach reject-all filter"))?;
        socket
            .set_nonblocking(true)
            .map_err(err("set non-blocking"))?;
        crate::sockopt::size_receive_queue(&socket, label);
        let mut scratch = [0u8; 256];
        let mut drained = 0usize;
        loop {
            match (&socket).read(&mut scratch) {
                Ok(_) => drained += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err("drain")(e)),
            }
        }
        socket
            .attach_filter(&to_socket2(&flow_filter(cfg.local, cfg.remote)))
            .map_err(err("attach flow filter"))?;
        socket
            .set_header_included_v4(true)
            .map_err(err("set IP_HDRINCL"))?;
        // Our packets carry a firewall mark so that a rule dropping the
        // kernel's RSTs for this flow can let our own RSTs through.
        socket.set_mark(PACKET_MARK).map_err(err("set SO_MARK"))?;

        tracing::info!(link = %name, mtu = cfg.mtu, drained, "raw link open");
        Ok(RawLink {
            socket,
            name,
            mtu: usize::from(cfg.mtu),
            stats: LinkStats::default(),
            loopback: cfg.remote.ip().is_loopback() || cfg.remote.ip() == cfg.local.ip(),
        })
    }

    fn malformed(&self, reason: &'static str) -> LinkError {
        LinkError::MalformedPacket {
            device: self.name.clone(),
            reason,
        }
    }
}

impl Link for RawLink {
    /// A packet longer than `buf` is truncated by the kernel: pass a buffer
    /// of at least [`DeviceCaps::mtu`] bytes, and of [`MAX_PACKET_LEN`](crate::MAX_PACKET_LEN) on
    /// loopback (see the module doc). On loopback every packet is
    /// [`RxChecksum::Partial`], elsewhere [`RxChecksum::Unverified`].
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let checksum = if self.loopback {
            RxChecksum::Partial
        } else {
            RxChecksum::Unverified
        };
        loop {
            match (&self.socket).read(buf) {
                Ok(len) => {
                    self.stats.count_rx(len);
                    return Ok(Some(RxPacket {
                        len,
                        info: RxInfo {
                            checksum,
                            gro_segment: None,
                        },
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(os_error(&self.name, "recv", e)),
            }
        }
    }

    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        crate::recv_into_buffer(self, buf, f)
    }

    /// One `sendmsg` (`send_to_vectored`) of the parts to the packet's own
    /// destination address. With `IP_HDRINCL` the kernel keeps our header
    /// but always fills in the total length and the header checksum, and
    /// fills the identification and source address if they are zero. No
    /// segmentation offload: a super-frame is `InvalidConfig`.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        check_parts(pkt, &self.name)?;
        if pkt.segment.is_some() {
            return Err(no_tso(&self.name));
        }
        let len = pkt.len();
        if len > self.mtu {
            return Err(LinkError::PacketTooLarge {
                device: self.name.clone(),
                len,
                mtu: self.mtu,
            });
        }
        let Some(head) = pkt.head::<20>() else {
            return Err(self.malformed("shorter than an IPv4 header"));
        };
        let ip = Ipv4Packet::new_unchecked(&head[..]);
        if ip.version() != 4 {
            return Err(self.malformed("IP version is not 4"));
        }
        let to = SockAddr::from(SocketAddrV4::new(ip.dst_addr(), 0));
        let mut bufs = [IoSlice::new(&[]); MAX_TX_PARTS];
        for (b, part) in bufs.iter_mut().zip(pkt.parts) {
            *b = IoSlice::new(part);
        }
        let bufs = &bufs[..pkt.parts.len()];
        loop {
            match self.socket.send_to_vectored(bufs, &to) {
                Ok(_) => {
                    self.stats.count_tx(len);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_queue_full(&e) => {
                    self.stats.tx_dropped += 1;
                    tracing::trace!(link = %self.name, len, "socket queue full, packet dropped");
                    return Ok(());
                }
                Err(e) => return Err(os_error(&self.name, "sendto", e)),
            }
        }
    }

    /// The configured MTU; no offloads.
    fn caps(&self) -> DeviceCaps {
        DeviceCaps::ip(self.mtu)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.socket.as_raw_fd())
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    /// Asks the kernel for the socket's receive drops (one `getsockopt`).
    fn stats(&self) -> LinkStats {
        LinkStats {
            rx_dropped: crate::sockopt::socket_drops(&self.socket).unwrap_or(0),
            ..self.stats
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A classic BPF interpreter covering the instructions `flow_filter`
    /// uses, with the kernel's rule that an out-of-bounds load rejects.
    fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |off: u32, size: usize| -> Option<u32> {
            let off = off as usize;
            let bytes = pkt.get(off..off.checked_add(size)?)?;
            Some(bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)))
        };
        loop {
            let ins = prog[pc];
            pc += 1;
            let size = match ins.code & 0x18 {
                BPF_W => 4,
                BPF_H => 2,
                _ => 1,
            };
            match ins.code & 0x07 {
                BPF_RET => return ins.k,
                BPF_LD => {
                    let off = match ins.code & 0xe0 {
                        BPF_ABS => ins.k,
                        BPF_IND => x.wrapping_add(ins.k),
                        m => panic!("unsupported LD mode {m:#x}"),
                    };
                    match load(off, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                BPF_LDX => {
                    assert_eq!(ins.code, BPF_LDX | BPF_B | BPF_MSH);
                    match load(ins.k, 1) {
                        Some(v) => x = 4 * (v & 0x0f),
                        None => return 0,
                    }
                }
                BPF_ALU => {
                    assert_eq!(ins.code, BPF_ALU | BPF_AND | BPF_K);
                    a &= ins.k;
                }
                BPF_JMP => {
                    let taken = match ins.code & 0xf0 {
                        BPF_JEQ => a == ins.k,
                        BPF_JSET => a & ins.k != 0,
                        op => panic!("unsupported JMP op {op:#x}"),
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                class => panic!("unsupported class {class:#x}"),
            }
        }
    }

    const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40123);
    const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);

    /// An IPv4+TCP packet `src -> dst` with `ihl` 32-bit header words.
    fn packet(src: SocketAddrV4, dst: SocketAddrV4, ihl: u8) -> Vec<u8> {
        let hlen = usize::from(ihl) * 4;
        let mut p = vec![0u8; hlen + 20];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&((hlen + 20) as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&src.ip().octets());
        p[16..20].copy_from_slice(&dst.ip().octets());
        for b in &mut p[20..hlen] {
            *b = 1; // NOP options
        }
        p[hlen..hlen + 2].copy_from_slice(&src.port().to_be_bytes());
        p[hlen + 2..hlen + 4].copy_from_slice(&dst.port().to_be_bytes());
        p[hlen + 12] = 5 << 4;
        p[hlen + 13] = 0x12;
        p
    }

    fn accepts(pkt: &[u8]) -> bool {
        run(&flow_filter(LOCAL, REMOTE), pkt) != 0
    }

    #[test]
    fn accepts_the_incoming_flow() {
        assert!(accepts(&packet(REMOTE, LOCAL, 5)));
    }

    #[test]
    fn accepts_the_flow_with_ip_options() {
        assert!(accepts(&packet(REMOTE, LOCAL, 6)));
        assert!(accepts(&packet(REMOTE, LOCAL, 15)));
    }

    #[test]
    fn ip_options_shift_where_ports_are_read() {
        // With IHL 6, the 4 bytes after the base header are options. Put the
        // right ports there and wrong ones in the real TCP header: rejected.
        let mut p = packet(REMOTE, LOCAL, 6);
        p[20..22].copy_from_slice(&REMOTE.port().to_be_bytes());
        p[22..24].copy_from_slice(&LOCAL.port().to_be_bytes());
        p[24..26].copy_from_slice(&1234u16.to_be_bytes());
        assert!(!accepts(&p));
    }

    #[test]
    fn rejects_our_own_outgoing_direction() {
        assert!(!accepts(&packet(LOCAL, REMOTE, 5)));
        // Even on loopback, where both addresses are the same.
        let l = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40123);
        let r = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        assert!(run(&flow_filter(l, r), &packet(r, l, 5)) != 0);
        assert!(run(&flow_filter(l, r), &packet(l, r, 5)) == 0);
    }

    #[test]
    fn rejects_wrong_ports_and_addresses() {
        let other = |ip: [u8; 4], port| SocketAddrV4::new(Ipv4Addr::from(ip), port);
        assert!(!accepts(&packet(other([10, 0, 0, 1], 81), LOCAL, 5)));
        assert!(!accepts(&packet(REMOTE, other([10, 0, 0, 2], 40124), 5)));
        assert!(!accepts(&packet(other([10, 0, 0, 9], 80), LOCAL, 5)));
        assert!(!accepts(&packet(REMOTE, other([10, 0, 0, 9], 40123), 5)));
    }

    #[test]
    fn rejects_other_protocols_versions_fragments_and_runts() {
        let good = packet(REMOTE, LOCAL, 5);
        let mut udp = good.clone();
        udp[9] = 17;
        assert!(!accepts(&udp));
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert!(!accepts(&v6));
        let mut frag = good.clone();
        frag[6] = 0x00;
        frag[7] = 0x10; // fragment offset 16 * 8 bytes
        assert!(!accepts(&frag));
        let mut first_frag = good.clone();
        first_frag[6] = 0x20; // MF set, offset 0: still has the TCP header
        assert!(accepts(&first_frag));
        assert!(!accepts(&good[..22])); // cut inside the TCP ports
        assert!(!accepts(&[]));
    }

    #[test]
    fn config_with_identical_ends_is_rejected() {
        let same = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
        let err = RawLink::open(&RawConfig {
            local: same,
            remote: same,
            mtu: 1500,
        })
        .unwrap_err();
        assert!(matches!(err, LinkError::InvalidConfig(_)));
        assert!(err.to_string().contains("same address and port"), "{err}");
        // Same port on different hosts is a normal flow.
        let ok = RawConfig {
            local: LOCAL,
            remote: SocketAddrV4::new(*REMOTE.ip(), LOCAL.port()),
            mtu: 1500,
        };
        assert!(validate(&ok).is_ok());
    }
}

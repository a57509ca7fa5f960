//! An `AF_PACKET` socket on an Ethernet interface: the stack owns an IPv4
//! address the kernel does not have, speaks Ethernet II and ARP for it, and
//! presents whole IPv4 packets upward like every other [`Link`].
//!
//! Why not the `afpacket` crate (0.2.3)? We evaluated it: its socket type
//! derives `Clone` while closing the descriptor in `Drop` (two clones close
//! the same fd twice, which can close an unrelated file), it opens the socket
//! bound to every interface before `bind` (a window of foreign frames), its
//! interface-name check lets a 16-byte name through without a terminating
//! NUL, it has no `PACKET_IGNORE_OUTGOING`, no scatter/gather I/O and no MAC
//! lookup. What it does offer (bind, non-blocking, a BPF filter) is a few
//! lines on `socket2` + `libc`, which the raw backend already uses.
//!
//! How a frame travels:
//! - The socket is created with protocol 0 (it receives nothing), gets
//!   `PACKET_IGNORE_OUTGOING` (Linux 4.20+: our own sends are never looped
//!   back to us), `PACKET_VNET_HDR` and a classic BPF filter, and only then
//!   is bound to the interface for all EtherTypes. No stray frame gets in.
//! - The filter admits frames to our MAC or broadcast, not from our MAC
//!   (belt and braces for kernels without `PACKET_IGNORE_OUTGOING`), that
//!   are ARP or IPv4 to our address.
//! - Each `recv` is one `recvmsg` scattering the virtio-net header, the
//!   Ethernet header and the IPv4 packet (straight into the caller's buffer);
//!   each `send` is one `sendmsg` gathering the virtio-net header, the
//!   Ethernet header and the packet's parts: no copy, no allocation (unless
//!   the packet must wait for ARP, when the neighbour cache keeps a copy).
//! - `PACKET_VNET_HDR` matters on virtual interfaces (veth): a packet the
//!   peer kernel sent carries only a partial TCP/UDP checksum (the NIC would
//!   finish it) and may be one GSO super-packet larger than the MTU. The
//!   virtio-net header says where the checksum starts; we finish it, and
//!   report the packet [`RxChecksum::Verified`] (so is one the kernel marks
//!   `DATA_VALID`); any other packet is [`RxChecksum::Unverified`].
//!   Super-packets go up whole, with their `gso_size` as
//!   [`RxInfo::gro_segment`] (the runtime takes any IPv4 packet up to
//!   64 KiB; the link sends no super-frames, `tso_max` is 0).
//!
//! Next hop: the destination if it is in our subnet, else the gateway; with
//! no gateway the packet is dropped and counted (`no_route`). ARP is
//! answered for our address only; a gratuitous ARP announces us at open.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::{Domain, SockFilter, Socket, Type};
use ustack_ipv4::{
    DeviceCaps, Ipv4Packet, Ipv4Subnet, Medium, RxChecksum, RxInfo, RxPacket, TxPacket,
};

use crate::arp::{
    ArpOp, ArpPacket, ArpRepr, NeighbourConfig, NeighbourStats, Neighbours, SendAction,
};
use crate::ethernet::{
    EthernetFrame, EthernetRepr, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN, MIN_FRAME_LEN,
};
use crate::middleware::pcap::PcapSink;
use crate::vnet::{self, complete_checksum, VnetHdr};
use crate::{
    check_parts, is_queue_full, no_tso, IoVecs, Link, LinkError, LinkStats, MAX_TX_PARTS,
    MIN_IPV4_MTU,
};

// linux/if_packet.h (not exported by every libc version).
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_P_ALL: u16 = 0x0003;
// linux/if_arp.h
const ARPHRD_ETHER: u16 = 1;

/// How to open an [`AfPacketLink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// An existing Ethernet interface, e.g. `eth0` or one end of a veth pair.
    pub iface: String,
    /// The stack's own address: one the kernel does NOT have on `iface`.
    pub addr: Ipv4Addr,
    /// Prefix length of the on-link subnet.
    pub prefix_len: u8,
    /// Router for destinations outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Largest IPv4 packet to send; default (and maximum) the interface MTU.
    pub mtu: Option<u16>,
}

/// Counters of the Ethernet/ARP layer, beyond [`LinkStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketStats {
    /// ARP packets received (EtherType 0x0806), well-formed or not.
    pub arp_rx: u64,
    /// ARP replies sent, to requests for our address (RFC 826).
    pub arp_replies_sent: u64,
    /// ARP requests sent: resolutions, their retries, probes of stale mappings
    /// and the gratuitous announcement at open (RFC 5227 §2.3).
    pub arp_requests_sent: u64,
    /// Frames dropped on receive: malformed, not for us, or truncated.
    pub rx_dropped: u64,
    /// Received packets whose partial checksum we completed.
    pub rx_csum_completed: u64,
    /// Received GSO super-packets (larger than the MTU).
    pub rx_gso: u64,
    /// Packets to a destination off our subnet with no gateway configured.
    pub no_route: u64,
    /// ARP packets claiming our own address from another MAC.
    pub addr_conflicts: u64,
    /// The neighbour cache's own counters.
    pub neighbours: NeighbourStats,
}

/// The stack's IPv4 presence on an Ethernet interface, over `AF_PACKET`.
pub struct AfPacketLink {
    socket: Socket,
    iface: String,
    /// `AF_PACKET on <iface>`, for errors.
    label: String,
    mac: MacAddr,
    /// Our address and the on-link prefix.
    subnet: Ipv4Subnet,
    gateway: Option<Ipv4Addr>,
    mtu: usize,
    neighbours: Neighbours,
    stats: LinkStats,
    af_stats: AfPacketStats,
    capture: Option<PcapSink>,
    /// Scratch for packets released by ARP resolution (reused).
    ready: Vec<Vec<u8>>,
}

impl std::fmt::Debug for AfPacketLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketLink")
            .field("iface", &self.iface)
            .field("mac", &self.mac)
            .field("subnet", &self.subnet)
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
            .finish()
    }
}

fn io_err(label: &str, op: &'static str, source: io::Error) -> LinkError {
    match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => LinkError::PermissionDenied {
            device: label.to_owned(),
            capability: "CAP_NET_RAW",
        },
        Some(libc::ENODEV | libc::ENXIO) => LinkError::NotFound {
            device: label.to_owned(),
            hint: "no such network interface in this network namespace (see `ip link`)",
        },
        _ => LinkError::Io {
            device: label.to_owned(),
            op,
            source,
        },
    }
}

fn validate(cfg: &AfPacketConfig) -> Result<(), LinkError> {
    let bad = |msg: String| {
        Err(LinkError::InvalidConfig(format!(
            "AF_PACKET on {:?}: {msg}",
            cfg.iface
        )))
    };
    if cfg.iface.is_empty() || cfg.iface.len() >= libc::IFNAMSIZ || cfg.iface.contains(['/', '\0'])
    {
        return bad(format!(
            "not a valid interface name (1 to {} bytes, no '/' or NUL)",
            libc::IFNAMSIZ - 1
        ));
    }
    if cfg.prefix_len == 0 || cfg.prefix_len > 30 {
        return bad(format!(
            "prefix length /{} is outside 1..=30",
            cfg.prefix_len
        ));
    }
    let a = cfg.addr;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
        return bad(format!("{a} cannot be a host address"));
    }
    let Some(subnet) = Ipv4Subnet::new(a, cfg.prefix_len) else {
        unreachable!("prefix length checked above");
    };
    if a == subnet.network() || a == subnet.broadcast() {
        return bad(format!(
            "{a} is the network or broadcast address of /{}",
            cfg.prefix_len
        ));
    }
    if let Some(gw) = cfg.gateway {
        if !subnet.contains(gw) || gw == a {
            return bad(format!(
                "gateway {gw} is not another address in {a}/{}",
                cfg.prefix_len
            ));
        }
    }
    if let Some(m) = cfg.mtu {
        if usize::from(m) < MIN_IPV4_MTU {
            return bad(format!(
                "MTU {m} is below the IPv4 minimum of {MIN_IPV4_MTU}"
            ));
        }
    }
    Ok(())
}

/// An `ifreq` naming `iface`.
fn ifreq(iface: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { MaybeUninit::zeroed().assume_init() };
    for (d, s) in req.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req
}

/// The interface's index; needs no privilege, so an unknown name is
/// reported as such even when the caller could not open the socket.
fn interface_index(iface: &str) -> Result<i32, LinkError> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| LinkError::InvalidConfig(format!("interface name {iface:?} contains NUL")))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(LinkError::NotFound {
            device: format!("interface {iface}"),
            hint: "no such network interface in this network namespace (see `ip link`)",
        });
    }
    Ok(index as i32)
}

/// The interface's hardware address and MTU, asked through `fd`.
fn interface_facts(fd: RawFd, iface: &str, label: &str) -> Result<(MacAddr, usize), LinkError> {
    let mut req = ifreq(iface);
    // SAFETY: SIOCGIFHWADDR reads the name from and writes a sockaddr into
    // `req`, a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io_err(
            label,
            "read hardware address (SIOCGIFHWADDR)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds `ifru_hwaddr`.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != ARPHRD_ETHER {
        return Err(LinkError::InvalidConfig(format!(
            "{label}: not an Ethernet interface (ARP hardware type {}); AF_PACKET needs Ethernet framing",
            hw.sa_family
        )));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    let mut req = ifreq(iface);
    // SAFETY: as above; SIOCGIFMTU writes `ifru_mtu`.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io_err(
            label,
            "read MTU (SIOCGIFMTU)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((MacAddr(mac), usize::try_from(mtu).unwrap_or(0)))
}

fn set_int_opt(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a c_int that lives across the call, and
    // its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A tiny classic-BPF assembler with forward labels, so the filter below
/// reads as a program rather than as jump offsets.
mod bpf {
    /// BPF_LD | BPF_W | BPF_ABS
    pub const LD_W_ABS: u16 = 0x20;
    /// BPF_LD | BPF_H | BPF_ABS
    pub const LD_H_ABS: u16 = 0x28;
    /// BPF_JMP | BPF_JEQ | BPF_K
    pub const JEQ_K: u16 = 0x15;
    /// BPF_RET | BPF_K
    pub const RET_K: u16 = 0x06;

    #[derive(Clone, Copy)]
    pub enum To {
        Next,
        L(usize),
    }

    #[derive(Default)]
    pub struct Asm {
        ins: Vec<(u16, u32, To, To)>,
        labels: Vec<Option<usize>>,
    }

    impl Asm {
        pub fn label(&mut self) -> usize {
            self.labels.push(None);
            self.labels.len() - 1
        }
        pub fn bind(&mut self, l: usize) {
            self.labels[l] = Some(self.ins.len());
        }
        pub fn stmt(&mut self, code: u16, k: u32) {
            self.ins.push((code, k, To::Next, To::Next));
        }
        pub fn jeq(&mut self, k: u32, jt: To, jf: To) {
            self.ins.push((JEQ_K, k, jt, jf));
        }
        pub fn finish(self) -> Vec<libc::sock_filter> {
            let off = |at: usize, to: To| -> u8 {
                match to {
                    To::Next => 0,
                    To::L(l) => {
                        let target = self.labels[l].expect("BPF label bound");
                        u8::try_from(target - at - 1).expect("BPF jump within 255")
                    }
                }
            };
            self.ins
                .iter()
                .enumerate()
                .map(|(at, &(code, k, jt, jf))| libc::sock_filter {
                    code,
                    jt: off(at, jt),
                    jf: off(at, jf),
                    k,
                })
                .collect()
        }
    }
}

/// Offsets in the frame the filter reads (Ethernet header, then IPv4).
const IPV4_DST_IN_FRAME: u32 = (HEADER_LEN + 16) as u32;

/// The receive filter: to our MAC or broadcast, not from our MAC, and
/// either ARP or IPv4 to `addr`.
pub(crate) fn frame_filter(mac: MacAddr, addr: Ipv4Addr) -> Vec<libc::sock_filter> {
    use bpf::{To, LD_H_ABS, LD_W_ABS, RET_K};
    let (hi, lo) = mac.bpf_words();
    let mut a = bpf::Asm::default();
    let (accept, reject, bcast, check_src, check_type) =
        (a.label(), a.label(), a.label(), a.label(), a.label());
    let check_lo = a.label();
    a.stmt(LD_W_ABS, 0);
    a.jeq(hi, To::Next, To::L(bcast));
    a.stmt(LD_H_ABS, 4);
    a.jeq(lo, To::L(check_src), To::L(reject));
    a.bind(bcast);
    a.jeq(u32::MAX, To::Next, To::L(reject));
    a.stmt(LD_H_ABS, 4);
    a.jeq(0xffff, To::L(check_src), To::L(reject));
    a.bind(check_src);
    a.stmt(LD_W_ABS, 6);
    a.jeq(hi, To::L(check_lo), To::L(check_type));
    a.bind(check_lo);
    a.stmt(LD_H_ABS, 10);
    a.jeq(lo, To::L(reject), To::L(check_type));
    a.bind(check_type);
    a.stmt(LD_H_ABS, 12);
    a.jeq(u32::from(ETHERTYPE_ARP), To::L(accept), To::Next);
    a.jeq(u32::from(ETHERTYPE_IPV4), To::Next, To::L(reject));
    a.stmt(LD_W_ABS, IPV4_DST_IN_FRAME);
    a.jeq(u32::from(addr), To::L(accept), To::L(reject));
    a.bind(accept);
    a.stmt(RET_K, u32::MAX);
    a.bind(reject);
    a.stmt(RET_K, 0);
    a.finish()
}

impl AfPacketLink {
    /// Opens the socket on `cfg.iface`, learns the interface's MAC and MTU,
    /// and announces `cfg.addr` with a gratuitous ARP.
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketLink, LinkError> {
        validate(cfg)?;
        let label = format!("AF_PACKET on {}", cfg.iface);
        let ifindex = interface_index(&cfg.iface)?;
        // Protocol 0: the socket receives nothing until `bind` below.
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(|e| io_err(&label, "open", e))?;
        let (mac, if_mtu) = interface_facts(socket.as_raw_fd(), &cfg.iface, &label)?;
        let mtu = match cfg.mtu {
            Some(m) if usize::from(m) > if_mtu => {
                return Err(LinkError::InvalidConfig(format!(
                    "{label}: MTU {m} is larger than the interface's MTU of {if_mtu}"
                )))
            }
            Some(m) => usize::from(m),
            None => if_mtu,
        };
        if mtu < MIN_IPV4_MTU {
            return Err(LinkError::InvalidConfig(format!(
                "{label}: interface MTU {mtu} is below the IPv4 minimum"
            )));
        }
        match set_int_opt(&socket, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) {
            Ok(()) => {}
            // Older kernels: the filter's source-MAC test does the job.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                tracing::debug!(device = %cfg.iface, "no PACKET_IGNORE_OUTGOING; relying on the BPF filter")
            }
            Err(e) => return Err(io_err(&label, "set PACKET_IGNORE_OUTGOING", e)),
        }
        set_int_opt(&socket, libc::SOL_PACKET, PACKET_VNET_HDR, 1)
            .map_err(|e| io_err(&label, "set PACKET_VNET_HDR", e))?;
        let prog: Vec<SockFilter> = frame_filter(mac, cfg.addr)
            .iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        socket
            .attach_filter(&prog)
            .map_err(|e| io_err(&label, "attach BPF filter", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io_err(&label, "set non-blocking", e))?;

        // SAFETY: sockaddr_ll is plain old data; all zeros is valid.
        let mut sll: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err(&label, "bind", io::Error::last_os_error()));
        }

        let mut link = AfPacketLink {
            socket,
            iface: cfg.iface.clone(),
            label,
            mac,
            subnet: Ipv4Subnet::new(cfg.addr, cfg.prefix_len)
                .expect("validate checked the prefix length"),
            gateway: cfg.gateway,
            mtu,
            neighbours: Neighbours::new(NeighbourConfig::default()),
            stats: LinkStats::default(),
            af_stats: AfPacketStats::default(),
            capture: None,
            ready: Vec::new(),
        };
        link.send_arp(MacAddr::BROADCAST, &ArpRepr::announcement(mac, cfg.addr))?;
        tracing::info!(
            device = %cfg.iface,
            %mac,
            addr = %link.subnet,
            mtu,
            "AF_PACKET link up"
        );
        Ok(link)
    }

    /// Records every frame sent and received, ARP included, as Ethernet
    /// (the capture a `tcpdump -i IFACE` of our traffic would show).
    pub fn set_capture(&mut self, sink: PcapSink) {
        self.capture = Some(sink);
    }

    /// The interface's hardware address, read once at open (`SIOCGIFHWADDR`):
    /// the source of every frame sent and the MAC that ARP answers with.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The stack's own address on the interface.
    pub fn addr(&self) -> Ipv4Addr {
        self.subnet.addr()
    }

    /// Ethernet and ARP counters since open, the neighbour cache's included;
    /// [`Link::stats`] counts the IPv4 packets.
    pub fn af_stats(&self) -> AfPacketStats {
        AfPacketStats {
            neighbours: self.neighbours.stats(),
            ..self.af_stats
        }
    }

    /// Sends one frame with one `sendmsg`: an all-zero virtio-net header
    /// (no offloads requested), `header`, then the payload `parts` (at most
    /// [`MAX_TX_PARTS`]), padded to the minimum frame size.
    fn send_frame(&mut self, header: &EthernetRepr, parts: &[&[u8]]) -> Result<(), LinkError> {
        debug_assert!(parts.len() <= MAX_TX_PARTS);
        let vnet = [0u8; vnet::LEN];
        let mut eth = [0u8; HEADER_LEN];
        header.emit(&mut eth);
        let pad = [0u8; MIN_FRAME_LEN];
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let pad = &pad[..MIN_FRAME_LEN.saturating_sub(HEADER_LEN + payload_len)];
        if let Some(cap) = &mut self.capture {
            let mut record: [&[u8]; MAX_TX_PARTS + 2] = [&[]; MAX_TX_PARTS + 2];
            record[0] = &eth;
            record[1..=parts.len()].copy_from_slice(parts);
            record[parts.len() + 1] = pad;
            cap.record(&record[..parts.len() + 2]);
        }
        let mut iov = IoVecs::<{ MAX_TX_PARTS + 3 }>::new();
        iov.push(&vnet);
        iov.push(&eth);
        for part in parts {
            iov.push(part);
        }
        iov.push(pad);
        let iov = iov.as_slice();
        // SAFETY: msghdr is plain old data; zeroed means no address/control.
        let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = iov.len() as _;
        loop {
            // SAFETY: `msg` points at `iov`, an initialised array of
            // `msg_iovlen` iovecs whose buffers (the headers and padding on
            // the stack, the caller's parts) are valid for reading for their
            // lengths and outlive the call; the kernel only reads them.
            let n = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &msg, 0) };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_queue_full(&err) {
                self.stats.tx_dropped += 1;
                return Ok(());
            }
            return Err(io_err(&self.label, "sendmsg", err));
        }
    }

    fn send_arp(&mut self, to: MacAddr, arp: &ArpRepr) -> Result<(), LinkError> {
        let mut body = [0u8; crate::arp::PACKET_LEN];
        arp.emit(&mut body);
        match arp.op {
            ArpOp::Request => self.af_stats.arp_requests_sent += 1,
            ArpOp::Reply => self.af_stats.arp_replies_sent += 1,
        }
        tracing::trace!(device = %self.iface, op = ?arp.op, target = %arp.target_ip, "ARP out");
        let eth = EthernetRepr {
            destination: to,
            source: self.mac,
            ethertype: ETHERTYPE_ARP,
        };
        self.send_frame(&eth, &[&body])
    }

    fn arp_request(&mut self, to: MacAddr, target: Ipv4Addr) -> Result<(), LinkError> {
        let req = ArpRepr {
            op: ArpOp::Request,
            sender_mac: self.mac,
            sender_ip: self.addr(),
            target_mac: MacAddr::ZERO,
            target_ip: target,
        };
        self.send_arp(to, &req)
    }

    fn send_ipv4(&mut self, to: MacAddr, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        let eth = EthernetRepr {
            destination: to,
            source: self.mac,
            ethertype: ETHERTYPE_IPV4,
        };
        self.send_frame(&eth, pkt.parts)?;
        self.stats.count_tx(pkt.len());
        Ok(())
    }

    fn handle_arp(&mut self, body: &[u8], now: Instant) -> Result<(), LinkError> {
        self.af_stats.arp_rx += 1;
        let Ok(arp) = ArpPacket::new_checked(body).and_then(|p| ArpRepr::parse(&p)) else {
            self.af_stats.rx_dropped += 1;
            return Ok(());
        };
        let addr = self.addr();
        if arp.sender_ip == addr {
            if arp.sender_mac != self.mac {
                self.af_stats.addr_conflicts += 1;
                tracing::warn!(device = %self.iface, %addr, other = %arp.sender_mac, "another host claims our address");
            }
            return Ok(());
        }
        let for_us = arp.target_ip == addr;
        let mut ready = std::mem::take(&mut self.ready);
        self.neighbours
            .on_arp(arp.sender_ip, arp.sender_mac, for_us, now, &mut ready);
        let mut result = Ok(());
        for p in ready.drain(..) {
            if result.is_ok() {
                result = self.send_ipv4(arp.sender_mac, &TxPacket::new(&[&p]));
            }
        }
        self.ready = ready;
        result?;
        if for_us && arp.op == ArpOp::Request && arp.sender_mac.is_unicast() {
            let reply = ArpRepr {
                op: ArpOp::Reply,
                sender_mac: self.mac,
                sender_ip: addr,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            self.send_arp(arp.sender_mac, &reply)?;
        }
        Ok(())
    }

    /// The destination itself when it is on-link, else the gateway.
    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.subnet.contains(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }

    fn is_broadcast(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast() || dst == self.subnet.broadcast()
    }
}

impl Link for AfPacketLink {
    /// Returns IPv4 packets to our address; ARP is handled here and never
    /// returned. A packet longer than `buf` is dropped and counted. A
    /// partial checksum is finished here (see the module doc). On a veth
    /// the peer kernel's GSO super-packets exceed the MTU although this
    /// link sends none (`tso_max` 0, so [`DeviceCaps::max_rx_len`] is the
    /// MTU): pass a [`MAX_PACKET_LEN`](crate::MAX_PACKET_LEN)-byte buffer
    /// to receive them, as the runtime does.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        loop {
            let mut vnet_hdr = [0u8; vnet::LEN];
            let mut eth = [0u8; HEADER_LEN];
            let mut iov = [
                libc::iovec {
                    iov_base: vnet_hdr.as_mut_ptr().cast(),
                    iov_len: vnet_hdr.len(),
                },
                libc::iovec {
                    iov_base: eth.as_mut_ptr().cast(),
                    iov_len: eth.len(),
                },
                libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                },
            ];
            // SAFETY: msghdr is plain old data; zeroed means no address/control.
            let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            // SAFETY: every iovec points at a live, exclusively borrowed
            // buffer of its stated length; the kernel writes within them.
            // MSG_TRUNC makes the return value the real frame length.
            let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(io_err(&self.label, "recvmsg", err)),
                }
            }
            let n = n as usize; // non-negative, checked above
            if n < vnet::LEN + HEADER_LEN {
                self.af_stats.rx_dropped += 1;
                continue;
            }
            let len = n - vnet::LEN - HEADER_LEN;
            if len > buf.len() {
                self.af_stats.rx_dropped += 1;
                tracing::debug!(device = %self.iface, len, buf = buf.len(), "frame larger than the receive buffer, dropped");
                continue;
            }
            let Ok(frame) = EthernetFrame::new_checked(&eth[..]) else {
                continue;
            };
            let hdr = EthernetRepr::parse(&frame);
            if hdr.source == self.mac
                || !(hdr.destination == self.mac || hdr.destination.is_broadcast())
            {
                self.af_stats.rx_dropped += 1;
                continue;
            }
            if let Some(cap) = &mut self.capture {
                cap.record(&[&eth, &buf[..len]]);
            }
            match hdr.ethertype {
                ETHERTYPE_ARP => {
                    self.handle_arp(&buf[..len], Instant::now())?;
                    continue;
                }
                ETHERTYPE_IPV4 => {}
                _ => {
                    self.af_stats.rx_dropped += 1;
                    continue;
                }
            }
            // At least 20 bytes: the fixed-header accessors stay in bounds.
            if len < 20 {
                self.af_stats.rx_dropped += 1;
                continue;
            }
            let ip = Ipv4Packet::new_unchecked(&buf[..len]);
            if ip.version() != 4 || ip.dst_addr() != self.addr() {
                self.af_stats.rx_dropped += 1;
                continue;
            }
            // Ethernet pads short frames; the IPv4 total length says where
            // the packet ends.
            let total = usize::from(ip.total_len());
            let vnet_hdr = VnetHdr::decode(&vnet_hdr);
            let mut checksum = if vnet_hdr.flags & vnet::F_DATA_VALID != 0 {
                RxChecksum::Verified
            } else {
                RxChecksum::Unverified
            };
            if vnet_hdr.flags & vnet::F_NEEDS_CSUM != 0 {
                let start = vnet_hdr.csum_start;
                let offset = vnet_hdr.csum_offset;
                let Some(start) = usize::from(start).checked_sub(HEADER_LEN) else {
                    self.af_stats.rx_dropped += 1;
                    continue;
                };
                if !complete_checksum(&mut buf[..len], start, usize::from(offset)) {
                    self.af_stats.rx_dropped += 1;
                    continue;
                }
                self.af_stats.rx_csum_completed += 1;
                // Finished here from the bytes as they arrived.
                checksum = RxChecksum::Verified;
            }
            let gro_segment = if vnet_hdr.is_gso() {
                self.af_stats.rx_gso += 1;
                Some(vnet_hdr.gso_size).filter(|&n| n > 0)
            } else {
                None
            };
            let len = if (20..len).contains(&total) {
                total
            } else {
                len
            };
            self.stats.count_rx(len);
            return Ok(Some(RxPacket {
                len,
                info: RxInfo {
                    checksum,
                    gro_segment,
                },
            }));
        }
    }

    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        crate::recv_into_buffer(self, buf, f)
    }

    /// One `sendmsg` of the Ethernet header and the parts to the next
    /// hop's MAC (broadcast for a broadcast destination). A packet whose
    /// next hop is not resolved yet is copied into the neighbour cache's
    /// queue and sent when the ARP reply comes. No segmentation offload: a
    /// super-frame is `InvalidConfig`.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        check_parts(pkt, &self.label)?;
        if pkt.segment.is_some() {
            return Err(no_tso(&self.label));
        }
        let len = pkt.len();
        if len > self.mtu {
            return Err(LinkError::PacketTooLarge {
                device: self.label.clone(),
                len,
                mtu: self.mtu,
            });
        }
        let head = pkt.head::<20>().filter(|h| h[0] >> 4 == 4);
        let Some(head) = head else {
            return Err(LinkError::MalformedPacket {
                device: self.label.clone(),
                reason: "not an IPv4 packet",
            });
        };
        let dst = Ipv4Packet::new_unchecked(&head[..]).dst_addr();
        if self.is_broadcast(dst) {
            return self.send_ipv4(MacAddr::BROADCAST, pkt);
        }
        let Some(hop) = self.next_hop(dst) else {
            self.af_stats.no_route += 1;
            self.stats.tx_dropped += 1;
            tracing::trace!(device = %self.iface, %dst, "no route (off-subnet, no gateway): dropped");
            return Ok(());
        };
        match self.neighbours.on_send(hop, pkt, Instant::now()) {
            SendAction::Send { mac, probe } => {
                self.send_ipv4(mac, pkt)?;
                if probe {
                    self.arp_request(mac, hop)?;
                }
                Ok(())
            }
            SendAction::Queued { request } => {
                if request {
                    self.arp_request(MacAddr::BROADCAST, hop)?;
                }
                Ok(())
            }
            SendAction::Dropped => {
                self.stats.tx_dropped += 1;
                Ok(())
            }
        }
    }

    /// The interface's (or the configured) MTU, [`Medium::Ethernet`], no
    /// segmentation offload.
    fn caps(&self) -> DeviceCaps {
        DeviceCaps {
            mtu: self.mtu,
            medium: Medium::Ethernet,
            tso_max: 0,
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.socket.as_raw_fd())
    }

    /// ARP retries and the neighbour cache's timers run when packets come
    /// and go; nothing needs a wake-up of its own.
    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }

    fn name(&self) -> &str {
        &self.iface
    }
}

#[cfg(test)]
mod tests;

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
//!   back to us), `PACKET_VNET_HDR`, its rings and a classic BPF filter, and
//!   only then is bound to the interface for all EtherTypes. No stray frame
//!   gets in.
//! - The filter admits frames to our MAC or broadcast, not from our MAC
//!   (belt and braces for kernels without `PACKET_IGNORE_OUTGOING`), that
//!   are ARP or IPv4 to our address.
//! - With a receive ring ([`RingConfig::rx_bytes`] above 0): frames arrive
//!   in a `TPACKET_V3` ring mapped into our memory ([`ring`]); the kernel
//!   fills blocks of 128 KiB and hands each over when it is full or
//!   [`RingConfig::block_timeout`] after its first frame, so one wake-up
//!   brings many frames and reading them takes no system call.
//!   [`Link::recv_with`] lends each IPv4 packet where it lies in the ring
//!   (the stack copies its payload once, into a receive ring); [`Link::recv`]
//!   copies it into the caller's buffer. With a transmit ring (opt-in,
//!   [`RingConfig::tx_bytes`]), `send` copies each frame into it (the one copy in user
//!   space; the kernel sends from the ring's pages, and marks such a frame
//!   zero-copy, `skb_zcopy_set_nouarg`, so a local receiver such as a veth
//!   peer gets a copy before the frame is handed back to us), and one
//!   `sendto` hands the kernel every frame marked
//!   since the last: at the next `recv`/`recv_with`, or at once when 64 wait
//!   (while frames wait, [`Link::poll_at`] says now, so the event loop comes
//!   back without sleeping).
//! - Without rings (the default, `rings: None`, or a kernel that refuses
//!   them: then logged once at info): each `recv` is one `recvmsg`
//!   scattering the virtio-net header, the Ethernet header and the IPv4
//!   packet (straight into the caller's buffer); each `send` one `sendmsg`
//!   gathering the virtio-net header, the Ethernet header and the packet's
//!   parts, a TCP super-frame at a time that the kernel segments (GSO) and
//!   whose checksums it finishes (`NEEDS_CSUM`).
//! - Neither path allocates per packet; only a packet that must wait for
//!   ARP is copied (into the neighbour cache's bounded queue).
//! - `PACKET_VNET_HDR` matters on virtual interfaces (veth): a packet the
//!   peer kernel sent carries only a partial TCP/UDP checksum (the NIC would
//!   finish it) and may be one GSO super-packet larger than the MTU. The
//!   virtio-net header (in the ring, the 10 bytes before the frame's MAC
//!   header, as `tpacket_rcv` lays it out) says where the checksum starts;
//!   we finish it, and report the packet [`RxChecksum::Verified`] (so is
//!   one the kernel marks `DATA_VALID`); any other packet is
//!   [`RxChecksum::Unverified`]. Super-packets go up whole, with their
//!   `gso_size` as [`RxInfo::gro_segment`] (the runtime takes any IPv4
//!   packet up to 64 KiB; the link sends no super-frames, `tso_max` is 0).
//!
//! By default only the transmit ring is used (1 MiB); the receive ring
//! (`RingConfig::rx_bytes`, e.g. 4 MiB) is for bulk receivers, because a
//! block-based ring delays a lone packet by its block timeout (see
//! [`RingConfig::rx_bytes`]). Rings are fixed at open and mapped with
//! `MAP_POPULATE`.
//!
//! Next hop: the destination if it is in our subnet, else the gateway; with
//! no gateway the packet is dropped and counted (`no_route`). ARP is
//! answered for our address only; a gratuitous ARP announces us at open.

use std::io;
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, SockFilter, Socket, Type};
use ustack_ipv4::{DeviceCaps, Ipv4Subnet, Medium, RxPacket, TxPacket};

use crate::arp::{ArpRepr, NeighbourConfig, NeighbourStats, Neighbours};
use crate::ethernet::{MacAddr, HEADER_LEN};
use crate::middleware::pcap::PcapSink;
use crate::vnet;
use crate::{Link, LinkError, LinkStats, MIN_IPV4_MTU};

#[cfg(test)]
use self::filter::frame_filter;
use self::port::Port;
use self::ring::{Mapping, RxRing};
use self::sys::{io_err, PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR};
use crate::sockopt::set_int_opt;

mod filter;
mod port;
mod ring;
mod sys;

pub use self::ring::RingConfig;

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
    /// Memory-mapped rings (the default, [`RingConfig::default`]); `None`:
    /// one `recvmsg`/`sendmsg` per frame, as on a kernel without them.
    pub rings: Option<RingConfig>,
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

/// Which paths an open link moves frames on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketPaths {
    /// Frames arrive in the memory-mapped receive ring (else `recvmsg`).
    pub rx_ring: bool,
    /// Frames leave through the memory-mapped transmit ring (else `sendmsg`).
    pub tx_ring: bool,
}

/// The stack's IPv4 presence on an Ethernet interface, over `AF_PACKET`.
pub struct AfPacketLink {
    /// Everything but the receive path: Ethernet, ARP, sending.
    port: Port,
    /// The receive ring; `None`: one `recvmsg` per frame.
    rx: Option<RxRing>,
    /// The rings' memory; declared last, so it is unmapped after them.
    _map: Option<Mapping>,
}

impl std::fmt::Debug for AfPacketLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketLink")
            .field("iface", &self.port.iface)
            .field("mac", &self.port.mac)
            .field("subnet", &self.port.subnet)
            .field("mtu", &self.port.mtu)
            .field("paths", &self.paths())
            .field("stats", &self.port.stats)
            .finish()
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
    if let Some(r) = &cfg.rings {
        r.check().or_else(bad)?;
    }
    Ok(())
}

/// Logged once per process: a kernel without rings says so once.
static RINGS_REFUSED_LOGGED: AtomicBool = AtomicBool::new(false);

impl AfPacketLink {
    /// Opens the socket on `cfg.iface`, learns the interface's MAC and MTU,
    /// sets up the rings (falling back to one system call per frame where
    /// the kernel refuses them), and announces `cfg.addr` with a gratuitous
    /// ARP.
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketLink, LinkError> {
        validate(cfg)?;
        let label = format!("AF_PACKET on {}", cfg.iface);
        let ifindex = sys::interface_index(&cfg.iface)?;
        // Protocol 0: the socket receives nothing until `bind` below.
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(|e| io_err(&label, "open", e))?;
        let (mac, if_mtu) = sys::interface_facts(socket.as_raw_fd(), &cfg.iface, &label)?;
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
        crate::sockopt::size_receive_queue(&socket, &label);
        let (rx, tx, map) = match &cfg.rings {
            Some(rc) => open_rings(socket.as_raw_fd(), rc, mtu, &cfg.iface),
            None => (None, None, None),
        };
        let prog: Vec<SockFilter> = frame_filter_for(mac, cfg.addr);
        socket
            .attach_filter(&prog)
            .map_err(|e| io_err(&label, "attach BPF filter", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io_err(&label, "set non-blocking", e))?;
        sys::bind_all(&socket, ifindex, &label)?;

        let port = Port {
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
            kernel_rx_dropped: std::cell::Cell::new(0),
            af_stats: AfPacketStats::default(),
            capture: None,
            ready: Vec::new(),
            tx,
        };
        let mut link = AfPacketLink {
            port,
            rx,
            _map: map,
        };
        link.port
            .send_arp(MacAddr::BROADCAST, &ArpRepr::announcement(mac, cfg.addr))?;
        link.port.flush()?;
        tracing::info!(
            device = %cfg.iface,
            %mac,
            addr = %link.port.subnet,
            mtu,
            rx_ring = link.rx.is_some(),
            tx_ring = link.port.tx.is_some(),
            "AF_PACKET link up"
        );
        Ok(link)
    }

    /// Records every frame sent and received, ARP included, as Ethernet
    /// (the capture a `tcpdump -i IFACE` of our traffic would show).
    pub fn set_capture(&mut self, sink: PcapSink) {
        self.port.capture = Some(sink);
    }

    /// The interface's hardware address, read once at open (`SIOCGIFHWADDR`):
    /// the source of every frame sent and the MAC that ARP answers with.
    pub fn mac(&self) -> MacAddr {
        self.port.mac
    }

    /// The stack's own address on the interface.
    pub fn addr(&self) -> Ipv4Addr {
        self.port.addr()
    }

    /// Which paths frames move on: rings, or a system call per frame.
    pub fn paths(&self) -> AfPacketPaths {
        AfPacketPaths {
            rx_ring: self.rx.is_some(),
            tx_ring: self.port.tx.is_some(),
        }
    }

    /// Ethernet and ARP counters since open, the neighbour cache's included;
    /// [`Link::stats`] counts the IPv4 packets.
    pub fn af_stats(&self) -> AfPacketStats {
        AfPacketStats {
            neighbours: self.port.neighbours.stats(),
            ..self.port.af_stats
        }
    }

    /// The next IPv4 packet in the receive ring, handed to `f` where it
    /// lies with the send path; ARP and frames not for us are consumed on
    /// the way, and so is a packet `f` turns down (`None`). `Ok(None)`:
    /// the kernel holds the next block.
    fn ring_next<R>(
        &mut self,
        mut f: impl FnMut(&[u8], ustack_ipv4::RxInfo, &mut Port) -> Option<R>,
    ) -> Result<Option<R>, LinkError> {
        let AfPacketLink { port, rx, .. } = self;
        let Some(ring) = rx.as_mut() else {
            unreachable!("ring_next without a receive ring");
        };
        loop {
            let Some((bytes, frame)) = ring.frame() else {
                return Ok(None);
            };
            let (mac, end) = (frame.mac, frame.mac + frame.len);
            if frame.truncated || mac < vnet::LEN || frame.len < HEADER_LEN {
                port.af_stats.rx_dropped += 1;
                tracing::debug!(device = %port.iface, len = frame.len, "truncated or malformed ring frame, dropped");
                ring.release();
                continue;
            }
            let (head, rest) = bytes[..end].split_at_mut(mac);
            let (eth, ip) = rest.split_at_mut(HEADER_LEN);
            let vnet_hdr: &[u8; vnet::LEN] =
                head[mac - vnet::LEN..].try_into().expect("vnet::LEN bytes");
            let eth: &[u8; HEADER_LEN] = (&*eth).try_into().expect("HEADER_LEN bytes");
            let accepted = port.accept(vnet_hdr, eth, ip);
            let out = match accepted {
                // The frame is ours until `release`: the kernel writes no
                // block it handed over, and `port` (the send path, the
                // transmit ring) shares no memory with it.
                Ok(Some((len, info))) => Ok(f(&ip[..len], info, port)),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            ring.release();
            match out {
                Ok(None) => continue,
                other => return other,
            }
        }
    }

    /// One `recvmsg` of a frame into `buf` (the IPv4 part) and headers on
    /// the stack; `Ok(None)` when nothing waits.
    fn socket_next(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let port = &mut self.port;
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
            let n = unsafe { libc::recvmsg(port.socket.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(io_err(&port.label, "recvmsg", err)),
                }
            }
            let n = n as usize; // non-negative, checked above
            if n < vnet::LEN + HEADER_LEN {
                port.af_stats.rx_dropped += 1;
                continue;
            }
            let len = n - vnet::LEN - HEADER_LEN;
            if len > buf.len() {
                port.af_stats.rx_dropped += 1;
                tracing::debug!(device = %port.iface, len, buf = buf.len(), "frame larger than the receive buffer, dropped");
                continue;
            }
            if let Some((len, info)) = port.accept(&vnet_hdr, &eth, &mut buf[..len])? {
                return Ok(Some(RxPacket { len, info }));
            }
        }
    }
}

/// The filter as `socket2` takes it.
fn frame_filter_for(mac: MacAddr, addr: Ipv4Addr) -> Vec<SockFilter> {
    filter::frame_filter(mac, addr)
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

/// Sets the rings up on `fd`; where the kernel refuses, says so once at
/// info and leaves that direction to one system call per frame.
fn open_rings(
    fd: RawFd,
    cfg: &RingConfig,
    mtu: usize,
    iface: &str,
) -> (Option<RxRing>, Option<ring::TxRing>, Option<Mapping>) {
    let log_once = |what: &str, op: &str, e: &io::Error| {
        if !RINGS_REFUSED_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::info!(device = %iface, %e, "{op} refused: {what}");
        }
    };
    match ring::setup(fd, cfg, mtu, vnet::LEN) {
        Ok((rings, tx_refused)) => {
            if let Some(e) = tx_refused {
                log_once(
                    "one sendmsg per frame instead of a transmit ring",
                    "PACKET_TX_RING",
                    &e,
                );
            }
            (rings.rx, rings.tx, rings.map)
        }
        Err(e) => {
            log_once(
                "one recvmsg/sendmsg per frame instead of memory-mapped rings",
                e.op,
                &e.source,
            );
            (None, None, None)
        }
    }
}

impl Link for AfPacketLink {
    /// Returns IPv4 packets to our address; ARP is handled here and never
    /// returned. A packet longer than `buf` is dropped and counted. A
    /// partial checksum is finished here (see the module doc). On a veth
    /// the peer kernel's GSO super-packets exceed the MTU although this
    /// link sends none (`tso_max` 0, so [`DeviceCaps::max_rx_len`] is the
    /// MTU): pass a [`MAX_PACKET_LEN`](crate::MAX_PACKET_LEN)-byte buffer
    /// to receive them, as the runtime does. Frames waiting in the
    /// transmit ring are sent first.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        self.port.flush()?;
        if self.rx.is_none() {
            return self.socket_next(buf);
        }
        self.ring_next(|pkt, info, port| match buf.get_mut(..pkt.len()) {
            Some(dst) => {
                dst.copy_from_slice(pkt);
                Some(RxPacket {
                    len: pkt.len(),
                    info,
                })
            }
            None => {
                port.af_stats.rx_dropped += 1;
                tracing::debug!(device = %port.iface, len = pkt.len(), buf = buf.len(), "packet larger than the receive buffer, dropped");
                None
            }
        })
    }

    /// With the receive ring, lends each packet where it lies in the ring
    /// (`buf` unused); without, one `recvmsg` into `buf`. Frames waiting in
    /// the transmit ring are sent first.
    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        self.port.flush()?;
        if self.rx.is_none() {
            return crate::recv_into_buffer(self, buf, f);
        }
        let got = self.ring_next(|pkt, info, port| {
            f(pkt, info, &mut |p| port.send(p));
            Some(())
        })?;
        Ok(got.is_some())
    }

    /// The next hop's MAC (broadcast for a broadcast destination), the
    /// Ethernet header and the parts, into the transmit ring or one
    /// `sendmsg`. A packet whose next hop is not resolved yet is copied
    /// into the neighbour cache's queue and sent when the ARP reply comes.
    /// Super-frames go to the kernel to segment (GSO) when the caps offer
    /// it (no transmit ring, no capture here); otherwise a super-frame is
    /// `InvalidConfig`.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        self.port.send(pkt)
    }

    /// The interface's (or the configured) MTU, [`Medium::Ethernet`]; the
    /// kernel finishes TCP checksums, and without a transmit ring segments
    /// super-frames (the virtio-net header), unless frames are captured
    /// here: a capture holds the wire's frames with complete checksums.
    fn caps(&self) -> DeviceCaps {
        DeviceCaps {
            mtu: self.port.mtu,
            medium: Medium::Ethernet,
            tso_max: if self.port.segmentation() {
                port::TSO_MAX
            } else {
                0
            },
            finishes_checksums: self.port.finishes_checksums(),
        }
    }

    /// Readable when a receive block is handed over (with the ring) or a
    /// frame waits (without).
    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.port.socket.as_raw_fd())
    }

    /// Now while frames wait in the transmit ring for their kick (the next
    /// `recv`/`recv_with` sends them) or a receive block is held half read;
    /// ARP retries and the neighbour cache's timers run when packets come
    /// and go.
    fn poll_at(&self) -> Option<std::time::Instant> {
        let held = self.rx.as_ref().is_some_and(RxRing::holding);
        (self.port.tx_pending() || held).then(std::time::Instant::now)
    }

    /// Asks the kernel for its receive drops (one `getsockopt`).
    fn stats(&self) -> LinkStats {
        let dropped = &self.port.kernel_rx_dropped;
        if let Some(n) = crate::sockopt::packet_drops_since_last(&self.port.socket) {
            dropped.set(dropped.get() + n);
        }
        LinkStats {
            rx_dropped: dropped.get(),
            ..self.port.stats
        }
    }

    fn name(&self) -> &str {
        &self.port.iface
    }
}

#[cfg(test)]
mod tests;

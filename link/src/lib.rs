//! # ustack-link: packet devices
//!
//! This layer moves whole IPv4 packets between the stack and a device. Each
//! device is a [`Link`]: receive one packet into a caller's buffer without
//! blocking, send one complete packet, report the MTU, a file descriptor to
//! wait on, counters and a name.
//!
//! Backends:
//! - [`TunLink`] (feature `tun`): a Linux TUN device; the kernel on the host
//!   side routes packets to the stack as if it were another machine.
//! - [`RawLink`] (feature `raw`): a raw `AF_INET` TCP socket with `IP_HDRINCL`
//!   and a classic BPF filter that admits exactly one TCP flow.
//! - [`AfPacketLink`] (feature `afpacket`): an `AF_PACKET` socket on an
//!   existing Ethernet interface; Ethernet II framing ([`ethernet`]) and ARP
//!   with a bounded neighbour cache ([`arp`]) live here, below `ipv4`, so the
//!   stack still sees only IPv4 packets.
//! - [`PipeEnd`] (always): an in-memory, single-threaded, full-duplex pair for
//!   tests and benchmarks.
//!
//! Middleware ([`middleware`]): links that wrap any link — a pcap writer, a
//! seeded fault injector and a per-packet tracer — and stack freely.
//!
//! Segmentation offload (TSO/GSO/GRO): a link whose [`Link::tso_max_size`]
//! is above 0 takes TCP "super-frames" of up to 64 KiB through
//! [`Link::send_segmented`] and cuts them into MSS-sized segments itself,
//! so the stack builds one packet where it would build ~45. A [`TunLink`]
//! opened with [`TunConfig::offload`] does it with a virtio-net header
//! (`IFF_VNET_HDR`) and `TUNSETOFFLOAD` (`TUN_F_CSUM | TUN_F_TSO4`), as
//! wireguard-go and gVisor do; the kernel then also hands the stack its own
//! 64 KiB TCP super-frames, and leaves TCP/UDP checksums of local senders
//! unfinished: [`Link::rx_checksum_trusted`] says, per packet, when the
//! stack must not verify one. [`pipe_tso`] makes an in-memory pair that
//! passes super-frames whole, for tests and benchmarks. The pcap writer and
//! the tracer pass all of this through; the fault injector offers no
//! offload and finishes trusted checksums itself before it may corrupt a
//! packet, so the stack verifies them.
//!
//! What it does not do: it parses nothing of IP beyond what a backend needs
//! (the IP version nibble on TUN, the destination address for `sendto` on a
//! raw socket, the IPv4 and TCP headers of a super-frame), validates no
//! checksums, and knows nothing of TCP beyond where its headers end.
//!
//! Above: `ustack-ipv4` and `ustack-tcp`, driven by the runtime in the
//! `ustack` crate, which waits on [`Link::poll_fd`] and calls `recv`/`send`.
//! Below: the kernel (the TUN driver, raw sockets). This crate and the
//! runtime are the only places in ustack that touch the OS.
//!
//! No backend allocates per packet: `recv` writes into the caller's buffer and
//! `send` reads from the caller's slice.

use std::io;
use std::os::fd::RawFd;

use enum_dispatch::enum_dispatch;

#[cfg(feature = "afpacket")]
mod afpacket;
pub mod arp;
pub mod ethernet;
pub mod middleware;
mod pipe;
#[cfg(feature = "raw")]
mod raw;
#[cfg(feature = "tun")]
mod tun;
mod vnet;

#[cfg(feature = "afpacket")]
pub use self::afpacket::{AfPacketConfig, AfPacketLink, AfPacketStats};
pub use self::pipe::{pipe, pipe_tso, PipeEnd};
#[cfg(feature = "raw")]
pub use self::raw::{RawConfig, RawLink, PACKET_MARK};
#[cfg(feature = "tun")]
pub use self::tun::{TunConfig, TunLink, TunStats};

/// Smallest MTU an IPv4 link may have (RFC 791, section 3.2: every module
/// must forward a 68-octet datagram without fragmenting it).
pub const MIN_IPV4_MTU: usize = 68;

/// A device that carries IPv4 packets.
#[enum_dispatch]
pub trait Link {
    /// Receives one IPv4 packet into `buf` without blocking.
    /// `Ok(Some(n))`: `buf[..n]` is the packet. `Ok(None)`: nothing ready now.
    ///
    /// `buf` should be at least [`Link::mtu`] bytes long; what a backend does
    /// with a longer packet is backend-specific (see each type).
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError>;

    /// Sends one complete IPv4 packet. A full device queue (EAGAIN/ENOBUFS)
    /// is not an error: the packet is dropped and counted in
    /// [`LinkStats::tx_dropped`] (TCP retransmits).
    fn send(&mut self, packet: &[u8]) -> Result<(), LinkError>;

    /// Largest IPv4 packet the device carries.
    fn mtu(&self) -> usize;

    /// A file descriptor that becomes readable when `recv` may return a
    /// packet; `None` for in-memory links (always poll them).
    fn poll_fd(&self) -> Option<RawFd>;

    /// Counters since the link was opened.
    fn stats(&self) -> LinkStats;

    /// A short name for logs, e.g. the interface name `tun0`.
    fn name(&self) -> &str;

    /// True when received packets may carry unfinished transport checksums
    /// that the stack must not verify. Linux never computes TCP checksums on
    /// loopback (CHECKSUM_PARTIAL: the field holds only the pseudo-header
    /// sum) and a raw socket sees the packet as is; loopback cannot corrupt
    /// a packet, so nothing is lost by trusting it.
    fn rx_checksum_offloaded(&self) -> bool {
        false
    }

    /// When the link itself next needs `recv` or `send` called even if its
    /// fd stays quiet (a middleware releasing a delayed packet); the event
    /// loop sleeps no longer than this.
    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    /// Largest IPv4 packet [`Link::send_segmented`] accepts, or 0 when the
    /// link has no TCP segmentation offload. When it is above 0, `recv` may
    /// also return packets larger than [`Link::mtu`] (GRO/GSO super-frames,
    /// up to 65535 bytes): pass a 65535-byte buffer.
    fn tso_max_size(&self) -> usize {
        0
    }

    /// Sends one TCP/IPv4 super-frame: the device cuts its TCP payload into
    /// segments of `segment_payload` bytes (the last may be shorter),
    /// copying the IPv4 and TCP headers (options included) onto each, as
    /// Linux GSO does: IPv4 total length, ID (incremented per segment) and
    /// header checksum, TCP sequence number and checksum are fixed up per
    /// segment; FIN and PSH stay on the last segment, CWR on the first. (A
    /// kernel that delivers the frame to a local socket may never cut it,
    /// exactly as if GRO had merged the segments.)
    ///
    /// The TCP checksum field holds only the pseudo-header sum (Linux
    /// CHECKSUM_PARTIAL: folded, NOT complemented, over source, destination,
    /// zero, protocol 6 and the whole TCP length of the super-frame); the
    /// device finishes it. The IPv4 header checksum must be complete.
    ///
    /// Each segment must fit the MTU (IP + TCP headers + `segment_payload`
    /// ≤ [`Link::mtu`]), and a frame that will be cut must not carry SYN, RST
    /// or URG; otherwise, and for anything but an unfragmented TCP/IPv4
    /// packet whose total length matches the slice, `MalformedPacket`.
    /// Longer than [`Link::tso_max_size`]: `PacketTooLarge`. A full device
    /// queue drops the whole super-frame and counts one packet in
    /// [`LinkStats::tx_dropped`], as `send` does; the `tx_*` counters also
    /// count a super-frame as one packet of its full length.
    ///
    /// Default: `InvalidConfig` — call it only when `tso_max_size() > 0`.
    fn send_segmented(&mut self, packet: &[u8], segment_payload: u16) -> Result<(), LinkError> {
        let _ = (packet, segment_payload);
        Err(LinkError::InvalidConfig(format!(
            "{}: no TCP segmentation offload",
            self.name()
        )))
    }

    /// True when the packet last returned by `recv` has a transport checksum
    /// the device vouches for: verified already (virtio-net DATA_VALID) or
    /// left unfinished by a local sender (NEEDS_CSUM: the field holds only
    /// the pseudo-header sum, so it cannot be verified). The stack then must
    /// not verify it. Unlike [`Link::rx_checksum_offloaded`], which holds
    /// for every packet of a link, this is per packet. Default false.
    fn rx_checksum_trusted(&self) -> bool {
        false
    }
}

/// Per-link counters. Bytes count whole IPv4 packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets accepted by `send` but dropped because the device queue was full.
    pub tx_dropped: u64,
}

impl LinkStats {
    pub(crate) fn count_rx(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }

    pub(crate) fn count_tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }
}

/// Any link, dispatched statically.
///
/// The `Tun` and `Raw` variants exist only with their cargo features;
/// `enum_dispatch` (0.3.13) carries each variant's `#[cfg]` onto the
/// generated `From` impls and match arms, so no workaround is needed.
/// A process has one link, built once and never moved on the packet path,
/// so the size difference between variants (the AF_PACKET link carries its
/// neighbour cache inline) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[enum_dispatch(Link)]
pub enum AnyLink {
    #[cfg(feature = "tun")]
    Tun(TunLink),
    #[cfg(feature = "raw")]
    Raw(RawLink),
    #[cfg(feature = "afpacket")]
    AfPacket(AfPacketLink),
    Pipe(PipeEnd),
}

/// What went wrong with a link. `device` is a human label such as
/// `TUN device tun0` or `raw socket 127.0.0.1:40123<->127.0.0.1:80`.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{device}: permission denied — needs {capability}, run as root")]
    PermissionDenied {
        device: String,
        capability: &'static str,
    },

    #[error("{device}: busy — another process holds it")]
    Busy { device: String },

    #[error("{device}: not found — {hint}")]
    NotFound { device: String, hint: &'static str },

    #[error("{device}: {op} failed: {source}")]
    Io {
        device: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("invalid link configuration: {0}")]
    InvalidConfig(String),

    #[error("{device}: packet of {len} bytes is larger than the MTU of {mtu} bytes")]
    PacketTooLarge {
        device: String,
        len: usize,
        mtu: usize,
    },

    #[error("{device}: receive buffer of {len} bytes is too small for a {needed}-byte packet")]
    BufferTooSmall {
        device: String,
        len: usize,
        needed: usize,
    },

    #[error("{device}: cannot send malformed packet: {reason}")]
    MalformedPacket {
        device: String,
        reason: &'static str,
    },
}

/// True for the errno values that mean "the device queue is full right now".
#[cfg(any(feature = "tun", feature = "raw", feature = "afpacket"))]
pub(crate) fn is_queue_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS)
}

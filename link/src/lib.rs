//! # ustack-link: packet devices
//!
//! This layer moves whole IPv4 packets between the stack and a device. Each
//! device is a [`Link`], one interface of seven methods and no defaults:
//! - [`Link::recv`] receives one packet into the caller's buffer without
//!   blocking and returns an [`RxPacket`]: its length and an [`RxInfo`],
//!   what the device vouches for about that packet (its transport checksum
//!   verified already or left partial by a local sender, or nothing; the
//!   segment size of a GRO super-frame);
//! - [`Link::send`] transmits one [`TxPacket`], a gather list of parts
//!   (headers and payload need not sit in one buffer), optionally a TCP
//!   super-frame for the device to segment (`segment: Some(n)`);
//! - [`Link::caps`] describes the device once ([`DeviceCaps`]: MTU, medium,
//!   largest super-frame);
//! - [`Link::poll_fd`] and [`Link::poll_at`] say when to call again;
//!   [`Link::stats`] and [`Link::name`] are for people.
//!
//! The vocabulary ([`DeviceCaps`], [`RxInfo`], [`TxPacket`], …) belongs to
//! `ustack-ipv4`, which reads it; it is re-exported here for convenience.
//!
//! Backends:
//! - `TunLink` (feature `tun`): a Linux TUN device; the kernel on the host
//!   side routes packets to the stack as if it were another machine.
//! - `RawLink` (feature `raw`): a raw `AF_INET` TCP socket with `IP_HDRINCL`
//!   and a classic BPF filter that admits exactly one TCP flow.
//! - `AfPacketLink` (feature `afpacket`): an `AF_PACKET` socket on an
//!   existing Ethernet interface; Ethernet II framing ([`ethernet`]) and ARP
//!   with a bounded neighbour cache ([`arp`]) live here, below `ipv4`, so the
//!   stack still sees only IPv4 packets ([`Medium::Ethernet`] says so).
//! - [`PipeEnd`] (always): an in-memory, single-threaded, full-duplex pair for
//!   tests and benchmarks.
//!
//! Middleware ([`middleware`]): links that wrap any link — a pcap writer, a
//! seeded fault injector and a per-packet tracer — and stack freely. Each
//! implements every method of [`Link`] itself: the trait has no default
//! methods, so a wrapper that forgot to forward one (and so silently turned
//! an offload off) would not compile.
//!
//! Segmentation offload (TSO/GSO/GRO): a link whose [`DeviceCaps::tso_max`]
//! is above 0 takes TCP super-frames of up to 64 KiB (a [`TxPacket`] with
//! `segment: Some(n)`) and cuts them into `n`-byte segments itself, so the
//! stack builds one packet where it would build ~45. A `TunLink` opened
//! with `TunConfig::offload` does it with a virtio-net header
//! (`IFF_VNET_HDR`) and `TUNSETOFFLOAD` (`TUN_F_CSUM | TUN_F_TSO4`), as
//! wireguard-go and gVisor do; the kernel then also hands the stack its own
//! 64 KiB TCP super-frames (so receive buffers must hold
//! [`DeviceCaps::max_rx_len`] bytes), and leaves TCP/UDP checksums of local
//! senders unfinished ([`RxChecksum::Partial`]). [`pipe_tso`] makes an
//! in-memory pair that passes super-frames whole, for tests and benchmarks.
//! The pcap writer and the tracer pass all of this through; an active fault
//! injector offers no offload (`tso_max: 0`) and finishes vouched-for
//! checksums itself before it may corrupt a packet, reporting it
//! [`RxChecksum::Unverified`] so the stack verifies it.
//!
//! What it does not do: it validates no checksums and routes nothing. It
//! reads of IP only what a backend needs, through `ustack-ipv4`'s header
//! views (the version nibble on TUN, the destination for `sendto` on a raw
//! socket and for the next hop on Ethernet, the IPv4 and TCP headers of a
//! super-frame), computes checksums only to finish partial ones (with
//! `ustack-ipv4`'s one Internet checksum), and knows nothing of TCP beyond
//! the header fields segmentation needs, read by offset.
//!
//! Above: `ustack-ipv4` and `ustack-tcp`, driven by the runtime in the
//! `ustack` crate, which waits on [`Link::poll_fd`] and calls `recv`/`send`.
//! Below: the kernel (the TUN driver, raw and packet sockets). This crate
//! and the runtime are the only places in ustack that touch the OS.
//!
//! No backend allocates per packet: `recv` writes into the caller's buffer;
//! `send` hands the parts to the kernel in one `writev`/`sendmsg` with an
//! iovec array on the stack (at most [`MAX_TX_PARTS`] parts), or copies them
//! into a preallocated queue slot (the pipe). Only the AF_PACKET backend
//! copies a packet that must wait for ARP, and the pcap writer gathers into
//! its own buffer (capture is a debug tool).

#![warn(missing_docs)]

use std::io;
use std::os::fd::RawFd;

use enum_dispatch::enum_dispatch;

#[cfg(feature = "afpacket")]
mod afpacket;
pub mod arp;
pub mod ethernet;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "tun")]
mod ifstats;
pub mod middleware;
mod pipe;
#[cfg(feature = "raw")]
mod raw;
#[cfg(any(feature = "raw", feature = "afpacket"))]
mod sockopt;
#[cfg(feature = "tun")]
mod tun;
mod vnet;

#[cfg(feature = "afpacket")]
pub use self::afpacket::{AfPacketConfig, AfPacketLink, AfPacketPaths, AfPacketStats, RingConfig};
pub use self::pipe::{pipe, pipe_tso, PipeEnd};
#[cfg(feature = "raw")]
pub use self::raw::{RawConfig, RawLink, PACKET_MARK};
#[cfg(feature = "tun")]
pub use self::tun::{TunConfig, TunLink, TunStats};
pub use ustack_ipv4::{DeviceCaps, Medium, RxChecksum, RxInfo, RxPacket, TxPacket, MAX_PACKET_LEN};

/// Smallest MTU an IPv4 link may have (RFC 791, section 3.2: every module
/// must forward a 68-octet datagram without fragmenting it).
pub const MIN_IPV4_MTU: usize = 68;

/// Most parts a [`TxPacket`] may have: backends pass them to the kernel in
/// an iovec array on the stack. More is [`LinkError::MalformedPacket`], on
/// every backend alike (the pipe included), so tests see what devices do.
pub const MAX_TX_PARTS: usize = 8;

/// A device that carries IPv4 packets.
///
/// The trait deliberately has NO default methods: every link, middleware
/// included, states each capability and forwards each call itself, so a
/// wrapper that forgets one fails to compile instead of silently turning
/// an offload off.
#[enum_dispatch]
pub trait Link {
    /// Receives one packet into `buf` without blocking; `Ok(None)` when
    /// nothing is ready. The packet is `buf[..len]`; `info` says what the
    /// device vouches for about it (checksum, GRO segment size). `buf` must
    /// hold [`DeviceCaps::max_rx_len`] bytes of [`Link::caps`]; what a
    /// backend does with a longer packet is backend-specific (see each type).
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError>;

    /// Receives one packet and lends it to `f` where it lies, with the
    /// device's own send path for replies; `Ok(false)` when nothing is ready.
    ///
    /// A link that has receive memory of its own (the pipe's queue, a
    /// memory-mapped ring) lends the packet from there, so the stack copies
    /// the payload once, into a receive ring; one that reads from the kernel
    /// reads into `buf` (sized as for [`Link::recv`]) and lends that. What
    /// `f` sends through its third argument goes out as [`Link::send`]
    /// would send it, middleware included; the packet is gone once `f`
    /// returns. The same counters and errors as `recv`.
    fn recv_with(&mut self, buf: &mut [u8], f: &mut RxFn<'_>) -> Result<bool, LinkError>;

    /// Sends one packet from a gather list (at most [`MAX_TX_PARTS`] parts,
    /// else `MalformedPacket`).
    ///
    /// `pkt.segment = None`: an ordinary packet with every checksum
    /// complete, at most [`DeviceCaps::mtu`] bytes (else `PacketTooLarge`).
    ///
    /// `pkt.segment = Some(n)`: a TCP/IPv4 super-frame, only when
    /// [`DeviceCaps::tso_max`] is above 0 (else `InvalidConfig`). The device
    /// cuts its TCP payload into segments of `n` bytes (the last may be
    /// shorter), copying the IPv4 and TCP headers (options included) onto
    /// each, as Linux GSO does: IPv4 total length, ID (incremented per
    /// segment) and header checksum, TCP sequence number and checksum are
    /// fixed up per segment; FIN and PSH stay on the last segment, CWR on
    /// the first. (A kernel that delivers the frame to a local socket may
    /// never cut it, exactly as if GRO had merged the segments.) The TCP
    /// checksum field holds only the pseudo-header sum (Linux
    /// CHECKSUM_PARTIAL: folded, NOT complemented, over source,
    /// destination, zero, protocol 6 and the whole TCP length of the
    /// super-frame); the device finishes it. The IPv4 header checksum must
    /// be complete. Each segment must fit the MTU, and a frame that will be
    /// cut must not carry SYN, RST or URG; otherwise, and for anything but
    /// an unfragmented TCP/IPv4 packet whose total length matches the parts,
    /// `MalformedPacket`. Longer than `tso_max`: `PacketTooLarge`.
    ///
    /// A full device queue (EAGAIN/ENOBUFS) is not an error: the packet is
    /// dropped and counted in [`LinkStats::tx_dropped`] (TCP retransmits).
    /// The `tx_*` counters count a super-frame as one packet of its length.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError>;

    /// What the device can do (MTU, medium, largest TSO super-frame), fixed
    /// once it is opened. A middleware reports what is true through it.
    fn caps(&self) -> DeviceCaps;

    /// A file descriptor that becomes readable when `recv` may return a
    /// packet; `None` for in-memory links (always poll them).
    fn poll_fd(&self) -> Option<RawFd>;

    /// When the link itself next needs `recv` or `send` called even if its
    /// fd stays quiet (a middleware releasing a delayed packet); the event
    /// loop sleeps no longer than this. `None`: only when the fd says so.
    fn poll_at(&self) -> Option<std::time::Instant>;

    /// Counters since the link was opened. The OS backends ask the kernel
    /// for [`LinkStats::rx_dropped`] here (a `getsockopt`, or a read of
    /// `/proc` for TUN), so call it when reporting, not per packet.
    fn stats(&self) -> LinkStats;

    /// A short name for logs, e.g. the interface name `tun0`.
    fn name(&self) -> &str;
}

/// Where [`Link::recv_with`] sends: the link's own send path.
pub type LinkTx<'a> = dyn FnMut(&TxPacket<'_>) -> Result<(), LinkError> + 'a;

/// What [`Link::recv_with`] hands each packet to: the packet, what the
/// device vouches for about it, and the link's send path for replies.
pub type RxFn<'a> = dyn FnMut(&[u8], RxInfo, &mut LinkTx<'_>) + 'a;

/// [`Link::recv_with`] for a link without receive memory of its own: one
/// [`Link::recv`] into `buf`, lent to `f` with the link's [`Link::send`].
pub fn recv_into_buffer<L: Link + ?Sized>(
    link: &mut L,
    buf: &mut [u8],
    f: &mut RxFn<'_>,
) -> Result<bool, LinkError> {
    let Some(p) = link.recv(buf)? else {
        return Ok(false);
    };
    f(&buf[..p.len], p.info, &mut |pkt| link.send(pkt));
    Ok(true)
}

/// `MalformedPacket` unless `pkt` has at most [`MAX_TX_PARTS`] parts.
pub(crate) fn check_parts(pkt: &TxPacket<'_>, device: &str) -> Result<(), LinkError> {
    if pkt.parts.len() > MAX_TX_PARTS {
        return Err(LinkError::MalformedPacket {
            device: device.to_owned(),
            reason: "more parts in the gather list than MAX_TX_PARTS",
        });
    }
    Ok(())
}

/// The error for a super-frame handed to a link without segmentation
/// offload.
pub(crate) fn no_tso(device: &str) -> LinkError {
    LinkError::InvalidConfig(format!("{device}: no TCP segmentation offload"))
}

/// An iovec array on the stack for one `writev`/`sendmsg`, borrowing the
/// buffers it points at for `'a` so that they outlive the call.
#[cfg(any(feature = "tun", feature = "afpacket"))]
pub(crate) struct IoVecs<'a, const N: usize> {
    iov: [libc::iovec; N],
    len: usize,
    _bufs: std::marker::PhantomData<&'a [u8]>,
}

#[cfg(any(feature = "tun", feature = "afpacket"))]
impl<'a, const N: usize> IoVecs<'a, N> {
    pub(crate) fn new() -> Self {
        IoVecs {
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; N],
            len: 0,
            _bufs: std::marker::PhantomData,
        }
    }

    /// Appends `buf` (empty ones are skipped). Panics past `N`: callers
    /// size `N` for their fixed parts plus [`MAX_TX_PARTS`] and check the
    /// parts first ([`check_parts`]).
    pub(crate) fn push(&mut self, buf: &'a [u8]) {
        if buf.is_empty() {
            return;
        }
        // The kernel only reads through this pointer (writev/sendmsg); the
        // `*mut` is what `iovec` requires.
        self.iov[self.len] = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[libc::iovec] {
        &self.iov[..self.len]
    }
}

/// Per-link counters. Bytes count whole IPv4 packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets `recv` returned (a GRO super-frame counts once).
    pub rx_packets: u64,
    /// Bytes of those packets, IPv4 header included, link framing excluded.
    pub rx_bytes: u64,
    /// Packets `send` handed to the device (a TSO super-frame counts once);
    /// queue-full drops are not among them.
    pub tx_packets: u64,
    /// Bytes of those packets, IPv4 header included, link framing excluded.
    pub tx_bytes: u64,
    /// Packets accepted by `send` but dropped because the device queue was full.
    pub tx_dropped: u64,
    /// Packets the kernel dropped on their way in because this link did not
    /// read fast enough: its receive ring or socket queue was full. Read
    /// from the kernel by [`Link::stats`] (AF_PACKET: `PACKET_STATISTICS`;
    /// raw socket: `SO_MEMINFO`; TUN: the interface's TX drops, as
    /// `ip -s link show tun0` shows them, read from `/proc` in the
    /// namespace the device was made in, else 0). Always 0 for the
    /// in-memory pipe, which cannot overflow on receive.
    pub rx_dropped: u64,
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
    /// A Linux TUN device (feature `tun`).
    #[cfg(feature = "tun")]
    Tun(TunLink),
    /// A raw `AF_INET` socket with `IP_HDRINCL`, one TCP flow (feature `raw`).
    #[cfg(feature = "raw")]
    Raw(RawLink),
    /// An `AF_PACKET` socket on an Ethernet interface, with ARP (feature `afpacket`).
    #[cfg(feature = "afpacket")]
    AfPacket(AfPacketLink),
    /// One end of an in-memory pair ([`pipe()`], [`pipe_tso`]).
    Pipe(PipeEnd),
}

/// What went wrong with a link. `device` is a human label such as
/// `TUN device tun0` or `raw socket 127.0.0.1:40123<->127.0.0.1:80`.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The kernel refused to open the device (`EPERM`/`EACCES`): the process
    /// lacks a capability.
    #[error("{device}: permission denied — needs {capability}, run as root")]
    PermissionDenied {
        /// The device, e.g. `TUN device tun0`.
        device: String,
        /// The capability it needs, e.g. `CAP_NET_ADMIN` or `CAP_NET_RAW`.
        capability: &'static str,
    },

    /// The kernel says the device is in use (`EBUSY`): another process has
    /// it open, e.g. a TUN device of that name attached elsewhere.
    #[error("{device}: busy — another process holds it")]
    Busy {
        /// The device, e.g. `TUN device tun0`.
        device: String,
    },

    /// The device or what it needs does not exist (`ENOENT`/`ENODEV`/`ENXIO`):
    /// no `/dev/net/tun`, no interface of that name.
    #[error("{device}: not found — {hint}")]
    NotFound {
        /// The device, e.g. `AF_PACKET on eth0`.
        device: String,
        /// What to check or load, for the person reading the message.
        hint: &'static str,
    },

    /// Any other system call failure.
    #[error("{device}: {op} failed: {source}")]
    Io {
        /// The device the call was made on.
        device: String,
        /// The operation that failed, e.g. `open`, `ioctl TUNSETIFF`, `send`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The configuration or the call cannot work on this link, e.g. a
    /// super-frame to a link without TSO, or an MTU below [`MIN_IPV4_MTU`];
    /// the string says what, for a person.
    #[error("invalid link configuration: {0}")]
    InvalidConfig(String),

    /// `send` got a packet longer than the MTU, or a super-frame longer than
    /// the device takes ([`DeviceCaps::tso_max`]); nothing was sent.
    #[error("{device}: packet of {len} bytes is larger than the MTU of {mtu} bytes")]
    PacketTooLarge {
        /// The link that refused it.
        device: String,
        /// The packet's length in bytes.
        len: usize,
        /// The limit it exceeded, in bytes: the MTU, or for a super-frame
        /// the largest the device takes.
        mtu: usize,
    },

    /// `recv`'s buffer cannot hold the waiting packet; the packet is kept where
    /// the backend can keep it (see each type) or dropped.
    #[error("{device}: receive buffer of {len} bytes is too small for a {needed}-byte packet")]
    BufferTooSmall {
        /// The link that received it.
        device: String,
        /// The caller's buffer length in bytes.
        len: usize,
        /// The length the packet needs, in bytes.
        needed: usize,
    },

    /// `send` got a packet it cannot transmit as described: too many gather
    /// parts ([`MAX_TX_PARTS`]), or a super-frame that is not a plain TCP/IPv4
    /// packet it can cut ([`Link::send`] lists the rules).
    #[error("{device}: cannot send malformed packet: {reason}")]
    MalformedPacket {
        /// The link that refused it.
        device: String,
        /// What is wrong with it, for a person.
        reason: &'static str,
    },
}

/// True for the errno values that mean "the device queue is full right now".
#[cfg(any(feature = "tun", feature = "raw", feature = "afpacket"))]
pub(crate) fn is_queue_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS)
}

//! A Linux TUN device (`IFF_TUN | IFF_NO_PI`): each `read(2)` yields one IP
//! packet the host routed to the device, each `write(2)` injects one.
//!
//! With [`TunConfig::offload`] the device is opened with `IFF_VNET_HDR` and
//! every packet in either direction is preceded by a 10-byte virtio-net
//! header (`readv`/`writev` of the header and the packet's parts, no
//! copy), and `TUNSETOFFLOAD` announces `TUN_F_CSUM | TUN_F_TSO4`. What
//! that buys:
//! - send: a [`TxPacket`] with `segment: Some(n)` goes out as one TCP
//!   super-frame of up to 65535 bytes with `gso_type = TCPV4`; the kernel
//!   segments it (or, for a local socket, takes it whole as if GRO had
//!   merged it). [`DeviceCaps::tso_max`] is then [`MAX_PACKET_LEN`].
//! - receive: the kernel no longer segments or checksums the TCP it sends
//!   into the device: it hands over GSO super-frames of up to 64 KiB
//!   (larger than the MTU; [`RxInfo::gro_segment`] carries their
//!   `gso_size`) and leaves checksums partial (`NEEDS_CSUM`:
//!   [`RxChecksum::Partial`]), or marks them verified (`DATA_VALID`:
//!   [`RxChecksum::Verified`]), per packet in [`RxInfo`].
//!
//! Kernel behaviour this relies on (Linux `drivers/net/tun.c`):
//! - `TUNSETOFFLOAD` only governs what the kernel sends us; it needs
//!   `TUN_F_CSUM` for `TUN_F_TSO4`. Without `TUN_F_TSO_ECN` (not asked for)
//!   the kernel segments ECN-marked (CWR) super-frames itself before they
//!   reach us; the ECN bit is accepted anyway.
//! - A read into too short a buffer is truncated silently: `read`/`readv`
//!   return the bytes copied (the driver clamps its result to the buffer;
//!   seen on 6.18), so only the IPv4 total length gives a cut packet away.
//!   Such a packet is dropped and counted in [`TunStats::rx_dropped`] (as
//!   is a return larger than the buffer, should a kernel ever report one).
//! - The legacy header's 16-bit fields are in native byte order unless
//!   `TUNSETVNETLE`/`BE` is issued (never, here).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

use ::tun::AbstractDevice;
use ustack_ipv4::{
    DeviceCaps, Ipv4Packet, Ipv4Subnet, RxChecksum, RxInfo, RxPacket, TxPacket, MAX_PACKET_LEN,
};

use crate::vnet::{self, VnetHdr};
use crate::{
    check_parts, is_queue_full, IoVecs, Link, LinkError, LinkStats, MAX_TX_PARTS, MIN_IPV4_MTU,
};

/// `TUNSETOFFLOAD`: `_IOW('T', 208, unsigned int)` (linux/if_tun.h).
const TUNSETOFFLOAD: u32 = 0x4004_54d0;
/// `TUN_F_CSUM`: we accept packets with partial checksums.
const TUN_F_CSUM: libc::c_ulong = 0x01;
/// `TUN_F_TSO4`: we accept TCP/IPv4 GSO super-frames.
const TUN_F_TSO4: libc::c_ulong = 0x02;

/// How to create a TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name, at most 15 bytes (`IFNAMSIZ - 1`). Empty: the kernel
    /// picks the next free `tunN`.
    pub name: String,
    /// Address of the HOST side of the device (the kernel's end, not the
    /// stack's). The stack uses another address in the same prefix.
    pub host_addr: Ipv4Addr,
    /// Prefix length of the host-side subnet; the kernel adds a route for it.
    pub prefix_len: u8,
    /// Interface MTU: the largest IPv4 packet in either direction (except
    /// super-frames when `offload` is on).
    pub mtu: u16,
    /// Open with `IFF_VNET_HDR` and ask for `TUN_F_CSUM | TUN_F_TSO4`: TCP
    /// segmentation offload both ways (see the module doc). `recv` then
    /// needs a [`MAX_PACKET_LEN`]-byte buffer ([`DeviceCaps::max_rx_len`]).
    /// If the kernel refuses `TUNSETOFFLOAD` a warning is logged and the
    /// device runs without offloads ([`DeviceCaps::tso_max`] is 0).
    pub offload: bool,
}

/// Counters of the TUN device beyond [`LinkStats`]. A super-frame counts as
/// ONE packet of its full length in [`LinkStats`] (`rx_*` and `tx_*`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TunStats {
    /// Packets the kernel handed over that were dropped: truncated by too
    /// short a receive buffer, shorter than the virtio-net header, or of a
    /// GSO type other than TCPv4.
    pub rx_dropped: u64,
    /// TCP/IPv4 GSO super-frames received.
    pub rx_gso: u64,
    /// Packets received whose transport checksum the kernel vouched for
    /// ([`RxChecksum::Verified`] or [`RxChecksum::Partial`]).
    pub rx_csum_trusted: u64,
    /// Super-frames sent for the kernel to segment (`gso_type` TCPV4); a
    /// super-frame whose payload fits one segment is not one.
    pub tx_gso: u64,
}

/// A non-persistent TUN device owned by this process. Dropping it closes the
/// file descriptor, and the kernel removes the interface with it.
pub struct TunLink {
    dev: ::tun::Device,
    /// Interface name as the kernel assigned it.
    name: String,
    /// `TUN device <name>`, for errors.
    label: String,
    mtu: usize,
    stats: LinkStats,
    /// Opened with `IFF_VNET_HDR`: every packet has a virtio-net header.
    vnet_hdr: bool,
    /// `TUNSETOFFLOAD` succeeded: super-frames go out, GSO comes in.
    tso: bool,
    tun_stats: TunStats,
    /// The interface's kernel counters: its TX drops are our receive drops.
    kernel: crate::ifstats::IfCounters,
}

impl std::fmt::Debug for TunLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunLink")
            .field("name", &self.name)
            .field("fd", &self.dev.as_raw_fd())
            .field("mtu", &self.mtu)
            .field("vnet_hdr", &self.vnet_hdr)
            .field("tso", &self.tso)
            .field("stats", &self.stats)
            .field("tun_stats", &self.tun_stats)
            .finish()
    }
}

fn label(name: &str) -> String {
    if name.is_empty() {
        "TUN device (unnamed)".to_owned()
    } else {
        format!("TUN device {name}")
    }
}

/// Maps an OS error from TUN setup to the error a person can act on.
fn os_error(label: &str, op: &'static str, source: io::Error) -> LinkError {
    let device = label.to_owned();
    match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => LinkError::PermissionDenied {
            device,
            capability: "CAP_NET_ADMIN",
        },
        Some(libc::EBUSY) => LinkError::Busy { device },
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) if op == "create" => LinkError::NotFound {
            device,
            hint: "/dev/net/tun is missing; load the tun kernel module (modprobe tun)",
        },
        _ => LinkError::Io { device, op, source },
    }
}

/// The `tun` crate wraps OS errors in `tun::Error::Io`; its other variants
/// are configuration problems it detected itself.
fn tun_error(label: &str, op: &'static str, err: ::tun::Error) -> LinkError {
    match err {
        ::tun::Error::Io(source) => os_error(label, op, source),
        other => LinkError::InvalidConfig(format!("{label}: {op}: {other}")),
    }
}

fn validate(cfg: &TunConfig) -> Result<(), LinkError> {
    if cfg.name.len() >= libc::IFNAMSIZ {
        return Err(LinkError::InvalidConfig(format!(
            "TUN device name {:?} is {} bytes; the kernel allows at most {}",
            cfg.name,
            cfg.name.len(),
            libc::IFNAMSIZ - 1
        )));
    }
    if cfg.name.contains(['/', '\0']) || cfg.name.chars().any(char::is_whitespace) {
        return Err(LinkError::InvalidConfig(format!(
            "TUN device name {:?} contains '/', NUL or whitespace",
            cfg.name
        )));
    }
    if Ipv4Subnet::new(cfg.host_addr, cfg.prefix_len).is_none() {
        return Err(LinkError::InvalidConfig(format!(
            "TUN device {}: prefix length /{} is longer than 32",
            cfg.name, cfg.prefix_len
        )));
    }
    if usize::from(cfg.mtu) < MIN_IPV4_MTU {
        return Err(LinkError::InvalidConfig(format!(
            "TUN device {}: MTU {} is below the IPv4 minimum of {MIN_IPV4_MTU}",
            cfg.name, cfg.mtu
        )));
    }
    Ok(())
}

impl TunLink {
    /// Creates the device, gives the host side `host_addr/prefix_len`, sets
    /// the MTU, brings it up and makes its fd non-blocking.
    pub fn create(cfg: &TunConfig) -> Result<TunLink, LinkError> {
        validate(cfg)?;
        let subnet = Ipv4Subnet::new(cfg.host_addr, cfg.prefix_len)
            .expect("validate checked the prefix length");
        let mut label = label(&cfg.name);

        // Only the name and layer go through `tun::create`; each later step
        // is done separately so that an error names the step that failed.
        // IFF_NO_PI is the tun crate's default (`packet_information` is false
        // and its setter is deprecated).
        let mut conf = ::tun::Configuration::default();
        conf.layer(::tun::Layer::L3);
        if !cfg.name.is_empty() {
            conf.tun_name(&cfg.name);
        }
        if cfg.offload {
            conf.platform_config(|p| {
                p.vnet_hdr(true);
            });
        }
        let mut dev = ::tun::create(&conf).map_err(|e| tun_error(&label, "create", e))?;
        // From here on, an early return drops `dev`, which removes the device.

        let name = dev
            .tun_name()
            .map_err(|e| tun_error(&label, "read name", e))?;
        if cfg.name.is_empty() {
            label = self::label(&name);
        }
        let host = IpAddr::V4(cfg.host_addr);
        dev.set_address(host)
            .map_err(|e| tun_error(&label, "set address", e))?;
        dev.set_netmask(IpAddr::V4(subnet.netmask()))
            .map_err(|e| tun_error(&label, "set netmask", e))?;
        dev.set_mtu(cfg.mtu)
            .map_err(|e| tun_error(&label, "set MTU", e))?;
        dev.enabled(true)
            .map_err(|e| tun_error(&label, "bring up", e))?;
        dev.set_nonblock()
            .map_err(|e| os_error(&label, "set non-blocking", e))?;
        let tso = cfg.offload
            && match set_offload(dev.as_raw_fd()) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        device = %name,
                        error = %e,
                        "TUNSETOFFLOAD refused; running without TSO/GRO (virtio-net header kept)"
                    );
                    false
                }
            };

        tracing::info!(
            device = %name,
            host = %subnet,
            mtu = cfg.mtu,
            offload = tso,
            "TUN device up"
        );
        Ok(TunLink {
            dev,
            kernel: crate::ifstats::IfCounters::new(&name),
            name,
            label,
            mtu: usize::from(cfg.mtu),
            stats: LinkStats::default(),
            vnet_hdr: cfg.offload,
            tso,
            tun_stats: TunStats::default(),
        })
    }

    /// Offload counters; see [`TunStats`].
    pub fn tun_stats(&self) -> TunStats {
        self.tun_stats
    }

    /// Writes one packet with one `writev` of its parts, behind `hdr` when
    /// the device has virtio-net headers (`None` there means an all-zero
    /// header: no offload). True if it went out, false if the device queue
    /// was full (counted as dropped). `pkt` has at most [`MAX_TX_PARTS`]
    /// parts ([`check_parts`]).
    fn transmit(&mut self, hdr: Option<VnetHdr>, pkt: &TxPacket<'_>) -> Result<bool, LinkError> {
        let fd = self.dev.as_raw_fd();
        let len = pkt.len();
        let hdr = hdr.unwrap_or_default().encode();
        let mut iov = IoVecs::<{ 1 + MAX_TX_PARTS }>::new();
        if self.vnet_hdr {
            iov.push(&hdr);
        }
        for part in pkt.parts {
            iov.push(part);
        }
        let iov = iov.as_slice();
        loop {
            // SAFETY: `fd` is the open TUN descriptor owned by `self.dev`;
            // `iov` is an initialised array of `iov.len()` iovecs, each
            // pointing at a live buffer of its stated length (`hdr` on the
            // stack, the caller's parts, all borrowed for the call), which
            // the kernel only reads.
            let n = unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) };
            if n >= 0 {
                self.stats.count_tx(len);
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_queue_full(&err) {
                self.stats.tx_dropped += 1;
                tracing::trace!(device = %self.name, len, "device queue full, packet dropped");
                return Ok(false);
            }
            return Err(LinkError::Io {
                device: self.label.clone(),
                op: "write",
                source: err,
            });
        }
    }

    fn drop_rx(&mut self, len: usize, why: &'static str) {
        self.tun_stats.rx_dropped += 1;
        tracing::debug!(device = %self.name, len, "received packet dropped: {why}");
    }
}

/// `TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4`.
fn set_offload(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open TUN descriptor; TUNSETOFFLOAD takes its
    // argument by value (an unsigned long of flags) and touches no memory.
    let rc = unsafe { libc::ioctl(fd, TUNSETOFFLOAD as _, TUN_F_CSUM | TUN_F_TSO4) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Why `packet`, which the kernel reported as `returned` bytes (after any
/// virtio-net header) in a `cap`-byte buffer, cannot be used, if it cannot:
/// the kernel copied at most `cap` bytes of a longer packet.
fn truncation(packet: &[u8], returned: usize, cap: usize) -> Option<&'static str> {
    if returned > cap {
        return Some("longer than the receive buffer");
    }
    if packet.len() >= 20 && packet[0] >> 4 == 4 {
        // At least 20 bytes: the fixed-header accessors stay in bounds.
        let total = usize::from(Ipv4Packet::new_unchecked(packet).total_len());
        if total > packet.len() {
            return Some("shorter than its IPv4 total length (truncated)");
        }
    }
    None
}

impl Drop for TunLink {
    fn drop(&mut self) {
        tracing::debug!(device = %self.name, "closing TUN device");
    }
}

impl Link for TunLink {
    /// Reads with `read(2)`, or with offload `readv(2)` of the virtio-net
    /// header and the packet, whose flags become the packet's [`RxInfo`]
    /// (`DATA_VALID` → Verified, `NEEDS_CSUM` → Partial, `gso_size` →
    /// `gro_segment`; without offload: Unverified). Non-IPv4 packets the
    /// host sends to the device (IPv6 neighbour discovery, for instance)
    /// are skipped. A packet longer than `buf` is truncated by the kernel,
    /// then dropped here and counted in [`TunStats::rx_dropped`]: pass a
    /// buffer of [`DeviceCaps::max_rx_len`] bytes ([`MAX_PACKET_LEN`] with
    /// offload: super-frames). With offload, packets of a GSO type other
    /// than TCPv4 are dropped and counted likewise.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let fd = self.dev.as_raw_fd();
        loop {
            let mut hdr = [0u8; vnet::LEN];
            let n = if self.vnet_hdr {
                let iov = [
                    libc::iovec {
                        iov_base: hdr.as_mut_ptr().cast(),
                        iov_len: hdr.len(),
                    },
                    libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: buf.len(),
                    },
                ];
                // SAFETY: `fd` is the open TUN descriptor owned by
                // `self.dev`; each iovec points at a valid, exclusively
                // borrowed region of its stated length (`hdr` on the stack,
                // the caller's `buf`), and the kernel writes only within them.
                unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) }
            } else {
                // SAFETY: `fd` is the open TUN descriptor owned by `self.dev`,
                // and the kernel writes at most `buf.len()` bytes into `buf`,
                // which is a valid, exclusively borrowed region of that length.
                unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        return Err(LinkError::Io {
                            device: self.label.clone(),
                            op: "read",
                            source: err,
                        })
                    }
                }
            }
            let n = n as usize; // non-negative, checked above
            if n == 0 {
                return Ok(None);
            }
            let returned = if self.vnet_hdr {
                n.saturating_sub(vnet::LEN)
            } else {
                n
            };
            let len = returned.min(buf.len());
            if len == 0 {
                self.drop_rx(n, "no packet after the virtio-net header");
                continue;
            }
            if buf[0] >> 4 != 4 {
                tracing::trace!(device = %self.name, len, version = buf[0] >> 4, "skipping non-IPv4 packet");
                continue;
            }
            if let Some(why) = truncation(&buf[..len], returned, buf.len()) {
                self.drop_rx(returned, why);
                continue;
            }
            let info = if self.vnet_hdr {
                match VnetHdr::decode(&hdr).rx_info() {
                    Ok(info) => info,
                    Err(why) => {
                        self.drop_rx(len, why);
                        continue;
                    }
                }
            } else {
                RxInfo::default()
            };
            if info.gro_segment.is_some() {
                self.tun_stats.rx_gso += 1;
            }
            if info.checksum != RxChecksum::Unverified {
                self.tun_stats.rx_csum_trusted += 1;
            }
            self.stats.count_rx(len);
            return Ok(Some(RxPacket { len, info }));
        }
    }

    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        crate::recv_into_buffer(self, buf, f)
    }

    /// One `writev` of the parts, behind an all-zero virtio-net header (no
    /// GSO, checksums complete) when the device has one. A super-frame
    /// (`segment: Some(n)`) goes behind a `NEEDS_CSUM` + `GSO_TCPV4` header
    /// built from its IPv4 and TCP headers (read across the parts); one
    /// whose payload fits one segment goes with `NEEDS_CSUM` only (no GSO).
    /// Counted as one packet; see [`TunStats::tx_gso`].
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        check_parts(pkt, &self.label)?;
        let len = pkt.len();
        let Some(segment) = pkt.segment else {
            if len > self.mtu {
                return Err(LinkError::PacketTooLarge {
                    device: self.label.clone(),
                    len,
                    mtu: self.mtu,
                });
            }
            return self.transmit(None, pkt).map(drop);
        };
        if !self.tso {
            return Err(LinkError::InvalidConfig(format!(
                "{}: no TCP segmentation offload (open with offload: true; TUNSETOFFLOAD must succeed)",
                self.label
            )));
        }
        if len > MAX_PACKET_LEN {
            return Err(LinkError::PacketTooLarge {
                device: self.label.clone(),
                len,
                mtu: MAX_PACKET_LEN,
            });
        }
        let hdr = vnet::tcp4_tx_header(pkt, segment, self.mtu).map_err(|reason| {
            LinkError::MalformedPacket {
                device: self.label.clone(),
                reason,
            }
        })?;
        if self.transmit(Some(hdr), pkt)? && hdr.is_gso() {
            self.tun_stats.tx_gso += 1;
        }
        Ok(())
    }

    /// MTU as configured, [`DeviceCaps::tso_max`] [`MAX_PACKET_LEN`] when
    /// `TUNSETOFFLOAD` succeeded, else 0.
    fn caps(&self) -> DeviceCaps {
        DeviceCaps {
            tso_max: if self.tso { MAX_PACKET_LEN } else { 0 },
            ..DeviceCaps::ip(self.mtu)
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.dev.as_raw_fd())
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    /// Reads the interface's TX drops from `/proc` (see [`LinkStats::rx_dropped`]).
    fn stats(&self) -> LinkStats {
        LinkStats {
            rx_dropped: self.kernel.tx_dropped().unwrap_or(0),
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

    fn cfg(name: &str) -> TunConfig {
        TunConfig {
            name: name.to_owned(),
            host_addr: Ipv4Addr::new(10, 9, 0, 1),
            prefix_len: 24,
            mtu: 1500,
            offload: false,
        }
    }

    #[test]
    fn truncated_reads_are_recognised() {
        let mut p = vec![0u8; 100];
        p[0] = 0x45;
        // (Too short to hold an IPv4 header: left to the caller too.)
        assert_eq!(truncation(&p[..19], 19, 19), None);
        p[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(truncation(&p, 100, 100), None);
        assert_eq!(truncation(&p, 100, 65535), None);
        // A return beyond the buffer (not seen on Linux, but cheap to catch).
        assert!(truncation(&p, 101, 100).is_some());
        // Linux returns what it copied; the IPv4 length gives it away.
        assert!(truncation(&p[..60], 60, 60).is_some());
        // Not IPv4, or too short to tell: left to the caller.
        p[0] = 0x60;
        assert_eq!(truncation(&p[..60], 60, 60), None);
        assert_eq!(truncation(&p[..3], 3, 3), None);
    }

    #[test]
    fn bad_configs_are_rejected_before_touching_the_os() {
        let long = cfg("a-very-long-name0");
        let err = validate(&long).unwrap_err();
        assert!(err.to_string().contains("at most 15"), "{err}");
        assert!(validate(&cfg("tun/0")).is_err());
        assert!(validate(&TunConfig {
            prefix_len: 33,
            ..cfg("tun0")
        })
        .is_err());
        assert!(validate(&TunConfig {
            mtu: 67,
            ..cfg("tun0")
        })
        .is_err());
        assert!(validate(&cfg("tun0")).is_ok());
        assert!(validate(&cfg("")).is_ok());
    }

    #[test]
    fn errno_maps_to_a_readable_error() {
        let e = os_error(
            "TUN device tun0",
            "create",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert_eq!(
            e.to_string(),
            "TUN device tun0: permission denied — needs CAP_NET_ADMIN, run as root"
        );
        let e = os_error(
            "TUN device tun0",
            "create",
            io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert_eq!(
            e.to_string(),
            "TUN device tun0: busy — another process holds it"
        );
        let e = os_error(
            "TUN device tun0",
            "create",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert!(matches!(e, LinkError::NotFound { .. }));
        let e = os_error(
            "TUN device tun0",
            "set MTU",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(
            e.to_string()
                .starts_with("TUN device tun0: set MTU failed: "),
            "{e}"
        );
    }
}

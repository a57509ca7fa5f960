//! A Linux TUN device (`IFF_TUN | IFF_NO_PI`): each `read(2)` yields one IP
//! packet the host routed to the device, each `write(2)` injects one.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

use ::tun::AbstractDevice;

use crate::{is_queue_full, Link, LinkError, LinkStats, MIN_IPV4_MTU};

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
    /// Interface MTU: the largest IPv4 packet in either direction.
    pub mtu: u16,
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
}

impl std::fmt::Debug for TunLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunLink")
            .field("name", &self.name)
            .field("fd", &self.dev.as_raw_fd())
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
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
    if cfg.prefix_len > 32 {
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

fn netmask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n))),
    }
}

impl TunLink {
    /// Creates the device, gives the host side `host_addr/prefix_len`, sets
    /// the MTU, brings it up and makes its fd non-blocking.
    pub fn create(cfg: &TunConfig) -> Result<TunLink, LinkError> {
        validate(cfg)?;
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
        dev.set_netmask(IpAddr::V4(netmask(cfg.prefix_len)))
            .map_err(|e| tun_error(&label, "set netmask", e))?;
        dev.set_mtu(cfg.mtu)
            .map_err(|e| tun_error(&label, "set MTU", e))?;
        dev.enabled(true)
            .map_err(|e| tun_error(&label, "bring up", e))?;
        dev.set_nonblock()
            .map_err(|e| os_error(&label, "set non-blocking", e))?;

        tracing::info!(
            device = %name,
            host = %format_args!("{}/{}", cfg.host_addr, cfg.prefix_len),
            mtu = cfg.mtu,
            "TUN device up"
        );
        Ok(TunLink {
            dev,
            name,
            label,
            mtu: usize::from(cfg.mtu),
            stats: LinkStats::default(),
        })
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        tracing::debug!(device = %self.name, "closing TUN device");
    }
}

impl Link for TunLink {
    /// Reads with `read(2)`. Non-IPv4 packets the host sends to the device
    /// (IPv6 neighbour discovery, for instance) are skipped. A packet longer
    /// than `buf` is truncated by the kernel: pass a buffer of at least
    /// [`Link::mtu`] bytes.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        let fd = self.dev.as_raw_fd();
        loop {
            // SAFETY: `fd` is the open TUN descriptor owned by `self.dev`,
            // and the kernel writes at most `buf.len()` bytes into `buf`,
            // which is a valid, exclusively borrowed region of that length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
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
            if buf[0] >> 4 != 4 {
                tracing::trace!(device = %self.name, len = n, version = buf[0] >> 4, "skipping non-IPv4 packet");
                continue;
            }
            self.stats.count_rx(n);
            return Ok(Some(n));
        }
    }

    fn send(&mut self, packet: &[u8]) -> Result<(), LinkError> {
        if packet.len() > self.mtu {
            return Err(LinkError::PacketTooLarge {
                device: self.label.clone(),
                len: packet.len(),
                mtu: self.mtu,
            });
        }
        let fd = self.dev.as_raw_fd();
        loop {
            // SAFETY: `fd` is the open TUN descriptor owned by `self.dev`;
            // the kernel reads `packet.len()` bytes from `packet`, which is
            // valid for that length.
            let n = unsafe { libc::write(fd, packet.as_ptr().cast(), packet.len()) };
            if n >= 0 {
                self.stats.count_tx(packet.len());
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_queue_full(&err) {
                self.stats.tx_dropped += 1;
                tracing::trace!(device = %self.name, len = packet.len(), "device queue full, packet dropped");
                return Ok(());
            }
            return Err(LinkError::Io {
                device: self.label.clone(),
                op: "write",
                source: err,
            });
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.dev.as_raw_fd())
    }

    fn stats(&self) -> LinkStats {
        self.stats
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
        }
    }

    #[test]
    fn netmask_from_prefix() {
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(31), Ipv4Addr::new(255, 255, 255, 254));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
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

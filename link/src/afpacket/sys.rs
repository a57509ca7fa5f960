//! The system calls that set the socket up: interface facts, socket
//! options, `bind`, and the errors they map to.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, RawFd};

use socket2::Socket;

use crate::ethernet::MacAddr;
use crate::LinkError;

// linux/if_packet.h (not exported by every libc version).
pub(super) const PACKET_VNET_HDR: libc::c_int = 15;
pub(super) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_P_ALL: u16 = 0x0003;
// linux/if_arp.h
const ARPHRD_ETHER: u16 = 1;

pub(super) fn io_err(label: &str, op: &'static str, source: io::Error) -> LinkError {
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
pub(super) fn interface_index(iface: &str) -> Result<i32, LinkError> {
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
pub(super) fn interface_facts(
    fd: RawFd,
    iface: &str,
    label: &str,
) -> Result<(MacAddr, usize), LinkError> {
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

/// Sets a socket option whose value is a plain struct (`tpacket_req3`).
pub(super) fn set_struct_opt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` (plain data: callers pass
    // the kernel's own C structs) and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Binds the socket to `ifindex` for every EtherType: from here on the
/// filter decides what arrives.
pub(super) fn bind_all(socket: &Socket, ifindex: i32, label: &str) -> Result<(), LinkError> {
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
        return Err(io_err(label, "bind", io::Error::last_os_error()));
    }
    Ok(())
}

//! Socket options of the socket backends (raw IPv4 and AF_PACKET), and
//! their receive queue limit.
//!
//! Both receive what the kernel's GRO and loopback hand them: super-packets
//! of up to 64 KB. The default limit (`net.core.rmem_default`, 208 KiB on
//! most systems) holds three of them, so a download or upload overflows it
//! whenever the stack is busy for a moment, and every lost super-packet
//! costs the sender dozens of retransmitted segments.

use std::os::fd::AsRawFd;

use socket2::Socket;

/// Bytes of the kernel's accounting: about sixty 64 KB super-packets. A
/// bound, not an allocation: the kernel charges only what is queued.
pub(crate) const RECEIVE_QUEUE_BYTES: libc::c_int = 4 << 20;

/// Raises the socket's receive queue limit to [`RECEIVE_QUEUE_BYTES`]: past
/// `net.core.rmem_max` with `SO_RCVBUFFORCE` (CAP_NET_ADMIN), else as far as
/// `SO_RCVBUF` goes. Not fatal: the link works with the default, with more
/// drops under load.
pub(crate) fn size_receive_queue(socket: &Socket, label: &str) {
    let set = |name| set_int_opt(socket, libc::SOL_SOCKET, name, RECEIVE_QUEUE_BYTES);
    if let Err(e) = set(libc::SO_RCVBUFFORCE) {
        let plain = set(libc::SO_RCVBUF);
        tracing::debug!(link = label, %e, ?plain, "no SO_RCVBUFFORCE; receive queue capped by net.core.rmem_max");
    }
}

/// Sets an integer socket option.
pub(crate) fn set_int_opt(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
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
        Err(std::io::Error::last_os_error())
    }
}

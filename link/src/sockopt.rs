//! Socket options of the socket backends (raw IPv4 and AF_PACKET): their
//! receive queue limit and the kernel's count of what overflowed it.
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

/// Frames the kernel dropped on this packet socket since the last call
/// (`PACKET_STATISTICS`, which resets the kernel's counters on every read):
/// the receive ring or queue was full, or a frame did not fit its slot.
/// `None` when the kernel refuses the option.
#[cfg(feature = "afpacket")]
pub(crate) fn packet_drops_since_last(socket: &Socket) -> Option<u64> {
    // struct tpacket_stats_v3 (linux/if_packet.h): tp_packets, tp_drops,
    // tp_freeze_q_cnt. A socket without a TPACKET_V3 ring fills the first two.
    let mut v = [0u32; 3];
    get_u32s(socket, libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut v)?;
    Some(u64::from(v[1]))
}

/// Packets the kernel dropped at this socket since it was opened
/// (`SO_MEMINFO`'s `SK_MEMINFO_DROPS`, cumulative): its receive queue was
/// full. `None` on a kernel without `SO_MEMINFO` (before 4.12).
#[cfg(feature = "raw")]
pub(crate) fn socket_drops(socket: &Socket) -> Option<u64> {
    // linux/sock_diag.h: SK_MEMINFO_VARS entries, SK_MEMINFO_DROPS the 9th.
    const SK_MEMINFO_DROPS: usize = 8;
    let mut v = [0u32; 9];
    let filled = get_u32s(socket, libc::SOL_SOCKET, libc::SO_MEMINFO, &mut v)?;
    (filled > SK_MEMINFO_DROPS).then_some(u64::from(v[SK_MEMINFO_DROPS]))
}

/// Reads an option made of 32-bit counters into `out`; returns how many the
/// kernel filled, or `None` if it refused the option.
fn get_u32s(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    out: &mut [u32],
) -> Option<usize> {
    let mut len = size_of_val(out) as libc::socklen_t;
    // SAFETY: `out` is a live, exclusively borrowed buffer of `len` bytes;
    // the kernel writes at most `len` bytes and stores the length it wrote.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            out.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(len as usize / size_of::<u32>())
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

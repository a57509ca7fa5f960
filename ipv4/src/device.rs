//! What the IP layer and a device say to each other about packets: the
//! device's capabilities (once), what it vouches for about each received
//! packet, and the shape of a packet to transmit (a gather list, with an
//! optional segment size for TCP segmentation offload).
//!
//! These types live here, in the IP layer, because both sides use them: the
//! `ustack-link` devices produce and consume them, and [`crate::IpStack`]
//! reads them. Nothing here does I/O.

/// Largest IPv4 datagram: the total-length field is 16 bits (RFC 791 §3.1).
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// What a device carries below IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// Bare IPv4 packets (TUN, raw socket, in-memory pipe).
    Ip,
    /// Ethernet II frames; the device does the framing and ARP itself and
    /// still hands the stack bare IPv4 packets.
    Ethernet,
}

/// What a device can do, described once when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCaps {
    /// Largest IPv4 packet the device carries on the wire.
    pub mtu: usize,
    /// What the device carries below IPv4.
    pub medium: Medium,
    /// Largest TCP/IPv4 super-frame the device cuts into segments itself
    /// (TSO), or 0 without segmentation offload. When above 0, received
    /// packets may also be larger than `mtu` (GRO super-frames, up to
    /// [`MAX_PACKET_LEN`]).
    pub tso_max: usize,
}

impl DeviceCaps {
    /// A device of `mtu` carrying bare IPv4 packets, without offloads.
    pub const fn ip(mtu: usize) -> DeviceCaps {
        DeviceCaps {
            mtu,
            medium: Medium::Ip,
            tso_max: 0,
        }
    }

    /// The largest packet a receive buffer must hold for this device.
    pub const fn max_rx_len(&self) -> usize {
        if self.tso_max > 0 {
            MAX_PACKET_LEN
        } else {
            self.mtu
        }
    }
}

/// What the device vouches for about a received packet's transport
/// (TCP/UDP) checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksum {
    /// Nothing: the stack verifies it.
    #[default]
    Unverified,
    /// The device or kernel verified it already (virtio-net DATA_VALID).
    Verified,
    /// A local sender left it unfinished (Linux CHECKSUM_PARTIAL: the field
    /// holds only the pseudo-header sum), so it cannot be verified; the
    /// path (loopback, a local socket through TUN) cannot corrupt it.
    Partial,
}

impl RxChecksum {
    /// True when the stack must verify the transport checksum itself.
    pub const fn needs_verify(self) -> bool {
        matches!(self, RxChecksum::Unverified)
    }
}

/// What a device says about one received packet, returned with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxInfo {
    /// Whether the transport checksum still needs verifying.
    pub checksum: RxChecksum,
    /// For a GRO super-frame of several TCP segments: the payload size of
    /// each segment it was merged from (virtio-net `gso_size`).
    pub gro_segment: Option<u16>,
}

/// A received packet as a device returns it: its length in the caller's
/// buffer and what the device vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPacket {
    /// The packet is `buf[..len]`.
    pub len: usize,
    /// What the device vouches for about it.
    pub info: RxInfo,
}

/// One IPv4 packet to transmit, as a gather list: the packet is the
/// concatenation of `parts` (headers and payload need not sit in one
/// buffer).
#[derive(Debug, Clone, Copy)]
pub struct TxPacket<'a> {
    /// The packet's bytes, in order; their total length is the IPv4 total
    /// length.
    pub parts: &'a [&'a [u8]],
    /// `Some(n)`: a TCP super-frame for a device with TSO to cut into
    /// segments of `n` payload bytes (the last may be shorter). Its TCP
    /// checksum field then holds only the pseudo-header sum over the whole
    /// frame (CHECKSUM_PARTIAL), for the device to finish per segment.
    /// `None`: an ordinary packet with every checksum complete.
    pub segment: Option<u16>,
}

impl<'a> TxPacket<'a> {
    /// An ordinary packet, in parts.
    pub const fn new(parts: &'a [&'a [u8]]) -> TxPacket<'a> {
        TxPacket {
            parts,
            segment: None,
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// True when the packet has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.is_empty())
    }

    /// The first `N` bytes (the headers a device may need to read), gathered
    /// across parts; `None` when the packet is shorter.
    pub fn head<const N: usize>(&self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        let mut at = 0;
        for part in self.parts {
            if at == N {
                break;
            }
            let n = part.len().min(N - at);
            out[at..at + n].copy_from_slice(&part[..n]);
            at += n;
        }
        (at == N).then_some(out)
    }

    /// Copies the first `buf.len()` bytes of the packet (all of it when it
    /// is shorter) into `buf`, gathered across parts, and returns how many
    /// were copied: the headers a device reads when it does not know their
    /// length in advance (IPv4 and TCP options).
    pub fn copy_prefix(&self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        for part in self.parts {
            if at == buf.len() {
                break;
            }
            let n = part.len().min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&part[..n]);
            at += n;
        }
        at
    }

    /// Copies the whole packet into `buf`, returning its length, or `None`
    /// when `buf` is too short.
    pub fn copy_to(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let dst = buf.get_mut(..len)?;
        let mut at = 0;
        for part in self.parts {
            dst[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_list_reads_across_parts() {
        let parts: [&[u8]; 3] = [&[1, 2], &[], &[3, 4, 5]];
        let p = TxPacket::new(&parts);
        assert_eq!(p.len(), 5);
        assert_eq!(p.head::<4>(), Some([1, 2, 3, 4]));
        assert_eq!(p.head::<6>(), None);
        let mut buf = [0u8; 8];
        assert_eq!(p.copy_to(&mut buf), Some(5));
        assert_eq!(&buf[..5], &[1, 2, 3, 4, 5]);
        assert_eq!(p.copy_to(&mut buf[..4]), None);
        let mut head = [0u8; 3];
        assert_eq!(p.copy_prefix(&mut head), 3);
        assert_eq!(head, [1, 2, 3]);
        assert_eq!(p.copy_prefix(&mut buf), 5);
        assert_eq!(&buf[..5], &[1, 2, 3, 4, 5]);
    }
}

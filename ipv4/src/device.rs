//! What the IP layer and a device say to each other about packets: the
//! device's capabilities (once), what it vouches for about each received
//! packet, and the shape of a packet to transmit (a gather list, with an
//! optional segment size for TCP segmentation offload).
//!
//! These types live here, in the IP layer, because both sides use them: the
//! `ustack-link` devices produce and consume them, and [`crate::IpStack`]
//! reads them. Nothing here does I/O.

use crate::checksum;

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
    /// The device finishes a TCP checksum left partial
    /// ([`TxPacket::partial_checksum`]), as a NIC with checksum offload
    /// does, so the stack never reads the payload just to sum it: the
    /// in-memory pipe in the copy it makes anyway ([`TxPacket::copy_to`]),
    /// AF_PACKET by asking the kernel (virtio-net `NEEDS_CSUM`). A device
    /// that hands the parts on as they are (TUN's `writev`) must not say so.
    pub finishes_checksums: bool,
}

impl DeviceCaps {
    /// A device of `mtu` carrying bare IPv4 packets, without offloads.
    pub const fn ip(mtu: usize) -> DeviceCaps {
        DeviceCaps {
            mtu,
            medium: Medium::Ip,
            tso_max: 0,
            finishes_checksums: false,
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
    /// An ordinary TCP/IPv4 packet whose TCP checksum field holds only the
    /// pseudo-header sum (CHECKSUM_PARTIAL), for [`TxPacket::copy_to`] to
    /// finish; sent only to a device whose caps say
    /// [`DeviceCaps::finishes_checksums`].
    pub partial_checksum: bool,
}

impl<'a> TxPacket<'a> {
    /// An ordinary packet, in parts.
    pub const fn new(parts: &'a [&'a [u8]]) -> TxPacket<'a> {
        TxPacket {
            parts,
            segment: None,
            partial_checksum: false,
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
    /// when `buf` is too short. A [`TxPacket::partial_checksum`] is
    /// finished on the way: the bytes from the TCP header on are summed as
    /// they are copied (RFC 1071), and the complement goes in the field.
    pub fn copy_to(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let dst = buf.get_mut(..len)?;
        if self.partial_checksum {
            self.copy_finishing_checksum(dst);
            return Some(len);
        }
        let mut at = 0;
        for part in self.parts {
            dst[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Some(len)
    }

    /// [`TxPacket::copy_to`] of a partial-checksum packet into `dst`, its
    /// exact length. A packet too short to hold a TCP checksum field is
    /// copied as it is.
    fn copy_finishing_checksum(&self, dst: &mut [u8]) {
        let mut at = 0;
        let mut l4 = usize::MAX;
        let mut acc: u64 = 0;
        for part in self.parts {
            let end = at + part.len();
            let out = &mut dst[at..end];
            if l4 == usize::MAX && at == 0 {
                // The IPv4 header length is in the first byte.
                l4 = part
                    .first()
                    .map_or(usize::MAX, |b| usize::from(b & 0x0f) * 4);
            }
            // The part's bytes before the transport header are only copied.
            let plain = l4.saturating_sub(at).min(part.len());
            out[..plain].copy_from_slice(&part[..plain]);
            if plain < part.len() {
                let s = checksum::copy_and_sum(&mut out[plain..], &part[plain..]);
                // A piece starting at an odd offset of the segment sits
                // byte-swapped in the 16-bit words (RFC 1071 §2(B)).
                let odd = (at + plain - l4) % 2 == 1;
                acc += u64::from(if odd { s.swap_bytes() } else { s });
            }
            at = end;
        }
        let field = l4.saturating_add(16);
        let Some(slot) = field.checked_add(2).and_then(|end| dst.get_mut(field..end)) else {
            return;
        };
        // The field held the pseudo-header sum and is part of what was
        // summed. A few 16-bit sums: no overflow of 32 bits.
        let total = u32::try_from(acc).unwrap_or(u32::MAX);
        slot.copy_from_slice(&(!checksum::fold(total)).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partial TCP checksum, as the stack leaves it for a device that
    /// finishes checksums, comes out of `copy_to` complete, wherever the
    /// parts are cut (odd cuts put bytes in the other half of a word).
    #[test]
    fn copy_to_finishes_a_partial_checksum_across_any_cuts() {
        let (src, dst) = (
            core::net::Ipv4Addr::new(10, 0, 0, 1),
            core::net::Ipv4Addr::new(10, 0, 0, 2),
        );
        for len in [20usize, 21, 52, 333, 1480] {
            let mut pkt = vec![0u8; 20 + len];
            pkt[0] = 0x45;
            for (i, b) in pkt[20..].iter_mut().enumerate() {
                *b = (i * 31 + 7) as u8;
            }
            let pseudo = checksum::pseudo_header_sum(src, dst, 6, len as u16);
            pkt[36..38].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
            for cut in [20, 21, 33, 38, 20 + len / 2, 19 + len] {
                let cut2 = (cut + 3).min(pkt.len());
                let parts: [&[u8]; 4] = [&pkt[..7], &pkt[7..cut], &pkt[cut..cut2], &pkt[cut2..]];
                let p = TxPacket {
                    parts: &parts,
                    segment: None,
                    partial_checksum: true,
                };
                let mut out = vec![0u8; pkt.len()];
                assert_eq!(p.copy_to(&mut out), Some(pkt.len()));
                assert_eq!(&out[..36], &pkt[..36], "len {len} cut {cut}");
                assert_eq!(&out[38..], &pkt[38..], "len {len} cut {cut}");
                let verify = checksum::fold(checksum::sum(&out[20..], pseudo));
                assert_eq!(verify, 0xffff, "len {len} cut {cut}: checksum not finished");
            }
        }
    }

    #[test]
    fn a_partial_packet_too_short_for_the_field_is_copied_as_it_is() {
        for bytes in [&[][..], &[0x45, 1, 2][..], &[0x4f; 30][..], &[0x40; 10][..]] {
            let parts: [&[u8]; 2] = [&[], bytes];
            let p = TxPacket {
                parts: &parts,
                segment: None,
                partial_checksum: true,
            };
            let mut out = vec![0u8; bytes.len()];
            assert_eq!(p.copy_to(&mut out), Some(bytes.len()));
            assert_eq!(out, bytes);
        }
    }

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

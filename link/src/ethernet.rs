//! Ethernet II framing (IEEE 802.3 clause 3.2; IPv4 over Ethernet per
//! RFC 894): a zero-copy view over a frame and a small `Repr` of its header.
//!
//! The frame check sequence is not ours to see: Linux strips it on receive
//! and the NIC appends it on send.

use std::fmt;

/// Offsets of the Ethernet II header fields.
pub mod field {
    use std::ops::Range;
    /// Destination MAC address, bytes 0..6.
    pub const DESTINATION: Range<usize> = 0..6;
    /// Source MAC address, bytes 6..12.
    pub const SOURCE: Range<usize> = 6..12;
    /// EtherType, bytes 12..14, big-endian; values of 0x0600 and above name the
    /// payload's protocol (below that it would be an 802.3 length, not Ethernet II).
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// Smallest frame on the wire without the FCS (64 bytes with it); shorter
/// frames are padded with zeros (IEEE 802.3 clause 4.2.3.3).
pub const MIN_FRAME_LEN: usize = 60;

/// EtherType of an IPv4 packet (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of an ARP packet (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A 48-bit IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`, every station on the segment (where ARP requests go).
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`: no address; the target hardware address of an ARP
    /// request, never a valid source.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address in the first 6 bytes of `b`; `None` if `b` is shorter.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(b.get(..6)?.try_into().ok()?))
    }

    /// True for [`MacAddr::BROADCAST`] (which is also multicast).
    pub fn is_broadcast(&self) -> bool {
        *self == MacAddr::BROADCAST
    }

    /// The group bit (least significant bit of the first octet).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// A station address: neither group nor all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != MacAddr::ZERO
    }

    /// The first four octets, big-endian, and the last two: the split a
    /// classic BPF program loads them in.
    pub fn bpf_words(&self) -> (u32, u32) {
        let b = self.0;
        (
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u32::from(u16::from_be_bytes([b[4], b[5]])),
        )
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is shorter than the 14-byte header; carries its length.
    #[error("frame of {0} bytes is shorter than an Ethernet header")]
    Truncated(usize),
}

/// A view over an Ethernet II frame; the header length is checked once, in
/// [`EthernetFrame::new_checked`], so the accessors cannot go out of bounds.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buf` if it holds at least the 14-byte header.
    pub fn new_checked(buf: T) -> Result<EthernetFrame<T>, FrameError> {
        let len = buf.as_ref().len();
        if len < HEADER_LEN {
            return Err(FrameError::Truncated(len));
        }
        Ok(EthernetFrame { buf })
    }

    /// Where the frame goes: one station, [`MacAddr::BROADCAST`] or a
    /// multicast group.
    pub fn destination(&self) -> MacAddr {
        MacAddr(
            self.buf.as_ref()[field::DESTINATION]
                .try_into()
                .unwrap_or([0; 6]),
        )
    }

    /// The station that sent the frame (always a unicast address in a
    /// well-formed frame; not checked here).
    pub fn source(&self) -> MacAddr {
        MacAddr(
            self.buf.as_ref()[field::SOURCE]
                .try_into()
                .unwrap_or([0; 6]),
        )
    }

    /// EtherType, decoded from network byte order ([`ETHERTYPE_IPV4`], [`ETHERTYPE_ARP`]).
    pub fn ethertype(&self) -> u16 {
        let b = &self.buf.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Everything after the header, padding to [`MIN_FRAME_LEN`] included (the
    /// payload's own length field says where it really ends).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

/// The meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination MAC address: a station, or [`MacAddr::BROADCAST`].
    pub destination: MacAddr,
    /// Source MAC address: the sending interface's own.
    pub source: MacAddr,
    /// The payload's protocol, host byte order here, big-endian on the wire.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header of a checked frame; cannot fail, and accepts any
    /// EtherType (the caller dispatches on it).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            destination: frame.destination(),
            source: frame.source(),
            ethertype: frame.ethertype(),
        }
    }

    /// Writes the header into its fixed-size slot.
    pub fn emit(&self, header: &mut [u8; HEADER_LEN]) {
        let EthernetRepr {
            destination,
            source,
            ethertype,
        } = *self;
        header[field::DESTINATION].copy_from_slice(&destination.0);
        header[field::SOURCE].copy_from_slice(&source.0);
        header[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let repr = EthernetRepr {
            destination: MacAddr([2, 0, 0, 0, 0, 1]),
            source: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut h = [0u8; HEADER_LEN];
        repr.emit(&mut h);
        assert_eq!(&h[12..], &[0x08, 0x06]);
        let frame = EthernetFrame::new_checked(&h[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&frame), repr);
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn short_frames_are_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            FrameError::Truncated(13)
        );
        assert!(EthernetFrame::new_checked(&[][..]).is_err());
    }

    #[test]
    fn address_classes_and_display() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x02, 1, 2, 3, 4, 5]).is_unicast());
        assert!(!MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_unicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert_eq!(
            MacAddr([0xde, 0xad, 0xbe, 0xef, 0, 1]).to_string(),
            "de:ad:be:ef:00:01"
        );
        assert_eq!(
            MacAddr([1, 2, 3, 4, 5, 6]).bpf_words(),
            (0x0102_0304, 0x0506)
        );
    }
}

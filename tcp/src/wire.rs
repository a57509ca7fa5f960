//! TCP header wire format (RFC 9293 §3.1): a zero-copy view (`TcpPacket`) and a
//! small high-level `TcpRepr`. Options: MSS, window scale (RFC 7323 §2),
//! SACK-permitted and SACK (RFC 2018), timestamps (RFC 7323 §3), NOP/EOL;
//! unknown options are skipped by their length, malformed ones rejected.
//!
//! INTERFACE CONTRACT (the engine relies on these exact names):
//! - `TcpPacket::new_checked(buf) -> Result<TcpPacket<T>, WireError>`: buffer holds at least the
//!   header (data offset >= 5, data offset * 4 <= buf.len()).
//! - accessors `src_port, dst_port, seq_number, ack_number, header_len, flags, window_len,
//!   checksum, urgent_ptr, options() -> &[u8], payload() -> &[u8]`.
//! - `verify_checksum(src, dst) -> bool` over the whole buffer with the IPv4 pseudo-header.
//! - `fill_checksum(src, dst)` on `TcpPacket<&mut [u8]>` over the whole buffer.
//! - `TcpRepr::parse(&TcpPacket<&[u8]>) -> Result<TcpRepr, WireError>` (does NOT check the checksum:
//!   the caller calls `verify_checksum` first, since it knows the addresses).
//! - `TcpRepr::header_len()` = 20 + options rounded up to 4 bytes (<= 60).
//! - `TcpRepr::emit(&self, &mut TcpPacket<&mut [u8]>)` writes header and options (NOP padded),
//!   checksum field zeroed; the caller writes the payload after `header_len()` then `fill_checksum`.

use core::net::Ipv4Addr;

use crate::seq::SeqNumber;

/// TCP control bits (RFC 9293 §3.1; CWR/ECE from RFC 3168).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);
    pub const NONE: Flags = Flags(0);

    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    #[inline]
    pub const fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    #[inline]
    pub const fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    #[inline]
    pub const fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    #[inline]
    pub const fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
    #[inline]
    pub const fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A SACK block: the half-open range `left .. right` of received sequence space (RFC 2018 §3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SackBlock {
    pub left: SeqNumber,
    pub right: SeqNumber,
}

/// Up to four SACK blocks (the most that fit in 40 option bytes), without heap allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SackBlocks {
    pub blocks: [SackBlock; 4],
    pub len: u8,
}

impl SackBlocks {
    pub fn as_slice(&self) -> &[SackBlock] {
        &self.blocks[..self.len as usize]
    }
    /// Appends a block; returns false when all four slots are used.
    pub fn push(&mut self, b: SackBlock) -> bool {
        if (self.len as usize) < self.blocks.len() {
            self.blocks[self.len as usize] = b;
            self.len += 1;
            true
        } else {
            false
        }
    }
}

/// Parsed TCP options. Absent options are `None`/`false`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpOptions {
    /// Maximum segment size (RFC 9293 §3.7.1); only meaningful on SYN.
    pub mss: Option<u16>,
    /// Window scale shift count (RFC 7323 §2.2), as sent (may exceed 14; the engine clamps).
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr), RFC 7323 §3.2.
    pub timestamps: Option<(u32, u32)>,
    pub sack: SackBlocks,
}

/// High-level meaning of a TCP header. The payload is not part of the repr:
/// on receive it is `TcpPacket::payload()`, on send the caller writes it in place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    /// Meaningful only when `flags.ack()`.
    pub ack: SeqNumber,
    pub flags: Flags,
    /// The raw 16-bit window field (unscaled).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

/// Why a TCP header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("TCP segment truncated: {len} bytes, need at least {need}")]
    Truncated { len: usize, need: usize },
    #[error("TCP data offset {0} words is below the minimum of 5")]
    BadDataOffset(u8),
    #[error("TCP option kind {kind} malformed at offset {offset}")]
    BadOption { kind: u8, offset: usize },
    #[error("TCP checksum mismatch")]
    BadChecksum,
}

/// A zero-copy view of a TCP header and payload.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

#[allow(dead_code)]
fn _addr_type_used(_: Ipv4Addr) {}

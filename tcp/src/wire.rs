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
use core::ops::Range;

use ustack_ipv4::checksum;

use crate::seq::SeqNumber;

/// TCP control bits (RFC 9293 §3.1; CWR/ECE from RFC 3168).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// FIN: the sender has no more data; occupies one sequence number (RFC 9293 §3.10.7.4).
    pub const FIN: Flags = Flags(0x01);
    /// SYN: synchronize sequence numbers; occupies one sequence number and opens a connection.
    pub const SYN: Flags = Flags(0x02);
    /// RST: abort the connection; acceptable only in-window (RFC 9293 §3.10.7, RFC 5961 §3).
    pub const RST: Flags = Flags(0x04);
    /// PSH: deliver promptly; set on the segment that empties the send queue, ignored on receive.
    pub const PSH: Flags = Flags(0x08);
    /// ACK: the acknowledgment number is significant; set on every segment but
    /// the initial SYN and an RST answering a segment without ACK (RFC 9293 §3.10.7.1).
    pub const ACK: Flags = Flags(0x10);
    /// URG: the urgent pointer is significant; parsed but not acted on
    /// (RFC 6093 discourages its use).
    pub const URG: Flags = Flags(0x20);
    /// ECE: ECN echo (RFC 3168 §6.1); never set by ustack, which does not negotiate ECN.
    pub const ECE: Flags = Flags(0x40);
    /// CWR: congestion window reduced (RFC 3168 §6.1); never set by ustack.
    pub const CWR: Flags = Flags(0x80);
    /// No bits set.
    pub const NONE: Flags = Flags(0);

    /// True iff every bit of `other` is also set in `self`.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Same as `self.contains(Flags::FIN)`; see [`Flags::FIN`].
    #[inline]
    pub const fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Same as `self.contains(Flags::SYN)`; see [`Flags::SYN`].
    #[inline]
    pub const fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Same as `self.contains(Flags::RST)`; see [`Flags::RST`].
    #[inline]
    pub const fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Same as `self.contains(Flags::PSH)`; see [`Flags::PSH`].
    #[inline]
    pub const fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Same as `self.contains(Flags::ACK)`; see [`Flags::ACK`].
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
    /// First sequence number of the block (inclusive).
    pub left: SeqNumber,
    /// Sequence number just past the block (exclusive).
    pub right: SeqNumber,
}

/// Up to four SACK blocks (the most that fit in 40 option bytes), without heap allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SackBlocks {
    /// Storage; only the first `len` entries are meaningful, in wire order:
    /// the first block reports the most recent arrival (RFC 2018 §4), or is a
    /// D-SACK block (RFC 2883 §4).
    pub blocks: [SackBlock; 4],
    /// Number of valid entries in `blocks`, 0..=4.
    pub len: u8,
}

impl SackBlocks {
    /// The valid blocks, `blocks[..len]`.
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
    /// SACK-permitted (RFC 2018 §2); only meaningful on SYN.
    pub sack_permitted: bool,
    /// (TSval, TSecr), RFC 7323 §3.2.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018 §3); empty when the option is absent. With
    /// timestamps at most three fit.
    pub sack: SackBlocks,
}

/// High-level meaning of a TCP header. The payload is not part of the repr:
/// on receive it is `TcpPacket::payload()`, on send the caller writes it in place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpRepr {
    /// Source port: the peer's on receive, ours on send.
    pub src_port: u16,
    /// Destination port: ours on receive, the peer's on send.
    pub dst_port: u16,
    /// Sequence number of the segment's first byte, or of its SYN or FIN
    /// (SEG.SEQ, RFC 9293 §3.4).
    pub seq: SeqNumber,
    /// Acknowledgment number (SEG.ACK): the next sequence number the sender
    /// expects. Meaningful only when `flags.ack()`.
    pub ack: SeqNumber,
    /// Control bits.
    pub flags: Flags,
    /// The raw 16-bit window field (SEG.WND): bytes before the window scale of
    /// RFC 7323 §2.3 is applied, and never scaled on a SYN or SYN-ACK.
    pub window: u16,
    /// Urgent pointer (RFC 9293 §3.8.5); meaningful only with URG, which the engine ignores.
    pub urgent: u16,
    /// The options carried in the header.
    pub options: TcpOptions,
}

/// Why a TCP header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed header, or than the header length
    /// its data offset announces.
    #[error("TCP segment truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes in the buffer.
        len: usize,
        /// Bytes the header needs (20, or data offset × 4).
        need: usize,
    },
    /// The data offset (in 32-bit words) is below 5: shorter than the fixed
    /// 20-byte header (RFC 9293 §3.1).
    #[error("TCP data offset {0} words is below the minimum of 5")]
    BadDataOffset(u8),
    /// An option's length byte is missing, below 2, or runs past the end of
    /// the options, or a known kind has the wrong length (RFC 9293 §3.2).
    /// Unknown kinds with a sound length are skipped, not rejected.
    #[error("TCP option kind {kind} malformed at offset {offset}")]
    BadOption {
        /// The option kind (IANA "TCP Option Kind Numbers").
        kind: u8,
        /// Offset of the option's kind byte from the start of the TCP header (20 or more).
        offset: usize,
    },
    /// The checksum over the pseudo-header and segment is wrong. Never
    /// returned by [`TcpRepr::parse`], which leaves the checksum to
    /// [`TcpPacket::verify_checksum`]; for callers that report that failure.
    #[error("TCP checksum mismatch")]
    BadChecksum,
}

/// A zero-copy view of a TCP header and payload.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Byte offsets of the TCP header fields (RFC 9293 §3.1).
mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset in the upper nibble; the lower nibble is reserved (and the old NS bit).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Option kinds (IANA "TCP Option Kind Numbers") and their fixed lengths.
mod option {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const MSS_LEN: u8 = 4;
    pub const WINDOW_SCALE: u8 = 3;
    pub const WINDOW_SCALE_LEN: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK_PERMITTED_LEN: u8 = 2;
    pub const SACK: u8 = 5;
    pub const SACK_BLOCK_LEN: usize = 8;
    pub const TIMESTAMPS: u8 = 8;
    pub const TIMESTAMPS_LEN: u8 = 10;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15 → 60-byte header).
pub const MAX_OPTIONS_LEN: usize = 40;

fn be_u16(b: &[u8]) -> u16 {
    match *b {
        [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

fn be_u32(b: &[u8]) -> u32 {
    match *b {
        [b0, b1, b2, b3, ..] => u32::from_be_bytes([b0, b1, b2, b3]),
        _ => 0,
    }
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checks: the fixed-header accessors then panic on a
    /// buffer shorter than 20 bytes. `options()` and `payload()` never panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len); no accessor can then go out of bounds.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header and, with a data offset of
    /// at least 5 words, all the options it announces.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated {
                len,
                need: HEADER_LEN,
            });
        }
        let offset = self.data_offset();
        if offset < 5 {
            return Err(WireError::BadDataOffset(offset));
        }
        let need = self.header_len();
        if need > len {
            return Err(WireError::Truncated { len, need });
        }
        Ok(())
    }

    /// Gives the buffer back, e.g. to reuse it for the next packet.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn read_u16(&self, at: Range<usize>) -> u16 {
        be_u16(&self.bytes()[at])
    }

    fn read_u32(&self, at: Range<usize>) -> u32 {
        be_u32(&self.bytes()[at])
    }

    fn data_offset(&self) -> u8 {
        self.bytes()[field::DATA_OFF] >> 4
    }

    /// Source port (bytes 0..2).
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port (bytes 2..4).
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Sequence number (SEG.SEQ, RFC 9293 §3.4).
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::SEQ_NUM))
    }

    /// Acknowledgment number (SEG.ACK); meaningful only when the ACK flag is set.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The eight control bits CWR..FIN; the experimental NS bit (RFC 3540, historic) is ignored.
    pub fn flags(&self) -> Flags {
        Flags(self.bytes()[field::FLAGS])
    }

    /// The raw, unscaled window field.
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WINDOW)
    }

    /// The checksum field as received; see [`verify_checksum`](Self::verify_checksum).
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Urgent pointer (RFC 9293 §3.8.5); meaningful only with URG.
    pub fn urgent_ptr(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// The option bytes, `20 .. header_len`, unparsed.
    pub fn options(&self) -> &[u8] {
        let data = self.bytes();
        let end = self.header_len().min(data.len());
        data.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// Everything after the header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        let data = self.bytes();
        data.get(self.header_len()..).unwrap_or(&[])
    }

    /// True iff the checksum over the IPv4 pseudo-header and the whole buffer
    /// (header and payload) is correct (RFC 9293 §3.1). The buffer must be exactly
    /// the IPv4 payload; one longer than 65535 bytes cannot be valid.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.bytes();
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_sum(src, dst, ustack_ipv4::protocol::TCP, len);
        checksum::fold(checksum::sum(data, pseudo)) == 0xffff
    }

    /// The part of [`TcpPacket::verify_checksum`] before the payload: the
    /// pseudo-header and the header, as a partial sum (RFC 1071). The header
    /// is a whole number of 32-bit words, so the payload's own sum chains
    /// on: the checksum is right iff `fold(header_sum + payload sum)` is
    /// 0xffff. `None` for a buffer too long to be valid.
    pub fn header_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<u32> {
        let data = self.bytes();
        let len = u16::try_from(data.len()).ok()?;
        let pseudo = checksum::pseudo_header_sum(src, dst, ustack_ipv4::protocol::TCP, len);
        let header = data.get(..self.header_len()).unwrap_or(data);
        // Headers without options and with timestamps only are most segments.
        Some(if let Ok(h) = <&[u8; 32]>::try_from(header) {
            checksum::sum_array(h, pseudo)
        } else if let Ok(h) = <&[u8; 20]>::try_from(header) {
            checksum::sum_array(h, pseudo)
        } else {
            checksum::sum(header, pseudo)
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn write_u16(&mut self, at: Range<usize>, value: u16) {
        self.bytes_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn write_u32(&mut self, at: Range<usize>, value: u32) {
        self.bytes_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the source port. Like every setter, leaves the checksum stale
    /// until [`fill_checksum`](Self::fill_checksum).
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT, port);
    }

    /// Writes the destination port (bytes 2..4).
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT, port);
    }

    /// Writes the sequence number (SEG.SEQ).
    pub fn set_seq_number(&mut self, seq: SeqNumber) {
        self.write_u32(field::SEQ_NUM, seq.0);
    }

    /// Writes the acknowledgment number (SEG.ACK); set the ACK flag for it to count.
    pub fn set_ack_number(&mut self, ack: SeqNumber) {
        self.write_u32(field::ACK_NUM, ack.0);
    }

    /// Sets the data offset from a length in bytes (a multiple of 4, 20..=60) and
    /// clears the reserved bits that share its byte.
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(len & 3 == 0 && (HEADER_LEN..=HEADER_LEN + MAX_OPTIONS_LEN).contains(&len));
        self.bytes_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4;
    }

    /// Writes the eight control bits CWR..FIN (the data offset byte is left alone).
    pub fn set_flags(&mut self, flags: Flags) {
        self.bytes_mut()[field::FLAGS] = flags.0;
    }

    /// Writes the raw window field; the caller has already applied the
    /// window scale (RFC 7323 §2.3).
    pub fn set_window_len(&mut self, window: u16) {
        self.write_u16(field::WINDOW, window);
    }

    /// Writes the checksum field as is; [`fill_checksum`](Self::fill_checksum) computes it.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Writes the urgent pointer (bytes 18..20); the engine always writes 0.
    pub fn set_urgent_ptr(&mut self, value: u16) {
        self.write_u16(field::URGENT, value);
    }

    /// The option bytes, `20 .. header_len`, for writing in place.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        let data = self.bytes_mut();
        let end = end.min(data.len());
        data.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }

    /// Everything after the header, for writing in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.bytes_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes the checksum over the IPv4 pseudo-header and the whole buffer and
    /// stores it. The buffer must be exactly the segment: header, then payload.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.bytes();
        debug_assert!(data.len() <= usize::from(u16::MAX));
        let pseudo =
            checksum::pseudo_header_sum(src, dst, ustack_ipv4::protocol::TCP, data.len() as u16);
        let value = !checksum::fold(checksum::sum(data, pseudo));
        self.set_checksum(value);
    }

    /// [`TcpPacket::fill_checksum`] for a segment whose payload is not in
    /// this buffer: the buffer is exactly the header, `payload` the parts
    /// that follow it on the wire.
    pub fn fill_checksum_gather(&mut self, src: Ipv4Addr, dst: Ipv4Addr, payload: &[&[u8]]) {
        self.set_checksum(0);
        let header = self.bytes();
        let len = header.len() + payload.iter().map(|p| p.len()).sum::<usize>();
        debug_assert!(len <= usize::from(u16::MAX));
        let pseudo = checksum::pseudo_header_sum(src, dst, ustack_ipv4::protocol::TCP, len as u16);
        let value = !checksum::fold(checksum::sum_parts(payload, checksum::sum(header, pseudo)));
        self.set_checksum(value);
    }

    /// Leaves the checksum for a device to finish (Linux CHECKSUM_PARTIAL,
    /// virtio-net NEEDS_CSUM): the field holds the folded pseudo-header sum
    /// over this whole segment's length, not complemented.
    pub fn fill_partial_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.bytes().len();
        debug_assert!(len <= usize::from(u16::MAX));
        let pseudo = checksum::pseudo_header_sum(src, dst, ustack_ipv4::protocol::TCP, len as u16);
        self.set_checksum(checksum::fold(pseudo));
    }
}

/// Parses the option bytes of a header (RFC 9293 §3.2, RFC 7323, RFC 2018).
///
/// EOL ends the list; NOP is one byte; every other kind has a length byte that
/// counts the kind and length bytes, must be at least 2 and must fit. Known kinds
/// with the wrong length are rejected; unknown kinds are skipped. Errors carry the
/// option's offset from the start of the TCP header.
#[inline]
fn parse_options(opts: &[u8]) -> Result<TcpOptions, WireError> {
    // RFC 7323 Appendix A: NOP, NOP, timestamps is the layout of nearly
    // every segment of a connection that uses them (Linux, BSD, ustack
    // emit it), recognised at once as Linux's tcp_parse_aligned_timestamp does.
    if let Ok(
        &[option::NOP, option::NOP, option::TIMESTAMPS, option::TIMESTAMPS_LEN, v0, v1, v2, v3, e0, e1, e2, e3],
    ) = <&[u8; 12]>::try_from(opts)
    {
        return Ok(TcpOptions {
            timestamps: Some((
                u32::from_be_bytes([v0, v1, v2, v3]),
                u32::from_be_bytes([e0, e1, e2, e3]),
            )),
            ..TcpOptions::default()
        });
    }
    if opts.is_empty() {
        return Ok(TcpOptions::default());
    }
    parse_options_any(opts)
}

/// [`parse_options`] for any layout.
fn parse_options_any(opts: &[u8]) -> Result<TcpOptions, WireError> {
    let mut out = TcpOptions::default();
    let mut at = 0;
    while let Some(&kind) = opts.get(at) {
        let bad = WireError::BadOption {
            kind,
            offset: HEADER_LEN + at,
        };
        match kind {
            option::EOL => break,
            option::NOP => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let len = *opts.get(at + 1).ok_or(bad)?;
        let body = opts
            .get(at + 2..at + usize::from(len))
            .filter(|_| len >= 2)
            .ok_or(bad)?;
        match (kind, len) {
            (option::MSS, option::MSS_LEN) => out.mss = Some(be_u16(body)),
            (option::WINDOW_SCALE, option::WINDOW_SCALE_LEN) => {
                out.window_scale = body.first().copied();
            }
            (option::SACK_PERMITTED, option::SACK_PERMITTED_LEN) => out.sack_permitted = true,
            (option::TIMESTAMPS, option::TIMESTAMPS_LEN) => {
                out.timestamps = Some((be_u32(body), be_u32(body.get(4..).unwrap_or(&[]))));
            }
            (option::SACK, _)
                if !body.is_empty()
                    && body.len() % option::SACK_BLOCK_LEN == 0
                    && body.len() <= 4 * option::SACK_BLOCK_LEN =>
            {
                for block in body.chunks_exact(option::SACK_BLOCK_LEN) {
                    // Blocks past the fourth can only come from a repeated SACK option; they are dropped.
                    out.sack.push(SackBlock {
                        left: SeqNumber(be_u32(block)),
                        right: SeqNumber(be_u32(block.get(4..).unwrap_or(&[]))),
                    });
                }
            }
            (
                option::MSS
                | option::WINDOW_SCALE
                | option::SACK_PERMITTED
                | option::TIMESTAMPS
                | option::SACK,
                _,
            ) => return Err(bad),
            _ => {}
        }
        at += usize::from(len);
    }
    Ok(out)
}

/// What [`TcpRepr::emit`] writes in the options area, decided once so that
/// `header_len` and `emit` cannot disagree.
struct OptionsLayout {
    /// SACK blocks that fit in the 40 option bytes after the other options.
    sack_blocks: usize,
    len: usize,
}

impl TcpOptions {
    fn layout(&self) -> OptionsLayout {
        let mut fixed = 0;
        if self.mss.is_some() {
            fixed += 4;
        }
        if self.timestamps.is_some() {
            fixed += 12;
        } else if self.sack_permitted {
            fixed += 4;
        }
        if self.window_scale.is_some() {
            fixed += 4;
        }
        let sack_len = |n: usize| {
            if n == 0 {
                0
            } else {
                4 + n * option::SACK_BLOCK_LEN
            }
        };
        let mut n = usize::from(self.sack.len).min(self.sack.blocks.len());
        while n > 0 && fixed + sack_len(n) > MAX_OPTIONS_LEN {
            n -= 1;
        }
        OptionsLayout {
            sack_blocks: n,
            len: (fixed + sack_len(n)).next_multiple_of(4),
        }
    }

    /// Writes the options as Linux lays them out, each group 4-byte aligned:
    /// MSS; SACK-permitted + timestamps (or NOP NOP + timestamps, or NOP NOP +
    /// SACK-permitted); NOP + window scale; NOP NOP + SACK blocks. `out` must hold
    /// `layout.len` bytes; the rest of it is left as EOL.
    fn emit(&self, layout: &OptionsLayout, out: &mut [u8]) {
        let mut buf = [option::EOL; MAX_OPTIONS_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
                at += bytes.len();
            }
        };
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            put(&[option::MSS, option::MSS_LEN, hi, lo]);
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some(_)) => put(&[option::SACK_PERMITTED, option::SACK_PERMITTED_LEN]),
            (false, Some(_)) => put(&[option::NOP, option::NOP]),
            (true, None) => put(&[
                option::NOP,
                option::NOP,
                option::SACK_PERMITTED,
                option::SACK_PERMITTED_LEN,
            ]),
            (false, None) => {}
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            put(&[option::TIMESTAMPS, option::TIMESTAMPS_LEN]);
            put(&tsval.to_be_bytes());
            put(&tsecr.to_be_bytes());
        }
        if let Some(shift) = self.window_scale {
            put(&[
                option::NOP,
                option::WINDOW_SCALE,
                option::WINDOW_SCALE_LEN,
                shift,
            ]);
        }
        if layout.sack_blocks > 0 {
            let len = 2 + layout.sack_blocks * option::SACK_BLOCK_LEN;
            put(&[option::NOP, option::NOP, option::SACK, len as u8]);
            for block in self.sack.blocks.iter().take(layout.sack_blocks) {
                put(&block.left.0.to_be_bytes());
                put(&block.right.0.to_be_bytes());
            }
        }
        let n = layout.len.min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), buf.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

impl TcpRepr {
    /// A bare `<SEQ=seq><CTL=RST>` (RFC 9293 §3.10.7.1 and §3.10.7.3).
    pub fn rst(src_port: u16, dst_port: u16, seq: SeqNumber) -> TcpRepr {
        TcpRepr {
            src_port,
            dst_port,
            seq,
            ack: SeqNumber(0),
            flags: Flags::RST,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    /// Reads a header and its options. Does not verify the checksum (the caller
    /// knows the addresses and calls [`TcpPacket::verify_checksum`] first). `ack`
    /// is the raw field even when the ACK flag is clear.
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&T>) -> Result<TcpRepr, WireError> {
        packet.check_len()?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_ptr(),
            options: parse_options(packet.options())?,
        })
    }

    /// Header length [`emit`](Self::emit) will write: 20 plus the options rounded
    /// up to 4 bytes, at most 60 (SACK blocks that do not fit are dropped).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.layout().len
    }

    /// Writes the header and options with the checksum field zeroed; the caller
    /// writes the payload after `header_len()` and then calls `fill_checksum`.
    /// The ack field is written as 0 when the ACK flag is clear.
    ///
    /// # Panics
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        let TcpRepr {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
            urgent,
            ref options,
        } = *self;
        let layout = options.layout();
        packet.set_src_port(src_port);
        packet.set_dst_port(dst_port);
        packet.set_seq_number(seq);
        packet.set_ack_number(if flags.ack() { ack } else { SeqNumber(0) });
        packet.set_header_len(HEADER_LEN + layout.len);
        packet.set_flags(flags);
        packet.set_window_len(window);
        packet.set_checksum(0);
        packet.set_urgent_ptr(urgent);
        options.emit(&layout, packet.options_mut());
    }
}

#[cfg(test)]
mod tests;

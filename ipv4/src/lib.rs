//! # ustack-ipv4
//!
//! The IP layer of ustack. [`IpStack`] is an IPv4 host on one interface: it
//! validates received packets and filters them by destination, reassembles
//! fragments within a memory budget ([`frag`]), answers ICMP echo, hands ICMP
//! errors to the transport that sent the datagram they quote, dispatches by
//! protocol number to a [`Transport`] carried as a type parameter (TCP in
//! `ustack-tcp`), gives every datagram its IP ID and header, fragments what
//! does not fit the MTU when DF is clear, and counts all of it
//! ([`Ipv4Stats`]). Beneath that: zero-copy header views ([`Ipv4Packet`])
//! and their meaning ([`Ipv4Repr`]), the RFC 1071 Internet checksum
//! ([`checksum`], the one in the workspace), ICMP messages ([`icmp`]), an
//! interface address with its prefix ([`Ipv4Subnet`]), and the vocabulary a
//! device speaks to the stack ([`device`]: capabilities, per-packet receive
//! info, gather-list transmit).
//!
//! What it does not do: routing beyond one interface, ARP (the AF_PACKET
//! link does it), IP options (received ones are skipped by IHL, none are
//! sent), IPv6, or any I/O. Like the rest of ustack's protocol crates it is
//! sans-I/O: no syscalls, no clock (time is an [`Instant`] argument), no
//! heap allocation per packet in steady state.
//!
//! Above: a transport such as `ustack-tcp`, and the runtime in the `ustack`
//! crate that drives [`IpStack`]. Below: the `ustack-link` devices, which
//! use this crate's header views, checksum and [`device`] types.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::net::Ipv4Addr;

pub use ustack_checksum as checksum;
pub mod device;
pub mod frag;
mod host;
pub mod icmp;
mod subnet;
pub mod time;

pub use device::{DeviceCaps, Medium, RxChecksum, RxInfo, RxPacket, TxPacket, MAX_PACKET_LEN};
pub use frag::{FragConfig, FragStats, Reassembler};
pub use host::{Interface, IpConfig, IpSend, IpStack, Outgoing, Transport, Tso, MAX_PAYLOAD_PARTS};
pub use subnet::Ipv4Subnet;
pub use time::Instant;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod protocol {
    /// Internet Control Message Protocol (RFC 792), handled by
    /// [`IpStack`](crate::IpStack) itself: echo requests are answered, errors
    /// go to the [`Transport`](crate::Transport) that sent the quoted datagram.
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol (RFC 9293).
    pub const TCP: u8 = 6;
    /// User Datagram Protocol (RFC 768); named here, not implemented.
    pub const UDP: u8 = 17;
}

/// Why an IPv4 packet or the ICMP message inside it was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the fixed 20-byte header, or before the header
    /// length that IHL claims.
    #[error("IPv4 packet truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes in the buffer.
        len: usize,
        /// Bytes the header needs: 20, or IHL × 4 when IHL says more.
        need: usize,
    },
    /// The version nibble (the high 4 bits of byte 0, RFC 791 §3.1) is not 4;
    /// carries the value found.
    #[error("IP version {0} is not 4")]
    BadVersion(u8),
    /// IHL, the header length in 32-bit words (RFC 791 §3.1), is below 5;
    /// carries the value found.
    #[error("IPv4 header length of {0} words is below the minimum of 5")]
    BadHeaderLen(u8),
    /// Total Length (RFC 791 §3.1) is shorter than the header or longer than
    /// the buffer that holds the packet.
    #[error("IPv4 total length {total} is inconsistent with a {header}-byte header in a {buffer}-byte buffer")]
    BadTotalLen {
        /// Total Length from the header, in bytes.
        total: u16,
        /// Header length from IHL, in bytes.
        header: usize,
        /// Bytes in the buffer.
        buffer: usize,
    },
    /// The header checksum (RFC 791 §3.1, over the header only, options
    /// included) does not verify.
    #[error("IPv4 header checksum mismatch")]
    BadChecksum,
    /// The ICMP message is shorter than its 8-byte header (RFC 792).
    #[error("ICMP message truncated: {len} bytes, need at least {need}")]
    IcmpTruncated {
        /// Bytes of ICMP message (the IPv4 payload).
        len: usize,
        /// Bytes needed: the 8-byte header.
        need: usize,
    },
    /// The ICMP checksum, over the whole message (RFC 792), does not verify.
    #[error("ICMP checksum mismatch")]
    IcmpBadChecksum,
    /// A datagram to send whose payload does not fit the 16-bit Total Length
    /// with a 20-byte header: above 65515 bytes. Counted in
    /// [`Ipv4Stats::tx_too_long`].
    #[error("IPv4 payload of {len} bytes does not fit in one packet (at most 65515)")]
    PayloadTooLong {
        /// Payload length the caller asked for, in bytes.
        len: usize,
    },
}

/// Byte offsets of the IPv4 header fields (RFC 791 §3.1).
mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;
const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - Ipv4Repr::HEADER_LEN;

/// The checks of [`Ipv4Packet::check_len`], in the same order with the same
/// errors, on the fixed header read once as an array. Returns that array and
/// the header length in bytes (IHL × 4), both valid within `data`.
#[inline(always)]
fn check_header(data: &[u8]) -> Result<(&[u8; Ipv4Repr::HEADER_LEN], usize), Error> {
    let len = data.len();
    let Some(h) = data.first_chunk::<{ Ipv4Repr::HEADER_LEN }>() else {
        return Err(Error::Truncated {
            len,
            need: Ipv4Repr::HEADER_LEN,
        });
    };
    let version = h[field::VER_IHL] >> 4;
    if version != 4 {
        return Err(Error::BadVersion(version));
    }
    let ihl = h[field::VER_IHL] & 0x0f;
    if ihl < 5 {
        return Err(Error::BadHeaderLen(ihl));
    }
    let header = usize::from(ihl) * 4;
    if header > len {
        return Err(Error::Truncated { len, need: header });
    }
    let total = u16::from_be_bytes([h[2], h[3]]);
    if usize::from(total) < header || usize::from(total) > len {
        return Err(Error::BadTotalLen {
            total,
            header,
            buffer: len,
        });
    }
    Ok((h, header))
}

/// A zero-copy view of an IPv4 packet.
///
/// Build it with [`Ipv4Packet::new_checked`] for anything that came from the
/// network: after that, no accessor can go out of bounds. With
/// [`Ipv4Packet::new_unchecked`] the fixed-header accessors panic if the buffer is
/// shorter than 20 bytes; [`options`](Self::options) and [`payload`](Self::payload)
/// never panic and clamp to the buffer.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking anything: for packets this host builds.
    /// The fixed-header accessors panic on a buffer shorter than 20 bytes; use
    /// [`new_checked`](Self::new_checked) for anything from the network.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header is well-formed enough to read: at least 20 bytes,
    /// version 4, IHL >= 5 and within the buffer, and `header_len <= total_len <=
    /// buffer length`. A buffer longer than `total_len` is accepted (link-layer
    /// padding, e.g. Ethernet's 46-byte minimum); the excess is not payload.
    pub fn check_len(&self) -> Result<(), Error> {
        check_header(self.bytes()).map(|_| ())
    }

    /// Unwraps the view, returning the buffer it was built on.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn read_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.bytes()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn read_addr(&self, at: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.bytes()[at];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The version nibble, the high 4 bits of byte 0 (RFC 791 §3.1); 4 in any
    /// packet [`check_len`](Self::check_len) accepts.
    pub fn version(&self) -> u8 {
        self.bytes()[field::VER_IHL] >> 4
    }

    fn ihl(&self) -> u8 {
        self.bytes()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The former TOS byte: DSCP in the upper six bits, ECN in the lower two (RFC 2474, RFC 3168).
    pub fn dscp_ecn(&self) -> u8 {
        self.bytes()[field::DSCP_ECN]
    }

    /// Total Length: header plus payload, in bytes (RFC 791 §3.1). Not the
    /// buffer length, which may be longer by link-layer padding.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Identification (RFC 791 §3.1): with source, destination and protocol, it
    /// names the datagram a fragment belongs to (RFC 6864 for its uniqueness).
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// DF, the Don't Fragment flag (RFC 791 §3.1): routers must drop the packet
    /// rather than fragment it; path MTU discovery relies on it (RFC 1191).
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// MF, the More Fragments flag (RFC 791 §3.1): more fragments of this
    /// datagram follow this one.
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & OFFSET_MASK) * 8
    }

    /// Time to Live (RFC 791 §3.1): every router decrements it and drops the
    /// packet at zero, so in practice a hop count.
    pub fn ttl(&self) -> u8 {
        self.bytes()[field::TTL]
    }

    /// The protocol of the payload, an IANA number ([`protocol`]).
    pub fn protocol(&self) -> u8 {
        self.bytes()[field::PROTOCOL]
    }

    /// The header checksum field as stored; [`verify_checksum`](Self::verify_checksum)
    /// checks it.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Source address (RFC 791 §3.1), bytes 12..16.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    /// Destination address (RFC 791 §3.1), bytes 16..20.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// The IP options, `20 .. header_len`, unparsed.
    pub fn options(&self) -> &[u8] {
        let data = self.bytes();
        let end = self.header_len().min(data.len());
        data.get(Ipv4Repr::HEADER_LEN..end).unwrap_or(&[])
    }

    /// The payload, `header_len .. total_len`; link-layer padding beyond `total_len` is excluded.
    pub fn payload(&self) -> &[u8] {
        let data = self.bytes();
        let end = usize::from(self.total_len()).min(data.len());
        data.get(self.header_len()..end).unwrap_or(&[])
    }

    /// True iff the header checksum (over `header_len` bytes, options included) is correct.
    pub fn verify_checksum(&self) -> bool {
        match self.bytes().get(..self.header_len()) {
            Some(header) => checksum::fold(checksum::sum(header, 0)) == 0xffff,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn write_u16(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.bytes_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble, keeping IHL; only the low 4 bits of `version` count.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.bytes_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets IHL from a length in bytes, which must be a multiple of 4 between 20 and 60.
    pub fn set_header_len(&mut self, len: u8) {
        debug_assert!(len & 3 == 0 && (20..=60).contains(&len));
        let b = &mut self.bytes_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the former TOS byte: DSCP in the upper six bits, ECN in the lower
    /// two (RFC 2474, RFC 3168).
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.bytes_mut()[field::DSCP_ECN] = value;
    }

    /// Sets Total Length, header plus payload in bytes; does not resize the buffer.
    pub fn set_total_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH, len);
    }

    /// Sets Identification (RFC 791 §3.1; RFC 6864).
    pub fn set_ident(&mut self, ident: u16) {
        self.write_u16(field::IDENT, ident);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let old = self.read_u16(field::FLG_OFF);
        self.write_u16(field::FLG_OFF, if on { old | flag } else { old & !flag });
    }

    /// Sets or clears DF, keeping MF and the fragment offset.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets or clears MF, keeping DF and the fragment offset.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset from a byte count, which must be a multiple of 8.
    pub fn set_frag_offset(&mut self, bytes: u16) {
        debug_assert!(bytes & 7 == 0);
        let flags = self.read_u16(field::FLG_OFF) & !OFFSET_MASK;
        self.write_u16(field::FLG_OFF, flags | (bytes / 8));
    }

    /// Sets Time to Live; the header checksum is not updated (call
    /// [`fill_checksum`](Self::fill_checksum) after the last change).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bytes_mut()[field::TTL] = ttl;
    }

    /// Sets the payload's protocol number ([`protocol`]).
    pub fn set_protocol(&mut self, protocol: u8) {
        self.bytes_mut()[field::PROTOCOL] = protocol;
    }

    /// Stores a header checksum as given; [`fill_checksum`](Self::fill_checksum)
    /// computes the right one.
    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM, checksum);
    }

    /// Writes the source address into bytes 12..16; like every setter, leaves
    /// the header checksum for [`fill_checksum`](Self::fill_checksum).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.bytes_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Writes the destination address into bytes 16..20; the header checksum
    /// is left for [`fill_checksum`](Self::fill_checksum).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.bytes_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum over `header_len` bytes and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let value = self.bytes().get(..header_len).map_or(0, checksum::checksum);
        self.set_checksum(value);
    }

    /// The payload, `header_len .. total_len`, for writing in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len());
        let data = self.bytes_mut();
        let end = end.min(data.len());
        data.get_mut(start..end).unwrap_or(&mut [])
    }
}

/// The meaning of an IPv4 header, without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address (RFC 791 §3.1). Parsing does not judge it; the IP layer
    /// drops broadcast, multicast and unspecified sources
    /// ([`Ipv4Stats::rx_bad_source`]).
    pub src_addr: Ipv4Addr,
    /// Destination address (RFC 791 §3.1). Parsing does not judge it; the IP
    /// layer drops what is not addressed to its interface
    /// ([`Ipv4Stats::rx_not_for_us`]).
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload, an IANA number ([`protocol`]).
    pub protocol: u8,
    /// Payload length in bytes: Total Length minus the header length, options
    /// and all. Of a fragment, this fragment's share only.
    pub payload_len: usize,
    /// Time to Live (RFC 791 §3.1), in practice a hop count.
    pub ttl: u8,
    /// Identification (RFC 791 §3.1), shared by all fragments of a datagram.
    pub ident: u16,
    /// DF: the datagram must not be fragmented on the way (RFC 791 §3.2, RFC 1191).
    pub dont_frag: bool,
    /// MF: more fragments of this datagram follow (RFC 791 §3.2).
    pub more_frags: bool,
    /// Where this fragment's payload sits in the datagram, in bytes (a
    /// multiple of 8); 0 for an unfragmented packet.
    pub frag_offset: u16,
    /// The former TOS byte: DSCP in the upper six bits, ECN in the lower two
    /// (RFC 2474, RFC 3168).
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Length of the header [`emit`](Self::emit) writes: options are never emitted.
    pub const HEADER_LEN: usize = 20;

    /// Validates and reads a received header: lengths, then the header checksum.
    /// A fragment parses like any packet ([`is_fragment`](Self::is_fragment)
    /// tells it apart). Options are skipped via IHL.
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Ipv4Repr, Error> {
        // One pass over the fixed header, read once as an array: the same
        // checks as `check_len`, then the checksum, then the fragment test.
        let data = packet.bytes();
        let (h, header_len) = check_header(data)?;
        let checksum_ok = if header_len == Self::HEADER_LEN {
            checksum::sum_header(h) == 0xffff
        } else {
            data.get(..header_len)
                .is_some_and(|header| checksum::fold(checksum::sum(header, 0)) == 0xffff)
        };
        if !checksum_ok {
            return Err(Error::BadChecksum);
        }
        let flg_off = u16::from_be_bytes([h[6], h[7]]);
        Ok(Ipv4Repr {
            src_addr: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst_addr: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            protocol: h[field::PROTOCOL],
            payload_len: usize::from(u16::from_be_bytes([h[2], h[3]])) - header_len,
            ttl: h[field::TTL],
            ident: u16::from_be_bytes([h[4], h[5]]),
            dont_frag: flg_off & FLAG_DF != 0,
            more_frags: flg_off & FLAG_MF != 0,
            frag_offset: (flg_off & OFFSET_MASK) * 8,
            dscp_ecn: h[field::DSCP_ECN],
        })
    }

    /// Header plus payload: the size of buffer [`emit`](Self::emit) expects.
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.payload_len
    }

    /// True for a fragment of a larger datagram: MF set or a non-zero offset.
    pub const fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// Writes a 20-byte header (no options) with its checksum.
    /// The payload is left for the caller to write after the header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`](Self::HEADER_LEN); debug builds
    /// also assert that `payload_len` fits in the 16-bit total length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN);
        let total = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        let Ipv4Repr {
            src_addr,
            dst_addr,
            protocol,
            payload_len: _,
            ttl,
            ident,
            dont_frag,
            more_frags,
            frag_offset,
            dscp_ecn,
        } = *self;
        debug_assert!(frag_offset & 7 == 0);
        // The whole header is determined by `self`: build it in a register-sized
        // array, checksum exactly those 20 bytes, and store it with one copy.
        let [t0, t1] = total.to_be_bytes();
        let [i0, i1] = ident.to_be_bytes();
        let flags = if dont_frag { FLAG_DF } else { 0 } | if more_frags { FLAG_MF } else { 0 };
        let [f0, f1] = (flags | (frag_offset / 8) & OFFSET_MASK).to_be_bytes();
        let [s0, s1, s2, s3] = src_addr.octets();
        let [d0, d1, d2, d3] = dst_addr.octets();
        let mut h: [u8; Self::HEADER_LEN] = [
            0x40 | (Self::HEADER_LEN / 4) as u8,
            dscp_ecn,
            t0,
            t1,
            i0,
            i1,
            f0,
            f1,
            ttl,
            protocol,
            0,
            0,
            s0,
            s1,
            s2,
            s3,
            d0,
            d1,
            d2,
            d3,
        ];
        let [c0, c1] = (!checksum::sum_header(&h)).to_be_bytes();
        h[10] = c0;
        h[11] = c1;
        packet.bytes_mut()[..Self::HEADER_LEN].copy_from_slice(&h);
    }
}

/// Counters of the IP layer ([`IpStack::ip_stats`]); reassembly keeps its
/// own ([`frag::FragStats`]).
#[derive(Default, Debug, Clone)]
pub struct Ipv4Stats {
    /// Packets handed to the IP layer.
    pub rx_packets: u64,
    /// Truncated, wrong version, bad IHL or inconsistent total length.
    pub rx_bad_header: u64,
    /// Header checksum mismatch.
    pub rx_bad_checksum: u64,
    /// From a broadcast, multicast or unspecified source (RFC 1122 §3.2.1.3).
    pub rx_bad_source: u64,
    /// Fragments received (each goes to reassembly).
    pub rx_fragments: u64,
    /// Datagrams put back together from fragments.
    pub rx_reassembled: u64,
    /// Addressed to another host.
    pub rx_not_for_us: u64,
    /// For a protocol no transport handles.
    pub rx_unknown_protocol: u64,
    /// Datagrams handed to the transport.
    pub rx_delivered: u64,
    /// Echo requests answered.
    pub icmp_echo_answered: u64,
    /// ICMP messages that were truncated or failed their checksum.
    pub icmp_rx_errors: u64,
    /// ICMP errors handed to the transport that sent the quoted datagram.
    pub icmp_errors_delivered: u64,
    /// ICMP errors about nothing we sent (or too short to tell).
    pub icmp_errors_ignored: u64,
    /// Other ICMP messages (echo replies, redirects, ...), ignored.
    pub icmp_other: u64,
    /// Datagrams sent (a fragmented one counts once).
    pub tx_packets: u64,
    /// Fragments sent.
    pub tx_fragments: u64,
    /// Datagrams dropped because they would not fit: longer than 65535
    /// bytes, or longer than the MTU with DF set.
    pub tx_too_long: u64,
}

impl Ipv4Stats {
    /// Counts one packet dropped because of `e`.
    pub fn record(&mut self, e: &Error) {
        let counter = match e {
            Error::Truncated { .. }
            | Error::BadVersion(_)
            | Error::BadHeaderLen(_)
            | Error::BadTotalLen { .. } => &mut self.rx_bad_header,
            Error::BadChecksum => &mut self.rx_bad_checksum,
            Error::IcmpTruncated { .. } | Error::IcmpBadChecksum => &mut self.icmp_rx_errors,
            Error::PayloadTooLong { .. } => &mut self.tx_too_long,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests;

//! ICMP for IPv4 (RFC 792): a zero-copy view of a message and an echo responder.
//!
//! Only Echo Request is acted on; every other message type is left to the caller.

use crate::{checksum, protocol, Error, Ipv4Packet, Ipv4Repr};

/// ICMP message types this crate names (RFC 792).
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Length of the fixed ICMP header: type, code, checksum and the 4-byte
/// type-specific word (identifier and sequence number for echo).
pub const HEADER_LEN: usize = 8;

/// TTL of the echo replies this crate emits, as Linux and BSD use.
pub const REPLY_TTL: u8 = 64;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ_NO: Range<usize> = 6..8;
}

/// A zero-copy view of an ICMP message. The checksum covers the whole buffer,
/// so the buffer must be exactly the IPv4 payload.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Accessors panic if the buffer is shorter than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` if it holds at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::IcmpTruncated {
                len,
                need: HEADER_LEN,
            });
        }
        Ok(IcmpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Identifier of an Echo Request or Reply.
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT)
    }

    /// Sequence number of an Echo Request or Reply.
    pub fn echo_seq_no(&self) -> u16 {
        self.read_u16(field::ECHO_SEQ_NO)
    }

    /// Everything after the 8-byte header (echo data, or the quoted datagram of an error).
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    fn write_u16(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQ_NO, value);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

/// Answers an ICMP Echo Request (RFC 792; RFC 1122 §3.2.2.6).
///
/// `request` is the parsed IPv4 header that carried `icmp`, the IPv4 payload. If
/// `icmp` is an Echo Request (type 8, code 0) with a valid checksum, writes into
/// `out` a complete IPv4 packet from `request.dst_addr` to `request.src_addr`
/// (TTL 64, DF set, same DSCP, ECN cleared) carrying an Echo Reply with the same
/// identifier, sequence number and data, and returns its length.
///
/// Returns `Ok(None)` for any other ICMP message, and for requests that RFC 1122
/// §3.2.2.6 lets a host ignore or forbids it to answer: those sent to the limited
/// broadcast or a multicast address, or from an address that is not unicast.
///
/// Errors: [`Error::IcmpTruncated`] and [`Error::IcmpBadChecksum`] for a bad
/// request; [`Error::Truncated`] when `out` is too small for the reply, with
/// `len` the size of `out` and `need` the size of the reply.
pub fn answer_echo(
    request: &Ipv4Repr,
    icmp: &[u8],
    out: &mut [u8],
) -> Result<Option<usize>, Error> {
    let msg = IcmpPacket::new_checked(icmp)?;
    if msg.msg_type() != msg_type::ECHO_REQUEST || msg.msg_code() != 0 {
        return Ok(None);
    }
    if !msg.verify_checksum() {
        return Err(Error::IcmpBadChecksum);
    }
    let not_unicast =
        |a: core::net::Ipv4Addr| a.is_broadcast() || a.is_multicast() || a.is_unspecified();
    if not_unicast(request.dst_addr) || not_unicast(request.src_addr) {
        return Ok(None);
    }
    if icmp.len() > crate::MAX_PAYLOAD_LEN {
        return Err(Error::PayloadTooLong { len: icmp.len() });
    }

    let reply = Ipv4Repr {
        src_addr: request.dst_addr,
        dst_addr: request.src_addr,
        protocol: protocol::ICMP,
        payload_len: icmp.len(),
        ttl: REPLY_TTL,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: request.dscp_ecn & !0x03,
    };
    let total = reply.buffer_len();
    let Some(out) = out.get_mut(..total) else {
        return Err(Error::Truncated {
            len: out.len(),
            need: total,
        });
    };
    let (header, payload) = out.split_at_mut(Ipv4Repr::HEADER_LEN);
    reply.emit(&mut Ipv4Packet::new_unchecked(header));
    payload.copy_from_slice(icmp);
    let mut echo = IcmpPacket::new_unchecked(payload);
    echo.set_msg_type(msg_type::ECHO_REPLY);
    echo.fill_checksum();
    Ok(Some(total))
}

/// What an ICMP error message (RFC 792, RFC 1122 §3.2.2.1) says about a
/// datagram this host sent. The IP layer hands it, with the quoted header,
/// to the transport that sent the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination Unreachable, code 0 (and 6, 9, 11: unknown or
    /// prohibited network): a soft error for TCP (RFC 1122 §4.2.3.9).
    NetUnreachable,
    /// Destination Unreachable, code 1 (and 7, 10, 12, 13, 14, 15): soft.
    HostUnreachable,
    /// Destination Unreachable, code 2: the peer has no such protocol.
    ProtocolUnreachable,
    /// Destination Unreachable, code 3: nothing listens on the port.
    PortUnreachable,
    /// Destination Unreachable, code 4: the datagram had DF set and did not
    /// fit the next hop (RFC 1191). `next_hop_mtu` is 0 when the router is
    /// older than RFC 1191 and did not say.
    FragNeeded {
        /// The MTU of the hop that could not forward it.
        next_hop_mtu: u16,
    },
    /// Destination Unreachable, code 5: a source route failed (soft).
    SourceRouteFailed,
    /// Time Exceeded (type 11): TTL ran out in transit or reassembly timed
    /// out (soft).
    TimeExceeded,
    /// Parameter Problem (type 12): the header was rejected (soft).
    ParameterProblem,
}

impl IcmpError {
    /// The meaning of an ICMP message's type, code and second word (the
    /// next-hop MTU of Fragmentation Needed sits in its low 16 bits), or
    /// `None` when the message is not an error about a sent datagram.
    pub const fn from_message(msg_type: u8, code: u8, rest: u32) -> Option<IcmpError> {
        Some(match (msg_type, code) {
            (msg_type::DEST_UNREACHABLE, 0 | 6 | 9 | 11) => IcmpError::NetUnreachable,
            (msg_type::DEST_UNREACHABLE, 1 | 7 | 8 | 10 | 12..=15) => IcmpError::HostUnreachable,
            (msg_type::DEST_UNREACHABLE, 2) => IcmpError::ProtocolUnreachable,
            (msg_type::DEST_UNREACHABLE, 3) => IcmpError::PortUnreachable,
            (msg_type::DEST_UNREACHABLE, 4) => IcmpError::FragNeeded {
                next_hop_mtu: rest as u16,
            },
            (msg_type::DEST_UNREACHABLE, 5) => IcmpError::SourceRouteFailed,
            (msg_type::TIME_EXCEEDED, 0 | 1) => IcmpError::TimeExceeded,
            (msg_type::PARAMETER_PROBLEM, _) => IcmpError::ParameterProblem,
            _ => return None,
        })
    }

    /// True for the errors RFC 1122 §4.2.3.9 lets a TCP abort a connection
    /// for: protocol and port unreachable. Every other one is soft.
    pub const fn is_hard(self) -> bool {
        matches!(
            self,
            IcmpError::ProtocolUnreachable | IcmpError::PortUnreachable
        )
    }
}

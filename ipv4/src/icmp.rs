//! ICMP for IPv4 (RFC 792): a zero-copy view of a message, the echo reply,
//! and the meaning of error messages and of the datagram they quote. The IP
//! layer ([`crate::IpStack`]) answers echo requests and hands errors to the
//! transport that sent the quoted datagram.

use crate::{checksum, Error, Ipv4Packet, Ipv4Repr};

/// ICMP message types this crate names (RFC 792).
pub mod msg_type {
    /// Echo Reply, the answer to [`ECHO_REQUEST`] with the same identifier,
    /// sequence number and data.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable; its code says why ([`IcmpError`](super::IcmpError)).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo Request ("ping"); [`IpStack`](crate::IpStack) answers it.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded: code 0 TTL expired in transit, code 1 reassembly timed out.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem: a router or host rejected a header field.
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Length of the fixed ICMP header: type, code, checksum and the 4-byte
/// type-specific word (identifier and sequence number for echo).
pub const HEADER_LEN: usize = 8;

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

    /// Unwraps the view, returning the buffer it was built on.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The message type, byte 0 ([`msg_type`] names the ones used here).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The code, byte 1: the subtype within [`msg_type`](Self::msg_type)
    /// (e.g. 3 = port unreachable under Destination Unreachable).
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field as stored, bytes 2..4; [`verify_checksum`](Self::verify_checksum)
    /// checks it.
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

    /// True iff the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }

    /// The second 32-bit word: echo identifier and sequence number, the
    /// next-hop MTU of Fragmentation Needed, unused in most errors.
    pub fn rest_of_header(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// What this message says, if it is an error about a sent datagram.
    pub fn error(&self) -> Option<IcmpError> {
        IcmpError::from_message(self.msg_type(), self.msg_code(), self.rest_of_header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    fn write_u16(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type, byte 0.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the code, byte 1.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Stores a checksum as given; [`fill_checksum`](Self::fill_checksum)
    /// computes the right one.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the Echo identifier, bytes 4..6.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT, value);
    }

    /// Sets the Echo sequence number, bytes 6..8.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQ_NO, value);
    }

    /// Everything after the 8-byte header, for writing in place; empty if the
    /// buffer holds no more.
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

/// The header of the Echo Reply (RFC 792) to `request`, if it is an Echo
/// Request (type 8, code 0): the same identifier and sequence number, type
/// 0, and the checksum of the reply over this header and the request's
/// unchanged [`data`](IcmpPacket::data), updated from the request's own
/// (RFC 1624), so the data is never summed again. The caller has verified
/// the request's checksum and that it was sent to a unicast address of ours
/// from a unicast address (RFC 1122 §3.2.2.6).
pub fn echo_reply_header<T: AsRef<[u8]>>(request: &IcmpPacket<T>) -> Option<[u8; HEADER_LEN]> {
    if request.msg_type() != msg_type::ECHO_REQUEST || request.msg_code() != 0 {
        return None;
    }
    let mut header: [u8; HEADER_LEN] = *request.buffer.as_ref().first_chunk()?;
    header[field::TYPE] = msg_type::ECHO_REPLY;
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the old 16-bit word holding
    // the type, m' the new one.
    let old_word = u16::from_be_bytes([msg_type::ECHO_REQUEST, 0]);
    let new_word = u16::from_be_bytes([msg_type::ECHO_REPLY, 0]);
    let sum = u32::from(!request.checksum()) + u32::from(!old_word) + u32::from(new_word);
    // Eqn. 3 yields 0x0000 where the true checksum is 0xffff: for a reply
    // that is all zeros otherwise (identifier, sequence number and data 0),
    // 0x0000 fails verification. 0xffff verifies whenever 0x0000 would
    // (both are zero in ones' complement), so use it instead.
    let updated = match !checksum::fold(sum) {
        0 => 0xffff,
        c => c,
    };
    header[field::CHECKSUM].copy_from_slice(&updated.to_be_bytes());
    Some(header)
}

/// The datagram quoted by an ICMP error (RFC 792: its IP header and at
/// least the first 8 bytes of its payload), read leniently: the quote is
/// truncated, so only the header itself must be whole. Returns the quoted
/// header (its `payload_len` as the original datagram claimed) and the
/// quoted payload bytes, or `None` when the quote is too short or not IPv4.
pub fn quoted_datagram(data: &[u8]) -> Option<(Ipv4Repr, &[u8])> {
    let head = data.get(..Ipv4Repr::HEADER_LEN)?;
    let ip = Ipv4Packet::new_unchecked(head);
    let header_len = usize::from(data[0] & 0x0f) * 4;
    if ip.version() != 4 || header_len < Ipv4Repr::HEADER_LEN {
        return None;
    }
    let payload = data.get(header_len..).filter(|p| p.len() >= 8)?;
    let repr = Ipv4Repr {
        src_addr: ip.src_addr(),
        dst_addr: ip.dst_addr(),
        protocol: ip.protocol(),
        payload_len: usize::from(ip.total_len()).saturating_sub(header_len),
        ttl: ip.ttl(),
        ident: ip.ident(),
        dont_frag: ip.dont_frag(),
        more_frags: ip.more_frags(),
        frag_offset: ip.frag_offset(),
        dscp_ecn: ip.dscp_ecn(),
    };
    Some((repr, payload))
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

impl core::fmt::Display for IcmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IcmpError::NetUnreachable => "network unreachable",
            IcmpError::HostUnreachable => "host unreachable",
            IcmpError::ProtocolUnreachable => "protocol unreachable",
            IcmpError::PortUnreachable => "port unreachable",
            IcmpError::FragNeeded { .. } => "fragmentation needed",
            IcmpError::SourceRouteFailed => "source route failed",
            IcmpError::TimeExceeded => "time to live exceeded",
            IcmpError::ParameterProblem => "parameter problem",
        })
    }
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

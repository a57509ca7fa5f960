//! Fragmentation of outgoing datagrams (RFC 791 §3.2).

use crate::{Ipv4Packet, Ipv4Repr, MAX_PAYLOAD_LEN};

/// The smallest MTU every IPv4 link must carry (RFC 791 §3.2).
pub const MIN_MTU: usize = 68;

/// Why [`fragment`] could not split a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// The MTU is below the 68 bytes every IPv4 link must carry (RFC 791).
    #[error("MTU {0} is below the IPv4 minimum of 68")]
    MtuTooSmall(usize),
    /// The datagram has DF set and does not fit.
    #[error("datagram does not fit the MTU and has DF set")]
    DontFragment,
    /// The payload does not fit in an IPv4 datagram.
    #[error("IPv4 payload of {0} bytes is longer than 65515")]
    PayloadTooLong(usize),
}

/// Splits a datagram that does not fit `mtu` into fragments (RFC 791 §3.2).
///
/// `repr` is the datagram's header (its `more_frags`, `frag_offset` and
/// `payload_len` are ignored), `payload` the whole payload. For each fragment,
/// in offset order, calls `emit(header, payload_part)` with the 20-byte header,
/// checksum filled. Every fragment but the last carries a multiple of 8 payload
/// bytes, and all fit `mtu`. A datagram that fits is emitted whole, as one
/// unfragmented packet. Returns the number of packets emitted.
///
/// Errors, before anything is emitted: `mtu` below [`MIN_MTU`], DF set on a
/// datagram that does not fit, payload longer than 65515 bytes.
pub fn fragment(
    repr: &Ipv4Repr,
    payload: &[u8],
    mtu: usize,
    mut emit: impl FnMut(&[u8; 20], &[u8]),
) -> Result<usize, FragError> {
    if mtu < MIN_MTU {
        return Err(FragError::MtuTooSmall(mtu));
    }
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(FragError::PayloadTooLong(payload.len()));
    }
    let fits = Ipv4Repr::HEADER_LEN + payload.len() <= mtu;
    if !fits && repr.dont_frag {
        return Err(FragError::DontFragment);
    }
    // The most payload per fragment: what fits, rounded down to 8 (≥ 48 at mtu 68).
    let step = (mtu.min(usize::from(u16::MAX)) - Ipv4Repr::HEADER_LEN) & !7;
    let mut rest = payload;
    let mut offset = 0usize;
    let mut count = 0;
    loop {
        let (part, tail) = if fits {
            (rest, &[][..])
        } else {
            rest.split_at(step.min(rest.len()))
        };
        let more = !tail.is_empty();
        let header = Ipv4Repr {
            payload_len: part.len(),
            more_frags: more,
            // At most 65515 - 1, as the payload is at most 65515 bytes.
            frag_offset: u16::try_from(offset).unwrap_or(u16::MAX),
            ..*repr
        };
        let mut bytes = [0u8; Ipv4Repr::HEADER_LEN];
        header.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        emit(&bytes, part);
        count += 1;
        offset += part.len();
        rest = tail;
        if !more {
            return Ok(count);
        }
    }
}

//! The Internet checksum (RFC 1071): the 16-bit ones'-complement of the
//! ones'-complement sum of the data taken as big-endian 16-bit words.
//!
//! A checksum over several pieces (pseudo-header, header, payload) is built by
//! chaining [`sum`] and finishing once with [`fold`]. Every piece except the last
//! must have even length, or the words of the next piece would be misaligned.

use core::net::Ipv4Addr;

/// Adds `data` to the partial sum `initial` and returns a new partial sum.
///
/// The result is unfolded (it may exceed 16 bits) but is kept congruent modulo
/// 0xffff, so it can be chained any number of times without overflow. An odd
/// trailing byte is padded with a zero byte on the right (RFC 1071 §1).
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // 2^16 ≡ 1 (mod 0xffff), so adding big-endian 32-bit halves of 64-bit words is
    // the same ones'-complement sum as adding 16-bit words (RFC 1071 §2(B),
    // "parallel summation"). Each step adds less than 2^33, so the u64 cannot
    // overflow for any slice that fits in memory on a 64-bit target before ~2^31 steps.
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(word) = <[u8; 8]>::try_from(chunk) {
            let w = u64::from_be_bytes(word);
            acc += (w >> 32) + (w & 0xffff_ffff);
        }
    }
    let mut pairs = chunks.remainder().chunks_exact(2);
    for pair in &mut pairs {
        if let [hi, lo] = *pair {
            acc += u64::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = *pairs.remainder() {
        acc += u64::from(last) << 8;
    }
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds the carries of a partial sum into 16 bits (end-around carry). Not complemented.
pub fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum of `data`, ready to store in a header field.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 9293 §3.1):
/// source address, destination address, zero, protocol, and `len`, the length of
/// the transport header plus payload.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    [
        u16::from_be_bytes([s0, s1]),
        u16::from_be_bytes([s2, s3]),
        u16::from_be_bytes([d0, d1]),
        u16::from_be_bytes([d2, d3]),
        u16::from(protocol),
        len,
    ]
    .iter()
    .map(|&w| u32::from(w))
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Word-at-a-time sum straight from RFC 1071 §4.1, for comparison.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u64::from(data[i]) << 8 | u64::from(data[i + 1]);
            i += 2;
        }
        if i < data.len() {
            acc += u64::from(data[i]) << 8;
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // The same bytes split into two even-length pieces give the same sum.
        assert_eq!(fold(sum(&data[4..], sum(&data[..4], 0))), 0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A header whose checksum field (b861) is correct.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&hdr, 0)), 0xffff);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03], 0)), 0x0402);
        let nine = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(fold(sum(&nine, 0)), reference(&nine));
    }

    #[test]
    fn all_ones_and_empty() {
        assert_eq!(fold(sum(&[0xff; 64], 0)), 0xffff);
        assert_eq!(checksum(&[0xff; 64]), 0);
        assert_eq!(fold(sum(&[], 0)), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn large_chained_input_does_not_overflow() {
        let big = vec![0xffu8; 65536];
        let mut s = u32::MAX;
        for _ in 0..16 {
            s = sum(&big, s);
        }
        assert_eq!(fold(s), 0xffff);
    }

    #[test]
    fn pseudo_header() {
        let s = pseudo_header_sum(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            40,
        );
        assert_eq!(s, 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 40);
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..600), init in any::<u16>()) {
            prop_assert_eq!(fold(sum(&data, 0)), reference(&data));
            let chained = fold(sum(&data, u32::from(init)));
            let expected = fold(u32::from(reference(&data)) + u32::from(init));
            prop_assert_eq!(chained, expected);
        }

        #[test]
        fn even_split_chains(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(sum(b, sum(a, 0))), reference(&data));
        }
    }
}

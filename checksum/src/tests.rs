//! Tests of the sums against a reference, on every path.

#[test]
fn sum_parts_matches_the_sum_of_the_concatenation_at_any_split() {
    let data: Vec<u8> = (0..301u32).map(|i| (i * 7 + 3) as u8).collect();
    let whole = fold(sum(&data, 0x1234));
    for a in [0, 1, 2, 3, 20, 151, 300, 301] {
        for b in [a, a + 1, a + 2, 299, 301] {
            let b = b.clamp(a, data.len());
            let parts: [&[u8]; 3] = [&data[..a], &data[a..b], &data[b..]];
            assert_eq!(fold(sum_parts(&parts, 0x1234)), whole, "split at {a}, {b}");
        }
    }
}

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
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
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
fn every_vector_path_matches_the_reference_across_rounds() {
    // Lengths around the vector, block and round sizes of each path;
    // all-0xff bytes fill the lanes as fast as anything can.
    let lens = [
        0,
        1,
        31,
        32,
        33,
        63,
        64,
        127,
        128,
        129,
        255,
        256,
        257,
        1500,
        65535,
        65536,
        65537,
        131_072 + 100,
        600_001,
        2_100_000,
    ];
    for &len in &lens {
        for data in [noise(len, len as u32 + 7), vec![0xff; len]] {
            let want = reference(&data);
            let check = |name: &str, got: u16| {
                assert_eq!(got, want, "{name}, {len} bytes");
            };
            check("portable", native_sum(&data));
            #[cfg(target_arch = "x86_64")]
            {
                let whole = |(acc, rest): (u64, &[u8])| {
                    let tail = u64::from(u16::from_be(native_sum(rest)));
                    u16::from_be(fold(fold_u64(acc + tail)))
                };
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present, just checked.
                    check(
                        "avx2",
                        whole(unsafe { avx2_words::<false>(&data, &mut []) }),
                    );
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present, just checked.
                    check(
                        "avx512",
                        whole(unsafe { avx512_words::<false>(&data, &mut []) }),
                    );
                }
            }
        }
    }
}

#[test]
fn copy_and_sum_across_vector_rounds() {
    for len in [129, 1448, 65535, 600_001, 2_100_000] {
        for src in [noise(len, 3), vec![0xff; len]] {
            let mut dst = vec![0; len];
            assert_eq!(
                copy_and_sum(&mut dst, &src),
                fold(sum(&src, 0)),
                "{len} bytes"
            );
            assert!(dst == src, "{len} bytes copied");
        }
    }
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
fn every_length_and_alignment_of_all_ones() {
    // All-ones words make every lane carry as early as possible.
    let data = [0xffu8; 300];
    for start in 0..8 {
        for end in start..data.len() {
            let piece = &data[start..end];
            assert_eq!(fold(sum(piece, 0)), reference(piece), "{start}..{end}");
        }
    }
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

/// Summed in 32-bit words, the pseudo-header still folds to the sum of its
/// twelve bytes, carries included (addresses near all ones).
#[test]
fn pseudo_header_matches_its_bytes_with_carries() {
    for (src, dst, len) in [
        ([255, 255, 255, 255], [255, 255, 255, 254], 0xffff),
        ([10, 0, 0, 1], [192, 168, 77, 2], 1500),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0),
        ([254, 255, 1, 255], [255, 1, 255, 255], 0xfff0),
    ] {
        let [l0, l1] = u16::to_be_bytes(len);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&src);
        bytes[4..8].copy_from_slice(&dst);
        bytes[9] = 6;
        bytes[10..].copy_from_slice(&[l0, l1]);
        let s = pseudo_header_sum(Ipv4Addr::from(src), Ipv4Addr::from(dst), 6, len);
        assert_eq!(fold(s), reference(&bytes), "{src:?} {dst:?} {len}");
    }
}

/// Bytes that are neither all ones nor a repeating pattern: a 32-bit
/// xorshift stream from `seed`.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn every_short_length_and_alignment_matches_reference() {
    // Every length 0..=256 (both sides of the short/long cut at 128 and
    // every tail of the 64-byte loop) at every offset 0..8, odd ones
    // included, for bytes that carry early (all ones, 0xff00 words),
    // never (zeros) and at random, chained onto a few initial sums.
    let buffers = [
        noise(8 + 256, 1),
        noise(8 + 256, 0xdead_beef),
        vec![0xff; 8 + 256],
        vec![0; 8 + 256],
        (0..8 + 256)
            .map(|i| if i % 2 == 0 { 0xff } else { 0 })
            .collect(),
    ];
    for buf in &buffers {
        for start in 0..8 {
            for len in 0..=256 {
                let piece = &buf[start..start + len];
                let expected = reference(piece);
                assert_eq!(fold(sum(piece, 0)), expected, "{start}+{len}");
                assert_eq!(checksum(piece), !expected, "{start}+{len}");
                for init in [1u32, 0xffff, 0x1_2345, u32::MAX] {
                    let want = fold(u32::from(expected) + u32::from(fold(init)));
                    assert_eq!(fold(sum(piece, init)), want, "{start}+{len} from {init:#x}");
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn short_inputs_match_reference(
        data in proptest::collection::vec(any::<u8>(), 8..=264),
        start in 0usize..8,
        len in 0usize..=256,
        init in any::<u32>(),
    ) {
        let piece = &data[start..(start + len).min(data.len())];
        prop_assert_eq!(fold(sum(piece, 0)), reference(piece));
        let expected = fold(u32::from(reference(piece)) + u32::from(fold(init)));
        prop_assert_eq!(fold(sum(piece, init)), expected);
    }

    #[test]
    fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..3000), init in any::<u16>()) {
        prop_assert_eq!(fold(sum(&data, 0)), reference(&data));
        let chained = fold(sum(&data, u32::from(init)));
        let expected = fold(u32::from(reference(&data)) + u32::from(init));
        prop_assert_eq!(chained, expected);
    }

    #[test]
    fn matches_reference_at_any_alignment(data in proptest::collection::vec(any::<u8>(), 1..3000), start in 0usize..8) {
        let piece = &data[start.min(data.len())..];
        prop_assert_eq!(fold(sum(piece, 0)), reference(piece));
    }

    #[test]
    fn copy_and_sum_copies_and_sums(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        start in 0usize..8,
        slack in 0usize..40,
        placed in 0usize..130,
    ) {
        let src = &data[start.min(data.len())..];
        // `placed`: the destination at every offset from a 64-byte boundary.
        let mut buf = vec![0xa5u8; placed + src.len() + slack];
        let dst = &mut buf[placed..];
        let got = copy_and_sum(dst, src);
        prop_assert_eq!(got, fold(sum(src, 0)));
        prop_assert_eq!(&dst[..src.len()], src);
        prop_assert!(dst[src.len()..].iter().all(|&b| b == 0xa5), "nothing past src is written");
        prop_assert!(buf[..placed].iter().all(|&b| b == 0xa5), "nothing before dst is written");
    }

    #[test]
    fn sum_array_matches_reference_at_header_sizes(
        data in proptest::collection::vec(any::<u8>(), 200),
        init in any::<u32>(),
    ) {
        let expect = |n: usize| fold(u32::from(reference(&data[..n])) + u32::from(fold(init)));
        prop_assert_eq!(fold(sum_array::<20>(data[..20].try_into().unwrap(), init)), expect(20));
        prop_assert_eq!(fold(sum_array::<32>(data[..32].try_into().unwrap(), init)), expect(32));
        prop_assert_eq!(fold(sum_array::<60>(data[..60].try_into().unwrap(), init)), expect(60));
        prop_assert_eq!(fold(sum_array::<200>(data[..200].try_into().unwrap(), init)), expect(200));
    }

    #[test]
    fn even_split_chains(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in 0usize..1500) {
        let cut = (cut * 2).min(data.len() & !1);
        let (a, b) = data.split_at(cut);
        prop_assert_eq!(fold(sum(b, sum(a, 0))), reference(&data));
    }
}

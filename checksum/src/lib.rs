//! # ustack-checksum
//!
//! The Internet checksum (RFC 1071): the 16-bit ones'-complement of the
//! ones'-complement sum of the data taken as big-endian 16-bit words. The
//! one checksum of ustack: `ustack-ipv4` re-exports it as
//! `ustack_ipv4::checksum`, and every header and link uses it from there.
//!
//! It is a crate of its own because its fast paths are CPU intrinsics
//! (AVX-512, AVX2, chosen at run time), which need `unsafe`; keeping them
//! here lets the protocol crates above forbid `unsafe` outright. Nothing
//! else lives here: no headers, no I/O.
//!
//! A checksum over several pieces (pseudo-header, header, payload) is built by
//! chaining [`sum`] and finishing once with [`fold`]. Every piece except the last
//! must have even length, or the words of the next piece would be misaligned.

#![warn(missing_docs)]

use core::net::Ipv4Addr;

/// Independent accumulators in the main loop: enough that the compiler keeps
/// several vector registers of sums in flight instead of one serial chain.
const LANES: usize = 16;
/// Bytes the main loop consumes per iteration: one 32-bit word per lane.
const STRIDE: usize = 4 * LANES;
/// Bytes summed before the lanes are folded. Each lane then holds at most
/// `BLOCK / STRIDE` words below 2^32, far from overflowing its u64.
const BLOCK: usize = 1 << 30;

/// Inputs up to this length (headers, ACKs, small segments) take
/// [`short_sum`]: there the lanes' setup and reduction and the CPU feature
/// check cost more than they save. Measured on AVX2: the two paths tie at
/// 128 bytes and the lanes are ahead from 192.
const SHORT: usize = 128;

/// Adds `data` to the partial sum `initial` and returns a new partial sum.
///
/// The result is unfolded (it may exceed 16 bits) but is kept congruent modulo
/// 0xffff, so it can be chained any number of times without overflow. An odd
/// trailing byte is padded with a zero byte on the right (RFC 1071 §1).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    if data.len() <= SHORT {
        short_sum(data, initial)
    } else {
        long_sum(data, initial)
    }
}

/// [`sum`] of an input whose length is known when compiling: the length
/// tests of the short path fold away. For the common TCP header sizes (20
/// bytes, 32 with timestamps), whose sum is taken for every segment.
#[inline(always)]
pub fn sum_array<const N: usize>(data: &[u8; N], initial: u32) -> u32 {
    if N <= SHORT {
        short_sum(data, initial)
    } else {
        long_sum(data, initial)
    }
}

/// `sum(data, initial)` for inputs longer than [`SHORT`], out of line: its
/// block loop needs callee-saved registers, and saving and restoring them in
/// every call of [`sum`] cost a 64-byte checksum about a nanosecond.
#[inline(never)]
fn long_sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    for block in data.chunks(BLOCK) {
        acc += u64::from(native_sum_best(block));
    }
    fold_u64(acc)
}

/// [`native_sum`] with the widest vectors this CPU has: AVX-512 or AVX2
/// intrinsics for whole vectors ([`avx512_words`], [`avx2_words`]), the
/// portable loop for the tail. Without them the compiler may only assume
/// SSE2 on x86-64, which holds a checksum of an L1-resident packet to a
/// third of memcpy's speed.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn native_sum_best(data: &[u8]) -> u16 {
    #[target_feature(enable = "avx2")]
    fn native_sum_avx2(data: &[u8]) -> u16 {
        let (acc, rest) = avx2_words::<false>(data, &mut []);
        let tail = u16::from_be(native_sum(rest));
        u16::from_be(fold(fold_u64(acc + u64::from(tail))))
    }
    #[target_feature(enable = "avx512f,avx2")]
    fn native_sum_avx512(data: &[u8]) -> u16 {
        let (acc, rest) = avx512_words::<false>(data, &mut []);
        let tail = u16::from_be(native_sum(rest));
        u16::from_be(fold(fold_u64(acc + u64::from(tail))))
    }
    // The answers are cached by std after the first call: relaxed loads.
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the only requirement of `native_sum_avx512` is that the
        // CPU supports AVX-512F (and AVX2, which every AVX-512 CPU has),
        // which was just checked.
        unsafe { native_sum_avx512(data) }
    } else if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the only requirement of `native_sum_avx2` is that the CPU
        // supports AVX2, which was just checked.
        unsafe { native_sum_avx2(data) }
    } else {
        native_sum(data)
    }
}

/// Sum of the 16-bit words (machine order) of the longest prefix of `data`
/// that is a whole number of 32-byte vectors, unfolded; and the rest.
///
/// Written with intrinsics because the compiler's vectorisation of
/// [`native_sum`] zero-extends 32-bit words to 64-bit lanes, 16 bytes per
/// instruction pair, which held a 1500-byte checksum to 0.4x memcpy. Here
/// each 32-byte load is split into its low and high 16-bit halves (an `and`
/// and a shift) added into 32-bit lanes of four independent accumulators:
/// 16 words per two additions. A lane grows by less than 2^17 per 128-byte
/// block, so after 2^12 blocks (512 KiB) the four together are still below
/// 2^31 and are added up, reduced once and widened into the 64-bit total.
///
/// With `COPY`, every vector read is also stored at the same offset of
/// `dst` (at least as long as `data`): the copy rides on the loads the sum
/// makes anyway ([`copy_and_sum`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2_words<'a, const COPY: bool>(data: &'a [u8], dst: &mut [u8]) -> (u64, &'a [u8]) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_loadu_si256, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_srli_epi32, _mm256_storeu_si256,
    };
    const VECTOR: usize = 32;
    const BLOCK_BYTES: usize = 4 * VECTOR;
    const BLOCKS_PER_ROUND: usize = 1 << 12;
    assert!(!COPY || dst.len() >= data.len());
    let mask = _mm256_set1_epi32(0xffff);
    // SAFETY (both loads below): the slice is at least 32 bytes long at the
    // offset read; `loadu` has no alignment requirement.
    let load = |bytes: &[u8], at: usize| unsafe {
        _mm256_loadu_si256(bytes.as_ptr().add(at).cast::<__m256i>())
    };
    let dst = dst.as_mut_ptr();
    // SAFETY: only with COPY, where `dst` is at least as long as `data`
    // (asserted above) and `at` is the offset of a whole vector of `data`;
    // `storeu` has no alignment requirement.
    let store = |at: usize, v: __m256i| {
        if COPY {
            unsafe { _mm256_storeu_si256(dst.add(at).cast::<__m256i>(), v) }
        }
    };
    let mut total: u64 = 0;
    let mut at = 0;
    let mut blocks = data.chunks_exact(BLOCK_BYTES);
    loop {
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut n = 0;
        for block in blocks.by_ref().take(BLOCKS_PER_ROUND) {
            n += 1;
            for (i, a) in acc.iter_mut().enumerate() {
                let v = load(block, VECTOR * i);
                store(at + VECTOR * i, v);
                *a = _mm256_add_epi32(*a, _mm256_and_si256(v, mask));
                *a = _mm256_add_epi32(*a, _mm256_srli_epi32::<16>(v));
            }
            at += BLOCK_BYTES;
        }
        let mut sum = _mm256_add_epi32(
            _mm256_add_epi32(acc[0], acc[1]),
            _mm256_add_epi32(acc[2], acc[3]),
        );
        if n < BLOCKS_PER_ROUND {
            // Whole 32-byte vectors left over (at most three): into the
            // same lanes, which are far from full on this last round.
            for v in blocks.remainder().chunks_exact(VECTOR) {
                let v = load(v, 0);
                store(at, v);
                at += VECTOR;
                sum = _mm256_add_epi32(sum, _mm256_and_si256(v, mask));
                sum = _mm256_add_epi32(sum, _mm256_srli_epi32::<16>(v));
            }
        }
        let mut lanes = [0u32; 8];
        // SAFETY: `lanes` is 32 bytes, the size of one vector; `storeu` has
        // no alignment requirement.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), sum) };
        total += lanes.iter().map(|&l| u64::from(l)).sum::<u64>();
        if n < BLOCKS_PER_ROUND {
            break;
        }
    }
    let rest = blocks.remainder();
    (total, &rest[rest.len() - rest.len() % VECTOR..])
}

/// [`avx2_words`] with 64-byte vectors: half the instructions per byte.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512_words<'a, const COPY: bool>(data: &'a [u8], dst: &mut [u8]) -> (u64, &'a [u8]) {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_and_si512, _mm512_loadu_si512, _mm512_reduce_add_epi32,
        _mm512_set1_epi32, _mm512_setzero_si512, _mm512_srli_epi32, _mm512_storeu_si512,
    };
    const VECTOR: usize = 64;
    const BLOCK_BYTES: usize = 4 * VECTOR;
    // Each lane grows by less than 2^17 per block; after 2^8 blocks the
    // sixteen lanes of the four accumulators together are below 2^31.
    const BLOCKS_PER_ROUND: usize = 1 << 8;
    assert!(!COPY || dst.len() >= data.len());
    let mask = _mm512_set1_epi32(0xffff);
    // SAFETY (every load): the slice is at least 64 bytes long at the offset
    // read; `loadu` has no alignment requirement.
    let load = |bytes: &[u8], at: usize| unsafe {
        _mm512_loadu_si512(bytes.as_ptr().add(at).cast::<__m512i>())
    };
    let dst = dst.as_mut_ptr();
    // SAFETY: as in `avx2_words`: only with COPY, `dst` at least as long as
    // `data` (asserted above), `at` the offset of a whole vector of `data`.
    let store = |at: usize, v: __m512i| {
        if COPY {
            unsafe { _mm512_storeu_si512(dst.add(at).cast::<__m512i>(), v) }
        }
    };
    let mut total: u64 = 0;
    let mut at = 0;
    let mut blocks = data.chunks_exact(BLOCK_BYTES);
    loop {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut n = 0;
        for block in blocks.by_ref().take(BLOCKS_PER_ROUND) {
            n += 1;
            for (i, a) in acc.iter_mut().enumerate() {
                let v = load(block, VECTOR * i);
                store(at + VECTOR * i, v);
                *a = _mm512_add_epi32(*a, _mm512_and_si512(v, mask));
                *a = _mm512_add_epi32(*a, _mm512_srli_epi32::<16>(v));
            }
            at += BLOCK_BYTES;
        }
        let mut sum = _mm512_add_epi32(
            _mm512_add_epi32(acc[0], acc[1]),
            _mm512_add_epi32(acc[2], acc[3]),
        );
        if n < BLOCKS_PER_ROUND {
            for v in blocks.remainder().chunks_exact(VECTOR) {
                let v = load(v, 0);
                store(at, v);
                at += VECTOR;
                sum = _mm512_add_epi32(sum, _mm512_and_si512(v, mask));
                sum = _mm512_add_epi32(sum, _mm512_srli_epi32::<16>(v));
            }
        }
        total += u64::from(_mm512_reduce_add_epi32(sum).unsigned_abs());
        if n < BLOCKS_PER_ROUND {
            break;
        }
    }
    let rest = blocks.remainder();
    (total, &rest[rest.len() - rest.len() % VECTOR..])
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(never)]
fn native_sum_best(data: &[u8]) -> u16 {
    native_sum(data)
}

/// The ones'-complement sum of `data` taken as 16-bit words in the machine's
/// own byte order, folded to 16 bits, then put in network byte order.
///
/// Byte order does not matter to the sum (RFC 1071 §2(B)): adding
/// byte-swapped words gives the byte-swapped sum, so the words are read as
/// they lie in memory and only the 16-bit result is swapped. And since
/// 2^16 ≡ 1 (mod 0xffff), adding 32-bit words into 64-bit lanes, carries left
/// in the high bits until the end, is the same sum as adding 16-bit words
/// (RFC 1071 §2(C), deferred carries). The lanes are independent, so the loop
/// vectorises.
#[inline(always)]
fn native_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut strides = data.chunks_exact(STRIDE);
    // Headers (20 to 60 bytes) skip the lanes and their reduction.
    if data.len() >= STRIDE {
        let mut lanes = [0u64; LANES];
        for stride in &mut strides {
            for (lane, word) in lanes.iter_mut().zip(stride.chunks_exact(4)) {
                if let Ok(w) = <[u8; 4]>::try_from(word) {
                    *lane += u64::from(u32::from_ne_bytes(w));
                }
            }
        }
        // Each lane folded to below 2^33 first, so adding them cannot overflow.
        acc = lanes.iter().map(|&l| (l & 0xffff_ffff) + (l >> 32)).sum();
    }
    let mut words = strides.remainder().chunks_exact(4);
    for word in &mut words {
        if let Ok(w) = <[u8; 4]>::try_from(word) {
            acc += u64::from(u32::from_ne_bytes(w));
        }
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for pair in &mut pairs {
        if let [a, b] = *pair {
            acc += u64::from(u16::from_ne_bytes([a, b]));
        }
    }
    if let [last] = *pairs.remainder() {
        // The odd byte is the first byte of a word whose second byte is zero.
        acc += u64::from(u16::from_ne_bytes([last, 0]));
    }
    u16::from_be(fold(fold_u64(acc)))
}

/// `sum(data, initial)` for short inputs: 64-bit words added into two
/// 128-bit accumulators, no lanes to reduce and no CPU feature check.
///
/// Adding a `u64` to a `u128` is one `add` and one `adc $0` of its carry into
/// the high half, so each 8 bytes cost two instructions; splitting words into
/// 32-bit halves instead costs twice that, and that split was what made a
/// 64-byte checksum slower than smoltcp's 16-bit loop. The carries are worth
/// 1 each, since 2^64 ≡ 1 (mod 0xffff) (RFC 1071 §2(C), deferred carries):
/// the final fold adds the high half (a count of carries, at most one per
/// word) to the low one. The two accumulators are independent carry chains.
///
/// Words are read in the machine's byte order, as in [`native_sum`], but the
/// result is not folded to 16 bits to be byte-swapped: [`swap_order`] works
/// on the 32-bit partial sum, so `initial` goes into the accumulator at the
/// start and the caller's own [`fold`] is the only 16-bit fold. For a header
/// the folds are a good part of the cost.
#[inline]
fn short_sum(data: &[u8], initial: u32) -> u32 {
    let (mut a, mut b) = (u128::from(swap_order(initial)), 0u128);
    // 64 bytes a turn: a header or an ACK (20 to 60 bytes) never enters the
    // loop, and 64 and 128 bytes need no remainder handling after it. (Two
    // unrolled blocks instead of the loop measured slower.)
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        if let Ok(q) = <&[u8; 64]>::try_from(block) {
            a += word(q, 0) + word(q, 16) + word(q, 32) + word(q, 48);
            b += word(q, 8) + word(q, 24) + word(q, 40) + word(q, 56);
        }
    }
    // What is left (0 to 63 bytes) starts at an even offset, so every piece
    // below is made of whole 16-bit words in their proper place.
    let mut rest = blocks.remainder();
    if let Some((quad, tail)) = rest.split_first_chunk::<32>() {
        a += word(quad, 0) + word(quad, 16);
        b += word(quad, 8) + word(quad, 24);
        rest = tail;
    }
    if let Some((pair, tail)) = rest.split_first_chunk::<16>() {
        a += word(pair, 0);
        b += word(pair, 8);
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<8>() {
        a += u128::from(u64::from_ne_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        b += u128::from(u32::from_ne_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        a += u128::from(u16::from_ne_bytes(*w));
        rest = tail;
    }
    if let [last] = *rest {
        // The odd byte is the first byte of a word whose second byte is zero.
        b += u128::from(u16::from_ne_bytes([last, 0]));
    }
    swap_order(fold_u64(fold_u128(a + b)))
}

/// Converts a 32-bit partial sum between network and machine byte order,
/// modulo 0xffff: what `u16::from_be` does to a folded sum, without folding.
///
/// On a little-endian machine that is a byte swap of each 16-bit word, which
/// modulo 0xffff is a multiplication by 2^8 (the high byte is worth 2^16 ≡ 1
/// after the swap, the low one 2^8). Rotating a 32-bit value by 8 bits
/// multiplies it by 2^24 ≡ 2^8 modulo 2^32 - 1, a multiple of 0xffff, and
/// turns a non-zero value into a non-zero one, so the folded result is
/// exactly the swapped one. The swap is its own inverse (2^16 ≡ 1).
#[inline(always)]
fn swap_order(partial: u32) -> u32 {
    if cfg!(target_endian = "little") {
        partial.rotate_right(8)
    } else {
        partial
    }
}

/// The 8 bytes of `chunk` at `at`, in the machine's byte order, widened for
/// [`short_sum`]'s accumulators. Callers pass constant offsets into a
/// fixed-size array, so the indexing compiles to one load.
#[inline(always)]
fn word<const N: usize>(chunk: &[u8; N], at: usize) -> u128 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&chunk[at..at + 8]);
    u128::from(u64::from_ne_bytes(w))
}

/// `fold(sum(header, 0))` for a 20-byte header without options, as five
/// 32-bit words in the machine's byte order (see `native_sum`).
#[inline(always)]
pub fn sum_header(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    u16::from_be(fold(fold_u64(acc)))
}

/// Folds a 128-bit partial sum to 64 bits with one end-around carry, like
/// [`fold_u64`].
#[inline(always)]
fn fold_u128(acc: u128) -> u64 {
    let (s, carry) = (acc as u64).overflowing_add((acc >> 64) as u64);
    s + u64::from(carry)
}

/// Folds a 64-bit partial sum to 32 bits, keeping it congruent modulo 0xffff.
/// One add with end-around carry, no loop: the same value as folding until
/// the high half is zero.
#[inline(always)]
fn fold_u64(acc: u64) -> u32 {
    let (s, carry) = (acc as u32).overflowing_add((acc >> 32) as u32);
    s + u32::from(carry)
}

/// Copies `src` to the start of `dst` and returns `fold(sum(src, 0))`: one
/// pass over the bytes where a copy and then a sum make two. For a receive
/// path that verifies a payload's checksum while it moves the payload into
/// its buffer (the sum is chained like any other piece).
///
/// # Panics
///
/// If `dst` is shorter than `src`.
pub fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> u16 {
    let dst = &mut dst[..src.len()];
    if src.len() <= SHORT {
        dst.copy_from_slice(src);
        return fold(short_sum(src, 0));
    }
    long_copy_and_sum(dst, src)
}

/// [`copy_and_sum`] of a long input, with the widest vectors this CPU has.
#[inline(never)]
fn long_copy_and_sum(dst: &mut [u8], src: &[u8]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2")]
        fn with_avx512(dst: &mut [u8], src: &[u8]) -> u16 {
            let (acc, rest) = avx512_words::<true>(src, dst);
            finish_copy(dst, src, acc, rest)
        }
        #[target_feature(enable = "avx2")]
        fn with_avx2(dst: &mut [u8], src: &[u8]) -> u16 {
            let (acc, rest) = avx2_words::<true>(src, dst);
            finish_copy(dst, src, acc, rest)
        }
        if src.len() < BLOCK {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F (and so AVX2) is present, just checked.
                return unsafe { with_avx512(dst, src) };
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present, just checked.
                return unsafe { with_avx2(dst, src) };
            }
        }
    }
    dst.copy_from_slice(src);
    fold(long_sum(src, 0))
}

/// The vector loop copied and summed all of `src` but `rest` (its tail):
/// copies and sums the tail, and folds the whole.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn finish_copy(dst: &mut [u8], src: &[u8], acc: u64, rest: &[u8]) -> u16 {
    let done = src.len() - rest.len();
    dst[done..].copy_from_slice(rest);
    let tail = u16::from_be(native_sum(rest));
    u16::from_be(fold(fold_u64(acc + u64::from(tail))))
}

/// [`sum`] over the concatenation of `parts`, without concatenating them:
/// a gather list (a header, then payload straight from a ring that may
/// wrap). A part that starts at an odd offset of the whole has its sum
/// byte-swapped, which is where its bytes fall in the 16-bit words
/// (RFC 1071 §2(B), byte-order independence).
pub fn sum_parts(parts: &[&[u8]], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut odd = false;
    for part in parts {
        let s = fold(sum(part, 0));
        acc += u64::from(if odd { s.swap_bytes() } else { s });
        odd ^= part.len() % 2 == 1;
    }
    fold_u64(acc)
}

/// Folds the carries of a partial sum into 16 bits (end-around carry). Not complemented.
/// One add with end-around carry, no loop (a carry out of the add
/// leaves at most 0xfffe, so adding it back cannot carry again).
#[inline]
pub fn fold(sum: u32) -> u16 {
    let (s, carry) = (sum as u16).overflowing_add((sum >> 16) as u16);
    s + u16::from(carry)
}

/// The Internet checksum of `data`, ready to store in a header field.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    if data.len() <= SHORT {
        !fold(short_sum(data, 0))
    } else {
        long_checksum(data)
    }
}

/// [`checksum`] of a long input, out of line so that the short path, with
/// no call left in it, needs no stack frame.
#[inline(never)]
fn long_checksum(data: &[u8]) -> u16 {
    !fold(long_sum(data, 0))
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 9293 §3.1):
/// source address, destination address, zero, protocol, and `len`, the length of
/// the transport header plus payload.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    // Each address is two 16-bit words already in place in its 32-bit
    // value: summing in wider words and folding gives the same one's
    // complement sum (RFC 1071 §2 (B)), in three additions, not six.
    let s =
        u64::from(src.to_bits()) + u64::from(dst.to_bits()) + u64::from(protocol) + u64::from(len);
    let s = (s >> 32) + (s & 0xffff_ffff);
    ((s >> 16) + (s & 0xffff)) as u32
}

#[cfg(test)]
mod tests;

//! Seeded randomness for the simulator. Our own generator rather than a
//! library's, so that a seed means the same network forever, whatever version
//! of `rand` the workspace moves to (the goodput snapshot depends on it).

use std::time::Duration;

/// SplitMix64 finaliser: a good 64-bit mix, used to derive seeds and pattern bytes.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256**, seeded through SplitMix64.
#[derive(Debug, Clone)]
pub struct SimRng([u64; 4]);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        let mut s = [0; 4];
        let mut z = seed;
        for w in &mut s {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *w = mix64(z);
        }
        SimRng(s)
    }

    /// An independent stream for one purpose (`tag`) of a seed.
    pub fn derive(seed: u64, tag: u64) -> SimRng {
        SimRng::new(mix64(seed ^ mix64(tag)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (never for `p <= 0`, without drawing).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in [lo, hi] (inclusive).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + self.next_u64() % (span + 1)
    }

    /// Log-uniform in [lo, hi]: small values as likely per decade as large ones.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo.max(1) as f64).ln(), (hi.max(1) as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(lo, hi)
    }

    /// Uniform in [0, max].
    pub fn duration_upto(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.range(0, max.as_micros() as u64))
    }
}

/// The byte stream a sender writes: byte `i` is a function of (key, i), so the
/// receiver checks each byte where it lands without storing the stream.
#[derive(Debug, Clone, Copy)]
pub struct Pattern(pub u64);

impl Pattern {
    fn word(self, block: u64) -> [u8; 8] {
        mix64(self.0 ^ block.wrapping_mul(0xD1B5_4A32_D192_ED03)).to_le_bytes()
    }

    /// Fills `buf` with the stream's bytes starting at `offset`.
    pub fn fill(self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let w = self.word(pos / 8);
            let start = (pos % 8) as usize;
            let n = (8 - start).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[start..start + n]);
            i += n;
            pos += n as u64;
        }
    }

    /// Index into `buf` of the first byte that differs from the stream at `offset`.
    pub fn first_mismatch(self, offset: u64, buf: &[u8]) -> Option<usize> {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let w = self.word(pos / 8);
            let start = (pos % 8) as usize;
            let n = (8 - start).min(buf.len() - i);
            if buf[i..i + n] != w[start..start + n] {
                let k = (0..n).find(|&k| buf[i + k] != w[start + k]).unwrap_or(0);
                return Some(i + k);
            }
            i += n;
            pos += n as u64;
        }
        None
    }
}

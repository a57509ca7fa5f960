//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number. Ordering is the wrapping comparison of RFC 9293 §3.4:
/// `a < b` iff `(b - a) mod 2^32` lies in `1 ..= 2^31 - 1`. It is a partial order
/// (two numbers exactly 2^31 apart are incomparable), so only `PartialOrd` is given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self - other` as a signed distance; positive when `self` is after `other`.
    #[inline]
    pub fn distance(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// True iff `lo <= self < lo + len` in sequence space; `len` 0 admits nothing.
    #[inline]
    pub fn in_window(self, lo: SeqNumber, len: u32) -> bool {
        self.0.wrapping_sub(lo.0) < len
    }

    /// The later of the two in sequence space (`other` when they are exactly
    /// 2^31 apart and so incomparable).
    #[inline]
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.distance(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of the two in sequence space (`self` when they are equal
    /// or exactly 2^31 apart).
    #[inline]
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.distance(other) <= 0 {
            self
        } else {
            other
        }
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        match self.distance(*other) {
            0 => Some(Ordering::Equal),
            i32::MIN => None,
            d if d > 0 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    /// Adds a length; lengths in TCP never exceed 2^31 (windows are bounded), so truncation is intended.
    #[inline]
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<u32> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl AddAssign<usize> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: usize) {
        self.0 = self.0.wrapping_add(rhs as u32);
    }
}

impl Sub<SeqNumber> for SeqNumber {
    type Output = u32;
    /// Forward distance from `rhs` to `self` (callers ensure `rhs <= self`).
    #[inline]
    fn sub(self, rhs: SeqNumber) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_around_2_pow_32() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a + 20u32;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 20);
        assert_eq!(b.distance(a), 20);
        assert_eq!(a.distance(b), -20);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn numbers_half_the_space_apart_are_incomparable() {
        let a = SeqNumber(0);
        let b = SeqNumber(1 << 31);
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
    }

    #[test]
    fn in_window_is_half_open() {
        let lo = SeqNumber(u32::MAX - 1);
        assert!(lo.in_window(lo, 4));
        assert!((lo + 3u32).in_window(lo, 4));
        assert!(!(lo + 4u32).in_window(lo, 4));
        assert!(!SeqNumber(5).in_window(lo, 0));
    }
}

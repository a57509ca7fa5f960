//! Injected randomness and initial sequence numbers.

use core::hash::Hasher;
use core::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::seq::SeqNumber;
use crate::time::Instant;

/// The engine's only source of randomness. The runtime seeds one from the OS;
/// simulations use a seeded generator so that every run can be replayed.
pub trait Rng: Send {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

/// xorshift64*: small, fast and good enough for ports and keys in tests and
/// simulations. Not a CSPRNG; the runtime seeds it from the OS.
#[derive(Debug, Clone)]
pub struct XorShiftRng(u64);

impl XorShiftRng {
    /// A generator whose whole sequence is fixed by `seed`; any seed works
    /// (it is mixed and forced odd, so never the all-zero state).
    pub fn new(seed: u64) -> XorShiftRng {
        XorShiftRng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
}

impl Rng for XorShiftRng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Initial sequence numbers per RFC 6528 §3: ISN = M + F(localip, localport,
/// remoteip, remoteport, secretkey), with M a 4 µs clock and F SipHash-2-4 keyed
/// by a secret drawn once from the injected RNG.
#[derive(Debug, Clone)]
pub struct IsnGenerator {
    key: (u64, u64),
}

impl IsnGenerator {
    pub fn new(rng: &mut dyn Rng) -> IsnGenerator {
        IsnGenerator {
            key: (rng.next_u64(), rng.next_u64()),
        }
    }

    pub fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> SeqNumber {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        h.write(&local.ip().octets());
        h.write_u16(local.port());
        h.write(&remote.ip().octets());
        h.write_u16(remote.port());
        let f = h.finish() as u32;
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }

    /// The offset of our timestamp clock for a 4-tuple (RFC 7323 §5.4): a
    /// keyed hash, so it is the same for every incarnation of the 4-tuple
    /// and a reopened connection's TSval is newer than the old one's, as the
    /// peer's TIME-WAIT needs to admit it (RFC 6191).
    pub fn ts_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut h = SipHasher24::new_with_keys(self.key.1, self.key.0);
        h.write(&local.ip().octets());
        h.write_u16(local.port());
        h.write(&remote.ip().octets());
        h.write_u16(remote.port());
        h.finish() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn ts_offset_is_per_tuple_stable_and_secret() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40001);
        let g1 = IsnGenerator::new(&mut XorShiftRng::new(1));
        let g2 = IsnGenerator::new(&mut XorShiftRng::new(2));
        assert_eq!(g1.ts_offset(a, b), g1.ts_offset(a, b));
        assert_ne!(g1.ts_offset(a, b), g1.ts_offset(a, c));
        assert_ne!(g1.ts_offset(a, b), g2.ts_offset(a, b));
    }

    #[test]
    fn isn_depends_on_tuple_and_secret_and_advances_with_clock() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40001);
        let g1 = IsnGenerator::new(&mut XorShiftRng::new(1));
        let g2 = IsnGenerator::new(&mut XorShiftRng::new(2));
        let t = Instant::from_millis(1000);
        assert_ne!(g1.isn(a, b, t), g1.isn(a, c, t));
        assert_ne!(g1.isn(a, b, t), g2.isn(a, b, t));
        // RFC 6528: M ticks every 4 microseconds.
        assert_eq!(
            g1.isn(a, b, t + core::time::Duration::from_micros(400)) - g1.isn(a, b, t),
            100
        );
    }
}

//! SYN cookies (RFC 4987 §3.6): a listener answers a SYN without keeping
//! any state, and the peer's third ACK proves (by acknowledging our ISN)
//! that the handshake really happened.
//!
//! The cookie is our ISN, built as Linux does in `net/ipv4/syncookies.c`:
//!
//! ```text
//! ISN = H1(tuple) + peer ISN + (T << 24) + ((H2(tuple, T) + mss_index) mod 2^24)
//! ```
//!
//! with `H1`, `H2` SipHash-2-4 under two secrets drawn from the injected RNG,
//! `T` a counter that ticks every [`COUNTER_PERIOD`] and `mss_index` the
//! peer's MSS rounded down to [`MSS_TABLE`]. A cookie is valid while `T` is
//! the current counter or the previous one, so between 64 and 128 s. A
//! forged ACK passes with probability 4 in 2^24 per counter tried.
//!
//! The MSS is the only option the ISN carries. When the peer sent
//! timestamps, the SYN-ACK's TSval carries its window scale (low 4 bits,
//! 0xF for none) and SACK-permitted (bit 4), and the peer echoes them back
//! in TSecr; without timestamps the SYN-ACK offers neither option (a
//! window scale we could not remember would corrupt every window), as in
//! Linux.

use core::hash::Hasher;
use core::net::SocketAddrV4;
use core::time::Duration;

use siphasher::sip::SipHasher24;

use crate::rng::Rng;
use crate::seq::SeqNumber;
use crate::time::Instant;

/// MSS values a cookie can carry; the peer's MSS is rounded down to one of
/// them (Linux's table: minimum, common tunnel, PPPoE-ish and Ethernet).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// How often the cookie counter ticks.
pub const COUNTER_PERIOD: Duration = Duration::from_secs(64);

/// Counters a cookie may be old: the current one and the previous.
const MAX_AGE: u32 = 2;

const COUNTER_SHIFT: u32 = 24;
const LOW_MASK: u32 = (1 << COUNTER_SHIFT) - 1;

/// Bits of TSval that carry the peer's options.
const TS_OPTION_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0x0f;
const TS_NO_WSCALE: u32 = 0x0f;
const TS_SACK: u32 = 0x10;

/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WSCALE: u8 = 14;

/// The peer's SYN options a cookie's TSval restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsOptions {
    /// The peer's window scale shift, if it offered one and we accepted.
    pub window_scale: Option<u8>,
    /// SACK permitted in both directions.
    pub sack_permitted: bool,
}

/// The secrets and the encoding. One per TCP layer.
#[derive(Debug, Clone)]
pub struct SynCookieJar {
    tuple_key: (u64, u64),
    counter_key: (u64, u64),
}

impl SynCookieJar {
    /// Fresh secrets from `rng`.
    pub fn new(rng: &mut dyn Rng) -> SynCookieJar {
        SynCookieJar {
            tuple_key: (rng.next_u64(), rng.next_u64()),
            counter_key: (rng.next_u64(), rng.next_u64()),
        }
    }

    /// The cookie (our ISN) for a SYN with sequence number `peer_isn` and
    /// MSS option `peer_mss` (536 when it had none).
    pub fn encode(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: SeqNumber,
        peer_mss: u16,
        now: Instant,
    ) -> SeqNumber {
        let index = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let count = counter(now);
        let low = hash(self.counter_key, local, remote, count).wrapping_add(index) & LOW_MASK;
        let cookie = hash(self.tuple_key, local, remote, 0)
            .wrapping_add(peer_isn.0)
            .wrapping_add(count << COUNTER_SHIFT)
            .wrapping_add(low);
        SeqNumber(cookie)
    }

    /// Checks the cookie `our_isn` (SEG.ACK - 1 of the third ACK) against
    /// the peer's ISN (SEG.SEQ - 1); returns the MSS it carries, or `None`
    /// for a forged or stale cookie.
    pub fn validate(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: SeqNumber,
        our_isn: SeqNumber,
        now: Instant,
    ) -> Option<u16> {
        let v = our_isn
            .0
            .wrapping_sub(hash(self.tuple_key, local, remote, 0))
            .wrapping_sub(peer_isn.0);
        let count = counter(now);
        // Only the counter's low 8 bits travel; the age is taken modulo 256.
        let age = count.wrapping_sub(v >> COUNTER_SHIFT) & 0xff;
        if age >= MAX_AGE {
            return None;
        }
        let made = count.wrapping_sub(age);
        let index = v.wrapping_sub(hash(self.counter_key, local, remote, made)) & LOW_MASK;
        MSS_TABLE.get(index as usize).copied()
    }
}

/// The SYN-ACK's TSval: `ts_now` with its low bits replaced by the options,
/// never later than `ts_now` (our clock must not run backwards for the
/// peer's PAWS, RFC 7323 §5.3).
pub fn encode_ts(ts_now: u32, opts: TsOptions) -> u32 {
    let wscale = opts
        .window_scale
        .map_or(TS_NO_WSCALE, |s| u32::from(s.min(MAX_WSCALE)));
    let bits = wscale | if opts.sack_permitted { TS_SACK } else { 0 };
    let ts = (ts_now & !((1 << TS_OPTION_BITS) - 1)) | bits;
    if (ts.wrapping_sub(ts_now) as i32) > 0 {
        ts.wrapping_sub(1 << TS_OPTION_BITS)
    } else {
        ts
    }
}

/// The options a SYN-ACK's TSval carried, from the TSecr that echoes it.
pub fn decode_ts(tsecr: u32) -> TsOptions {
    let wscale = tsecr & TS_WSCALE_MASK;
    TsOptions {
        window_scale: (wscale != TS_NO_WSCALE).then(|| (wscale as u8).min(MAX_WSCALE)),
        sack_permitted: tsecr & TS_SACK != 0,
    }
}

fn counter(now: Instant) -> u32 {
    (now.total_millis() / COUNTER_PERIOD.as_millis() as u64) as u32
}

fn hash(key: (u64, u64), local: SocketAddrV4, remote: SocketAddrV4, count: u32) -> u32 {
    let mut h = SipHasher24::new_with_keys(key.0, key.1);
    h.write(&local.ip().octets());
    h.write_u16(local.port());
    h.write(&remote.ip().octets());
    h.write_u16(remote.port());
    h.write_u32(count);
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::XorShiftRng;
    use core::net::Ipv4Addr;

    const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);

    fn jar(seed: u64) -> SynCookieJar {
        SynCookieJar::new(&mut XorShiftRng::new(seed))
    }

    #[test]
    fn every_mss_bucket_round_trips() {
        let j = jar(1);
        let now = Instant::from_millis(5_000_000);
        let isn = SeqNumber(0xdead_beef);
        for (&mss, expect) in [
            (536u16, 536u16),
            (1000, 536),
            (1300, 1300),
            (1439, 1300),
            (1440, 1440),
            (1460, 1460),
            (9000, 1460),
            (100, 536),
        ]
        .iter()
        .map(|(a, b)| (a, *b))
        {
            let c = j.encode(LOCAL, REMOTE, isn, mss, now);
            assert_eq!(
                j.validate(LOCAL, REMOTE, isn, c, now),
                Some(expect),
                "MSS {mss}"
            );
        }
    }

    #[test]
    fn wrong_secret_tuple_or_isn_is_rejected() {
        let (j, other) = (jar(1), jar(2));
        let now = Instant::from_millis(1_000);
        let isn = SeqNumber(77);
        let c = j.encode(LOCAL, REMOTE, isn, 1460, now);
        assert_eq!(other.validate(LOCAL, REMOTE, isn, c, now), None);
        let moved = SocketAddrV4::new(*REMOTE.ip(), 40001);
        assert_eq!(j.validate(LOCAL, moved, isn, c, now), None);
        // The MSS index is added in, so a difference of under 4 only moves
        // the bucket (as in Linux); anything larger breaks the check.
        assert_eq!(j.validate(LOCAL, REMOTE, isn + 0x100u32, c, now), None);
        assert_eq!(j.validate(LOCAL, REMOTE, isn, c + 0x100u32, now), None);
        assert_eq!(
            j.validate(LOCAL, REMOTE, isn, c + 1u32, now),
            None,
            "past the top bucket"
        );
    }

    #[test]
    fn forged_cookies_almost_never_pass() {
        let j = jar(3);
        let now = Instant::from_millis(1_000);
        let mut rng = XorShiftRng::new(9);
        let passed = (0..100_000)
            .filter(|_| {
                let guess = SeqNumber(rng.next_u64() as u32);
                j.validate(LOCAL, REMOTE, SeqNumber(5), guess, now)
                    .is_some()
            })
            .count();
        // Expected 100000 * 2 * 4 / 2^24 = 0.05.
        assert!(passed <= 2, "{passed} random cookies passed");
    }

    #[test]
    fn cookie_lives_one_to_two_counter_periods() {
        let j = jar(4);
        let made = Instant::from_millis(64_000 * 1000 + 63_000);
        let isn = SeqNumber(u32::MAX - 3);
        let c = j.encode(LOCAL, REMOTE, isn, 1440, made);
        for (later, ok) in [
            (0u64, true),
            (1_000, true),
            (64_000, true),
            (65_000, false),
            (129_000, false),
        ] {
            let now = made + Duration::from_millis(later);
            let got = j.validate(LOCAL, REMOTE, isn, c, now);
            assert_eq!(got.is_some(), ok, "{later} ms after it was made");
        }
        // A cookie from the future (clock went back, or forged) is stale too.
        let before = Instant::from_millis(64_000 * 999 + 63_000);
        assert_eq!(j.validate(LOCAL, REMOTE, isn, c, before), None);
    }

    #[test]
    fn timestamp_carries_wscale_and_sack_and_never_runs_ahead() {
        for ws in [None, Some(0u8), Some(7), Some(14), Some(15)] {
            for sack in [false, true] {
                for ts_now in [0u32, 63, 64, 1_000_001, u32::MAX] {
                    let opts = TsOptions {
                        window_scale: ws,
                        sack_permitted: sack,
                    };
                    let ts = encode_ts(ts_now, opts);
                    assert!(
                        (ts_now.wrapping_sub(ts) as i32) >= 0,
                        "TSval ahead of clock"
                    );
                    assert!(ts_now.wrapping_sub(ts) < 128);
                    let back = decode_ts(ts);
                    assert_eq!(back.window_scale, ws.map(|s| s.min(14)));
                    assert_eq!(back.sack_permitted, sack);
                }
            }
        }
    }
}

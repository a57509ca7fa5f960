//! A seeded fault injector: drop, duplicate, reorder, delay, corrupt and
//! rate-limit the packets of any link, in either or both directions.
//!
//! Faults are drawn from a xorshift generator seeded by the caller, so a
//! given seed and packet sequence always meet the same faults. Packets that
//! must wait (delayed, held back for reordering, duplicates) are queued, and
//! [`Link::poll_at`] tells the runtime when the next one is due.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use ustack_ipv4::{DeviceCaps, RxChecksum, RxInfo, RxPacket, TxPacket};

use crate::{check_parts, Link, LinkError, LinkStats};

/// Which directions faults apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directions {
    /// Packets in both directions (the default).
    #[default]
    Both,
    /// Only packets coming up from the device.
    Rx,
    /// Only packets the stack sends.
    Tx,
}

/// What to inflict. Probabilities are per packet, in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Chance that a packet is lost.
    pub drop: f64,
    /// Chance that a packet is delivered twice (the copy right after it).
    pub duplicate: f64,
    /// Hold a packet back and release it after the next one.
    pub reorder: f64,
    /// Flip one random bit.
    pub corrupt: f64,
    /// Added to every packet's transit.
    pub delay: Duration,
    /// Token bucket in bytes per second; packets over it are dropped.
    pub rate: Option<u64>,
    /// Seed of the generator: the same seed and the same packets meet the same
    /// faults. Any value works, 0 included.
    pub seed: u64,
    /// Which directions the faults (and the rate limit) apply to.
    pub directions: Directions,
}

impl FaultConfig {
    /// True when nothing would ever be changed.
    pub fn is_noop(&self) -> bool {
        self.drop == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.corrupt == 0.0
            && self.delay.is_zero()
            && self.rate.is_none()
    }

    /// `InvalidConfig` for a probability outside `0.0..=1.0` (NaN included) or
    /// a rate of 0; [`FaultInjector::new`] calls it.
    pub fn validate(&self) -> Result<(), LinkError> {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(LinkError::InvalidConfig(format!(
                    "fault probability {name} = {p} is outside 0..=1"
                )));
            }
        }
        if self.rate == Some(0) {
            return Err(LinkError::InvalidConfig(
                "fault rate limit of 0 bytes/s would drop everything".into(),
            ));
        }
        Ok(())
    }
}

/// What the injector did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets lost to [`FaultConfig::drop`].
    pub dropped: u64,
    /// Packets dropped because the token bucket of [`FaultConfig::rate`] was empty.
    pub rate_dropped: u64,
    /// Packets delivered twice.
    pub duplicated: u64,
    /// Packets held back to be released after the next one.
    pub reordered: u64,
    /// Packets queued to wait [`FaultConfig::delay`] before delivery.
    pub delayed: u64,
    /// Packets with one bit flipped.
    pub corrupted: u64,
    /// Packets lost because too many were waiting.
    pub queue_dropped: u64,
}

/// Most packets waiting in one direction; beyond either bound a packet is
/// dropped and counted in `queue_dropped`. The byte bound holds a full
/// window of a 2 Gbit/s path with 100 ms of delay each way (25 MB), so the
/// delay alone never drops.
const MAX_QUEUED: usize = 65_536;
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Most spare packet buffers kept for reuse per direction; more are freed.
const MAX_FREE: usize = 4096;
/// Longest a packet is held back for reordering when nothing follows it.
const MAX_HOLD: Duration = Duration::from_millis(20);

/// xorshift64* (Vigna), seeded through splitmix64 so that small seeds differ.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, len: usize, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.capacity);
        if self.tokens >= len as f64 {
            self.tokens -= len as f64;
            true
        } else {
            false
        }
    }
}

/// A packet the injector keeps for later: its bytes and, received, the
/// GRO segment size the inner link reported (`None` for sent packets).
#[derive(Debug)]
struct Kept {
    bytes: Vec<u8>,
    gro_segment: Option<u16>,
}

/// One direction's state.
#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<(Instant, Kept)>,
    /// Bytes of the packets in `queue`.
    queued_bytes: usize,
    held: Option<(Instant, Kept)>,
    bucket: Option<Bucket>,
    free: Vec<Vec<u8>>,
}

enum Fate {
    /// Pass the packet on now, unchanged.
    Direct,
    /// Dropped, or queued for later.
    Absorbed,
}

impl Lane {
    /// Gathers `p` into a buffer from the free list (or a new one).
    fn copy(&mut self, p: &TxPacket<'_>, gro_segment: Option<u16>) -> Kept {
        let mut v = self.free.pop().unwrap_or_default();
        v.clear();
        for part in p.parts {
            v.extend_from_slice(part);
        }
        Kept {
            bytes: v,
            gro_segment,
        }
    }

    fn push(&mut self, at: Instant, p: Kept, stats: &mut FaultStats) {
        if self.queue.len() >= MAX_QUEUED || self.queued_bytes + p.bytes.len() > MAX_QUEUED_BYTES {
            stats.queue_dropped += 1;
            self.recycle(p.bytes);
            return;
        }
        self.queued_bytes += p.bytes.len();
        self.queue.push_back((at, p));
    }

    /// Keeps a spent packet buffer for reuse, within [`MAX_FREE`].
    fn recycle(&mut self, bytes: Vec<u8>) {
        if self.free.len() < MAX_FREE {
            self.free.push(bytes);
        }
    }

    /// Decides `packet`'s fate; `gro_segment` is kept with it if it waits.
    fn admit(
        &mut self,
        cfg: &FaultConfig,
        rng: &mut Rng,
        stats: &mut FaultStats,
        packet: &TxPacket<'_>,
        gro_segment: Option<u16>,
        now: Instant,
    ) -> Fate {
        if let Some(b) = &mut self.bucket {
            if !b.take(packet.len(), now) {
                stats.rate_dropped += 1;
                return Fate::Absorbed;
            }
        }
        if rng.chance(cfg.drop) {
            stats.dropped += 1;
            return Fate::Absorbed;
        }
        let corrupt = rng.chance(cfg.corrupt) && !packet.is_empty();
        let dup = rng.chance(cfg.duplicate);
        let reorder = self.held.is_none() && rng.chance(cfg.reorder);
        if !corrupt
            && !dup
            && !reorder
            && cfg.delay.is_zero()
            && self.queue.is_empty()
            && self.held.is_none()
        {
            return Fate::Direct;
        }
        let mut p = self.copy(packet, gro_segment);
        if corrupt {
            let bit = (rng.next() % (p.bytes.len() as u64 * 8)) as usize;
            p.bytes[bit / 8] ^= 1 << (bit % 8);
            stats.corrupted += 1;
        }
        if reorder {
            stats.reordered += 1;
            self.held = Some((now, p));
            return Fate::Absorbed;
        }
        let at = now + cfg.delay;
        if !cfg.delay.is_zero() {
            stats.delayed += 1;
        }
        if dup {
            stats.duplicated += 1;
            let d = self.copy(&TxPacket::new(&[&p.bytes]), p.gro_segment);
            self.push(at, d, stats);
        }
        self.push(at, p, stats);
        if let Some((_, h)) = self.held.take() {
            self.push(at, h, stats);
        }
        Fate::Absorbed
    }

    /// The next packet due at `now`, if any.
    fn due(&mut self, cfg: &FaultConfig, now: Instant) -> Option<Kept> {
        if let Some((since, _)) = &self.held {
            if now.saturating_duration_since(*since) >= MAX_HOLD.max(cfg.delay) {
                let (_, h) = self.held.take()?;
                self.queued_bytes += h.bytes.len();
                self.queue.push_back((now, h));
            }
        }
        if self.queue.front().is_some_and(|(at, _)| *at <= now) {
            let (_, p) = self.queue.pop_front()?;
            self.queued_bytes -= p.bytes.len();
            return Some(p);
        }
        None
    }

    fn next_deadline(&self, cfg: &FaultConfig) -> Option<Instant> {
        let q = self.queue.front().map(|(at, _)| *at);
        let h = self
            .held
            .as_ref()
            .map(|(since, _)| *since + MAX_HOLD.max(cfg.delay));
        q.into_iter().chain(h).min()
    }
}

/// Wraps a link and inflicts [`FaultConfig`]'s faults on its packets. With a
/// no-op config it passes everything straight through.
///
/// A no-op injector is transparent: it forwards [`Link::caps`] and every
/// packet's [`RxInfo`] unchanged, segmentation offload and vouched-for
/// checksums included (the runtime always wraps its link in one). An
/// active one offers no segmentation offload (its caps say `tso_max: 0`,
/// so the stack sends plain packets through it; a super-frame sent anyway
/// is `InvalidConfig`; super-frames the inner link receives still come up
/// whole, with their `gro_segment`) and reports every packet
/// [`RxChecksum::Unverified`], since it may corrupt packets. A packet whose
/// checksum the inner link vouches for ([`RxChecksum::Verified`] or
/// [`RxChecksum::Partial`], e.g. partial on a TUN device with offload or a
/// raw socket on loopback) gets its TCP/UDP checksum computed here, before
/// any fault, so the stack can verify it and catch an injected corruption.
#[derive(Debug)]
pub struct FaultInjector<L> {
    inner: L,
    cfg: FaultConfig,
    rng: Rng,
    rx: Lane,
    tx: Lane,
    stats: FaultStats,
    /// `fault injector on <inner name>`, for errors.
    label: String,
}

impl<L: Link> FaultInjector<L> {
    /// Wraps `inner`; `InvalidConfig` if `cfg` does not
    /// [`validate`](FaultConfig::validate). The rate limit's bucket starts full,
    /// holding 50 ms of `rate` or one MTU, whichever is more.
    pub fn new(inner: L, cfg: FaultConfig) -> Result<FaultInjector<L>, LinkError> {
        cfg.validate()?;
        let label = format!("fault injector on {}", inner.name());
        let now = Instant::now();
        let bucket = |rate: u64| Bucket {
            rate,
            capacity: (rate as f64 / 20.0).max(inner.caps().mtu as f64),
            tokens: (rate as f64 / 20.0).max(inner.caps().mtu as f64),
            last: now,
        };
        let mut rx = Lane::default();
        let mut tx = Lane::default();
        if let Some(rate) = cfg.rate {
            if cfg.directions != Directions::Tx {
                rx.bucket = Some(bucket(rate));
            }
            if cfg.directions != Directions::Rx {
                tx.bucket = Some(bucket(rate));
            }
        }
        Ok(FaultInjector {
            rng: Rng::new(cfg.seed),
            inner,
            cfg,
            rx,
            tx,
            stats: FaultStats::default(),
            label,
        })
    }

    /// What the injector has done so far; [`Link::stats`] counts what passed
    /// through.
    pub fn fault_stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped link, e.g. to read its own counters or caps.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably; packets it sends or receives directly bypass
    /// the faults.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    fn active(&self, rx: bool) -> bool {
        !self.cfg.is_noop()
            && match self.cfg.directions {
                Directions::Both => true,
                Directions::Rx => rx,
                Directions::Tx => !rx,
            }
    }

    fn flush_tx(&mut self, now: Instant) -> Result<(), LinkError> {
        while let Some(p) = self.tx.due(&self.cfg, now) {
            let r = self.inner.send(&TxPacket::new(&[&p.bytes]));
            self.tx.recycle(p.bytes);
            r?;
        }
        Ok(())
    }

    /// `inner.recv`; when active, a checksum the inner link vouches for is
    /// made whole and the packet reported [`RxChecksum::Unverified`].
    fn recv_inner(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let mut got = self.inner.recv(buf)?;
        if let Some(p) = &mut got {
            if !self.cfg.is_noop() {
                if !p.info.checksum.needs_verify() {
                    crate::vnet::finish_transport_checksum(&mut buf[..p.len]);
                }
                p.info.checksum = RxChecksum::Unverified;
            }
        }
        Ok(got)
    }

    /// The next time a held or delayed packet is due.
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.rx.next_deadline(&self.cfg),
            self.tx.next_deadline(&self.cfg),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl<L: Link> Link for FaultInjector<L> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        if !self.active(true) && !self.active(false) {
            return self.recv_inner(buf);
        }
        let now = Instant::now();
        self.flush_tx(now)?;
        let result = loop {
            if let Some(p) = self.rx.due(&self.cfg, now) {
                let len = p.bytes.len();
                if len > buf.len() {
                    self.rx.recycle(p.bytes);
                    return Err(LinkError::BufferTooSmall {
                        device: self.label.clone(),
                        len: buf.len(),
                        needed: len,
                    });
                }
                buf[..len].copy_from_slice(&p.bytes);
                self.rx.recycle(p.bytes);
                break Some(RxPacket {
                    len,
                    info: RxInfo {
                        checksum: RxChecksum::Unverified,
                        gro_segment: p.gro_segment,
                    },
                });
            }
            let Some(got) = self.recv_inner(buf)? else {
                break None;
            };
            if !self.active(true) {
                break Some(got);
            }
            let parts: [&[u8]; 1] = [&buf[..got.len]];
            match self.rx.admit(
                &self.cfg,
                &mut self.rng,
                &mut self.stats,
                &TxPacket::new(&parts),
                got.info.gro_segment,
                now,
            ) {
                Fate::Direct => break Some(got),
                Fate::Absorbed => continue,
            }
        };
        Ok(result)
    }

    /// Without faults the inner link lends its packets as they lie (an
    /// AF_PACKET ring's frame, a pipe's slot); with faults they are read
    /// into `buf` first.
    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        if self.cfg.is_noop() {
            return self.inner.recv_with(buf, f);
        }
        crate::recv_into_buffer(self, buf, f)
    }

    /// Active on send: the parts are gathered into a buffer of the
    /// injector's only when the packet is changed or must wait.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        if self.cfg.is_noop() {
            return self.inner.send(pkt);
        }
        check_parts(pkt, &self.label)?;
        if pkt.segment.is_some() {
            return Err(LinkError::InvalidConfig(format!(
                "{}: no segmentation offload while injecting faults",
                self.label
            )));
        }
        if !self.active(false) {
            return self.inner.send(pkt);
        }
        let now = Instant::now();
        let fate = self
            .tx
            .admit(&self.cfg, &mut self.rng, &mut self.stats, pkt, None, now);
        if let Fate::Direct = fate {
            self.inner.send(pkt)?;
        }
        self.flush_tx(now)?;
        Ok(())
    }

    /// The inner link's when no-op; when active the same with `tso_max: 0`
    /// and checksums finished by the stack (a packet held back is copied
    /// as it is).
    fn caps(&self) -> DeviceCaps {
        let inner = self.inner.caps();
        if self.cfg.is_noop() {
            inner
        } else {
            DeviceCaps {
                tso_max: 0,
                finishes_checksums: false,
                ..inner
            }
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.poll_fd()
    }

    fn poll_at(&self) -> Option<Instant> {
        [self.next_deadline(), self.inner.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pipe, PipeEnd};

    fn pair(cfg: FaultConfig) -> (FaultInjector<PipeEnd>, PipeEnd) {
        let (a, b) = pipe(1500, 4096);
        (FaultInjector::new(a, cfg).unwrap(), b)
    }

    fn drain(l: &mut impl Link) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 1500];
        let mut out = Vec::new();
        while let Some(p) = l.recv(&mut buf).unwrap() {
            out.push(buf[..p.len].to_vec());
        }
        out
    }

    fn send(l: &mut impl Link, p: &[u8]) -> Result<(), LinkError> {
        l.send(&TxPacket::new(&[p]))
    }

    fn send_numbered(l: &mut impl Link, n: u16) {
        for i in 0..n {
            let b = i.to_be_bytes();
            // In two parts: the injector gathers them when it keeps a copy.
            l.send(&TxPacket::new(&[&b[..1], &b[1..]])).unwrap();
        }
    }

    #[test]
    fn noop_passes_everything_in_order() {
        let (mut f, mut b) = pair(FaultConfig::default());
        send_numbered(&mut f, 100);
        let got = drain(&mut b);
        assert_eq!(got.len(), 100);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, p)| p[..] == (i as u16).to_be_bytes()));
    }

    #[test]
    fn drop_rate_is_close_to_the_probability_and_reproducible() {
        let cfg = FaultConfig {
            drop: 0.1,
            seed: 7,
            ..FaultConfig::default()
        };
        let (mut f, mut b) = pair(cfg.clone());
        send_numbered(&mut f, 2000);
        let first = drain(&mut b);
        assert!((1700..1900).contains(&first.len()), "{}", first.len());
        assert_eq!(f.fault_stats().dropped, 2000 - first.len() as u64);
        let (mut f, mut b) = pair(cfg);
        send_numbered(&mut f, 2000);
        assert_eq!(drain(&mut b), first, "same seed, same faults");
    }

    #[test]
    fn duplicates_corruption_and_reordering_happen_on_receive() {
        let cfg = FaultConfig {
            duplicate: 0.2,
            corrupt: 0.2,
            reorder: 0.2,
            seed: 3,
            directions: Directions::Rx,
            ..FaultConfig::default()
        };
        let (mut f, mut b) = pair(cfg);
        send_numbered(&mut b, 500);
        let got = drain(&mut f);
        std::thread::sleep(MAX_HOLD);
        let late = drain(&mut f);
        let s = f.fault_stats();
        assert!(
            s.duplicated > 50 && s.corrupted > 50 && s.reordered > 50,
            "{s:?}"
        );
        assert_eq!(got.len() + late.len(), 500 + s.duplicated as usize);
        let out_of_order = got.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(out_of_order > 0);
        // Send direction untouched (Rx only).
        send_numbered(&mut f, 10);
        assert_eq!(drain(&mut b).len(), 10);
    }

    #[test]
    fn delay_holds_packets_until_due_and_the_fd_wakes() {
        let cfg = FaultConfig {
            delay: Duration::from_millis(30),
            ..FaultConfig::default()
        };
        let (mut f, mut b) = pair(cfg);
        send(&mut f, b"x").unwrap();
        assert!(drain(&mut b).is_empty());
        std::thread::sleep(Duration::from_millis(40));
        assert!(f.recv(&mut [0u8; 64]).unwrap().is_none()); // releases tx
        assert_eq!(drain(&mut b), vec![b"x".to_vec()]);
        assert_eq!(f.fault_stats().delayed, 1);
    }

    #[test]
    fn rate_limit_drops_what_exceeds_the_bucket() {
        let cfg = FaultConfig {
            rate: Some(100_000),
            ..FaultConfig::default()
        };
        let (mut f, mut b) = pair(cfg);
        for _ in 0..100 {
            send(&mut f, &[0u8; 1000]).unwrap();
        }
        let passed = drain(&mut b).len();
        // Bucket: max(100000/20, 1500) = 5000 bytes: about five packets.
        assert!((4..=7).contains(&passed), "{passed}");
        assert_eq!(f.fault_stats().rate_dropped, 100 - passed as u64);
    }

    #[test]
    fn invalid_probabilities_are_rejected() {
        let (a, _b) = pipe(1500, 4);
        let err = FaultInjector::new(
            a,
            FaultConfig {
                drop: 1.5,
                ..FaultConfig::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("drop"), "{err}");
    }

    #[test]
    fn noop_is_transparent_to_offloads() {
        use crate::vnet::tests::{superframe, transport_checksum_ok};
        let (a, mut b) = crate::pipe_tso(1500, 4, 65535);
        let mut f = FaultInjector::new(a, FaultConfig::default()).unwrap();
        assert_eq!(f.caps(), f.inner().caps());
        assert_eq!(f.caps().tso_max, 65535);
        let sf = superframe(12, 40_001);
        let sf_pkt = TxPacket {
            parts: &[&sf[..]],
            segment: Some(1448),
            partial_checksum: false,
        };
        b.send(&sf_pkt).unwrap();
        let mut buf = vec![0u8; 65535];
        let got = f.recv(&mut buf).unwrap().expect("super-frame");
        // Passed as is, partial checksum and all, and vouched for.
        assert_eq!(
            got.info,
            RxInfo {
                checksum: RxChecksum::Partial,
                gro_segment: Some(1448)
            }
        );
        assert!(!transport_checksum_ok(&buf[..got.len]));
        assert_eq!(&buf[..got.len], &sf[..]);
        f.send(&sf_pkt).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap().map(|p| p.len), Some(sf.len()));
    }

    #[test]
    fn no_offload_through_it_and_vouched_checksums_are_finished() {
        use crate::vnet::tests::{superframe, transport_checksum_ok};
        for cfg in [
            FaultConfig {
                drop: 0.001,
                ..FaultConfig::default()
            },
            FaultConfig {
                delay: Duration::from_millis(1),
                ..FaultConfig::default()
            },
        ] {
            let (a, mut b) = crate::pipe_tso(1500, 4, 65535);
            let mut f = FaultInjector::new(a, cfg).unwrap();
            assert_eq!(f.caps().tso_max, 0);
            assert_eq!(f.caps().mtu, 1500);
            let other = superframe(0, 5000);
            assert!(matches!(
                f.send(&TxPacket {
                    parts: &[&other[..]],
                    segment: Some(1460),
                    partial_checksum: false,
                }),
                Err(LinkError::InvalidConfig(_))
            ));
            let sf = superframe(12, 40_001);
            assert!(!transport_checksum_ok(&sf));
            b.send(&TxPacket {
                parts: &[&sf[..]],
                segment: Some(1448),
                partial_checksum: false,
            })
            .unwrap();
            let mut buf = vec![0u8; 65535];
            let deadline = Instant::now() + Duration::from_secs(2);
            let got = loop {
                if let Some(p) = f.recv(&mut buf).unwrap() {
                    break p;
                }
                assert!(Instant::now() < deadline, "super-frame never came up");
                std::thread::sleep(Duration::from_millis(1));
            };
            let n = got.len;
            assert_eq!(n, sf.len());
            // Still a super-frame, but the stack must verify it now.
            assert_eq!(
                got.info,
                RxInfo {
                    checksum: RxChecksum::Unverified,
                    gro_segment: Some(1448)
                }
            );
            assert!(transport_checksum_ok(&buf[..n]));
            // Only the checksum changed.
            assert_eq!(&buf[..36], &sf[..36]);
            assert_eq!(&buf[38..n], &sf[38..]);
        }
    }
}

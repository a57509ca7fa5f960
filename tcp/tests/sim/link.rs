//! One direction of a simulated network path: a bottleneck with a bounded
//! FIFO queue (tail drop) and a serialization rate, then a lossy, corrupting,
//! duplicating, reordering stretch of wire with delay and jitter.
//!
//! Packets become events in a priority queue ordered by delivery time (ties
//! broken by send order), so a driver can jump its clock to
//! [`SimLink::next_event_time`] instead of ticking.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use ustack_tcp::Instant;

use super::rng::SimRng;

/// Gilbert–Elliott burst loss: a two-state Markov chain stepped once per packet,
/// with its own loss probability in each state. Mean burst length is
/// `1 / p_leave_bad` packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p_enter_bad: f64,
    pub p_leave_bad: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// Long-run fraction of packets this chain loses.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.p_enter_bad / (self.p_enter_bad + self.p_leave_bad);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// Impairments of one direction. The default is a perfect wire with no delay.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter], drawn per packet (reorders too).
    pub jitter: Duration,
    /// Independent loss probability per packet.
    pub loss: f64,
    pub burst: Option<GilbertElliott>,
    /// Probability that a packet is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that a packet arrives twice (the copy with its own jitter).
    pub duplicate: f64,
    /// Probability that one random bit of the packet is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second; `None` serializes instantly.
    pub rate_bps: Option<u64>,
    /// Bytes the bottleneck queue holds beyond the packet being serialized.
    pub queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            rate_bps: None,
            queue_bytes: usize::MAX,
        }
    }
}

/// What the link did with the packets offered to it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub offered: u64,
    pub offered_bytes: u64,
    pub tail_dropped: u64,
    pub lost_random: u64,
    pub lost_burst: u64,
    pub reordered: u64,
    pub duplicated: u64,
    /// Corrupted packets handed to the receiver (a duplicate counts apart).
    pub corrupted_delivered: u64,
    pub delivered: u64,
}

/// What happened to one offered packet, for the driver's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    TailDrop,
    LostRandom,
    LostBurst,
    /// In flight; flags say what else happened to it.
    Queued {
        at: Instant,
        corrupted: bool,
        reordered: bool,
        duplicated: bool,
    },
}

/// A packet handed out by [`SimLink::pop_due`].
#[derive(Debug)]
pub struct Delivery {
    pub at: Instant,
    pub packet: Vec<u8>,
    pub corrupted: bool,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    order: u64,
    corrupted: bool,
    packet: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    /// Reversed: the max-heap pops the earliest delivery first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

pub struct SimLink {
    cfg: LinkConfig,
    rng: SimRng,
    /// Gilbert–Elliott state: true while in the bad state.
    bad: bool,
    /// When the bottleneck finishes serializing what it has accepted.
    busy_until: Instant,
    in_flight: BinaryHeap<InFlight>,
    order: u64,
    spare: Vec<Vec<u8>>,
    stats: LinkStats,
}

impl SimLink {
    pub fn new(cfg: LinkConfig, rng: SimRng) -> SimLink {
        SimLink {
            cfg,
            rng,
            bad: false,
            busy_until: Instant::ZERO,
            in_flight: BinaryHeap::new(),
            order: 0,
            spare: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Packets in flight or queued.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Offers a packet to the link at `now`.
    pub fn send(&mut self, now: Instant, packet: &[u8]) -> Fate {
        self.stats.offered += 1;
        self.stats.offered_bytes += packet.len() as u64;

        // The bottleneck: FIFO, tail drop when the backlog would overflow.
        let leaves_at = match self.cfg.rate_bps {
            Some(rate) => {
                let start = self.busy_until.max(now);
                let backlog_us = (start - now).as_micros() as u64;
                let backlog_bytes = backlog_us.saturating_mul(rate) / 8_000_000;
                if backlog_bytes as usize + packet.len() > self.cfg.queue_bytes.max(packet.len()) {
                    self.stats.tail_dropped += 1;
                    return Fate::TailDrop;
                }
                let tx_us = (packet.len() as u64 * 8 * 1_000_000).div_ceil(rate);
                self.busy_until = start + Duration::from_micros(tx_us);
                self.busy_until
            }
            None => now,
        };

        // The wire beyond the bottleneck.
        if let Some(ge) = self.cfg.burst {
            let flip = if self.bad {
                ge.p_leave_bad
            } else {
                ge.p_enter_bad
            };
            if self.rng.chance(flip) {
                self.bad = !self.bad;
            }
            let p = if self.bad { ge.loss_bad } else { ge.loss_good };
            if self.rng.chance(p) {
                self.stats.lost_burst += 1;
                return Fate::LostBurst;
            }
        }
        if self.rng.chance(self.cfg.loss) {
            self.stats.lost_random += 1;
            return Fate::LostRandom;
        }
        let corrupted = self.rng.chance(self.cfg.corrupt);
        let reordered = self.rng.chance(self.cfg.reorder);
        let duplicated = self.rng.chance(self.cfg.duplicate);

        let mut at = leaves_at + self.cfg.delay + self.rng.duration_upto(self.cfg.jitter);
        if reordered {
            self.stats.reordered += 1;
            at += self.cfg.reorder_delay;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        if corrupted {
            let bit = self.rng.range(0, buf.len() as u64 * 8 - 1);
            buf[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        if duplicated {
            self.stats.duplicated += 1;
            let copy_at = leaves_at + self.cfg.delay + self.rng.duration_upto(self.cfg.jitter);
            let copy = buf.clone();
            self.push(copy_at, corrupted, copy);
        }
        self.push(at, corrupted, buf);
        Fate::Queued {
            at,
            corrupted,
            reordered,
            duplicated,
        }
    }

    fn push(&mut self, at: Instant, corrupted: bool, packet: Vec<u8>) {
        self.order += 1;
        self.in_flight.push(InFlight {
            at,
            order: self.order,
            corrupted,
            packet,
        });
    }

    /// When the next packet arrives, if any is in flight.
    pub fn next_event_time(&self) -> Option<Instant> {
        self.in_flight.peek().map(|p| p.at)
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        if self.in_flight.peek()?.at > now {
            return None;
        }
        let p = self.in_flight.pop()?;
        self.stats.delivered += 1;
        if p.corrupted {
            self.stats.corrupted_delivered += 1;
        }
        Some(Delivery {
            at: p.at,
            packet: p.packet,
            corrupted: p.corrupted,
        })
    }

    /// Returns a delivered packet's buffer for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 256 {
            self.spare.push(buf);
        }
    }
}

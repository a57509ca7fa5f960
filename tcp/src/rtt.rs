//! Retransmission timeout estimation, RFC 6298.
//!
//! One segment is timed at a time; retransmitted segments are never timed
//! (Karn's algorithm, RFC 6298 §3). Back-off doubles the RTO up to the maximum
//! (§5.5) and is undone by the next valid sample.

use core::time::Duration;

use crate::seq::SeqNumber;
use crate::time::Instant;

/// Clock granularity G of RFC 6298 §2: the engine's time is in microseconds but
/// the runtime's timers are millisecond-grained.
const GRANULARITY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    /// RTO of RFC 6298 §2 before back-off.
    base: Duration,
    min: Duration,
    max: Duration,
    backoff: u32,
    /// `base` with the back-off applied, within `max`: kept up to date by
    /// every change of either, since every ACK that advances SND.UNA
    /// re-arms the retransmission timer with it.
    rto: Duration,
    /// The segment being timed: (sequence number whose acknowledgement ends the sample, send time).
    timed: Option<(SeqNumber, Instant)>,
}

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        let rto = initial.clamp(min, max);
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base: rto,
            min,
            max,
            backoff: 0,
            rto,
            timed: None,
        }
    }

    /// Current RTO including exponential back-off.
    #[inline]
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Recomputes `rto` after `base` or `backoff` changed.
    fn update_rto(&mut self) {
        self.rto = self
            .base
            .checked_mul(1u32 << self.backoff.min(16))
            .unwrap_or(self.max)
            .min(self.max);
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// A new (not retransmitted) segment ending at `end` was sent at `now`.
    pub fn on_send(&mut self, end: SeqNumber, now: Instant) {
        if self.timed.is_none() {
            self.timed = Some((end, now));
        }
    }

    /// Karn: a retransmission makes the outstanding sample ambiguous.
    pub fn on_retransmit(&mut self) {
        self.timed = None;
        self.backoff = self.backoff.saturating_add(1);
        self.update_rto();
    }

    /// The peer acknowledged new data: keep the estimate, drop the back-off.
    #[inline]
    pub fn reset_backoff(&mut self) {
        if self.backoff != 0 {
            self.backoff = 0;
            self.update_rto();
        }
    }

    /// A fast retransmission: the timed sample becomes ambiguous (Karn), but
    /// unlike a timeout it does not back the RTO off.
    pub fn discard_sample(&mut self) {
        self.timed = None;
    }

    /// Cumulative acknowledgement `ack` arrived at `now`.
    pub fn on_ack(&mut self, ack: SeqNumber, now: Instant) {
        if let Some((end, sent)) = self.timed {
            if ack.distance(end) >= 0 {
                self.timed = None;
                self.sample(now.saturating_duration_since(sent));
            }
        }
    }

    /// An RTT measured from an echoed timestamp (RFC 7323 §4): valid even for
    /// retransmitted segments, so it also ends any outstanding timed sample.
    pub fn on_timestamp_sample(&mut self, r: Duration) {
        self.timed = None;
        self.sample(r);
    }

    fn sample(&mut self, r: Duration) {
        match self.srtt {
            // §2.2: first measurement.
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            // §2.3: RTTVAR first (it uses the old SRTT), alpha = 1/8, beta = 1/4.
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.base = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(self.min, self.max);
        self.backoff = 0;
        self.rto = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn initial_rto_is_one_second_rfc6298_2_1() {
        assert_eq!(est().rto(), Duration::from_secs(1));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar_rfc6298_2_2() {
        let mut e = est();
        e.on_send(SeqNumber(100), Instant::from_millis(0));
        e.on_ack(SeqNumber(100), Instant::from_millis(300));
        assert_eq!(e.srtt(), Some(Duration::from_millis(300)));
        // RTO = SRTT + 4 * RTTVAR = 300 + 4 * 150
        assert_eq!(e.rto(), Duration::from_millis(900));
    }

    #[test]
    fn rto_never_below_minimum_rfc6298_2_4() {
        let mut e = est();
        e.on_send(SeqNumber(1), Instant::from_millis(0));
        e.on_ack(SeqNumber(1), Instant::from_micros(50));
        assert_eq!(e.rto(), Duration::from_millis(200));
    }

    #[test]
    fn karn_retransmitted_segment_is_not_sampled_rfc6298_3() {
        let mut e = est();
        e.on_send(SeqNumber(10), Instant::from_millis(0));
        e.on_retransmit();
        e.on_ack(SeqNumber(10), Instant::from_millis(5000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rto(), Duration::from_secs(2), "backed off once");
    }

    #[test]
    fn backoff_doubles_and_is_capped_rfc6298_5_5() {
        let mut e = est();
        for _ in 0..20 {
            e.on_retransmit();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn ack_below_timed_segment_does_not_end_sample() {
        let mut e = est();
        e.on_send(SeqNumber(1000), Instant::from_millis(0));
        e.on_ack(SeqNumber(500), Instant::from_millis(10));
        assert_eq!(e.srtt(), None);
        e.on_ack(SeqNumber(1000), Instant::from_millis(20));
        assert_eq!(e.srtt(), Some(Duration::from_millis(20)));
    }
}

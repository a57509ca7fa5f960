//! Retransmission, persist, delayed-ACK, RACK, probe, keep-alive, user
//! timeout and TIME-WAIT timers: one table of deadlines per connection.

use core::ops::ControlFlow;
use core::time::Duration;

use tracing::trace;

use super::{State, Tcb, TcpConfig, WORST_CASE_DELACK};
use crate::cc::CongestionControl;
use crate::time::Instant;

/// The timers of a connection, in the order [`Tcb::on_timer`] serves them
/// when several are due at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// 2 MSL in TIME-WAIT (RFC 9293 §3.4.2).
    TimeWait,
    /// USER TIMEOUT (RFC 9293 §3.8.4, RFC 5482): the oldest unacknowledged
    /// data waited this long.
    UserTimeout,
    /// Delayed ACK (RFC 9293 §3.8.6.3).
    DelayedAck,
    /// RACK reordering timer (RFC 8985 §6.3).
    Rack,
    /// Tail loss probe (RFC 8985 §7.2).
    Tlp,
    /// Next keep-alive probe (RFC 1122 §4.2.3.6).
    KeepAlive,
    /// Retransmission timeout (RFC 6298).
    Retransmit,
    /// Persist / SWS override timer (RFC 9293 §3.8.6.1, §3.8.6.2.1).
    Persist,
}

impl TimerKind {
    const COUNT: usize = 8;
    /// Every kind, in service order.
    const ALL: [TimerKind; TimerKind::COUNT] = [
        TimerKind::TimeWait,
        TimerKind::UserTimeout,
        TimerKind::DelayedAck,
        TimerKind::Rack,
        TimerKind::Tlp,
        TimerKind::KeepAlive,
        TimerKind::Retransmit,
        TimerKind::Persist,
    ];
}

/// One deadline per [`TimerKind`], in microseconds of [`Instant`];
/// `u64::MAX` is "not armed".
#[derive(Debug, Clone)]
pub(crate) struct Timers {
    at: [u64; TimerKind::COUNT],
}

impl Timers {
    const UNSET: u64 = u64::MAX;

    pub(crate) const fn new() -> Timers {
        Timers {
            at: [Timers::UNSET; TimerKind::COUNT],
        }
    }

    /// Arms (or re-arms) `kind` for `at`.
    #[inline]
    pub(crate) fn set(&mut self, kind: TimerKind, at: Instant) {
        self.at[kind as usize] = at.total_micros().min(Timers::UNSET - 1);
    }

    /// Arms `kind` for `at`, or disarms it when `at` is `None`.
    #[inline]
    pub(crate) fn set_or_clear(&mut self, kind: TimerKind, at: Option<Instant>) {
        self.at[kind as usize] =
            at.map_or(Timers::UNSET, |t| t.total_micros().min(Timers::UNSET - 1));
    }

    #[inline]
    pub(crate) fn clear(&mut self, kind: TimerKind) {
        self.at[kind as usize] = Timers::UNSET;
    }

    pub(crate) fn clear_all(&mut self) {
        self.at = [Timers::UNSET; TimerKind::COUNT];
    }

    #[inline]
    pub(crate) fn get(&self, kind: TimerKind) -> Option<Instant> {
        let at = self.at[kind as usize];
        (at != Timers::UNSET).then_some(Instant::from_micros(at))
    }

    #[inline]
    pub(crate) fn is_set(&self, kind: TimerKind) -> bool {
        self.at[kind as usize] != Timers::UNSET
    }

    /// Armed and expired at `now`.
    #[inline]
    fn due(&self, kind: TimerKind, now: Instant) -> bool {
        let at = self.at[kind as usize];
        at != Timers::UNSET && now.total_micros() >= at
    }

    /// When the earliest armed timer is due. A minimum over eight words,
    /// branch-free and as a tree (three dependent steps, not eight): it
    /// runs after every segment in and out.
    #[inline]
    pub(crate) fn earliest(&self) -> Option<Instant> {
        const { assert!(TimerKind::COUNT == 8) };
        let a = &self.at;
        let (l, r) = (
            a[0].min(a[1]).min(a[2].min(a[3])),
            a[4].min(a[5]).min(a[6].min(a[7])),
        );
        let at = l.min(r);
        (at != Timers::UNSET).then_some(Instant::from_micros(at))
    }

    /// The earliest armed timer and its kind.
    #[cfg(test)]
    pub(crate) fn next(&self) -> Option<(TimerKind, Instant)> {
        let mut best = 0;
        for i in 1..TimerKind::COUNT {
            if self.at[i] < self.at[best] {
                best = i;
            }
        }
        let at = self.at[best];
        (at != Timers::UNSET).then(|| (TimerKind::ALL[best], Instant::from_micros(at)))
    }
}

impl Tcb {
    /// Earliest time the connection needs `on_timer`.
    #[inline]
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.timers.earliest()
    }

    /// Keep-alive (RFC 1122 §4.2.3.6) applies only to an idle connection:
    /// re-arms or disarms its timer after anything that may change that.
    #[inline]
    pub(super) fn update_keepalive(&mut self) {
        let at = self.keepalive.and_then(|idle| {
            let idle_state = matches!(self.state, State::Established | State::CloseWait)
                && self.snd_una == self.snd_max
                && self.send_buf.is_empty();
            idle_state
                .then(|| self.last_heard + idle + self.keepalive_interval * self.keepalive_sent)
        });
        self.timers.set_or_clear(TimerKind::KeepAlive, at);
    }

    /// Serves every timer due at `now`, in [`TimerKind`] order.
    pub fn on_timer(&mut self, cfg: &TcpConfig, now: Instant) {
        for kind in TimerKind::ALL {
            if self.timers.due(kind, now) && self.on_expiry(cfg, now, kind).is_break() {
                return;
            }
        }
        self.update_keepalive();
    }

    /// `kind` expired. Breaks when the connection closed.
    fn on_expiry(&mut self, cfg: &TcpConfig, now: Instant, kind: TimerKind) -> ControlFlow<()> {
        match kind {
            TimerKind::TimeWait => {
                self.timers.clear(kind);
                self.set_state(State::Closed);
                return ControlFlow::Break(());
            }
            TimerKind::UserTimeout => {
                self.fail(self.timeout_error(self.rtx_count));
                return ControlFlow::Break(());
            }
            TimerKind::DelayedAck => {
                self.timers.clear(kind);
                self.ack_pending = true;
                // No reply took the ACK along: stop betting on one.
                self.pingpong = false;
            }
            TimerKind::Rack => {
                let (lost, timer) = self.rack.detect_loss(now);
                self.timers.set_or_clear(kind, timer);
                if lost > 0 {
                    self.enter_recovery(now);
                }
            }
            TimerKind::Tlp => {
                self.timers.clear(kind);
                self.tlp_due = true;
                self.tlp_backoff = self.tlp_backoff.saturating_add(1);
            }
            TimerKind::KeepAlive => {
                if self.keepalive_sent >= self.keepalive_probes {
                    self.fail(self.timeout_error(self.keepalive_sent));
                    return ControlFlow::Break(());
                }
                self.keepalive_sent += 1;
                self.probe_due = true;
                self.update_keepalive();
            }
            TimerKind::Retransmit => return self.on_retransmission_timeout(cfg, now),
            TimerKind::Persist => {
                self.timers.clear(kind);
                self.probe_due = true;
                self.persist_backoff = self.persist_backoff.saturating_add(1);
            }
        }
        ControlFlow::Continue(())
    }

    /// RFC 6298 §5.4-5.6: retransmit the earliest unacknowledged segment,
    /// back off, restart the timer; give up after the retry limit.
    fn on_retransmission_timeout(&mut self, cfg: &TcpConfig, now: Instant) -> ControlFlow<()> {
        self.rtx_count += 1;
        let limit = match self.state {
            State::SynSent | State::SynReceived => cfg.syn_retries,
            _ => cfg.data_retries,
        };
        if self.rtx_count > limit {
            self.fail(self.timeout_error(limit));
            return ControlFlow::Break(());
        }
        // Everything after SND.UNA is resent (go-back-N).
        self.rtt.on_retransmit();
        // RFC 5681 §3.1 eq. 4 / RFC 6675 §5.1: back to slow start from
        // one segment, forget SACK state, no recovery for this window.
        let flight = (self.snd_max - self.snd_una) as usize;
        if self.state.is_synchronized() && flight > 0 {
            self.cc.on_rto(now, flight);
        }
        self.rack.clear();
        self.timers.clear(TimerKind::Rack);
        self.timers.clear(TimerKind::Tlp);
        self.tlp_due = false;
        self.tlp_outstanding = false;
        self.recovery = None;
        self.rtx_front = false;
        self.dup_acks = 0;
        self.recover = self.snd_max;
        self.snd_nxt = self.snd_una;
        self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        trace!(rto = ?self.rtt.rto(), count = self.rtx_count, "retransmission timeout");
        ControlFlow::Continue(())
    }

    /// Persist timer (RFC 9293 §3.8.6.1): armed while the peer's window is zero,
    /// data waits and nothing is in flight to elicit a window update.
    pub(super) fn update_persist(&mut self, now: Instant) {
        // Also the SWS override timer (RFC 9293 §3.8.6.2.1): data held back
        // because the window is smaller than a segment, with nothing in flight.
        let unsent = self.unsent_len();
        let stalled = self.state.is_synchronized()
            && unsent > 0
            && self.snd_una == self.snd_max
            && (self.snd_wnd as usize) < unsent.min(self.send_mss);
        if !stalled {
            self.timers.clear(TimerKind::Persist);
            self.persist_backoff = 0;
            self.probe_due = false;
        } else if !self.timers.is_set(TimerKind::Persist) && !self.probe_due {
            let backoff = self.rtt.rto() * (1u32 << self.persist_backoff.min(10));
            let at = now + backoff.min(Duration::from_secs(60));
            self.timers.set(TimerKind::Persist, at);
        }
    }

    pub(super) fn unsent_len(&self) -> usize {
        let sent = self.snd_nxt.distance(self.snd_data_start).max(0) as usize;
        self.send_buf.len().saturating_sub(sent)
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) while data is outstanding;
    /// never later than the retransmission timer.
    ///
    /// Unlike RFC 8985 §7.2 (and Linux), the probe is armed in recovery too,
    /// and an unanswered probe is followed by more, each after twice the
    /// wait of the one before, until the RTO. With a small window, a flight
    /// can go silent: the data (or a retransmission) arrives, its ACK is
    /// lost, and so is the answer to the one probe. Without another probe
    /// that costs a full RTO (200 ms at least) where the path's RTT may be
    /// 50 µs: over TUN with segmentation offload and 5 % loss each way, 22
    /// such RTOs took 4.4 s of a 5.9 s download of 100 MB.
    pub(super) fn update_tlp(&mut self, now: Instant) {
        let eligible =
            self.sack_ok && self.may_send_data() && self.snd_una != self.snd_max && !self.tlp_due;
        if !eligible {
            self.timers.clear(TimerKind::Tlp);
            return;
        }
        if !self.timers.is_set(TimerKind::Tlp) {
            // In microseconds: this runs on every ACK while data is in flight.
            let delack = WORST_CASE_DELACK.as_micros() as u64;
            if let Some(pto) = self.rack.pto_micros(delack) {
                let wait = pto.saturating_mul(1 << self.tlp_backoff.min(16));
                let at = now.total_micros().saturating_add(wait);
                let at = match self.timers.get(TimerKind::Retransmit) {
                    Some(rto) => at.min(rto.total_micros()),
                    None => at,
                };
                self.timers.set(TimerKind::Tlp, Instant::from_micros(at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_timer() {
        let mut t = Timers::new();
        assert_eq!(t.next(), None);
        t.set(TimerKind::Persist, Instant::from_millis(30));
        t.set(TimerKind::DelayedAck, Instant::from_millis(10));
        t.set(TimerKind::Retransmit, Instant::from_millis(20));
        assert_eq!(
            t.next(),
            Some((TimerKind::DelayedAck, Instant::from_millis(10)))
        );
        t.clear(TimerKind::DelayedAck);
        assert_eq!(t.get(TimerKind::DelayedAck), None);
        assert_eq!(
            t.next(),
            Some((TimerKind::Retransmit, Instant::from_millis(20)))
        );
        t.set_or_clear(TimerKind::Retransmit, None);
        assert!(!t.is_set(TimerKind::Retransmit));
        assert!(t.due(TimerKind::Persist, Instant::from_millis(30)));
        assert!(!t.due(TimerKind::Persist, Instant::from_millis(29)));
        t.clear_all();
        assert_eq!(t.next(), None);
    }
}

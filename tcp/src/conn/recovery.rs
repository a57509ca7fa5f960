//! Acknowledgement processing and loss recovery: RFC 6298 RTT and RTO
//! bookkeeping on new ACKs, NewReno (RFC 5681, RFC 6582) for peers without
//! SACK, RACK (RFC 8985) with PRR (RFC 6937) for peers with it.

use core::time::Duration;

use tracing::trace;

use super::timers::TimerKind;
use super::{State, Tcb, TcpConfig};
use crate::cc::CongestionControl;
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// Loss recovery in progress (RFC 6675 §5 with SACK, RFC 6582 without).
#[derive(Debug, Clone, Copy)]
pub(super) struct Recovery {
    /// RecoveryPoint: recovery ends when this is cumulatively acknowledged.
    pub(super) point: SeqNumber,
    /// RFC 5681 §3.2 / RFC 6582 window inflation (without SACK only).
    pub(super) inflation: usize,
    /// Proportional Rate Reduction (RFC 6937), with SACK: RecoverFS,
    /// prr_delivered, prr_out, and what the last ACK allows us to send.
    pub(super) recover_fs: usize,
    pub(super) prr_delivered: usize,
    pub(super) prr_out: usize,
    pub(super) sndcnt: usize,
}

impl Tcb {
    /// The loss-detection part of an acceptable ACK (RFC 9293 §3.10.7.4
    /// fifth step): RACK (RFC 8985 §6.2) sees every ACK, then SND.UNA
    /// advances or a duplicate is counted, and PRR meters what may follow.
    #[inline]
    pub(super) fn process_ack(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) {
        // RACK: every ACK updates what is known delivered, then segments
        // sent before a delivered one may be deemed lost.
        let mut rack_lost = 0;
        let mut delivered = 0;
        // With nothing tracked and no SACK blocks (a receiver's ACKs on its
        // data segments), there is nothing for RACK to learn.
        let sack = seg.options.sack.as_slice();
        if self.sack_ok && !(self.rack.is_empty() && sack.is_empty()) {
            delivered = self.rack.on_ack(seg.ack, sack, now);
            let (lost, timer) = self.rack.detect_loss(now);
            self.timers.set_or_clear(TimerKind::Rack, timer);
            rack_lost = lost;
        }
        let window_changed = (u32::from(seg.window) << self.snd_wscale) != self.snd_wnd;
        if seg.ack.distance(self.snd_una) > 0 {
            let tsecr = seg.options.timestamps.map(|(_, ecr)| ecr);
            self.on_new_ack(cfg, now, seg.ack, tsecr);
        } else if !self.sack_ok
            && seg.ack == self.snd_una
            && self.snd_max != self.snd_una
            && payload.is_empty()
            && !seg.flags.fin()
            && !window_changed
        {
            // RFC 5681 §2 "duplicate acknowledgment" (peers without SACK).
            self.on_dup_ack(now);
        }
        if rack_lost > 0 {
            self.enter_recovery(now);
        }
        if self.sack_ok {
            self.prr_on_ack(delivered);
            if delivered > 0 {
                // Restart the probe timeout from this sign of life.
                self.tlp_backoff = 0;
                if self.recovery.is_some() {
                    self.timers.clear(TimerKind::Tlp);
                    self.tlp_outstanding = false;
                }
            }
        }
    }

    /// RFC 5681 §4.1: before sending data after more than one RTO without
    /// sending any, with nothing in flight, cwnd drops to the restart
    /// window min(IW, cwnd); the ACK clock that validated it is gone (Linux
    /// tcp_slow_start_after_idle).
    #[inline]
    pub(super) fn restart_after_idle(&mut self, now: Instant) {
        if self.snd_una != self.snd_max || self.unsent_len() == 0 {
            return;
        }
        let rto = self.rtt.rto();
        if let Some(last) = self.last_data_sent {
            if now.saturating_duration_since(last) > rto {
                trace!(idle = ?now.saturating_duration_since(last), "restart window");
                self.cc.on_idle_restart(now);
                // Once per idle period, even if the peer's window holds the data back.
                self.last_data_sent = Some(now);
            }
        }
    }

    /// A duplicate ACK from a peer without SACK: the third starts fast
    /// retransmit and NewReno recovery (RFC 5681 §3.2, RFC 6582).
    pub(super) fn on_dup_ack(&mut self, now: Instant) {
        self.dup_acks = self.dup_acks.saturating_add(1);
        if let Some(r) = self.recovery.as_mut() {
            // RFC 5681 §3.2 step 4: each further duplicate inflates cwnd.
            r.inflation += self.send_mss;
            return;
        }
        if self.dup_acks >= 3 {
            self.enter_recovery(now);
        }
    }

    /// Loss detected: one congestion response per window of data.
    pub(super) fn enter_recovery(&mut self, now: Instant) {
        if self.recovery.is_some() {
            return;
        }
        // RFC 6582 §3.2 step 2, RFC 6675 §5.1: no second response for the
        // window that caused the last one (or was in flight at an RTO).
        let beyond = self.snd_una.distance(self.recover);
        let allowed = if self.sack_ok {
            beyond >= 0
        } else {
            beyond > 0
        };
        if !allowed {
            return;
        }
        let flight = (self.snd_max - self.snd_una) as usize;
        trace!(snd_una = %self.snd_una, flight, "loss recovery");
        self.cc.on_congestion_event(now, flight);
        self.recover = self.snd_max;
        self.recovery = Some(Recovery {
            point: self.snd_max,
            inflation: if self.sack_ok { 0 } else { 3 * self.send_mss },
            recover_fs: flight,
            prr_delivered: 0,
            prr_out: 0,
            // The fast retransmit goes out at once, whatever found the loss
            // (an ACK or the reordering timer): RFC 6675 §5 (4.2).
            sndcnt: self.send_mss,
        });
        self.timers.clear(TimerKind::Tlp);
        // Without SACK, the segment at SND.UNA is the one presumed lost.
        self.rtx_front = !self.sack_ok;
    }

    /// SND.UNA < SEG.ACK =< SND.MAX: new data (or our SYN/FIN) acknowledged.
    pub(super) fn on_new_ack(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        ack: SeqNumber,
        tsecr: Option<u32>,
    ) {
        let acked = (ack - self.snd_una) as usize;
        let flight_before = (self.snd_max - self.snd_una) as usize;

        let data_acked = ack
            .distance(self.snd_data_start)
            .clamp(0, self.send_buf.len() as i32) as usize;
        self.send_buf.consume(data_acked);
        self.snd_data_start += data_acked;
        self.snd_una = ack;
        if self.snd_nxt.distance(ack) < 0 {
            self.snd_nxt = ack;
        }
        self.sample_rtt(now, ack, tsecr);
        // Forward progress ends the back-off even without a fresh sample:
        // after a timeout everything in flight is a retransmission, so Karn's
        // rule alone would keep the doubled RTO for the rest of the transfer.
        self.rtt.reset_backoff();
        self.rtx_count = 0;
        self.soft_error = None;
        let outstanding = self.snd_una != self.snd_max;
        let rto = self.rtt.rto();
        let user_timeout = self.user_timeout.filter(|_| outstanding);
        self.timers
            .set_or_clear(TimerKind::Retransmit, outstanding.then(|| now + rto));
        self.timers
            .set_or_clear(TimerKind::UserTimeout, user_timeout.map(|d| now + d));
        self.dup_acks = 0;
        self.tlp_outstanding = false;
        self.timers.clear(TimerKind::Tlp);
        self.tlp_backoff = 0;
        match self.recovery.as_mut() {
            Some(r) if ack.distance(r.point) >= 0 => {
                // Full acknowledgement: recovery ends (RFC 6582 §3.2 step 3).
                self.recovery = None;
                self.cc.on_recovery_exit(now);
            }
            // With SACK, RACK decides what else is lost.
            Some(_) if self.sack_ok => {}
            Some(r) => {
                // Partial acknowledgement (RFC 6582 §3.2 step 5): the next hole
                // is lost too. Deflate by what was acked, add back one SMSS.
                r.inflation = r.inflation.saturating_sub(acked) + self.send_mss;
                self.rtx_front = true;
            }
            None => self.cc.on_ack(now, acked, flight_before, self.rtt.srtt()),
        }
        if data_acked > 0 {
            self.notify = true;
        }
        if self.our_fin_acked() {
            match self.state {
                State::FinWait1 => self.set_state(State::FinWait2),
                State::Closing => self.enter_time_wait(cfg, now),
                State::LastAck => {
                    self.set_state(State::Closed);
                    self.clear_timers();
                }
                _ => {}
            }
        }
    }

    /// RTTM (RFC 7323 §4): the echoed timestamp dates the segment that
    /// caused this ACK, retransmission or not; without timestamps, the
    /// timed segment under Karn's rule (RFC 6298 §3).
    #[inline]
    fn sample_rtt(&mut self, now: Instant, ack: SeqNumber, tsecr: Option<u32>) {
        match tsecr.filter(|&e| self.ts_ok && e != 0) {
            Some(ecr) => {
                if ack.distance(self.rtt_sample_after) >= 0 {
                    let ms = self.ts_now(now).wrapping_sub(ecr);
                    if ms < 60_000 {
                        self.rtt
                            .on_timestamp_sample(Duration::from_millis(u64::from(ms)));
                    }
                    self.rtt_sample_after = self.snd_max;
                }
            }
            None => self.rtt.on_ack(ack, now),
        }
    }

    /// proportion to what was delivered while pipe exceeds ssthresh, then
    /// slow-start reduction bound (PRR-SSRB) back up to ssthresh. The first
    /// ACK of a recovery always allows the fast retransmit (RFC 6675 §5 (4.2)).
    pub(super) fn prr_on_ack(&mut self, delivered: usize) {
        let pipe = self.pipe();
        let ssthresh = self.cc.ssthresh();
        let mss = self.send_mss;
        let Some(r) = self.recovery.as_mut() else {
            return;
        };
        let first = r.prr_delivered == 0 && r.prr_out == 0;
        r.prr_delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            let fs = r.recover_fs.max(1);
            (r.prr_delivered * ssthresh)
                .div_ceil(fs)
                .saturating_sub(r.prr_out)
        } else {
            let limit = r.prr_delivered.saturating_sub(r.prr_out).max(delivered) + mss;
            (ssthresh - pipe).min(limit)
        };
        r.sndcnt = if first { sndcnt.max(mss) } else { sndcnt };
    }

    /// Bytes in the network: RACK's count when it tracks every segment.
    pub(super) fn pipe(&self) -> usize {
        self.rack
            .in_flight()
            .unwrap_or((self.snd_nxt - self.snd_una) as usize)
    }

    /// What the congestion controller lets us add to the network now.
    pub(super) fn cwnd_room(&self) -> usize {
        let cwnd = self.cc.cwnd();
        if self.sack_ok {
            return match self.recovery {
                Some(r) => r.sndcnt,
                None => cwnd.saturating_sub(self.pipe()),
            };
        }
        match self.recovery {
            // RFC 5681 §3.2 steps 3-4: the inflated window.
            Some(r) => (cwnd + r.inflation).saturating_sub((self.snd_max - self.snd_una) as usize),
            // RFC 3042 limited transmit: one new segment per early duplicate ACK.
            None => (cwnd + self.dup_acks.min(2) as usize * self.send_mss)
                .saturating_sub((self.snd_nxt - self.snd_una) as usize),
        }
    }

    /// How much of a retransmission of `len` from `start` the peer's window
    /// admits: up to its right edge, and nothing from past it, except at
    /// SND.UNA. A peer may shrink its window below what was sent (RFC 9293
    /// §3.8.6.2.1 discourages it, but must be lived with) and then drops a
    /// segment past the edge with the ACK it carries; Linux holds such
    /// retransmissions back the same way (`tcp_retransmit_skb`).
    pub(super) fn window_admits(&self, start: SeqNumber, len: u32) -> Option<usize> {
        let room = (self.snd_una + self.snd_wnd).distance(start);
        if room > 0 {
            Some(len.min(room as u32) as usize)
        } else if start == self.snd_una {
            Some(len as usize)
        } else {
            None
        }
    }

    /// The retransmission loss recovery wants next, as (start, sequence length).
    pub(super) fn pick_retransmission(&mut self, max_payload: usize) -> Option<(SeqNumber, usize)> {
        if self.sack_ok {
            // RACK: segments deemed lost, lowest first, as cwnd allows.
            let (start, end) = self.rack.first_lost()?;
            let len = self.window_admits(start, end - start)?.min(max_payload);
            let room = match self.recovery {
                Some(r) => r.sndcnt,
                None => self.cc.cwnd().saturating_sub(self.pipe()),
            };
            return (room >= len.min(self.send_mss)).then_some((start, len));
        }
        self.recovery?;
        if !self.rtx_front {
            return None;
        }
        // Fast retransmit / NewReno partial ACK: the segment at SND.UNA.
        self.rtx_front = false;
        let len = ((self.snd_max - self.snd_una) as usize).min(max_payload);
        (len > 0).then_some((self.snd_una, len))
    }
}

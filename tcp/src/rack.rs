//! RACK-TLP loss detection (RFC 8985).
//!
//! Every data segment in flight has a record with its (re)transmission time.
//! A segment is deemed lost once a segment sent *after* it has been delivered
//! (cumulatively acknowledged or SACKed) and more than an RTT plus a
//! reordering window has passed since it was sent (RFC 8985 §6.2). Because
//! the rule is about send times, not sequence numbers, it also finds lost
//! retransmissions, which duplicate-ACK counting (RFC 5681, RFC 6675) cannot.
//! The tail loss probe (§7) elicits the SACKs that let this rule work when
//! the last segments of a flight are lost.
//!
//! Records are kept in sequence order and cover SND.UNA..SND.NXT; their number
//! is bounded ([`MAX_RECORDS`]). Past the bound, segments are not tracked and
//! the retransmission timer remains their only loss detector. Segments of one
//! size sent back to back at one instant share a record: RACK judges by send
//! time, so they would all be judged alike, and a flight costs one record
//! (a SACK or a retransmission that covers part of one splits it).

use core::time::Duration;
use std::collections::VecDeque;

use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::SackBlock;

/// Most segments tracked per connection (a 4 MiB window of 1 KiB segments).
pub const MAX_RECORDS: usize = 4096;

/// Least probe timeout, whatever the RTT: timers are millisecond-grained.
const MIN_PTO: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// Sequence length of each segment the record covers (the first may
    /// have been cut shorter by a partial ACK).
    pub seg: u32,
    pub xmit: Instant,
    pub retransmitted: bool,
    pub sacked: bool,
    pub lost: bool,
}

impl Record {
    fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// The last segment the record covers.
    fn last_segment(&self) -> (SeqNumber, SeqNumber) {
        let len = self.end - self.start;
        (self.start + (len - len.min(self.seg)), self.end)
    }
}

#[derive(Debug)]
pub struct Rack {
    recs: VecDeque<Record>,
    /// Some segment was not recorded (bound reached); counts are approximate.
    overflow: bool,
    /// Bytes of records neither SACKed nor lost, kept as records change:
    /// the sender asks for it before every segment.
    flight: usize,
    /// Records marked lost (never also SACKed): most of the time zero, which
    /// spares the sender a scan of the flight before every segment.
    lost: usize,
    /// What delivered segments taught: RACK.xmit_ts, end_seq, rtt, min RTT
    /// and SRTT.
    est: Estimate,
}

/// RACK's state from delivered segments (RFC 8985 §6.2 steps 1-3), apart
/// from the records so that a run of deliveries can update a copy of it
/// kept in registers.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    /// RACK.xmit_ts / RACK.end_seq: the most recently sent delivered segment.
    xmit_ts: Option<Instant>,
    end_seq: SeqNumber,
    /// RACK.rtt: RTT of that segment. RTTs are kept in microseconds, the
    /// engine's clock unit: `Duration` arithmetic (u128 conversions, a
    /// division per smoothing) was a good part of each delivered segment.
    rtt_us: u64,
    min_rtt_us: Option<u64>,
    /// Smoothed RTT in microseconds, one sample per ACK (for the PTO).
    srtt_us: Option<u64>,
}

impl Estimate {
    /// `r` was sent before the most recently sent delivered segment
    /// (RFC 8985 §6.2 step 5, RACK_sent_after the other way round), whose
    /// send time is `xmit_ts`.
    #[inline]
    fn sent_before(&self, r: &Record, xmit_ts: Instant) -> bool {
        r.xmit < xmit_ts || (r.xmit == xmit_ts && self.end_seq.distance(r.end) > 0)
    }

    /// `r` was delivered (cumulatively acknowledged or SACKed) at `now`.
    #[inline]
    fn deliver(&mut self, r: &Record, now: Instant) {
        let rtt = now.total_micros().saturating_sub(r.xmit.total_micros());
        // RFC 8985 §6.2 step 2: a retransmitted segment delivered sooner than
        // min RTT was acknowledged for its original transmission.
        if r.retransmitted && self.min_rtt_us.is_some_and(|m| rtt < m) {
            return;
        }
        self.update(r.xmit, r.end, now);
    }

    /// RACK_update (RFC 8985 §6.2 step 2) for a delivered segment sent at
    /// `xmit` and ending at `end`, with the minimum and smoothed RTT.
    #[inline]
    fn update(&mut self, xmit: Instant, end: SeqNumber, now: Instant) {
        let rtt = now.total_micros().saturating_sub(xmit.total_micros());
        self.min_rtt_us = Some(self.min_rtt_us.map_or(rtt, |m| m.min(rtt)));
        self.srtt_us = Some(match self.srtt_us {
            None => rtt,
            Some(s) => (s.saturating_mul(7).saturating_add(rtt)) / 8,
        });
        let newer = match self.xmit_ts {
            None => true,
            Some(t) => xmit > t || (xmit == t && end.distance(self.end_seq) > 0),
        };
        if newer {
            self.xmit_ts = Some(xmit);
            self.end_seq = end;
            self.rtt_us = rtt;
        }
    }
}

impl Default for Rack {
    fn default() -> Self {
        Rack::new()
    }
}

impl Rack {
    pub fn new() -> Rack {
        Rack {
            recs: VecDeque::new(),
            overflow: false,
            flight: 0,
            lost: 0,
            est: Estimate {
                xmit_ts: None,
                end_seq: SeqNumber(0),
                rtt_us: 0,
                min_rtt_us: None,
                srtt_us: None,
            },
        }
    }

    /// Nothing in flight is tracked.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Bytes believed in the network: neither SACKed nor lost (RFC 6675 pipe
    /// with RACK's notion of lost). `None` when tracking is incomplete.
    pub fn in_flight(&self) -> Option<usize> {
        if self.overflow {
            return None;
        }
        self.check_flight();
        Some(self.flight)
    }

    /// Debug builds recount what `flight` tracks.
    fn check_flight(&self) {
        debug_assert_eq!(
            self.lost,
            self.recs.iter().filter(|r| r.lost && !r.sacked).count()
        );
        debug_assert_eq!(
            self.flight,
            self.recs
                .iter()
                .filter(|r| !r.sacked && !r.lost)
                .map(Record::len)
                .sum::<usize>()
        );
    }

    #[cfg(test)]
    pub fn srtt(&self) -> Option<Duration> {
        self.est.srtt_us.map(Duration::from_micros)
    }

    /// Probe timeout (RFC 8985 §7.2): 2·SRTT, plus the peer's worst-case
    /// delayed-ACK time when only one segment is in flight.
    #[cfg(test)]
    pub fn pto(&self, delack: Duration) -> Option<Duration> {
        let delack = u64::try_from(delack.as_micros()).unwrap_or(u64::MAX);
        self.pto_micros(delack).map(Duration::from_micros)
    }

    /// [`Rack::pto`] in microseconds, with the delayed-ACK time in
    /// microseconds: the probe timer is re-armed on every ACK.
    #[inline]
    pub fn pto_micros(&self, delack_us: u64) -> Option<u64> {
        let mut pto = self.est.srtt_us?.saturating_mul(2);
        let one_segment = self.recs.len() == 1 && self.recs[0].len() <= self.recs[0].seg as usize;
        if one_segment {
            pto = pto.saturating_add(delack_us);
        }
        Some(pto.max(MIN_PTO.as_micros() as u64))
    }

    /// A segment covering `start..end` was sent at `now` for the first time
    /// since the last reset (or again, after a timeout cleared the records).
    pub fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant, retransmitted: bool) {
        if end.distance(start) <= 0 {
            return;
        }
        let len = end - start;
        if let Some(last) = self.recs.back_mut() {
            if start != last.end {
                // Not contiguous with what we track: lose precision, not safety.
                self.overflow = true;
                return;
            }
            let same_burst = last.xmit == now
                && last.seg == len
                && !(retransmitted || last.retransmitted || last.sacked || last.lost);
            if same_burst {
                last.end = end;
                self.flight += len as usize;
                return;
            }
        }
        if self.recs.len() >= MAX_RECORDS {
            self.overflow = true;
            return;
        }
        self.recs.push_back(Record {
            start,
            end,
            seg: len,
            xmit: now,
            retransmitted,
            sacked: false,
            lost: false,
        });
        self.flight += (end - start) as usize;
    }

    /// `start..end` was retransmitted at `now`.
    pub fn on_retransmit(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        self.split_at(start);
        self.split_at(end);
        for r in self.recs.iter_mut() {
            if r.start.distance(start) >= 0 && end.distance(r.end) >= 0 {
                if r.lost && !r.sacked {
                    self.flight += r.len();
                    self.lost -= 1;
                }
                r.xmit = now;
                r.retransmitted = true;
                r.lost = false;
            }
        }
    }

    /// Makes `seq` a record boundary if it falls inside one.
    fn split_at(&mut self, seq: SeqNumber) {
        let Some(i) = self
            .recs
            .iter()
            .position(|r| seq.distance(r.start) > 0 && r.end.distance(seq) > 0)
        else {
            return;
        };
        if self.recs.len() >= MAX_RECORDS {
            self.overflow = true;
            return;
        }
        let mut tail = self.recs[i];
        if tail.lost && !tail.sacked {
            self.lost += 1;
        }
        tail.start = seq;
        self.recs[i].end = seq;
        self.recs.insert(i + 1, tail);
    }

    /// Marks every segment in flight with more than `max_len` bytes of
    /// sequence space lost: the path MTU fell below it and it will not
    /// arrive (RFC 1191 §6; Linux tcp_simple_retransmit). Returns how many.
    /// `None` when some segments are not tracked and cannot be marked.
    pub fn mark_oversized_lost(&mut self, max_len: usize) -> Option<usize> {
        if self.overflow {
            return None;
        }
        let mut marked = 0;
        for r in self.recs.iter_mut() {
            if !r.sacked && !r.lost && r.len().min(r.seg as usize) > max_len {
                r.lost = true;
                self.flight -= r.len();
                self.lost += 1;
                marked += 1;
            }
        }
        self.check_flight();
        Some(marked)
    }

    /// The first segment deemed lost and not yet retransmitted since.
    pub fn first_lost(&self) -> Option<(SeqNumber, SeqNumber)> {
        self.check_flight();
        if self.lost == 0 {
            return None;
        }
        self.recs
            .iter()
            .find(|r| r.lost && !r.sacked)
            .map(|r| (r.start, r.end))
    }

    /// The lowest segment not yet known delivered (SND.UNA's segment).
    pub fn first_unsacked(&self) -> Option<(SeqNumber, SeqNumber)> {
        self.recs
            .iter()
            .find(|r| !r.sacked)
            .map(|r| (r.start, r.end))
    }

    /// The highest segment in flight (what a tail loss probe retransmits).
    pub fn last(&self) -> Option<(SeqNumber, SeqNumber)> {
        self.recs
            .iter()
            .rev()
            .find(|r| !r.sacked)
            .map(Record::last_segment)
    }

    /// Processes an ACK: cumulative `ack` and its SACK blocks (RFC 8985 §6.2
    /// steps 1-3: RACK.xmit_ts, end_seq and rtt follow the most recently
    /// sent delivered segment). Returns the bytes newly delivered, cumulatively
    /// or by SACK (RFC 6937 DeliveredData).
    #[inline]
    pub fn on_ack(&mut self, ack: SeqNumber, sack: &[SackBlock], now: Instant) -> usize {
        let delivered = self.on_cumulative_ack(ack, now);
        if self.recs.is_empty() {
            self.overflow = false;
        }
        if sack.is_empty() {
            delivered
        } else {
            delivered + self.on_sack(sack, now)
        }
    }

    /// The SACK blocks of an ACK (RFC 8985 §6.2 steps 1-3, RFC 2018): out
    /// of line, so the common ACK without them sets up no frame for them.
    /// Returns the bytes newly SACKed.
    #[inline(never)]
    fn on_sack(&mut self, sack: &[SackBlock], now: Instant) -> usize {
        let mut delivered = 0;
        for b in sack {
            if b.right.distance(b.left) <= 0 {
                continue;
            }
            // A record of several segments may be SACKed in part.
            self.split_at(b.left);
            self.split_at(b.right);
            // Newly SACKed records, without allocating: only the most recent
            // send time matters for RACK, so overflow keeps the latest.
            let mut hits = [None::<Record>; 8];
            let mut n = 0;
            for r in self.recs.iter_mut() {
                if !r.sacked && r.start.distance(b.left) >= 0 && b.right.distance(r.end) >= 0 {
                    if r.lost {
                        self.lost -= 1;
                    } else {
                        self.flight -= r.len();
                    }
                    r.sacked = true;
                    r.lost = false;
                    delivered += r.len();
                    if n < hits.len() {
                        hits[n] = Some(*r);
                        n += 1;
                    } else {
                        hits[hits.len() - 1] = Some(*r).max_by_xmit(hits[hits.len() - 1]);
                    }
                }
            }
            for r in hits.iter().flatten() {
                self.est.deliver(r, now);
            }
        }
        delivered
    }

    /// Records wholly below `ack` leave, delivered; one that `ack` cuts
    /// keeps its unacknowledged part. Returns the bytes newly delivered.
    ///
    /// Every ACK comes here, so the estimate is updated once per ACK, from
    /// the most recently sent record it delivers: RFC 8985 §6.2 step 2 runs
    /// RACK_update on each in send order, and the last one's RACK.xmit_ts,
    /// end_seq and rtt are what remain; its RTT is also the least of them
    /// (it was sent last), so the minimum RTT comes out the same. A
    /// retransmission delivered sooner than the minimum RTT is passed over
    /// (step 2: it was the original transmission that arrived).
    #[inline]
    fn on_cumulative_ack(&mut self, ack: SeqNumber, now: Instant) -> usize {
        let mut delivered = 0;
        let (mut flight, mut lost) = (self.flight, self.lost);
        let min_rtt = self.est.min_rtt_us.unwrap_or(0);
        let now_us = now.total_micros();
        let mut newest: Option<(Instant, SeqNumber)> = None;
        // Most ACKs end inside the front record (a burst shares one), so
        // records are popped one by one: no iterator or drain to set up.
        while let Some(r) = self.recs.front_mut() {
            if r.end.distance(ack) > 0 {
                if r.start.distance(ack) < 0 {
                    // Partly acknowledged: the rest stays in flight.
                    let part = (ack - r.start) as usize;
                    delivered += part;
                    r.start = ack;
                    if !r.sacked {
                        if !r.lost {
                            flight -= part;
                        }
                        // Its acknowledged segments were sent after those
                        // of the records gone (sequence order, same or
                        // later time).
                        let rtt = now_us.saturating_sub(r.xmit.total_micros());
                        if !r.retransmitted || rtt >= min_rtt {
                            newest = Some((r.xmit, ack));
                        }
                    }
                }
                break;
            }
            let r = *r;
            self.recs.pop_front();
            if r.sacked {
                continue;
            }
            let len = r.len();
            delivered += len;
            if r.lost {
                lost -= 1;
            } else {
                flight -= len;
            }
            if r.retransmitted && now_us.saturating_sub(r.xmit.total_micros()) < min_rtt {
                continue;
            }
            // In sequence order, so a tie in send time goes to the later end.
            if newest.is_none_or(|(t, _)| r.xmit >= t) {
                newest = Some((r.xmit, r.end));
            }
        }
        (self.flight, self.lost) = (flight, lost);
        if let Some((xmit, end)) = newest {
            self.est.update(xmit, end, now);
        }
        delivered
    }

    /// RFC 8985 §6.2 step 5: marks segments lost; returns the bytes newly
    /// marked and when to check again (the reordering timer, §6.3).
    #[inline]
    pub fn detect_loss(&mut self, now: Instant) -> (usize, Option<Instant>) {
        let Some(xmit_ts) = self.est.xmit_ts else {
            return (0, None);
        };
        // The common case, said at once and in line: the oldest record in
        // flight is a first transmission sent after RACK.xmit_ts, so every
        // record is (see the loop in `detect_loss_scan`).
        match self.recs.front() {
            None => (0, None),
            Some(r) if !r.retransmitted && !self.est.sent_before(r, xmit_ts) => (0, None),
            Some(_) => self.detect_loss_scan(now, xmit_ts),
        }
    }

    /// The records sent before RACK.xmit_ts (`xmit_ts`), judged one by
    /// one; out of line, as it runs only when one may be lost.
    #[inline(never)]
    fn detect_loss_scan(&mut self, now: Instant, xmit_ts: Instant) -> (usize, Option<Instant>) {
        let est = self.est;
        let sent_before = |r: &Record| est.sent_before(r, xmit_ts);
        // §6.2 step 4: a quarter of the minimum RTT, at most SRTT.
        let reo_wnd = est
            .min_rtt_us
            .map_or(0, |m| (m / 4).min(est.srtt_us.unwrap_or(m)));
        let wait = est.rtt_us.saturating_add(reo_wnd);
        let mut lost = 0;
        let mut timeout: Option<Instant> = None;
        for r in self.recs.iter_mut() {
            let sent_before = sent_before(r);
            if !sent_before && !r.retransmitted {
                // First transmissions go out in sequence order, and a
                // retransmission is later than the first transmission of
                // everything below it: every record after this one was sent
                // after it, so after RACK.xmit_ts too. This keeps the common
                // case (nothing lost) at one record per ACK.
                break;
            }
            if r.sacked || r.lost || !sent_before {
                continue;
            }
            let deadline = Instant::from_micros(r.xmit.total_micros().saturating_add(wait));
            if now >= deadline {
                r.lost = true;
                lost += r.len();
                self.flight -= r.len();
                self.lost += 1;
            } else {
                timeout = Some(timeout.map_or(deadline, |t| t.min(deadline)));
            }
        }
        (lost, timeout)
    }

    /// RFC 8985 §6.3 on a retransmission timeout: forget the flight; what is
    /// sent again is recorded afresh.
    pub fn clear(&mut self) {
        self.recs.clear();
        self.flight = 0;
        self.lost = 0;
        self.overflow = false;
    }
}

trait MaxByXmit {
    fn max_by_xmit(self, other: Option<Record>) -> Option<Record>;
}

impl MaxByXmit for Option<Record> {
    fn max_by_xmit(self, other: Option<Record>) -> Option<Record> {
        match (self, other) {
            (Some(a), Some(b)) => Some(if a.xmit >= b.xmit { a } else { b }),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    fn seg(i: u32) -> (SeqNumber, SeqNumber) {
        (SeqNumber(1000 + i * 100), SeqNumber(1100 + i * 100))
    }

    fn sent(n: u32) -> Rack {
        let mut r = Rack::new();
        for i in 0..n {
            let (s, e) = seg(i);
            r.on_send(s, e, t(u64::from(i) * 10), false);
        }
        r
    }

    #[test]
    fn later_delivery_marks_earlier_segment_lost_after_rtt_plus_reo_wnd_rfc8985_6_2() {
        let mut r = sent(4);
        // Segment 0 lost; 1..3 SACKed at t=1000 (RTT ~ 1000 us).
        let (s1, _) = seg(1);
        let (_, e3) = seg(3);
        r.on_ack(
            SeqNumber(1000),
            &[SackBlock {
                left: s1,
                right: e3,
            }],
            t(1000),
        );
        let (lost, timer) = r.detect_loss(t(1000));
        // Segment 0 was sent at 0; RACK.rtt = 1000 - 30 = 970; reo_wnd = 970/4.
        assert_eq!(lost, 0, "within RTT + reordering window: not yet");
        let deadline = timer.expect("reordering timer armed");
        assert_eq!(deadline, t(970 + 242));
        let (lost, _) = r.detect_loss(deadline);
        assert_eq!(lost, 100);
        assert_eq!(r.first_lost(), Some(seg(0)));
        assert_eq!(
            r.in_flight(),
            Some(0),
            "lost and SACKed bytes are not in flight"
        );
    }

    #[test]
    fn lost_retransmission_is_detected_by_send_time_rfc8985_2() {
        let mut r = sent(3);
        let (s1, e1) = seg(1);
        r.on_ack(
            SeqNumber(1000),
            &[SackBlock {
                left: s1,
                right: e1,
            }],
            t(1000),
        );
        r.detect_loss(t(5000));
        let (s0, e0) = seg(0);
        assert_eq!(r.first_lost(), Some((s0, e0)));
        // Retransmit segment 0 at 5000, then send new data at 5010 which is
        // delivered; the retransmission itself is lost again.
        r.on_retransmit(s0, e0, t(5000));
        assert_eq!(r.first_lost(), None);
        let (s3, e3) = seg(3);
        r.on_send(s3, e3, t(5010), false);
        r.on_ack(
            SeqNumber(1000),
            &[SackBlock {
                left: s3,
                right: e3,
            }],
            t(6000),
        );
        let (lost, _) = r.detect_loss(t(8000));
        assert!(lost >= 100);
        assert_eq!(
            r.first_lost(),
            Some((s0, e0)),
            "the lost retransmission is found"
        );
    }

    #[test]
    fn cumulative_ack_removes_records_and_partial_ack_trims() {
        let mut r = sent(3);
        r.on_ack(SeqNumber(1150), &[], t(500));
        assert_eq!(r.in_flight(), Some(150));
        assert_eq!(r.last(), Some(seg(2)));
        r.on_ack(SeqNumber(1300), &[], t(600));
        assert!(r.is_empty());
    }

    #[test]
    fn retransmission_of_part_of_a_record_splits_it() {
        let mut r = sent(1);
        r.on_retransmit(SeqNumber(1000), SeqNumber(1050), t(100));
        assert_eq!(r.recs.len(), 2);
        assert!(r.recs[0].retransmitted && !r.recs[1].retransmitted);
    }

    #[test]
    fn pto_is_twice_srtt_with_a_floor_rfc8985_7_2() {
        let mut r = sent(2);
        r.on_ack(SeqNumber(1100), &[], t(10_000));
        assert_eq!(r.srtt(), Some(Duration::from_micros(10_000)));
        assert_eq!(
            r.pto(Duration::from_millis(40)),
            Some(Duration::from_millis(60)),
            "one segment in flight: + delayed ACK"
        );
        let mut r = sent(3);
        r.on_ack(SeqNumber(1100), &[], t(100));
        assert_eq!(r.pto(Duration::from_millis(40)), Some(MIN_PTO));
    }

    #[test]
    fn records_are_bounded() {
        let mut r = Rack::new();
        for i in 0..(MAX_RECORDS as u32 + 10) {
            let at = t(u64::from(i));
            r.on_send(SeqNumber(i * 10), SeqNumber(i * 10 + 10), at, false);
        }
        assert_eq!(r.recs.len(), MAX_RECORDS);
        assert_eq!(r.in_flight(), None);
    }

    /// Four 100-byte segments sent at t=0, then one at t=10.
    fn burst() -> Rack {
        let mut r = Rack::new();
        for i in 0..4 {
            let (s, e) = seg(i);
            r.on_send(s, e, t(0), false);
        }
        let (s, e) = seg(4);
        r.on_send(s, e, t(10), false);
        r
    }

    #[test]
    fn a_burst_shares_one_record_and_is_still_judged_per_segment() {
        let mut r = burst();
        assert_eq!(r.recs.len(), 2, "one record per send instant");
        assert_eq!(r.in_flight(), Some(500));
        assert_eq!(r.last(), Some(seg(4)));
        // Segment 1 is lost; 2 and 3 are SACKed: the record splits at the
        // block's edges, and only the unSACKed segments sent before the
        // delivered ones become candidates.
        let (s2, _) = seg(2);
        let (_, e3) = seg(3);
        let sack = [SackBlock {
            left: s2,
            right: e3,
        }];
        r.on_ack(seg(1).0, &sack, t(1000));
        assert_eq!(r.in_flight(), Some(100 + 100), "segments 1 and 4");
        let (lost, _) = r.detect_loss(t(5000));
        assert_eq!(lost, 100, "segment 1 only");
        assert_eq!(r.first_lost(), Some(seg(1)));
        assert_eq!(r.last(), Some(seg(4)), "the probe is the highest segment");
    }

    #[test]
    fn a_partial_ack_of_a_burst_updates_the_estimate() {
        let mut r = burst();
        r.on_ack(seg(2).0, &[], t(400));
        assert_eq!(r.srtt(), Some(Duration::from_micros(400)));
        assert_eq!(r.in_flight(), Some(300));
        // More than one segment left in the record: no delayed-ACK allowance.
        assert_eq!(
            r.pto(Duration::from_millis(40)),
            Some(Duration::from_micros(800).max(MIN_PTO))
        );
    }

    #[test]
    fn segments_of_other_sizes_or_times_do_not_merge() {
        let mut r = Rack::new();
        r.on_send(SeqNumber(0), SeqNumber(100), t(0), false);
        r.on_send(SeqNumber(100), SeqNumber(150), t(0), false);
        r.on_send(SeqNumber(150), SeqNumber(250), t(0), true);
        assert_eq!(r.recs.len(), 3);
        // An oversized-segment check looks at segments, not records.
        let mut r = burst();
        assert_eq!(r.mark_oversized_lost(100), Some(0));
        assert_eq!(r.mark_oversized_lost(99), Some(2));
    }
}

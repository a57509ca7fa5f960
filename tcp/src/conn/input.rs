//! SEGMENT ARRIVES (RFC 9293 §3.10.7.3, §3.10.7.4).

use core::ops::ControlFlow;
use core::time::Duration;

use tracing::trace;

use super::timers::TimerKind;
use super::{State, Tcb, TcpConfig, CHALLENGE_ACKS_PER_SECOND, OOW_ACK_INTERVAL};
use crate::error::TcpError;
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{SackBlock, TcpRepr};
use ustack_ipv4::checksum;

impl Tcb {
    /// SEGMENT ARRIVES (RFC 9293 §3.10.7.3 and §3.10.7.4). Returns a RST to
    /// send when the rules call for one.
    pub fn handle_segment(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> Option<TcpRepr> {
        let rst = match self.state {
            State::Closed | State::Listen => None,
            State::SynSent => self.handle_syn_sent(cfg, now, seg),
            _ => self.handle_synchronized(cfg, now, seg, payload),
        };
        self.staged = 0;
        self.staged_posted = false;
        self.update_persist(now);
        self.update_tlp(now);
        self.update_keepalive();
        rst
    }

    /// Before a segment is processed, while its checksum is still to be
    /// verified: if its payload is the next in-order data, copies what fits
    /// to the end of the receive ring (not readable yet) and sums it in the
    /// same pass, so the text step (RFC 9293 §3.10.7.4, seventh) only makes
    /// it readable. Returns the partial sum (RFC 1071) of all of `payload`,
    /// to complete the checksum. Nothing is acted on before the caller has
    /// checked it: a segment that fails leaves the staged bytes unread and
    /// [`Tcb::unstage`] forgets them.
    #[inline]
    pub fn stage_payload(&mut self, seq: SeqNumber, payload: &[u8]) -> u32 {
        self.staged = 0;
        self.staged_posted = false;
        if payload.is_empty() {
            return 0;
        }
        let accepts_text = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        // With data held out of order the payload may overlap it, and a
        // copy that then fails its checksum would have overwritten good
        // bytes: only a clean in-order stream takes this path.
        if !accepts_text || seq != self.rcv_nxt || !self.assembler.is_empty() {
            return checksum::sum(payload, 0);
        }
        let (n, sum) = if self.posted.room() == 0 {
            self.recv_buf.stage_summed(payload)
        } else if self.posted_takes(payload.len()) {
            self.staged_posted = true;
            self.posted.stage(payload)
        } else {
            // Part for the posted buffers, the rest for the ring: copied
            // once the segment has checked out (`deliver_in_order`).
            return checksum::sum(payload, 0);
        };
        self.staged = n;
        let rest = &payload[n..];
        if rest.is_empty() {
            return sum;
        }
        // The ring is full before the payload's end: the rest is summed alone.
        let r = checksum::fold(checksum::sum(rest, 0));
        let r = if n % 2 == 1 { r.swap_bytes() } else { r };
        u32::from(checksum::fold(sum)) + u32::from(r)
    }

    /// The segment [`Tcb::stage_payload`] saw is dropped (a bad checksum).
    pub fn unstage(&mut self) {
        self.staged = 0;
        self.staged_posted = false;
    }

    pub(super) fn handle_syn_sent(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
    ) -> Option<TcpRepr> {
        let f = seg.flags;
        // First, check the ACK bit: it must acknowledge our SYN and nothing more.
        if f.ack() && (seg.ack.distance(self.iss) <= 0 || seg.ack.distance(self.snd_max) > 0) {
            if f.rst() {
                return None;
            }
            return Some(self.rst_with_seq(seg.ack));
        }
        // Second, RST: only with an acceptable ACK (RFC 5961 §3.2 / RFC 9293 §3.10.7.3).
        if f.rst() {
            if f.ack() {
                self.fail(TcpError::ConnectionRefused(self.remote));
            }
            return None;
        }
        if !f.syn() {
            return None;
        }
        self.on_peer_syn(cfg, seg);
        self.last_heard = now;
        if f.ack() {
            self.snd_wl2 = seg.ack;
            self.snd_una = seg.ack;
            self.rtt.on_ack(seg.ack, now);
            self.rtx_count = 0;
            self.soft_error = None;
            self.timers.clear(TimerKind::Retransmit);
            self.set_state(State::Established);
            self.ack_pending = true;
        } else {
            // Simultaneous open: answer with SYN-ACK from SYN-RECEIVED.
            self.set_state(State::SynReceived);
            self.snd_nxt = self.iss;
        }
        None
    }

    /// SEGMENT ARRIVES in a synchronized state: the steps of RFC 9293
    /// §3.10.7.4 in order, each of which may end processing.
    pub(super) fn handle_synchronized(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> Option<TcpRepr> {
        let f = seg.flags;

        // A duplicate of the peer's SYN while we are in SYN-RECEIVED means our
        // SYN-ACK was lost: send it again now rather than at the next RTO.
        if self.state == State::SynReceived && f.syn() && !f.ack() && seg.seq == self.irs {
            self.snd_nxt = self.iss;
            return None;
        }
        let tsval = seg
            .options
            .timestamps
            .filter(|_| self.ts_ok)
            .map(|(v, _)| v);
        if self.paws_rejects(seg, tsval) {
            return None;
        }
        // First: sequence number.
        let control_only = self.check_sequence(cfg, now, seg, payload)?;
        self.last_heard = now;
        self.keepalive_sent = 0;
        self.update_ts_recent(seg, tsval);
        if !payload.is_empty() {
            self.sample_rcv_rtt(now, seg);
        }
        // Second: RST. (Third, security, does not apply.)
        if f.rst() {
            self.on_rst(seg, now);
            return None;
        }
        // Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2).
        if f.syn() {
            self.challenge_ack(now);
            return None;
        }
        // Fifth: the ACK field.
        if !f.ack() {
            return None;
        }
        if let ControlFlow::Break(rst) = self.check_ack(cfg, now, seg, payload) {
            return rst;
        }
        if self.state == State::Closed || self.state == State::TimeWait || control_only {
            return None;
        }
        // Sixth: URG. Urgent data is not supported (RFC 6093 §4 deprecates
        // it); the pointer is ignored and the bytes are ordinary data.
        // Seventh: segment text.
        // Without text or FIN (a pure ACK) there is nothing to process.
        let fin = (!payload.is_empty() || f.fin()) && self.process_text(now, seg, payload);
        if !payload.is_empty() {
            self.tune_recv_buffer(cfg, now);
        }
        // Eighth: FIN.
        if fin && !self.fin_received {
            self.process_fin(cfg, now);
        }
        None
    }

    /// PAWS (RFC 7323 §5.3 R1): an older timestamp marks an old duplicate.
    /// (TS.Recent is never invalidated by 24 days of idleness here: no
    /// connection of ours idles that long without keep-alive.)
    #[inline]
    fn paws_rejects(&mut self, seg: &TcpRepr, tsval: Option<u32>) -> bool {
        match tsval {
            Some(v) if !seg.flags.rst() && (v.wrapping_sub(self.ts_recent) as i32) < 0 => {
                trace!(tsval = v, ts_recent = self.ts_recent, "PAWS: old timestamp");
                self.ack_pending = true;
                true
            }
            _ => false,
        }
    }

    /// First step: sequence number acceptability (RFC 9293 §3.10.7.4, four
    /// cases). `None` drops the segment (after arranging any ACK it calls
    /// for); `Some(true)` means only its ACK and RST may be processed.
    #[inline]
    fn check_sequence(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> Option<bool> {
        let f = seg.flags;
        let seg_len = payload.len() + usize::from(f.syn()) + usize::from(f.fin());
        if seg_len == 0 && seg.seq == self.rcv_nxt {
            // The pure ACK of a bulk sender: acceptable whatever the window
            // (both zero-length cases below), without computing it.
            return Some(false);
        }
        let wnd = self.rcv_wnd();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            // Like Linux (tcp_sequence), a zero-length segment exactly at the
            // right edge is taken: a sender with a full window in flight puts
            // that sequence number on its pure ACKs.
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd + 1),
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if acceptable {
            return Some(false);
        }
        // With a zero window, still take ACKs and RSTs from a segment at RCV.NXT
        // (RFC 9293 §3.10.7.4: "special allowance ... valid ACKs, URGs, and RSTs").
        if wnd == 0 && seg.seq == self.rcv_nxt {
            return Some(true);
        }
        self.on_unacceptable(cfg, now, seg, payload, seg_len, wnd);
        None
    }

    /// An unacceptable segment: acknowledged unless it is a RST (RFC 9293
    /// §3.10.7.4), with rate limits and D-SACK.
    #[cold]
    fn on_unacceptable(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
        seg_len: usize,
        wnd: u32,
    ) {
        let f = seg.flags;
        if f.rst() {
            return;
        }
        if self.state == State::TimeWait && f.fin() {
            // RFC 9293 §3.10.7.4: a retransmitted FIN in TIME-WAIT is
            // acknowledged and restarts the 2 MSL timeout.
            self.timers.set(TimerKind::TimeWait, now + cfg.time_wait);
        }
        trace!(seq = %seg.seq, rcv_nxt = %self.rcv_nxt, wnd, "unacceptable segment");
        if self.sack_ok && !payload.is_empty() && seg.seq.distance(self.rcv_nxt) < 0 {
            // RFC 2883: tell the sender this data arrived twice.
            self.sack_gen.on_duplicate(SackBlock {
                left: seg.seq,
                right: seg.seq + payload.len(),
            });
            self.dsack_pending = true;
        }
        // A reply to an unacceptable pure ACK could answer another such
        // reply forever; limit those (as Linux's tcp_oow_rate_limited).
        if seg_len > 0 || now >= self.oow_ack_allowed {
            self.ack_pending = true;
            if seg_len == 0 {
                self.oow_ack_allowed = now + OOW_ACK_INTERVAL;
            }
        }
    }

    /// RFC 7323 §4.3 (3): remember the timestamp to echo.
    #[inline]
    fn update_ts_recent(&mut self, seg: &TcpRepr, tsval: Option<u32>) {
        if let Some(v) = tsval {
            if seg.seq.distance(self.last_ack_sent) <= 0
                && (v.wrapping_sub(self.ts_recent) as i32) >= 0
            {
                self.ts_recent = v;
            }
        }
    }

    /// Second step: RST (RFC 5961 §3.2): reset only on an exact match,
    /// challenge ACK for any other in-window RST.
    fn on_rst(&mut self, seg: &TcpRepr, now: Instant) {
        if seg.seq != self.rcv_nxt {
            self.challenge_ack(now);
            return;
        }
        match self.state {
            State::SynReceived if self.passive => {
                // Back to LISTEN: the embryonic connection just disappears.
                self.set_state(State::Closed);
                self.clear_timers();
            }
            State::SynReceived => self.fail(TcpError::ConnectionRefused(self.remote)),
            State::Closing | State::LastAck | State::TimeWait => {
                self.set_state(State::Closed);
                self.clear_timers();
            }
            _ => self.fail(TcpError::ConnectionReset),
        }
    }

    /// Fifth step: the ACK field. Breaks with the RST to send (if any) when
    /// the segment is to be dropped.
    #[inline]
    fn check_ack(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> ControlFlow<Option<TcpRepr>> {
        if self.state == State::SynReceived {
            if seg.ack.distance(self.snd_una) > 0 && seg.ack.distance(self.snd_max) <= 0 {
                self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                self.set_state(State::Established);
            } else {
                return ControlFlow::Break(Some(self.rst_with_seq(seg.ack)));
            }
        }
        if seg.ack.distance(self.snd_max) > 0 {
            // Acknowledges something not yet sent: ACK and drop.
            self.ack_pending = true;
            return ControlFlow::Break(None);
        }
        let acks_new_data = seg.ack.distance(self.snd_una) > 0;
        self.process_ack(cfg, now, seg, payload);
        self.update_send_window(seg, acks_new_data);
        ControlFlow::Continue(())
    }

    /// RFC 9293 §3.10.7.4 fifth step: update the send window when the
    /// segment is newer than the one it was last taken from (SND.WL1/WL2),
    /// or when it acknowledges new data (as Linux's tcp_may_update_window
    /// does). By SEG.SEQ alone, a peer's retransmission (lower SEG.SEQ) that
    /// carries a new ACK leaves the old window in place, and SND.UNA plus
    /// that window runs past the peer's right edge: with the kernel as peer,
    /// 400 KB past it, which the kernel dropped, until the connection died.
    #[inline]
    fn update_send_window(&mut self, seg: &TcpRepr, acks_new_data: bool) {
        if seg.ack.distance(self.snd_una) >= 0
            && (acks_new_data
                || self.snd_wl1.distance(seg.seq) < 0
                || (self.snd_wl1 == seg.seq && self.snd_wl2.distance(seg.ack) <= 0))
        {
            let was_zero = self.snd_wnd == 0;
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            if was_zero && self.snd_wnd > 0 {
                self.notify = true;
            }
        }
    }

    /// Seventh step: segment text (RFC 9293 §3.10.7.4). Data beyond a gap is
    /// kept in the receive buffer at its offset and reported by SACK.
    /// Returns whether a FIN is now in sequence.
    #[inline]
    fn process_text(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> bool {
        let mut fin = seg.flags.fin();
        let mut data = payload;
        let mut seq = seg.seq;
        if seq.distance(self.rcv_nxt) < 0 {
            let skip = (self.rcv_nxt - seq) as usize;
            if skip > data.len() {
                // Everything including any FIN was seen before.
                data = &[];
                fin = false;
            } else {
                data = &data[skip..];
            }
            seq = self.rcv_nxt;
        }
        let offset = (seq - self.rcv_nxt) as usize;
        if offset > 0 {
            self.store_out_of_order(seq, offset, data, fin);
            return false;
        }
        if data.is_empty() && !fin {
            return false;
        }
        self.deliver_in_order(now, data, fin)
    }

    /// Text beyond RCV.NXT: kept at its offset, reported by SACK, and
    /// ACKed at once (RFC 5681 §4.2). One without data or FIN is a pure
    /// ACK: answering it would echo.
    fn store_out_of_order(&mut self, seq: SeqNumber, offset: usize, data: &[u8], fin: bool) {
        if data.is_empty() && !fin {
            return;
        }
        let accepts_text = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if accepts_text {
            let stored = self.recv_buf.write_at(offset, data);
            if stored > 0 && self.assembler.add(offset, stored).is_ok() {
                if let Some((start, len)) = self.assembler.range_containing(offset) {
                    self.sack_gen.on_out_of_order(SackBlock {
                        left: self.rcv_nxt + start,
                        right: self.rcv_nxt + (start + len),
                    });
                }
            }
            if fin && stored == data.len() {
                self.ooo_fin = Some(seq + data.len());
            }
        }
        self.ack_pending = true;
    }

    /// Text at RCV.NXT: delivered, with whatever it joins up in the
    /// assembler, and acknowledged now or later. Returns whether a FIN
    /// follows the delivered data.
    #[inline]
    fn deliver_in_order(&mut self, now: Instant, data: &[u8], mut fin: bool) -> bool {
        let accepts_text = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        let mut filled_gap = false;
        if accepts_text && !data.is_empty() {
            let n = match core::mem::take(&mut self.staged) {
                0 => self.write_in_order(data),
                // Already in place (stage_payload), from RCV.NXT on.
                staged => {
                    let n = staged.min(data.len());
                    if core::mem::take(&mut self.staged_posted) {
                        self.posted.commit(n);
                        self.on_app_read(n);
                    } else {
                        self.recv_buf.commit(n);
                    }
                    n
                }
            };
            if n < data.len() {
                fin = false;
            }
            self.rcv_nxt += n;
            self.assembler.advance(n);
            let more = self.assembler.take_front();
            if more > 0 {
                self.recv_buf.commit(more);
                self.rcv_nxt += more;
                filled_gap = true;
            }
            if self.posted.room() > 0 && !self.recv_buf.is_empty() {
                // Data went to the ring behind a hole or was reassembled
                // there, while posted room waits.
                self.drain_ring_to_posted();
            }
            if self.ooo_fin == Some(self.rcv_nxt) {
                fin = true;
            }
            if n + more > 0 {
                self.notify = true;
            }
        }
        // Delayed ACK (RFC 5681 §4.2, RFC 9293 §3.8.6.3): at least every
        // second segment, at once when a gap fills or data still waits
        // behind one, or in quick-ACK mode, otherwise within `ack_delay`.
        // A coalesced (GRO) super-frame counts as the full-sized segments
        // it carries, so it is acknowledged at once, as Linux does.
        // (The division only for a super-frame: it is a good part of the
        // cost of an ordinary segment.)
        let mss = self.eff_mss().max(1);
        let segments = if data.len() >= 2 * mss {
            data.len() / mss
        } else {
            1
        };
        self.segs_unacked += segments as u32;
        let quick = !data.is_empty() && self.quick_ack_due(now);
        if quick || filled_gap || fin || self.segs_unacked >= 2 || !self.assembler.is_empty() {
            self.ack_pending = true;
        } else if !self.timers.is_set(TimerKind::DelayedAck) {
            self.timers.set(TimerKind::DelayedAck, now + self.ack_delay);
        }
        fin
    }

    /// Quick-ACK mode, as Linux runs it (`tcp_event_data_recv`,
    /// `tcp_in_quickack_mode`): the first data of a connection, or the
    /// first after a pause longer than the RTO, earns up to 16 ACKs sent
    /// without delay (as many as half the buffer holds in segments), unless
    /// the connection answers at once (ping-pong), when the ACK rides on the
    /// reply. A peer that writes twice before it reads (a request's header,
    /// then its body) sends the second piece only once the first is ACKed
    /// (Nagle): a delayed ACK would stall it 40 ms.
    fn quick_ack_due(&mut self, now: Instant) -> bool {
        let idle = self
            .last_data_rcvd
            .is_none_or(|t| now.saturating_duration_since(t) > self.rtt.rto());
        if idle {
            let segs = self.recv_buf.capacity() / (2 * self.eff_mss().max(1));
            self.quick_acks = self.quick_acks.max(segs.clamp(2, 16) as u8);
        }
        self.last_data_rcvd = Some(now);
        self.quick_acks > 0 && !self.pingpong
    }

    /// In-order text not staged before: into the posted buffers while they
    /// have room and nothing waits ahead of it (the ring's bytes come
    /// first, and held out-of-order data has its place in the ring), the
    /// rest into the ring. Returns the count stored.
    fn write_in_order(&mut self, data: &[u8]) -> usize {
        let mut n = 0;
        if self.posted_takes(1) {
            n = self.posted.write(data);
            self.on_app_read(n);
        }
        n + self.recv_buf.write(&data[n..])
    }

    /// Eighth step: the peer's FIN, in sequence.
    fn process_fin(&mut self, cfg: &TcpConfig, now: Instant) {
        self.fin_received = true;
        self.ooo_fin = None;
        self.rcv_nxt += 1u32;
        self.ack_pending = true;
        self.notify = true;
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.our_fin_acked() {
                    self.enter_time_wait(cfg, now);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(cfg, now),
            _ => {}
        }
    }

    /// RFC 5961 §7: challenge ACKs are rate-limited, so a blind attacker
    /// cannot turn forged RSTs or SYNs into an ACK flood.
    pub(super) fn challenge_ack(&mut self, now: Instant) {
        if now >= self.challenge_window + Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < CHALLENGE_ACKS_PER_SECOND {
            self.challenge_count += 1;
            self.ack_pending = true;
        }
    }

    pub(super) fn rst_with_seq(&self, seq: SeqNumber) -> TcpRepr {
        TcpRepr::rst(self.local.port(), self.remote.port(), seq)
    }
}

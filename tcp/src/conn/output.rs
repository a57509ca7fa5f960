//! What to send next (RFC 9293 §3.10.2 onwards, §3.8.6 windows, RFC 6675
//! and RFC 8985 retransmissions), and the segment writer.

use core::ops::ControlFlow;

use tracing::trace;

use super::timers::TimerKind;
use super::{State, Tcb};
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{Flags, SackBlock, SackBlocks, TcpOptions, TcpPacket, TcpRepr};

impl Tcb {
    /// Builds the next segment to send: its TCP header (checksum filled)
    /// goes to the start of `out`, whose length bounds the whole segment
    /// (one IP payload); its payload stays in the send ring, where
    /// [`Tcb::segment_payload`] lends it for a gather list, so the bytes are
    /// copied once, by the device, instead of into `out` first. New data may
    /// leave as one super-frame of up to `max_segs` segments for a device
    /// with TCP segmentation offload ([`Segment::segment_payload`] above 0:
    /// the device is to cut the payload there, and the checksum field holds
    /// only the pseudo-header sum, Linux CHECKSUM_PARTIAL, which the device
    /// finishes).
    ///
    /// Each wire segment of a super-frame gets its own RACK record, so loss
    /// detection and retransmission work on segments exactly as without
    /// offload; retransmissions, probes and everything sent in recovery stay
    /// single segments.
    pub fn poll_transmit_gather(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_segs: usize,
    ) -> Option<Segment> {
        let res = self.next_segment(now, out, max_segs.max(1));
        self.update_persist(now);
        self.update_tlp(now);
        self.update_keepalive();
        res
    }

    /// Whether the device below finishes TCP checksums as it copies each
    /// packet: then a segment with data leaves its checksum field holding
    /// only the pseudo-header sum ([`Segment::partial_checksum`]) and the
    /// payload is read once, by that copy, instead of once more here.
    pub fn set_device_checksums(&mut self, on: bool) {
        self.device_checksums = on;
    }

    /// The payload of `seg`, the segment the last
    /// [`Tcb::poll_transmit_gather`] built, where it lies in the send ring:
    /// one slice, or two where the ring wraps.
    pub fn segment_payload(&self, seg: &Segment) -> [&[u8]; 2] {
        self.send_buf.slices(seg.payload_offset, seg.payload_len)
    }

    /// [`Tcb::poll_transmit_gather`] with the payload copied after the
    /// header in `out`: the whole segment is `out[..length]`. Returns
    /// `(length, segment_payload)`. For tests that read whole segments.
    #[cfg(test)]
    pub fn poll_transmit_segmented(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_segs: usize,
    ) -> Option<(usize, usize)> {
        let seg = self.poll_transmit_gather(now, out, max_segs)?;
        let len = seg.header_len + seg.payload_len;
        self.send_buf
            .peek(seg.payload_offset, &mut out[seg.header_len..len]);
        Some((len, seg.segment_payload))
    }

    fn next_segment(&mut self, now: Instant, out: &mut [u8], max_segs: usize) -> Option<Segment> {
        let mut repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: self.window_field(false),
            urgent: 0,
            options: TcpOptions::default(),
        };
        if self.ts_ok {
            repr.options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        let syn_due =
            matches!(self.state, State::SynSent | State::SynReceived) && self.snd_nxt == self.iss;
        if syn_due {
            return self.emit_syn(now, &mut repr, out);
        }
        if !self.state.is_synchronized() {
            return None;
        }

        let may_send_data = self.may_send_data();
        // Room for SACK blocks when we may report some (RFC 2018 §3).
        let sack_room = if self.sack_ok && (!self.assembler.is_empty() || self.dsack_pending) {
            4 + 8 * self.max_sack_blocks()
        } else {
            0
        };
        let header_len = repr.header_len() + sack_room;
        let seg_room = self.payload_room(header_len);
        let max_payload = seg_room.min(out.len().saturating_sub(header_len));

        // Loss recovery chooses retransmissions first (RFC 6675 §5, RFC 6582).
        if may_send_data {
            if let ControlFlow::Break(res) =
                self.retransmit_or_probe(now, &mut repr, max_payload, out)
            {
                return res;
            }
        }
        if may_send_data {
            self.restart_after_idle(now);
        }
        let room = Room {
            seg: seg_room,
            max_payload,
            frame: out.len().saturating_sub(header_len),
        };
        if let Some((seq_len, segment_payload)) = self.new_data(may_send_data, max_segs, room) {
            self.probe_due = false;
            let seq = self.snd_nxt;
            let kind = Tx::New {
                segment_payload,
                full: room.seg,
            };
            return self.emit_data(now, &mut repr, seq, seq_len, kind, out);
        }
        if self.probe_due {
            // Zero-window or keep-alive probe: an old sequence number makes
            // the peer answer with its current window and ACK.
            self.probe_due = false;
            repr.seq = self.snd_una + u32::MAX;
            return self.emit(&mut repr, 0, out).map(Segment::header_only);
        }
        if self.ack_pending {
            // After a timeout SND.NXT is rewound for go-back-N; a pure ACK
            // must still carry the first never-sent number, or the peer finds
            // it below RCV.NXT, rejects it and ignores its ACK (as BSD does,
            // tcp_output uses snd_max for data-less segments).
            repr.seq = self.data_less_seq();
            return self.emit(&mut repr, 0, out).map(Segment::header_only);
        }
        None
    }

    /// SEG.SEQ for a segment without data: SND.MAX, or the right edge of
    /// the peer's window where the peer has shrunk it below what we sent.
    /// A receiver tests even a data-less segment's SEG.SEQ against its
    /// window (RFC 9293 §3.10.7.4) and drops one past the right edge with
    /// the ACK it carries; Linux picks the same number (`tcp_acceptable_seq`).
    pub(super) fn data_less_seq(&self) -> SeqNumber {
        let right_edge = self.snd_una + self.snd_wnd;
        if self.snd_max.distance(right_edge) > 0 {
            right_edge
        } else {
            self.snd_max
        }
    }

    /// Our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with the options we offer.
    fn emit_syn(&mut self, now: Instant, repr: &mut TcpRepr, out: &mut [u8]) -> Option<Segment> {
        repr.flags = if self.state == State::SynSent {
            Flags::SYN
        } else {
            Flags::SYN | Flags::ACK
        };
        repr.options.mss = Some(self.our_mss);
        repr.window = self.window_field(true);
        if self.wscale_ok {
            repr.options.window_scale = Some(self.rcv_wscale);
        }
        repr.options.sack_permitted = self.sack_ok;
        if self.ts_ok {
            let ecr = if self.state == State::SynSent {
                0
            } else {
                self.ts_recent
            };
            repr.options.timestamps = Some((self.ts_now(now), ecr));
        }
        if self.state == State::SynSent {
            repr.ack = SeqNumber(0);
        }
        let len = self.emit(repr, 0, out)?;
        self.advance_snd_nxt(now, 1);
        Some(Segment::header_only(len))
    }

    /// A retransmission loss recovery wants, or a due tail loss probe.
    /// Breaks with what was sent (or `None` when `out` is too small).
    #[inline]
    fn retransmit_or_probe(
        &mut self,
        now: Instant,
        repr: &mut TcpRepr,
        max_payload: usize,
        out: &mut [u8],
    ) -> ControlFlow<Option<Segment>> {
        if let Some((seq, len)) = self.pick_retransmission(max_payload) {
            return ControlFlow::Break(self.emit_data(now, repr, seq, len, Tx::Retransmit, out));
        }
        if !self.tlp_due {
            return ControlFlow::Continue(());
        }
        // Tail loss probe (RFC 8985 §7): the peer's answer (SACK) lets RACK
        // find what was lost at the tail.
        self.tlp_due = false;
        self.tlp_outstanding = true;
        // In recovery the open question is SND.UNA's segment: its duplicate
        // draws an ACK that tells the whole state. Otherwise, RFC 8985 §7.3
        // prefers new data; we repeat the last segment instead: a receiver
        // may delay its ACK for new in-order data (Linux: up to 200 ms, as
        // long as our RTO), but answers a duplicate at once.
        // Where the peer shrank its window below the last segment, SND.UNA's
        // segment is the probe the window still admits.
        let in_recovery = self.recovery.is_some();
        let probe = in_recovery
            .then(|| self.rack.first_unsacked())
            .flatten()
            .or_else(|| self.rack.last())
            .and_then(|(start, end)| Some((start, self.window_admits(start, end - start)?)))
            .or_else(|| {
                let (start, end) = self.rack.first_unsacked()?;
                Some((start, self.window_admits(start, end - start)?))
            });
        match probe {
            Some((start, len)) => {
                let len = len.min(max_payload);
                ControlFlow::Break(self.emit_data(now, repr, start, len, Tx::Retransmit, out))
            }
            None => ControlFlow::Continue(()),
        }
    }

    /// How much new data (and whether our FIN) to send now: within the
    /// peer's window and the congestion window, under Nagle and SWS
    /// avoidance. Returns (sequence length, super-frame segment payload).
    #[inline]
    fn new_data(&self, may_send_data: bool, max_segs: usize, room: Room) -> Option<(usize, usize)> {
        let sent = self.snd_nxt.distance(self.snd_data_start).max(0) as usize;
        let unsent = self.send_buf.len().saturating_sub(sent);
        let wnd_end = self.snd_una + self.snd_wnd;
        let usable_wnd = wnd_end.distance(self.snd_nxt).max(0) as usize;
        // With segmentation offload, several full segments may go as one
        // frame (never in recovery, where PRR meters single segments).
        let frame_room = if max_segs > 1 && self.recovery.is_none() && !self.probe_due {
            (room.seg * max_segs).min(room.frame)
        } else {
            room.max_payload
        };
        let mut n = if may_send_data {
            unsent.min(usable_wnd).min(self.cwnd_room()).min(frame_room)
        } else {
            0
        };
        if n > room.max_payload {
            // A short last segment is held back under the same rules as a
            // short segment on its own (below).
            let tail = n % room.seg;
            if tail != 0 && (n != unsent || self.nagle_holds(room.seg)) {
                n -= tail;
            }
        }
        let segment_payload = if n > room.seg { room.seg } else { 0 };
        // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) with Nagle (§3.7.4):
        // a short segment goes out only if it empties the queue and Nagle
        // does not hold it, if it is half the largest window seen, or when
        // the override timer fired.
        if n > 0 && n < room.max_payload {
            let all_queued = n == unsent;
            let half_window = n >= (self.max_snd_wnd / 2) as usize && self.max_snd_wnd > 0;
            if !((all_queued && !self.nagle_holds(room.seg)) || half_window || self.probe_due) {
                n = 0;
            }
        }
        let fin = self.fin_queued
            && may_send_data
            && sent + n == self.send_buf.len()
            && self.snd_nxt + n == self.fin_seq();
        (n > 0 || fin).then_some((n + usize::from(fin), segment_payload))
    }

    /// Nagle's algorithm (RFC 9293 §3.7.4) in Minshall's form, as Linux
    /// runs it (`tcp_minshall_check`): a short segment waits while an
    /// earlier *short* segment is unacknowledged, so at most one is in
    /// flight, which is Nagle's aim. Unacknowledged full segments do not
    /// hold it: a write that ends in a partial segment is not kept back a
    /// round trip, nor a delayed ACK (up to 40 ms from Linux) when the peer
    /// waits for a second segment. The segment that carries our FIN is never
    /// held: nothing can join it (Linux's `tcp_nagle_test`).
    ///
    /// While the send queue has no room for another full segment (`seg`),
    /// the application is waiting to write more, and the ACK that makes
    /// room also lets that data join the short piece; so then the piece
    /// waits for everything in flight, as in Nagle's first form (Linux's
    /// autocorking holds it while earlier segments are still queued). Bulk
    /// senders keep their segments full this way.
    fn nagle_holds(&self, seg: usize) -> bool {
        if self.nodelay || self.fin_queued {
            return false;
        }
        let short_in_flight =
            self.snd_sml.distance(self.snd_una) > 0 && self.snd_sml.distance(self.snd_nxt) <= 0;
        let more_coming = self.send_buf.free() < seg && self.snd_nxt != self.snd_una;
        short_in_flight || more_coming
    }

    pub(super) fn may_send_data(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    pub(super) fn max_sack_blocks(&self) -> usize {
        // 40 option bytes: 3 blocks fit beside timestamps, 4 without.
        if self.ts_ok {
            3
        } else {
            4
        }
    }

    /// RFC 6937 §3: on each ACK in recovery, how much may be sent: in
    pub(super) fn sack_option(&mut self) -> SackBlocks {
        let mut tmp = [SackBlock::default(); crate::assembler::MAX_RANGES];
        let current = self.assembler.sack_blocks(self.rcv_nxt, &mut tmp);
        let max = self.max_sack_blocks();
        self.sack_gen.blocks(self.rcv_nxt, current, max)
    }

    /// Sends `seq_len` units of sequence space from `seq`: buffered data, and
    /// our FIN if the range reaches it. Retransmissions leave SND.NXT alone.
    fn emit_data(
        &mut self,
        now: Instant,
        repr: &mut TcpRepr,
        seq: SeqNumber,
        seq_len: usize,
        kind: Tx,
        out: &mut [u8],
    ) -> Option<Segment> {
        let (retransmission, segment_payload) = match kind {
            Tx::Retransmit => (true, 0),
            Tx::New {
                segment_payload, ..
            } => (false, segment_payload),
        };
        let off = seq.distance(self.snd_data_start).max(0) as usize;
        let data_len = seq_len.min(self.send_buf.len().saturating_sub(off));
        let fin = self.fin_queued && seq_len > data_len && seq + data_len == self.fin_seq();
        repr.seq = seq;
        if fin {
            repr.flags |= Flags::FIN;
        }
        if data_len > 0 && off + data_len == self.send_buf.len() {
            repr.flags |= Flags::PSH;
        }
        let len = self.emit(repr, data_len, out)?;
        let segment_payload = if data_len > segment_payload {
            segment_payload
        } else {
            0
        };
        let header_len = len - data_len;
        let partial_checksum = data_len > 0 && segment_payload == 0 && self.device_checksums;
        if data_len > 0 {
            let (src, dst) = (*self.local.ip(), *self.remote.ip());
            if segment_payload > 0 || partial_checksum {
                // The partial sum covers the length only, not the bytes.
                TcpPacket::new_unchecked(&mut out[..len]).fill_partial_checksum(src, dst);
            } else {
                let payload = self.send_buf.slices(off, data_len);
                TcpPacket::new_unchecked(&mut out[..header_len])
                    .fill_checksum_gather(src, dst, &payload);
            }
        }
        let used = data_len + usize::from(fin);
        if data_len > 0 {
            self.last_data_sent = Some(now);
            // Data sent soon after data arrived: the connection answers,
            // and its replies carry the ACKs (Linux's tcp_event_data_sent).
            if self
                .last_data_rcvd
                .is_some_and(|t| now.saturating_duration_since(t) < self.ack_delay)
            {
                self.pingpong = true;
            }
        }
        if let Tx::New { full, .. } = kind {
            let last = if segment_payload > 0 {
                data_len % segment_payload
            } else {
                data_len
            };
            if last != 0 && last < full {
                self.snd_sml = seq + data_len;
            }
        }
        if let Some(r) = self.recovery.as_mut() {
            r.prr_out += used;
            r.sndcnt = r.sndcnt.saturating_sub(used);
        }
        if self.sack_ok {
            self.rack_record(now, seq, used, retransmission, segment_payload, fin);
        }
        if retransmission {
            trace!(%seq, len = used, "retransmit");
            self.rtt.discard_sample();
            if !self.timers.is_set(TimerKind::Retransmit) {
                self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
            }
        } else {
            self.advance_snd_nxt(now, used);
        }
        Some(Segment {
            header_len,
            payload_len: data_len,
            segment_payload,
            partial_checksum,
            payload_offset: off,
        })
    }

    /// RACK records for `used` units of sequence space sent from `seq`.
    #[inline]
    fn rack_record(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        used: usize,
        retransmission: bool,
        segment_payload: usize,
        fin: bool,
    ) {
        if retransmission {
            self.rack.on_retransmit(seq, seq + used, now);
            return;
        }
        let fresh = seq.distance(self.snd_max) >= 0;
        if segment_payload > 0 {
            // One record per wire segment the device will cut.
            let mut at = 0;
            while at < used {
                let end = (at + segment_payload).min(used);
                // A FIN alone after the last full segment rides on it.
                let end = if used - end == 1 && fin { used } else { end };
                self.rack.on_send(seq + at, seq + end, now, !fresh);
                at = end;
            }
        } else {
            self.rack.on_send(seq, seq + used, now, !fresh);
        }
        self.timers.clear(TimerKind::Tlp);
    }

    /// Emits the header of `repr` followed by room for `payload_len` bytes and
    /// records that the ACK and window went out. For a segment without payload
    /// the checksum is filled here; otherwise after the payload is copied.
    pub(super) fn emit(
        &mut self,
        repr: &mut TcpRepr,
        payload_len: usize,
        out: &mut [u8],
    ) -> Option<usize> {
        let report_sack = self.sack_ok
            && repr.flags.ack()
            && !repr.flags.syn()
            && (!self.assembler.is_empty() || self.dsack_pending);
        if report_sack {
            repr.options.sack = self.sack_option();
            self.dsack_pending = false;
        }
        let len = repr.header_len() + payload_len;
        if len > out.len() {
            return None;
        }
        let mut pkt = TcpPacket::new_unchecked(&mut out[..len]);
        repr.emit(&mut pkt);
        if payload_len == 0 {
            pkt.fill_checksum(*self.local.ip(), *self.remote.ip());
        }
        if repr.flags.ack() {
            self.ack_pending = false;
            self.timers.clear(TimerKind::DelayedAck);
            self.segs_unacked = 0;
            self.quick_acks = self.quick_acks.saturating_sub(1);
            self.last_ack_sent = repr.ack;
            let shift = if repr.flags.syn() { 0 } else { self.rcv_wscale };
            self.rcv_adv = self
                .rcv_adv
                .max(self.rcv_nxt + (u32::from(repr.window) << shift));
        }
        trace!(flags = ?repr.flags, seq = %repr.seq, ack = %repr.ack, wnd = repr.window, len = payload_len, "tx");
        Some(len)
    }

    pub(super) fn advance_snd_nxt(&mut self, now: Instant, seq_len: usize) {
        if seq_len == 0 {
            return;
        }
        let fresh = self.snd_nxt.distance(self.snd_max) >= 0;
        // The user timeout is about data: a SYN waits under syn_retries.
        if let Some(limit) = self.user_timeout {
            if !self.timers.is_set(TimerKind::UserTimeout) && self.state.is_synchronized() {
                self.timers.set(TimerKind::UserTimeout, now + limit);
            }
        }
        self.snd_nxt += seq_len;
        if self.snd_nxt.distance(self.snd_max) > 0 {
            self.snd_max = self.snd_nxt;
        }
        if fresh {
            self.rtt.on_send(self.snd_nxt, now);
        }
        if !self.timers.is_set(TimerKind::Retransmit) {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        }
    }
}

/// A segment [`Tcb::poll_transmit_gather`] built: the header at the start
/// of the buffer it was given, the payload in the send ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Bytes of TCP header written (options included).
    pub header_len: usize,
    /// Bytes of payload, in the send ring ([`Tcb::segment_payload`]).
    pub payload_len: usize,
    /// 0 for an ordinary segment; otherwise the payload of each segment a
    /// device with TCP segmentation offload cuts this super-frame into.
    pub segment_payload: usize,
    /// An ordinary segment whose checksum field holds only the
    /// pseudo-header sum, for the device to finish
    /// ([`Tcb::set_device_checksums`]).
    pub partial_checksum: bool,
    payload_offset: usize,
}

impl Segment {
    fn header_only(header_len: usize) -> Segment {
        Segment {
            header_len,
            payload_len: 0,
            segment_payload: 0,
            partial_checksum: false,
            payload_offset: 0,
        }
    }
}

/// What [`Tcb::emit_data`] sends.
#[derive(Debug, Clone, Copy)]
enum Tx {
    /// Sequence space sent before; SND.NXT stays.
    Retransmit,
    /// New data; `segment_payload` > 0 makes it a super-frame to be cut
    /// into segments of that much payload. `full` is a full segment's
    /// payload, to tell a short one (Nagle).
    New { segment_payload: usize, full: usize },
}

/// Payload room for the segment being built.
#[derive(Debug, Clone, Copy)]
struct Room {
    /// Payload of a full segment with this header (Eff.snd.MSS less options).
    seg: usize,
    /// Payload of this segment: `seg`, or less when `out` is smaller.
    max_payload: usize,
    /// Payload `out` could hold as one super-frame.
    frame: usize,
}

//! Buffer memory of one connection: storage taken from the stack's
//! [`BufferPool`] when data needs it and given back when the queues empty,
//! receive-buffer auto-tuning, and a send buffer that follows cwnd.
//!
//! The receive buffer's size is the most window the connection may offer;
//! it only shrinks while it holds no storage and never below what was
//! already advertised (RFC 9293 §3.8.6: the right edge does not move left),
//! so no advertised window is reneged on. Storage of the send ring holds
//! every unacknowledged byte: it is given back only once the ring is empty.

use core::time::Duration;

use super::{State, Tcb, TcpConfig};
use crate::buffer::{ring_size, BufferPool};
use crate::cc::CongestionControl;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// Shortest interval over which the application's reading rate is measured
/// (timestamps have millisecond resolution).
const MIN_RCV_RTT: Duration = Duration::from_millis(1);

/// Headroom auto-tuning adds to twice the measured rate, in segments (Linux
/// adds 16 × advmss).
const RCV_SLACK_SEGMENTS: usize = 16;

impl Tcb {
    /// Before a segment with `payload_len` bytes is processed: gives the
    /// receive ring storage, grown to what auto-tuning asks for when the
    /// pool is not under pressure. Returns false when the payload will have
    /// nowhere to go (the budget is spent): it is then dropped and the peer
    /// retransmits it.
    pub fn prepare_recv(&mut self, pool: &mut BufferPool, payload_len: usize) -> bool {
        if payload_len == 0 || self.recv_buf.capacity() == 0 {
            return true;
        }
        let target = self.rcv_target as usize;
        let limit = self.recv_buf.capacity();
        if self.posted_takes(payload_len) {
            // Straight into posted buffers: no ring storage, but the window
            // (the ring's size) still follows auto-tuning, as it would if
            // the ring took the data and the application read it at once.
            if target > limit && !self.recv_buf.has_storage() && pool.may_grow(ring_size(target)) {
                self.recv_buf.set_limit(target);
            }
            return true;
        }
        if !self.recv_buf.has_storage() {
            let grown = target > limit && pool.may_grow(ring_size(target));
            let want = if grown { target } else { limit };
            let Some(storage) = pool.take(want) else {
                return false;
            };
            self.recv_buf.set_limit(want);
            if let Err(storage) = self.recv_buf.attach(storage) {
                pool.give(storage);
            }
            return true;
        }
        if target > limit {
            self.grow_recv(pool, target);
        }
        true
    }

    fn grow_recv(&mut self, pool: &mut BufferPool, target: usize) {
        let have = self.recv_buf.storage_bytes();
        let bigger = if ring_size(target) > have {
            if !pool.may_grow(ring_size(target) - have) {
                return;
            }
            match pool.take(target) {
                Some(b) => Some(b),
                None => return,
            }
        } else {
            None
        };
        let old = self.recv_buf.grow_into(target, bigger);
        pool.give(old);
    }

    /// Before the application queues data: gives the send ring storage, and
    /// grows it toward twice what may be in flight — the congestion window,
    /// or the largest window the peer has offered when that is smaller
    /// (Linux `tcp_sndbuf_expand` follows cwnd alone; bytes past the peer's
    /// window only wait) — up to `send_buffer_max` when the pool allows.
    /// With no memory the ring takes nothing: the application sees no space.
    pub fn prepare_send(&mut self, cfg: &TcpConfig, pool: &mut BufferPool) {
        if self.fin_queued {
            return;
        }
        let limit = self.send_buf.capacity();
        let max = cfg.send_buffer_max.max(cfg.send_buffer);
        let peer = match self.max_snd_wnd {
            0 => usize::MAX,
            w => w as usize,
        };
        let want = (2 * self.cc.cwnd().min(peer)).min(max).max(limit);
        let grow = want > limit && !pool.under_pressure();
        if !self.send_buf.has_storage() {
            let want = if grow && pool.may_grow(ring_size(want)) {
                want
            } else {
                limit
            };
            if let Some(storage) = pool.take(want) {
                self.send_buf.set_limit(want);
                if let Err(storage) = self.send_buf.attach(storage) {
                    pool.give(storage);
                }
            }
            return;
        }
        // Grow only when the application is held back by the buffer.
        if grow && self.send_buf.free() < limit / 2 {
            let have = self.send_buf.storage_bytes();
            let bigger = if ring_size(want) > have {
                if !pool.may_grow(ring_size(want) - have) {
                    return;
                }
                match pool.take(want) {
                    Some(b) => Some(b),
                    None => return,
                }
            } else {
                None
            };
            let old = self.send_buf.grow_into(want, bigger);
            pool.give(old);
        }
    }

    /// After any event: storage of empty queues goes back to the pool. In
    /// TIME-WAIT and CLOSED, with nothing left to read or acknowledge, the
    /// rings go altogether: a retransmitted FIN then meets a zero window and
    /// is still ACKed. Under pressure a receive buffer given back shrinks to
    /// its initial size, or what was advertised if more.
    #[inline]
    pub fn release_idle(&mut self, cfg: &TcpConfig, pool: &mut BufferPool) {
        // After most segments there is nothing to give back: both queues
        // hold data, or an empty one holds no storage.
        let idle_send = self.send_buf.is_empty() && self.send_buf.has_storage();
        let idle_recv = self.recv_buf.is_empty() && self.recv_buf.has_storage();
        let done = matches!(self.state, State::TimeWait | State::Closed);
        if idle_send || idle_recv || done {
            self.release_idle_storage(cfg, pool);
        }
    }

    fn release_idle_storage(&mut self, cfg: &TcpConfig, pool: &mut BufferPool) {
        let done = matches!(self.state, State::TimeWait | State::Closed);
        if self.send_buf.is_empty() {
            if done {
                pool.give(self.send_buf.clear(0));
            } else if let Some(s) = self.send_buf.detach() {
                pool.give(s);
                if pool.under_pressure() {
                    self.send_buf.set_limit(cfg.send_buffer);
                }
            }
        }
        if self.recv_buf.is_empty() && self.assembler.is_empty() {
            if done {
                pool.give(self.recv_buf.clear(0));
            } else if let Some(s) = self.recv_buf.detach() {
                pool.give(s);
                if pool.under_pressure() {
                    let advertised = self.rcv_adv.distance(self.rcv_nxt).max(0) as usize;
                    let limit = cfg.recv_buffer.max(advertised);
                    self.recv_buf.set_limit(limit);
                    self.rcv_target = self.rcv_target.min(limit as u32);
                }
            }
        }
    }

    /// The connection is being freed: every ring goes back, whatever it holds.
    pub fn release_all(&mut self, pool: &mut BufferPool) {
        pool.give(self.send_buf.clear(0));
        pool.give(self.recv_buf.clear(0));
    }

    /// The receiver's RTT from a data segment's timestamp echo (Linux
    /// `tcp_rcv_rtt_measure_ts`): a pure receiver sends no data to time.
    pub(super) fn sample_rcv_rtt(&mut self, now: Instant, seg: &TcpRepr) {
        let Some((_, tsecr)) = seg.options.timestamps.filter(|_| self.ts_ok) else {
            return;
        };
        if tsecr == 0 {
            return;
        }
        let sample = self.ts_now(now).wrapping_sub(tsecr);
        if sample > 60_000 {
            return;
        }
        self.rcv_rtt_ms = if self.rcv_rtt_ms == 0 {
            sample.max(1)
        } else {
            ((7 * u64::from(self.rcv_rtt_ms) + u64::from(sample)) / 8).max(1) as u32
        };
    }

    /// Dynamic right-sizing (Linux `tcp_rcv_space_adjust`, gVisor
    /// `ModerateRecvBuf`): once per round trip, when the application read
    /// more than ever before in one, the buffer aims for twice that plus
    /// headroom, so that the window stays ahead of a sender in slow start.
    ///
    /// Called for every segment of data, so the round's end is kept as an
    /// instant and compared, not recomputed from the RTT each time.
    pub(super) fn tune_recv_buffer(&mut self, cfg: &TcpConfig, now: Instant) {
        if now < self.rcv_space_due {
            return;
        }
        let rtt = match (self.rcv_rtt_ms, self.rtt.srtt()) {
            (0, Some(s)) => s,
            (0, None) => return,
            (ms, _) => Duration::from_millis(u64::from(ms)),
        }
        .max(MIN_RCV_RTT);
        let copied = core::mem::take(&mut self.rcv_copied);
        self.rcv_space_due = now + rtt;
        if copied <= self.rcv_space {
            return;
        }
        self.rcv_space = copied;
        let max = cfg.recv_buffer_max.max(cfg.recv_buffer);
        let want = (2 * copied as usize + RCV_SLACK_SEGMENTS * self.eff_mss()).min(max);
        self.rcv_target = self.rcv_target.max(want as u32);
    }

    /// The application consumed `n` received bytes.
    pub(super) fn on_app_read(&mut self, n: usize) {
        self.rcv_copied = self.rcv_copied.saturating_add(n as u32);
    }
}

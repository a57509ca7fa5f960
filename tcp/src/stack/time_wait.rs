//! TIME-WAIT as a compact record, not a connection (RFC 9293 §3.10.7.4).
//!
//! When this end closes first, the 4-tuple must stay quarantined for 2 × MSL
//! so that a delayed segment of the old connection cannot be taken for part
//! of a new one, and a retransmitted FIN can still be acknowledged. None of
//! that needs a TCB or buffers: a [`Record`] keeps the sequence numbers, the
//! timestamp state, the window and the deadline in 32 bytes (plus the 12-byte
//! 4-tuple key of the index and a 24-byte FIFO entry). Records never count against the
//! connection limit.
//!
//! Every record lives for the same time, so expiry order is insertion order:
//! a FIFO of deadlines gives O(1) expiry with no scan. A record that leaves
//! early (reopened by a SYN) or whose timer restarts leaves a stale FIFO
//! entry behind, recognised by its deadline and skipped; the FIFO is
//! compacted when stale entries outnumber live ones, so it stays within
//! twice the record bound.
//!
//! Policies, each counted in [`TimeWaitStats`]:
//! - **Bound**: at most `max_records`. At the bound the *oldest* record goes
//!   (it is the nearest to expiring anyway), so a new close always gets its
//!   quarantine. (Linux instead keeps no record for the new close.)
//! - **RST** (RFC 1337): ignored. Accepting it lets anyone who can guess the
//!   sequence numbers cut the quarantine short ("TIME-WAIT assassination");
//!   a peer that wants the 4-tuple back sends a SYN instead, which the reuse
//!   rule below admits.
//! - **SYN** (RFC 6191): reopens the 4-tuple when its timestamp is newer than
//!   the last one seen, or — when the old connection had no timestamps or the
//!   SYN carries none — when its sequence number is above the old RCV.NXT.
//!   Any other SYN is answered with the TIME-WAIT ACK (as Linux does), so a
//!   peer that lost its state learns where the old connection stood.
//! - **FIN retransmitted**: acknowledged, and the 2 × MSL timer restarts.
//! - A pure ACK is dropped silently (answering it would start an ACK war with
//!   a peer in TIME-WAIT too); any other segment gets the ACK.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{Flags, TcpOptions, TcpRepr};

/// The 4-tuple: (local, remote).
pub(crate) type Tuple = (SocketAddrV4, SocketAddrV4);

/// What TIME-WAIT remembers of a closed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Our next sequence number (our FIN acknowledged: one past it).
    pub snd_nxt: SeqNumber,
    /// The peer's next sequence number (one past its FIN).
    pub rcv_nxt: SeqNumber,
    /// The last TSval the peer sent, when timestamps were in use.
    pub ts_recent: u32,
    /// Offset added to our millisecond clock for TSval (RFC 7323 §5.4).
    pub ts_offset: u32,
    /// The raw window field to advertise in our ACKs.
    pub window: u16,
    /// Whether the connection used timestamps (RFC 7323).
    pub timestamps: bool,
    /// When the record expires.
    deadline: Instant,
}

impl Record {
    /// A record for a connection that just entered TIME-WAIT.
    pub fn new(
        snd_nxt: SeqNumber,
        rcv_nxt: SeqNumber,
        timestamps: Option<(u32, u32)>,
        window: u16,
    ) -> Record {
        let (ts_recent, ts_offset) = timestamps.unwrap_or((0, 0));
        Record {
            snd_nxt,
            rcv_nxt,
            ts_recent,
            ts_offset,
            window,
            timestamps: timestamps.is_some(),
            deadline: Instant::ZERO,
        }
    }
}

/// What to do with a segment that hit a TIME-WAIT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to send.
    Drop,
    /// Send this ACK.
    Ack(TcpRepr),
    /// The record is gone: handle the SYN as a new connection request.
    Reopen,
}

/// Counters of the TIME-WAIT table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWaitStats {
    /// Records that entered TIME-WAIT.
    pub entered: u64,
    /// Records that lived out their 2 × MSL.
    pub expired: u64,
    /// Records dropped early because the bound was reached (oldest first).
    pub evicted: u64,
    /// 4-tuples reopened by a newer SYN (RFC 6191).
    pub reopened: u64,
    /// SYNs refused (answered with the TIME-WAIT ACK): not newer.
    pub syn_refused: u64,
    /// RSTs ignored (RFC 1337).
    pub rst_ignored: u64,
    /// ACKs sent from TIME-WAIT (retransmitted FINs, refused SYNs, strays).
    pub acks_sent: u64,
}

/// The TIME-WAIT records of a stack.
#[derive(Debug)]
pub(crate) struct TimeWaitTable {
    records: HashMap<Tuple, Record>,
    /// (deadline, tuple) in insertion order, which is deadline order.
    fifo: VecDeque<(Instant, Tuple)>,
    max_records: usize,
    duration: Duration,
    stats: TimeWaitStats,
}

impl TimeWaitTable {
    /// An empty table holding at most `max_records`, each for `duration`.
    pub fn new(max_records: usize, duration: Duration) -> TimeWaitTable {
        TimeWaitTable {
            records: HashMap::new(),
            fifo: VecDeque::new(),
            max_records,
            duration,
            stats: TimeWaitStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn stats(&self) -> &TimeWaitStats {
        &self.stats
    }

    pub fn contains(&self, tuple: &Tuple) -> bool {
        self.records.contains_key(tuple)
    }

    /// Bytes the table holds: its index and FIFO, at their capacity.
    pub fn memory(&self) -> usize {
        // hashbrown stores one control byte per bucket beside the entry.
        let entry = core::mem::size_of::<(Tuple, Record)>() + 1;
        self.records.capacity() * entry
            + self.fifo.capacity() * core::mem::size_of::<(Instant, Tuple)>()
    }

    /// Puts `tuple` into TIME-WAIT until `now` + 2 × MSL. With a bound of 0
    /// nothing is kept.
    pub fn insert(&mut self, now: Instant, tuple: Tuple, mut record: Record) {
        if self.max_records == 0 {
            return;
        }
        if !self.records.contains_key(&tuple) {
            while self.records.len() >= self.max_records {
                if !self.pop_oldest() {
                    break;
                }
                self.stats.evicted += 1;
            }
        }
        record.deadline = now + self.duration;
        self.records.insert(tuple, record);
        self.push_fifo(record.deadline, tuple);
        self.stats.entered += 1;
    }

    /// Removes records whose time is up; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(deadline, tuple)) = self.fifo.front() {
            if deadline > now {
                break;
            }
            self.fifo.pop_front();
            if self
                .records
                .get(&tuple)
                .is_some_and(|r| r.deadline == deadline)
            {
                self.records.remove(&tuple);
                n += 1;
            }
        }
        self.stats.expired += n as u64;
        if self.records.is_empty() && self.fifo.capacity() > 64 {
            // A burst of closes is over: give its memory back.
            self.fifo.shrink_to(64);
            self.records.shrink_to(64);
        }
        n
    }

    /// When the oldest entry falls due (possibly a stale one: expiring it is
    /// then a no-op, and cheap).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.fifo.front().map(|&(deadline, _)| deadline)
    }

    /// Handles a segment for `tuple`, which must be in the table
    /// (RFC 9293 §3.10.7.4, TIME-WAIT state); `None` if it is not.
    pub fn on_segment(
        &mut self,
        now: Instant,
        tuple: &Tuple,
        seg: &TcpRepr,
        payload_len: usize,
    ) -> Option<Verdict> {
        let rec = *self.records.get(tuple)?;
        let tsval = seg.options.timestamps.map(|(v, _)| v);
        if seg.flags.rst() {
            self.stats.rst_ignored += 1;
            return Some(Verdict::Drop);
        }
        if seg.flags.syn() && !seg.flags.ack() {
            if syn_is_newer(&rec, seg.seq, tsval) {
                self.records.remove(tuple);
                self.stats.reopened += 1;
                return Some(Verdict::Reopen);
            }
            self.stats.syn_refused += 1;
            return Some(self.ack(now, tuple, &rec));
        }
        let stale_ts = rec.timestamps && tsval.is_some_and(|v| ts_before(v, rec.ts_recent));
        let fin_again = seg.flags.fin() && seg.seq + payload_len + 1usize == rec.rcv_nxt;
        if fin_again && !stale_ts {
            let r = self.records.get_mut(tuple)?;
            if let Some(v) = tsval {
                r.ts_recent = v;
            }
            r.deadline = now + self.duration;
            let (deadline, rec) = (r.deadline, *r);
            self.push_fifo(deadline, *tuple);
            return Some(self.ack(now, tuple, &rec));
        }
        if !stale_ts && payload_len == 0 && !seg.flags.fin() && seg.seq == rec.rcv_nxt {
            return Some(Verdict::Drop);
        }
        Some(self.ack(now, tuple, &rec))
    }

    fn ack(&mut self, now: Instant, tuple: &Tuple, rec: &Record) -> Verdict {
        self.stats.acks_sent += 1;
        let options = TcpOptions {
            timestamps: rec.timestamps.then(|| {
                (
                    (now.total_millis() as u32).wrapping_add(rec.ts_offset),
                    rec.ts_recent,
                )
            }),
            ..TcpOptions::default()
        };
        Verdict::Ack(TcpRepr {
            src_port: tuple.0.port(),
            dst_port: tuple.1.port(),
            seq: rec.snd_nxt,
            ack: rec.rcv_nxt,
            flags: Flags::ACK,
            window: rec.window,
            urgent: 0,
            options,
        })
    }

    /// Drops the record nearest its deadline; false if there is none.
    fn pop_oldest(&mut self) -> bool {
        while let Some((deadline, tuple)) = self.fifo.pop_front() {
            if self
                .records
                .get(&tuple)
                .is_some_and(|r| r.deadline == deadline)
            {
                self.records.remove(&tuple);
                return true;
            }
        }
        false
    }

    fn push_fifo(&mut self, deadline: Instant, tuple: Tuple) {
        self.fifo.push_back((deadline, tuple));
        if self.fifo.len() > 2 * self.records.len().max(32) {
            let records = &self.records;
            self.fifo
                .retain(|(d, t)| records.get(t).is_some_and(|r| r.deadline == *d));
        }
    }
}

/// RFC 6191 §2: the SYN may reopen the 4-tuple when it is provably newer.
fn syn_is_newer(rec: &Record, seq: SeqNumber, tsval: Option<u32>) -> bool {
    match (rec.timestamps, tsval) {
        (true, Some(v)) => ts_before(rec.ts_recent, v),
        _ => seq.distance(rec.rcv_nxt) > 0,
    }
}

/// `a` is earlier than `b` in the 32-bit timestamp space (RFC 7323 §5.3).
fn ts_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

#[cfg(test)]
mod tests;

//! IPv4 fragment reassembly and fragmentation (RFC 791 §3.2, RFC 815), hardened
//! with the lessons of RFC 1858 and of the Linux FragmentSmack fixes.
//!
//! [`Reassembler`] takes fragments one at a time ([`Reassembler::push`]) and
//! hands back the whole [`Datagram`] when its last missing piece arrives;
//! [`fragment`] splits an outgoing datagram to fit an MTU. Sans-I/O like the rest
//! of the crate: time comes in as an [`Instant`], nothing reads a clock.
//!
//! # Storage
//!
//! A datagram's fragments are appended, in arrival order, to one byte buffer
//! that grows in steps (doubling from 256 bytes), next to a sorted list of
//! `(offset, len, position)` records. A fragment therefore costs its own length,
//! not its offset: a flood of 8-byte fragments at offset 65000 costs 8 bytes (plus
//! the per-datagram bookkeeping) each, not 64 KiB. Fragments that arrived in
//! order are already contiguous and are handed back in place; otherwise the
//! pieces are copied once into a second buffer of the final length, or — when
//! the budget cannot hold that — rotated into place within the first.
//!
//! # Bounds and what happens when each is hit
//!
//! - **Budget** ([`FragConfig::budget`], default 4 MiB): [`Reassembler::memory`]
//!   never exceeds it. It counts the real capacity of every buffer held (live
//!   datagrams, spare buffers, the last returned datagram) plus
//!   [`ENTRY_OVERHEAD`] per datagram record. When a fragment needs more, spare
//!   buffers are released first, then the oldest datagrams are evicted
//!   (`evicted`); a fragment that still cannot fit is dropped (`over_budget`), its
//!   datagram kept. A fragment that could not fit in an empty reassembler is
//!   dropped without evicting anything.
//! - **Timeout** ([`FragConfig::timeout`], default 30 s as in Linux; RFC 791
//!   suggests 15 s): counted from a datagram's first fragment. [`Reassembler::expire`]
//!   drops datagrams past it (`timed_out`); `push` does the same lazily.
//!   Records are kept in arrival order, which is deadline order as long as the
//!   caller's clock does not go backwards.
//! - **Fragments per datagram** ([`FragConfig::max_fragments`], default 128): the
//!   fragment beyond it discards the datagram (`too_many_fragments`).
//! - **Length**: a fragment ending beyond 65515 payload bytes (65535 minus our
//!   20-byte header) discards its datagram (`too_long`, the ping of death).
//!
//! # Policy on suspicious fragments
//!
//! - An exact duplicate (same offset and length) is ignored (`duplicates`); the
//!   first copy's bytes are kept, as Linux does.
//! - Any other overlap discards the whole datagram (`overlap`; RFC 5722's rule
//!   applied to IPv4, as Linux does since FragmentSmack). So does, for TCP, a
//!   fragment at offset 8 (RFC 1858 §3.2), and a first fragment too short for the
//!   transport header (`first_too_short`, RFC 1858 §3.1: TCP 20, UDP 8, ICMP 8).
//! - A non-final fragment whose length is not a non-zero multiple of 8, two
//!   different final lengths, or data beyond the final length discards the
//!   datagram (`bad_length`).
//! - A discarded datagram leaves a tombstone: its record (without buffers, only
//!   [`ENTRY_OVERHEAD`]) stays until its timeout, so the rest of its fragments are
//!   dropped (`after_discard`) instead of starting a new half-datagram that could
//!   be completed by an attacker. Tombstones are evicted like datagrams under
//!   memory pressure (not counted in `evicted`), and are not [`pending`](Reassembler::pending).
//!
//! # Allocation
//!
//! Records live in a slab linked in arrival order (so eviction and expiry take
//! the oldest in O(1)), found through a `HashMap` from (src, dst, protocol,
//! ident). Buffers of completed and discarded datagrams are kept, up to
//! [`SPARE_BUFFERS`], for the next datagrams, and counted in `memory()` while
//! kept: in steady state a fragment allocates nothing. The slab and the map keep
//! their high-water capacity, which the budget bounds to
//! `budget / ENTRY_OVERHEAD` records; that table capacity is what
//! [`ENTRY_OVERHEAD`] stands for and is not counted separately.

use core::mem::size_of;
use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::HashMap;

use crate::{protocol, Instant, Ipv4Repr, MAX_PAYLOAD_LEN};

mod split;
#[cfg(test)]
mod tests;

pub use split::{fragment, FragError, MIN_MTU};

/// How many buffers of finished datagrams are kept for reuse.
pub const SPARE_BUFFERS: usize = 4;

/// Bytes charged against the budget for each datagram record, on top of its
/// buffers: its slab slot and its hash-map entry.
pub const ENTRY_OVERHEAD: usize = size_of::<Option<Entry>>() + size_of::<(Key, usize)>() + 8;

/// The first growth step of a datagram's byte buffer.
const MIN_DATA_CAP: usize = 256;
/// The first growth step of a datagram's fragment list.
const MIN_FRAGS_CAP: usize = 4;

/// Bounds of reassembly; see the [module documentation](self) for what happens
/// when each is hit.
#[derive(Debug, Clone)]
pub struct FragConfig {
    /// Most bytes [`Reassembler::memory`] may hold.
    pub budget: usize,
    /// How long an incomplete datagram is kept after its first fragment arrived.
    pub timeout: Duration,
    /// Most fragments one datagram may have.
    pub max_fragments: usize,
}

impl Default for FragConfig {
    /// Budget 4 MiB (like Linux `ipfrag_high_thresh`), timeout 30 s, 128
    /// fragments per datagram (a 65535-byte datagram at the 576-byte minimum
    /// MTU needs 119).
    fn default() -> Self {
        FragConfig {
            budget: 4 << 20,
            timeout: Duration::from_secs(30),
            max_fragments: 128,
        }
    }
}

/// Reassembly counters: fragments received, datagrams completed, and each drop by cause.
#[derive(Debug, Default, Clone)]
pub struct FragStats {
    /// Fragments passed to [`Reassembler::push`].
    pub fragments: u64,
    /// Datagrams put back together.
    pub reassembled: u64,
    /// Exact duplicates (same offset and length), ignored.
    pub duplicates: u64,
    /// Datagrams discarded whole for an overlap, or for a TCP fragment at offset 8 (RFC 1858 §3.2).
    pub overlap: u64,
    /// Fragments ending beyond 65515 payload bytes.
    pub too_long: u64,
    /// First fragments too short to hold the transport header (RFC 1858 §3.1).
    pub first_too_short: u64,
    /// Datagrams discarded for having more than `max_fragments` fragments.
    pub too_many_fragments: u64,
    /// Non-final fragments whose payload is not a non-zero multiple of 8,
    /// inconsistent final lengths, data beyond the final length, an offset not a
    /// multiple of 8, or a payload whose length disagrees with the header.
    pub bad_length: u64,
    /// Datagrams dropped, oldest first, to stay in the budget.
    pub evicted: u64,
    /// Datagrams dropped because they were not complete within the timeout.
    pub timed_out: u64,
    /// Fragments dropped because they could not fit in the budget even after eviction.
    pub over_budget: u64,
    /// Fragments of a datagram discarded earlier, dropped until its timeout.
    pub after_discard: u64,
    /// Packets passed to `push` that were not fragments, dropped.
    pub not_fragment: u64,
}

/// A whole datagram put back together.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The first fragment's header with `more_frags` false, `frag_offset` 0 and
    /// `payload_len` the whole payload's length.
    pub repr: Ipv4Repr,
    /// The whole payload, borrowed from the reassembler until its next call.
    pub payload: &'a [u8],
}

/// Why a fragment was dropped: one cause per [`FragStats`] drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    NotFragment,
    TooLong,
    FirstTooShort,
    /// RFC 1858 §3.2: a TCP fragment at offset 8 can rewrite the TCP flags.
    TcpOffsetOne,
    BadLength,
    Overlap,
    TooMany,
    OverBudget,
}

/// What identifies a datagram (RFC 791 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

impl Key {
    fn of(ip: &Ipv4Repr) -> Key {
        Key {
            src: ip.src_addr,
            dst: ip.dst_addr,
            protocol: ip.protocol,
            ident: ip.ident,
        }
    }
}

/// One received fragment: where it goes in the datagram and where its bytes are.
#[derive(Debug, Clone, Copy)]
struct Frag {
    offset: usize,
    len: usize,
    /// Where its bytes start in [`Bufs::data`].
    pos: usize,
}

impl Frag {
    fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// A datagram's storage, kept for reuse once the datagram is gone.
#[derive(Debug, Default)]
struct Bufs {
    /// Fragment payloads in arrival order.
    data: Vec<u8>,
    /// Fragments sorted by offset, pairwise disjoint.
    frags: Vec<Frag>,
}

impl Bufs {
    /// Heap bytes held, as counted against the budget.
    fn bytes(&self) -> usize {
        self.data.capacity() + self.frags.capacity() * size_of::<Frag>()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.frags.clear();
    }
}

/// A datagram being reassembled (or, if `dead`, the tombstone of a discarded one).
#[derive(Debug)]
struct Entry {
    key: Key,
    deadline: Instant,
    /// Neighbours in arrival order.
    prev: Option<usize>,
    next: Option<usize>,
    /// The header of the fragment at offset 0, once it arrived.
    header: Option<Ipv4Repr>,
    /// The payload length, once the last fragment (MF clear) arrived.
    final_len: Option<usize>,
    /// Payload bytes received (fragments are disjoint, so this is their union).
    received: usize,
    bufs: Bufs,
    dead: bool,
}

/// A fragment that passed the checks that need no other fragment.
#[derive(Debug, Clone, Copy)]
struct Piece {
    offset: usize,
    end: usize,
    more: bool,
}

/// The smallest first fragment for `protocol`: its transport header (RFC 1858 §3.1).
fn min_first_len(proto: u8) -> usize {
    match proto {
        protocol::TCP => 20,
        protocol::UDP | protocol::ICMP => 8,
        _ => 0,
    }
}

/// The checks on one fragment alone.
fn check_piece(ip: &Ipv4Repr, payload: &[u8]) -> Result<Piece, Cause> {
    if !ip.is_fragment() {
        return Err(Cause::NotFragment);
    }
    let offset = usize::from(ip.frag_offset);
    let len = payload.len();
    let end = offset.saturating_add(len);
    if end > MAX_PAYLOAD_LEN {
        return Err(Cause::TooLong);
    }
    if offset == 0 && len < min_first_len(ip.protocol) {
        return Err(Cause::FirstTooShort);
    }
    if ip.protocol == protocol::TCP && offset == 8 {
        return Err(Cause::TcpOffsetOne);
    }
    // RFC 791: every fragment but the last carries a multiple of 8 bytes; an
    // empty non-final fragment carries nothing but would take a record.
    let bad_more = ip.more_frags && (len == 0 || !len.is_multiple_of(8));
    if bad_more || !offset.is_multiple_of(8) || len != ip.payload_len {
        return Err(Cause::BadLength);
    }
    Ok(Piece {
        offset,
        end,
        more: ip.more_frags,
    })
}

/// The capacity to grow to from `cap` to hold `need`: doubling, at least `min`,
/// at most `max` unless `need` itself is more.
fn grown(cap: usize, need: usize, min: usize, max: usize) -> usize {
    if cap >= need {
        return cap;
    }
    need.max(cap.saturating_mul(2)).max(min).min(max.max(need))
}

/// Moves the fragments' bytes into datagram order within `bufs.data`, without
/// extra memory: for each fragment in offset order, rotates it down to where the
/// datagram's bytes so far end.
fn rotate_in_place(bufs: &mut Bufs) {
    let mut cursor = 0;
    for i in 0..bufs.frags.len() {
        let Some(&f) = bufs.frags.get(i) else { break };
        if f.pos != cursor {
            if let Some(region) = bufs.data.get_mut(cursor..f.pos + f.len) {
                region.rotate_right(f.len);
            }
            // The unplaced fragments stored before this one moved up by its length.
            for g in bufs.frags.iter_mut().skip(i + 1) {
                if g.pos < f.pos {
                    g.pos += f.len;
                }
            }
        }
        if let Some(f) = bufs.frags.get_mut(i) {
            f.pos = cursor;
        }
        cursor += f.len;
    }
}

/// IPv4 fragment reassembly within fixed bounds; see the [module documentation](self).
#[derive(Debug)]
pub struct Reassembler {
    cfg: FragConfig,
    stats: FragStats,
    map: HashMap<Key, usize>,
    /// Records; `None` slots are listed in `free_slots`.
    slots: Vec<Option<Entry>>,
    free_slots: Vec<usize>,
    /// Oldest and newest record.
    head: Option<usize>,
    tail: Option<usize>,
    spare: Vec<Bufs>,
    /// The buffers of the datagram last returned by `push`.
    done: Option<Bufs>,
    /// What `memory()` reports, kept up to date.
    mem: usize,
    /// Tombstones among the records.
    dead: usize,
}

impl Reassembler {
    /// A reassembler with bounds `cfg`. Allocates nothing.
    pub fn new(cfg: FragConfig) -> Reassembler {
        Reassembler {
            cfg,
            stats: FragStats::default(),
            map: HashMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            head: None,
            tail: None,
            spare: Vec::new(),
            done: None,
            mem: 0,
            dead: 0,
        }
    }

    /// Takes one fragment (`ip.is_fragment()`; `payload` is its IPv4 payload,
    /// `ip.payload_len` bytes). Returns the datagram when this fragment completes
    /// it; every drop is counted in [`stats`](Self::stats). Never panics.
    pub fn push(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8]) -> Option<Datagram<'_>> {
        self.stats.fragments += 1;
        self.expire(now);
        let key = Key::of(ip);
        let found = self.map.get(&key).copied();
        if let Some(idx) = found {
            if self.entry(idx).is_none_or(|e| e.dead) {
                self.stats.after_discard += 1;
                return None;
            }
        }
        let piece = match check_piece(ip, payload) {
            Ok(piece) => piece,
            Err(cause) => {
                self.drop_fragment(found, cause);
                return None;
            }
        };
        let idx = match found {
            Some(idx) => idx,
            None => match self.create(now, key, payload.len()) {
                Some(idx) => idx,
                None => {
                    self.count(Cause::OverBudget);
                    return None;
                }
            },
        };
        match self.insert(idx, ip, piece, payload) {
            Ok(true) => self.complete(idx),
            Ok(false) => None,
            Err(cause) => {
                self.drop_fragment(Some(idx), cause);
                None
            }
        }
    }

    /// Drops incomplete datagrams older than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.release_done();
        let mut n = 0;
        while let Some(idx) = self.head {
            let Some((deadline, dead)) = self.entry(idx).map(|e| (e.deadline, e.dead)) else {
                break;
            };
            if deadline > now {
                break;
            }
            self.remove(idx);
            if !dead {
                self.stats.timed_out += 1;
                n += 1;
            }
        }
        n
    }

    /// When [`expire`](Self::expire) next has work: the oldest record's deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.head.and_then(|idx| self.slot(idx)).map(|e| e.deadline)
    }

    /// Bytes held now, as counted against the budget: buffer capacity plus
    /// [`ENTRY_OVERHEAD`] per record.
    pub fn memory(&self) -> usize {
        self.mem
    }

    /// Incomplete datagrams held (tombstones of discarded ones excluded).
    pub fn pending(&self) -> usize {
        self.map.len().saturating_sub(self.dead)
    }

    /// The counters.
    pub fn stats(&self) -> &FragStats {
        &self.stats
    }

    /// The bounds this reassembler was built with.
    pub fn config(&self) -> &FragConfig {
        &self.cfg
    }

    fn slot(&self, idx: usize) -> Option<&Entry> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    fn entry(&mut self, idx: usize) -> Option<&mut Entry> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    fn count(&mut self, cause: Cause) {
        let s = &mut self.stats;
        let counter = match cause {
            Cause::NotFragment => &mut s.not_fragment,
            Cause::TooLong => &mut s.too_long,
            Cause::FirstTooShort => &mut s.first_too_short,
            Cause::TcpOffsetOne | Cause::Overlap => &mut s.overlap,
            Cause::BadLength => &mut s.bad_length,
            Cause::TooMany => &mut s.too_many_fragments,
            Cause::OverBudget => &mut s.over_budget,
        };
        *counter += 1;
    }

    /// Counts a dropped fragment and applies the policy for `cause` to its datagram.
    fn drop_fragment(&mut self, idx: Option<usize>, cause: Cause) {
        self.count(cause);
        let Some(idx) = idx else { return };
        match cause {
            // Not a fragment: nothing to do with the datagram of the same key.
            Cause::NotFragment => {}
            // Over budget: keep the datagram, unless it holds nothing yet.
            Cause::OverBudget => {
                if self.entry(idx).is_some_and(|e| e.bufs.frags.is_empty()) {
                    self.remove(idx);
                }
            }
            _ => self.kill(idx),
        }
    }

    /// Adds a record for `key`, within the budget; `None` if it cannot fit.
    fn create(&mut self, now: Instant, key: Key, len: usize) -> Option<usize> {
        // A fragment that could not fit alone evicts nothing.
        if ENTRY_OVERHEAD + len + MIN_FRAGS_CAP * size_of::<Frag>() > self.cfg.budget
            || !self.make_room(ENTRY_OVERHEAD, None)
        {
            return None;
        }
        self.mem += ENTRY_OVERHEAD;
        let bufs = self.spare.pop().unwrap_or_default();
        let entry = Entry {
            key,
            deadline: now + self.cfg.timeout,
            prev: self.tail,
            next: None,
            header: None,
            final_len: None,
            received: 0,
            bufs,
            dead: false,
        };
        let idx = match self.free_slots.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        match self.tail.and_then(|t| self.entry(t)) {
            Some(t) => t.next = Some(idx),
            None => self.head = Some(idx),
        }
        self.tail = Some(idx);
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Some(entry);
        }
        self.map.insert(key, idx);
        Some(idx)
    }

    /// Takes record `idx` out of the slab, the arrival list and the map. Its
    /// buffers are still counted in `mem`: the caller recycles them.
    fn unlink(&mut self, idx: usize) -> Option<Entry> {
        let e = self.slots.get_mut(idx)?.take()?;
        match e.prev.and_then(|p| self.entry(p)) {
            Some(p) => p.next = e.next,
            None => self.head = e.next,
        }
        match e.next.and_then(|n| self.entry(n)) {
            Some(n) => n.prev = e.prev,
            None => self.tail = e.prev,
        }
        self.map.remove(&e.key);
        self.free_slots.push(idx);
        self.mem = self.mem.saturating_sub(ENTRY_OVERHEAD);
        if e.dead {
            self.dead = self.dead.saturating_sub(1);
        }
        Some(e)
    }

    /// Forgets record `idx` (datagram or tombstone).
    fn remove(&mut self, idx: usize) {
        if let Some(e) = self.unlink(idx) {
            self.recycle(e.bufs);
        }
    }

    /// Discards datagram `idx`, leaving a tombstone until its deadline.
    fn kill(&mut self, idx: usize) {
        let Some(e) = self.entry(idx) else { return };
        if e.dead {
            return;
        }
        e.dead = true;
        e.header = None;
        let bufs = core::mem::take(&mut e.bufs);
        self.dead += 1;
        self.recycle(bufs);
    }

    /// Keeps `bufs` for reuse if there is room in the spare list, else frees them.
    fn recycle(&mut self, mut bufs: Bufs) {
        if self.spare.len() < SPARE_BUFFERS && bufs.bytes() > 0 {
            bufs.clear();
            self.spare.push(bufs);
        } else {
            self.mem = self.mem.saturating_sub(bufs.bytes());
        }
    }

    fn release_done(&mut self) {
        if let Some(bufs) = self.done.take() {
            self.recycle(bufs);
        }
    }

    /// Frees spare buffers, then evicts the oldest records other than `protect`,
    /// until `extra` more bytes fit in the budget. False if they cannot.
    fn make_room(&mut self, extra: usize, protect: Option<usize>) -> bool {
        while self.mem.saturating_add(extra) > self.cfg.budget {
            if let Some(bufs) = self.spare.pop() {
                self.mem = self.mem.saturating_sub(bufs.bytes());
                continue;
            }
            let mut victim = self.head;
            if victim.is_some() && victim == protect {
                victim = victim.and_then(|v| self.slot(v)).and_then(|e| e.next);
            }
            let Some(victim) = victim else { return false };
            if self.slot(victim).is_some_and(|e| !e.dead) {
                self.stats.evicted += 1;
            }
            self.remove(victim);
        }
        true
    }

    /// Grows datagram `idx`'s buffers, within the budget, to take one more
    /// fragment of `len` bytes, the byte buffer to at most `max_data` (the
    /// datagram's length if known: its bytes never exceed it). False if the
    /// budget cannot hold it.
    fn reserve(&mut self, idx: usize, len: usize, max_data: usize) -> bool {
        let max_frags = self.cfg.max_fragments;
        let Some(b) = self.entry(idx).map(|e| &e.bufs) else {
            return false;
        };
        let old = b.bytes();
        let data_len = b.data.len();
        let data_cap = grown(b.data.capacity(), data_len + len, MIN_DATA_CAP, max_data);
        let frags_len = b.frags.len();
        let frags_cap = grown(b.frags.capacity(), frags_len + 1, MIN_FRAGS_CAP, max_frags);
        let planned = data_cap + frags_cap * size_of::<Frag>();
        if planned == old {
            return true;
        }
        if !self.make_room(planned - old, Some(idx)) {
            return false;
        }
        let Some(b) = self.entry(idx).map(|e| &mut e.bufs) else {
            return false;
        };
        b.data.reserve_exact(data_cap - data_len);
        b.frags.reserve_exact(frags_cap - frags_len);
        // Vec's `reserve_exact` allocates exactly what it is asked for.
        let now = b.bytes();
        debug_assert_eq!(now, planned);
        self.mem = self.mem.saturating_sub(old).saturating_add(now);
        true
    }

    /// Adds a checked fragment to datagram `idx`. `Ok(true)` when the datagram
    /// is now complete; `Ok(false)` when it is not, or for an exact duplicate.
    fn insert(
        &mut self,
        idx: usize,
        ip: &Ipv4Repr,
        p: Piece,
        payload: &[u8],
    ) -> Result<bool, Cause> {
        let max_fragments = self.cfg.max_fragments;
        let e = self.entry(idx).ok_or(Cause::OverBudget)?;
        let frags = &e.bufs.frags;
        let max_end = frags.last().map_or(0, Frag::end);
        // RFC 791: the fragment with MF clear fixes the length; nothing may lie beyond it.
        let beyond = match (p.more, e.final_len) {
            (false, Some(f)) => f != p.end,
            (false, None) => max_end > p.end,
            (true, Some(f)) => p.end > f,
            (true, None) => false,
        };
        if beyond {
            return Err(Cause::BadLength);
        }
        let at = frags.partition_point(|f| f.offset < p.offset);
        let next = frags.get(at);
        if next.is_some_and(|f| f.offset == p.offset && f.end() == p.end) {
            self.stats.duplicates += 1;
            return Ok(false);
        }
        // Any other overlap discards the datagram (RFC 5722, FragmentSmack).
        let prev = at.checked_sub(1).and_then(|i| frags.get(i));
        if prev.is_some_and(|f| f.end() > p.offset) || next.is_some_and(|f| f.offset < p.end) {
            return Err(Cause::Overlap);
        }
        if frags.len() >= max_fragments {
            return Err(Cause::TooMany);
        }
        let max_data = match (p.more, e.final_len) {
            (false, _) => p.end,
            (true, Some(f)) => f,
            (true, None) => MAX_PAYLOAD_LEN,
        };
        if !self.reserve(idx, payload.len(), max_data) {
            return Err(Cause::OverBudget);
        }
        let e = self.entry(idx).ok_or(Cause::OverBudget)?;
        let pos = e.bufs.data.len();
        e.bufs.data.extend_from_slice(payload);
        let frag = Frag {
            offset: p.offset,
            len: payload.len(),
            pos,
        };
        e.bufs.frags.insert(at, frag);
        e.received += payload.len();
        if p.offset == 0 {
            e.header = Some(*ip);
        }
        if !p.more {
            e.final_len = Some(p.end);
        }
        Ok(e.final_len == Some(e.received))
    }

    /// Takes complete datagram `idx` out and returns it, its buffers kept in `done`.
    fn complete(&mut self, idx: usize) -> Option<Datagram<'_>> {
        let e = self.unlink(idx)?;
        let Some(header) = e.header else {
            // Unreachable: coverage from offset 0 means the first fragment is here.
            self.recycle(e.bufs);
            return None;
        };
        let bufs = self.assemble(e.bufs);
        self.stats.reassembled += 1;
        let done = self.done.insert(bufs);
        let repr = Ipv4Repr {
            more_frags: false,
            frag_offset: 0,
            payload_len: done.data.len(),
            ..header
        };
        Some(Datagram {
            repr,
            payload: &done.data,
        })
    }

    /// Puts a complete datagram's bytes in order: in place if they arrived in
    /// order, else copied into a buffer of the final length if the budget holds
    /// one, else rotated in place.
    fn assemble(&mut self, mut bufs: Bufs) -> Bufs {
        if bufs.frags.iter().all(|f| f.pos == f.offset) {
            return bufs;
        }
        let need = bufs.data.len();
        let Some(mut out) = self.scratch(need) else {
            rotate_in_place(&mut bufs);
            return bufs;
        };
        for f in &bufs.frags {
            if let Some(part) = bufs.data.get(f.pos..f.pos + f.len) {
                out.data.extend_from_slice(part);
            }
        }
        self.recycle(bufs);
        out
    }

    /// An empty buffer of at least `need` bytes: a spare one, or a new one within the budget.
    fn scratch(&mut self, need: usize) -> Option<Bufs> {
        if let Some(i) = self.spare.iter().position(|b| b.data.capacity() >= need) {
            return Some(self.spare.swap_remove(i));
        }
        if !self.make_room(need, None) {
            return None;
        }
        self.mem += need;
        Some(Bufs {
            data: Vec::with_capacity(need),
            frags: Vec::new(),
        })
    }

    /// `memory()` recomputed from scratch, to check the running count.
    #[cfg(test)]
    fn recount(&self) -> usize {
        let entries = self.slots.iter().flatten();
        entries
            .map(|e| ENTRY_OVERHEAD + e.bufs.bytes())
            .sum::<usize>()
            + self.spare.iter().map(Bufs::bytes).sum::<usize>()
            + self.done.as_ref().map_or(0, Bufs::bytes)
    }
}

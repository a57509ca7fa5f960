//! Receive side out-of-order bookkeeping: which byte ranges beyond RCV.NXT have
//! arrived (RFC 9293 §3.10.7.4, "segment text"), and which SACK blocks to put in
//! the next ACK (RFC 2018 §4, RFC 2883 §4).
//!
//! The connection stores the bytes themselves in its receive [`RingBuffer`] at their
//! offset from RCV.NXT; [`Assembler`] only remembers *which* offsets are filled.
//! [`SackGenerator`] turns the assembler's ranges into SACK blocks in the order
//! RFC 2018 asks for. Both have fixed capacity and never allocate.
//!
//! [`RingBuffer`]: crate::buffer::RingBuffer

use crate::seq::SeqNumber;
use crate::wire::{SackBlock, SackBlocks};

/// How many disjoint out-of-order ranges the assembler tracks. A segment that would
/// need one more is dropped by the caller (it will be retransmitted): memory stays bounded.
pub const MAX_RANGES: usize = 32;

/// A segment could not be recorded: it would create a range beyond [`MAX_RANGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "out-of-order segment at offset {offset} (+{len} bytes) dropped: \
     assembler already tracks {MAX_RANGES} disjoint ranges"
)]
pub struct AssemblerFull {
    pub offset: usize,
    pub len: usize,
}

/// Half-open range `start .. end` of offsets from RCV.NXT; never empty.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Range {
    start: usize,
    end: usize,
}

/// Up to [`MAX_RANGES`] sorted, disjoint, non-adjacent ranges of received offsets,
/// relative to RCV.NXT (offset 0 is the next byte the application is owed).
///
/// Typical use by the connection, for a segment whose text starts `off` bytes
/// after RCV.NXT:
/// - `off > 0` (out of order): write the text into the ring at `off`, then
///   [`add`](Self::add); on `Err`, drop the segment.
/// - `off == 0` (in order): append the text, [`advance`](Self::advance) by its
///   length, then RCV.NXT += [`take_front`](Self::take_front) (the bytes that
///   earlier out-of-order segments had already filled in).
#[derive(Clone, Debug)]
pub struct Assembler {
    ranges: [Range; MAX_RANGES],
    len: usize,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler {
            ranges: [Range::default(); MAX_RANGES],
            len: 0,
        }
    }

    fn live(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of disjoint ranges held.
    #[cfg(test)]
    pub fn range_count(&self) -> usize {
        self.len
    }

    /// `(offset, len)` of each range, lowest offset first.
    #[cfg(test)]
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.live().iter().map(|r| (r.start, r.end - r.start))
    }

    /// Records that bytes `offset .. offset + len` (relative to RCV.NXT) arrived,
    /// merging with every range they overlap or touch. Zero-length input is a no-op.
    /// On `Err` nothing changed.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<(), AssemblerFull> {
        if len == 0 {
            return Ok(());
        }
        let start = offset;
        let end = offset.saturating_add(len);
        // First range that touches or lies after the new one ...
        let first = self.live().partition_point(|r| r.end < start);
        // ... and one past the last range that touches or lies before it.
        let last = self.live().partition_point(|r| r.start <= end);
        if first == last {
            // Touches nothing: insert a new range at `first`.
            if self.len == MAX_RANGES {
                return Err(AssemblerFull { offset, len });
            }
            self.ranges.copy_within(first..self.len, first + 1);
            self.ranges[first] = Range { start, end };
            self.len += 1;
        } else {
            let merged = Range {
                start: start.min(self.ranges[first].start),
                end: end.max(self.ranges[last - 1].end),
            };
            self.ranges[first] = merged;
            self.ranges.copy_within(last..self.len, first + 1);
            self.len -= last - first - 1;
        }
        Ok(())
    }

    /// If a range starts at offset 0, removes it and returns its length: those bytes
    /// are now contiguous and RCV.NXT advances by it. The remaining ranges are
    /// renumbered from the new RCV.NXT. Otherwise returns 0.
    pub fn take_front(&mut self) -> usize {
        match self.live().first() {
            Some(r) if r.start == 0 => {
                let n = r.end;
                self.ranges.copy_within(1..self.len, 0);
                self.len -= 1;
                for r in &mut self.ranges[..self.len] {
                    // Ranges are non-adjacent, so every later start is > n.
                    r.start -= n;
                    r.end -= n;
                }
                n
            }
            _ => 0,
        }
    }

    /// RCV.NXT advanced by `n` through in-order data: renumber the ranges from the
    /// new RCV.NXT, trimming whatever part of them lies in the consumed prefix.
    /// A range may now start at 0; call [`take_front`](Self::take_front) next.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        // In-order data with nothing held out of order: every segment of a
        // clean transfer comes here.
        if n == 0 || self.len == 0 {
            return;
        }
        let gone = self.live().partition_point(|r| r.end <= n);
        self.ranges.copy_within(gone..self.len, 0);
        self.len -= gone;
        for r in &mut self.ranges[..self.len] {
            r.start = r.start.saturating_sub(n);
            r.end -= n;
        }
    }

    /// The range `(offset, len)` that contains `offset`, if any: after [`add`](Self::add),
    /// this is the "contiguous block containing the segment" of RFC 2018 §4.
    pub fn range_containing(&self, offset: usize) -> Option<(usize, usize)> {
        let i = self.live().partition_point(|r| r.end <= offset);
        self.live()
            .get(i)
            .filter(|r| r.start <= offset)
            .map(|r| (r.start, r.end - r.start))
    }

    /// Writes the ranges into `out` as absolute SACK blocks (RCV.NXT = `rcv_nxt`),
    /// lowest first, as many as fit, and returns the filled part. Give `out`
    /// [`MAX_RANGES`] slots to get all of them.
    pub fn sack_blocks<'a>(&self, rcv_nxt: SeqNumber, out: &'a mut [SackBlock]) -> &'a [SackBlock] {
        let n = self.len.min(out.len());
        for (slot, r) in out.iter_mut().zip(self.live()) {
            *slot = SackBlock {
                left: rcv_nxt + r.start,
                right: rcv_nxt + r.end,
            };
        }
        &out[..n]
    }
}

/// How many recently reported blocks [`SackGenerator`] remembers for ordering. More
/// than fit in one option (4), so that blocks merged away still leave enough history.
pub const SACK_HISTORY: usize = 8;

/// Chooses and orders the SACK blocks of each ACK (RFC 2018 §4, RFC 2883 §4).
///
/// The caller:
/// - on every out-of-order segment, after [`Assembler::add`], calls
///   [`on_out_of_order`](Self::on_out_of_order) with the assembler range now
///   containing it (as absolute sequence numbers);
/// - on a duplicate segment, calls [`on_duplicate`](Self::on_duplicate) with the
///   duplicated part (D-SACK);
/// - when building each ACK, calls [`blocks`](Self::blocks) once with RCV.NXT and
///   the assembler's current ranges ([`Assembler::sack_blocks`]).
///
/// The assembler's ranges are the truth; the history only decides the order.
#[derive(Clone, Debug)]
pub struct SackGenerator {
    /// Most recent first. Blocks may be stale (since grown or acked); `blocks` fixes them.
    history: [SackBlock; SACK_HISTORY],
    history_len: usize,
    dsack: Option<SackBlock>,
}

impl Default for SackGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// `[left, right)` as signed offsets from `base`, or `None` if malformed.
fn rel(b: SackBlock, base: SeqNumber) -> Option<(i64, i64)> {
    let l = i64::from(b.left.distance(base));
    let r = l + i64::from(b.right - b.left);
    // A "block" longer than half the sequence space is garbage.
    (b.right.distance(b.left) > 0).then_some((l, r))
}

/// A right edge (relative to RCV.NXT) that leaves something to report: above
/// RCV.NXT and less than half the sequence space away from it.
fn in_window(right: i64) -> bool {
    right > 0 && right <= i64::from(i32::MAX)
}

fn overlaps_or_touches(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

impl SackGenerator {
    pub fn new() -> Self {
        SackGenerator {
            history: [SackBlock::default(); SACK_HISTORY],
            history_len: 0,
            dsack: None,
        }
    }

    /// An out-of-order segment arrived; `block` is the whole contiguous received
    /// block that now contains it. It becomes the first block of the next ACK
    /// (RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of
    /// data containing the segment which triggered this ACK"). Older history entries
    /// that it swallowed are forgotten; the oldest entry falls off when full.
    pub fn on_out_of_order(&mut self, block: SackBlock) {
        let Some(new) = rel(block, block.left) else {
            return;
        };
        let mut kept = 0;
        for i in 0..self.history_len {
            let h = self.history[i];
            let swallowed = rel(h, block.left).is_none_or(|old| overlaps_or_touches(old, new));
            if !swallowed && kept < SACK_HISTORY - 1 {
                self.history[kept] = h;
                kept += 1;
            }
        }
        self.history.copy_within(0..kept, 1);
        self.history[0] = block;
        self.history_len = kept + 1;
    }

    /// A duplicate segment covering `block` arrived: report it as a D-SACK block,
    /// first in the next ACK only (RFC 2883 §4). A later duplicate replaces it.
    pub fn on_duplicate(&mut self, block: SackBlock) {
        if rel(block, block.left).is_some() {
            self.dsack = Some(block);
        }
    }

    /// The SACK blocks for the ACK being built, at most `max` (and at most 4), given
    /// RCV.NXT and the assembler's current ranges (`current`, absolute, any order).
    /// Call once per ACK sent: a pending D-SACK block is consumed.
    ///
    /// Order (RFC 2883 §4 then RFC 2018 §4):
    /// 1. the D-SACK block, if any: the duplicated range itself, even below RCV.NXT;
    /// 2. if the duplicate lies inside a received block above RCV.NXT, that block
    ///    ("the second SACK block in that SACK option should specify that (possibly
    ///    larger) block of data");
    /// 3. history, most recent first, each replaced by the current block that now
    ///    contains it (blocks merge when a hole fills), skipping blocks already
    ///    listed ("not subsets of a SACK block already included") and blocks at or
    ///    below RCV.NXT (cumulatively acknowledged, so they vanish);
    /// 4. any other current blocks, lowest first ("include as many distinct SACK
    ///    blocks as possible").
    pub fn blocks(&mut self, rcv_nxt: SeqNumber, current: &[SackBlock], max: usize) -> SackBlocks {
        let max = max.min(4);
        let mut out = SackBlocks::default();
        let dsack = self.dsack.take();
        let mut listed = 0;
        let push = |out: &mut SackBlocks, b: SackBlock| {
            if (out.len as usize) < max {
                out.push(b);
            }
        };
        // The current block containing `(l, r)` (relative), clipped to RCV.NXT.
        let containing = |(l, r): (i64, i64)| -> Option<SackBlock> {
            current.iter().find_map(|&c| {
                let (cl, cr) = rel(c, rcv_nxt)?;
                if !(in_window(cr) && cl < r && l < cr) {
                    return None;
                }
                Some(SackBlock {
                    left: if cl < 0 { rcv_nxt } else { c.left },
                    right: c.right,
                })
            })
        };

        if let Some(d) = dsack {
            push(&mut out, d);
            listed = out.len as usize;
            if let Some(outer) = rel(d, rcv_nxt).and_then(containing) {
                push(&mut out, outer);
            }
        }

        // Bring the history up to date: replace each entry by its current block,
        // drop acked and duplicate ones. This keeps the order of recency.
        let mut kept = 0;
        for i in 0..self.history_len {
            let Some(now) = rel(self.history[i], rcv_nxt).and_then(containing) else {
                continue;
            };
            if self.history[..kept].contains(&now) {
                continue;
            }
            self.history[kept] = now;
            kept += 1;
        }
        self.history_len = kept;

        let already = |out: &SackBlocks, b: &SackBlock| out.as_slice()[listed..].contains(b);
        for &h in &self.history[..self.history_len] {
            if !already(&out, &h) {
                push(&mut out, h);
            }
        }
        // Remaining current blocks, lowest first (by offset from RCV.NXT).
        let mut floor = i64::MIN;
        while (out.len as usize) < max {
            let next = current
                .iter()
                .filter_map(|&c| Some((rel(c, rcv_nxt)?, c)))
                .filter(|&((l, r), _)| in_window(r) && l > floor)
                .min_by_key(|&((l, _), _)| l);
            let Some(((l, _), c)) = next else { break };
            floor = l;
            let c = SackBlock {
                left: if l < 0 { rcv_nxt } else { c.left },
                right: c.right,
            };
            if !already(&out, &c) {
                push(&mut out, c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blk(l: u32, r: u32) -> SackBlock {
        SackBlock {
            left: SeqNumber(l),
            right: SeqNumber(r),
        }
    }

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    #[test]
    fn add_merges_overlapping_and_adjacent() {
        let mut a = Assembler::new();
        a.add(10, 5).unwrap();
        a.add(30, 5).unwrap();
        a.add(20, 2).unwrap();
        assert_eq!(ranges(&a), [(10, 5), (20, 2), (30, 5)]);
        // Touches 10..15 on the right and 20..22 on the left: all three merge.
        a.add(15, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 12), (30, 5)]);
        // Spans everything.
        a.add(5, 100).unwrap();
        assert_eq!(ranges(&a), [(5, 100)]);
        a.add(7, 0).unwrap();
        assert_eq!(ranges(&a), [(5, 100)]);
    }

    #[test]
    fn full_assembler_refuses_new_ranges_but_accepts_merges() {
        let mut a = Assembler::new();
        for i in 0..MAX_RANGES {
            a.add(10 * i + 1, 5).unwrap();
        }
        let before = ranges(&a);
        assert_eq!(
            a.add(1000, 1),
            Err(AssemblerFull {
                offset: 1000,
                len: 1
            })
        );
        assert_eq!(ranges(&a), before);
        // Filling a hole needs no new range.
        a.add(6, 5).unwrap();
        assert_eq!(a.range_count(), MAX_RANGES - 1);
    }

    #[test]
    fn take_front_only_at_offset_zero() {
        let mut a = Assembler::new();
        a.add(4, 4).unwrap();
        a.add(10, 2).unwrap();
        assert_eq!(a.take_front(), 0);
        // The missing bytes 0..4 arrive in order: RCV.NXT += 4.
        a.advance(4);
        assert_eq!(ranges(&a), [(0, 4), (6, 2)]);
        assert_eq!(a.take_front(), 4);
        assert_eq!(ranges(&a), [(2, 2)]);
        assert_eq!(a.take_front(), 0);
    }

    #[test]
    fn advance_trims_ranges_overlapping_the_consumed_prefix() {
        let mut a = Assembler::new();
        a.add(2, 6).unwrap();
        a.add(12, 3).unwrap();
        // An in-order segment of 5 bytes overlapped 2..5.
        a.advance(5);
        assert_eq!(ranges(&a), [(0, 3), (7, 3)]);
        a.advance(100);
        assert!(a.is_empty());
    }

    #[test]
    fn range_containing_and_sack_blocks_wrap() {
        let mut a = Assembler::new();
        a.add(10, 10).unwrap();
        a.add(30, 1).unwrap();
        assert_eq!(a.range_containing(15), Some((10, 10)));
        assert_eq!(a.range_containing(20), None);
        assert_eq!(a.range_containing(30), Some((30, 1)));
        let nxt = SeqNumber(u32::MAX - 14);
        let mut out = [SackBlock::default(); MAX_RANGES];
        let b = a.sack_blocks(nxt, &mut out);
        assert_eq!(b, [blk(u32::MAX - 4, 5), blk(15, 16)]);
    }

    /// RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of
    /// data containing the segment which triggered this ACK", and "The SACK option
    /// SHOULD be filled out by repeating the most recently reported SACK blocks".
    #[test]
    fn first_block_is_most_recent_then_order_of_recency() {
        let nxt = SeqNumber(1000);
        let mut g = SackGenerator::new();
        let mut cur: Vec<SackBlock> = Vec::new();
        for (i, l) in [3000u32, 1500, 5000, 2000].into_iter().enumerate() {
            let b = blk(l, l + 100);
            cur.push(b);
            g.on_out_of_order(b);
            let got = g.blocks(nxt, &cur, 4);
            assert_eq!(got.as_slice()[0], b, "segment {i}");
        }
        let got = g.blocks(nxt, &cur, 4);
        assert_eq!(
            got.as_slice(),
            [
                blk(2000, 2100),
                blk(5000, 5100),
                blk(1500, 1600),
                blk(3000, 3100)
            ]
        );
        // With timestamps only three fit: the oldest is the one left out.
        assert_eq!(g.blocks(nxt, &cur, 3).as_slice(), &got.as_slice()[..3]);
        assert_eq!(g.blocks(nxt, &cur, 0).as_slice(), []);
    }

    /// A block at or below RCV.NXT is cumulatively acknowledged and disappears
    /// from the option.
    #[test]
    fn fully_acked_block_disappears() {
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(200, 300));
        g.on_out_of_order(blk(400, 500));
        // The hole 100..200 filled: RCV.NXT jumped to 300, the assembler holds 400..500.
        let got = g.blocks(SeqNumber(300), &[blk(400, 500)], 4);
        assert_eq!(got.as_slice(), [blk(400, 500)]);
        let got = g.blocks(SeqNumber(500), &[], 4);
        assert_eq!(got.as_slice(), []);
    }

    /// When a hole between two reported blocks fills, they are reported as the one
    /// merged block, in the place of the most recent of them.
    #[test]
    fn blocks_merge_when_a_hole_fills() {
        let nxt = SeqNumber(0);
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(100, 200));
        g.on_out_of_order(blk(300, 400));
        g.on_out_of_order(blk(600, 700));
        g.on_out_of_order(blk(200, 400)); // filled 200..300
        let cur = [blk(100, 400), blk(600, 700)];
        assert_eq!(
            g.blocks(nxt, &cur, 4).as_slice(),
            [blk(100, 400), blk(600, 700)]
        );
        // A stale history block (the caller reported only part) is widened to the
        // current block containing it.
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(300, 350));
        assert_eq!(
            g.blocks(nxt, &[blk(250, 400)], 4).as_slice(),
            [blk(250, 400)]
        );
    }

    /// Blocks the history forgot are still reported (after the recent ones).
    #[test]
    fn current_blocks_fill_remaining_slots() {
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(500, 600));
        let cur = [blk(100, 200), blk(300, 400), blk(500, 600)];
        assert_eq!(
            g.blocks(SeqNumber(0), &cur, 4).as_slice(),
            [blk(500, 600), blk(100, 200), blk(300, 400)]
        );
    }

    /// RFC 2883 §4: "If the D-SACK block reports a duplicate contiguous sequence from
    /// a (possibly larger) block of data in the receiver's data queue above the
    /// cumulative acknowledgement, then the second SACK block in that SACK option
    /// should specify that (possibly larger) block of data", and each duplicate is
    /// reported "in at most one D-SACK block".
    #[test]
    fn dsack_first_then_containing_block_then_once_only() {
        let nxt = SeqNumber(1000);
        let cur = [blk(2000, 3000), blk(4000, 5000)];
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(4000, 5000));
        g.on_out_of_order(blk(2000, 3000));
        g.on_duplicate(blk(4200, 4300));
        assert_eq!(
            g.blocks(nxt, &cur, 4).as_slice(),
            [blk(4200, 4300), blk(4000, 5000), blk(2000, 3000)]
        );
        assert_eq!(
            g.blocks(nxt, &cur, 4).as_slice(),
            [blk(2000, 3000), blk(4000, 5000)]
        );
        // A duplicate below RCV.NXT is reported too (that is D-SACK's point).
        g.on_duplicate(blk(500, 600));
        assert_eq!(
            g.blocks(nxt, &cur, 3).as_slice(),
            [blk(500, 600), blk(2000, 3000), blk(4000, 5000)]
        );
    }

    #[test]
    fn malformed_blocks_are_ignored() {
        let mut g = SackGenerator::new();
        g.on_out_of_order(blk(10, 10));
        g.on_out_of_order(blk(10, 5));
        g.on_duplicate(blk(7, 7));
        assert_eq!(g.blocks(SeqNumber(0), &[blk(9, 3)], 4).as_slice(), []);
    }

    proptest! {
        /// The assembler agrees with a bitmap model and never panics.
        #[test]
        fn assembler_matches_bitmap(ops in prop::collection::vec((0u8..4, 0usize..300, 0usize..40), 0..200)) {
            const W: usize = 400;
            let mut a = Assembler::new();
            let mut model = [false; W];
            for (op, x, y) in ops {
                match op {
                    0 | 1 => {
                        let before = a.clone();
                        let end = (x + y).min(W);
                        match a.add(x, end - x) {
                            Ok(()) => model[x..end].iter_mut().for_each(|b| *b = true),
                            Err(_) => prop_assert_eq!(ranges(&a), ranges(&before)),
                        }
                    }
                    2 => {
                        let n = a.take_front();
                        prop_assert!(n == 0 || model[0]);
                        prop_assert!(model[..n].iter().all(|&b| b));
                        model.copy_within(n.., 0);
                        model[W - n..].iter_mut().for_each(|b| *b = false);
                    }
                    _ => {
                        let n = y.min(W);
                        a.advance(n);
                        model.copy_within(n.., 0);
                        model[W - n..].iter_mut().for_each(|b| *b = false);
                    }
                }
                let mut bits = [false; W];
                let mut prev_end = None;
                for (off, len) in a.ranges() {
                    prop_assert!(len > 0);
                    prop_assert!(prev_end.is_none_or(|e| e < off), "sorted, non-adjacent");
                    prev_end = Some(off + len);
                    bits[off..off + len].iter_mut().for_each(|b| *b = true);
                }
                prop_assert!(a.range_count() <= MAX_RANGES);
                prop_assert_eq!(&bits[..], &model[..]);
            }
        }

        /// Arbitrary input never panics; output respects `max`, lists no block at or
        /// below RCV.NXT except a D-SACK in first place, and puts the latest
        /// out-of-order block first.
        #[test]
        fn generator_never_panics(
            ops in prop::collection::vec((0u8..3, any::<u32>(), 0u32..5000), 0..60),
            raw in prop::collection::vec((any::<u32>(), 0u32..5000), 0..8),
            nxt in any::<u32>(),
            max in 0usize..6,
        ) {
            let nxt = SeqNumber(nxt);
            let cur: Vec<_> = raw.iter().map(|&(l, n)| blk(l, l.wrapping_add(n))).collect();
            let mut g = SackGenerator::new();
            for (op, l, n) in ops {
                let b = blk(l, l.wrapping_add(n));
                match op {
                    0 => g.on_out_of_order(b),
                    1 => g.on_duplicate(b),
                    _ => {
                        let out = g.blocks(nxt, &cur, max);
                        prop_assert!(out.len as usize <= max.min(4));
                    }
                }
            }
            g.blocks(nxt, &cur, max); // consumes a pending D-SACK
            let out = g.blocks(nxt, &cur, max);
            for b in out.as_slice() {
                prop_assert!(b.right.distance(b.left) > 0);
                prop_assert!(b.right.distance(nxt) > 0 && b.left.distance(nxt) >= 0);
            }
            // Realistic use: the assembler's blocks, most recent one first.
            let mut a = Assembler::new();
            let mut g = SackGenerator::new();
            for &(l, n) in raw.iter().take(6) {
                let off = (l % 10_000) as usize + 1;
                if a.add(off, n as usize).is_ok() && n > 0 {
                    let (o, len) = a.range_containing(off).unwrap();
                    let b = blk(nxt.0.wrapping_add(o as u32), nxt.0.wrapping_add((o + len) as u32));
                    g.on_out_of_order(b);
                    let mut buf = [SackBlock::default(); MAX_RANGES];
                    let out = g.blocks(nxt, a.sack_blocks(nxt, &mut buf), 4);
                    prop_assert_eq!(out.as_slice()[0], b);
                    prop_assert_eq!(out.len as usize, a.range_count().min(4));
                }
            }
        }
    }
}

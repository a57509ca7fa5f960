//! Sender side SACK scoreboard (RFC 2018 §5) and the loss recovery helpers of
//! RFC 6675 §4: `IsLost`, `SetPipe` and `NextSeg`.
//!
//! Sequence numbers follow the half-open convention of the rest of the crate, so
//! where RFC 6675 names the highest octet of something (HighACK, HighRxt, HighData)
//! this module takes one past it:
//! - `snd_una` = HighACK + 1, `snd_max` = HighData + 1;
//! - `high_rxt` = HighRxt + 1: one past the last octet retransmitted in the current
//!   recovery, equal to `snd_una` when nothing has been (RFC 6675 §5 (4.2) sets
//!   "HighRxt = HighACK" on entering recovery).
//!
//! [`Scoreboard::pipe`] evaluates `SetPipe` per octet exactly, not by an estimate:
//! `IsLost(S)` depends only on the SACKed octets above `S`, which are the same for
//! every octet of one hole, so each hole is classified once.

use crate::seq::SeqNumber;
use crate::wire::SackBlock;

/// How many disjoint SACKed ranges are remembered. A receiver reports at most four
/// blocks per ACK and has its own bound, so this is rarely reached; when it is, the
/// highest range is forgotten (see [`Scoreboard::update`]).
pub const MAX_SACKED_RANGES: usize = 32;

/// RFC 6675 §2: "DupThresh: The number of duplicate acknowledgments required to
/// trigger a fast retransmission" (3, RFC 5681).
pub const DUP_THRESH: usize = 3;

/// What one ACK taught the scoreboard.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SackUpdate {
    /// Octets SACKed by this ACK that were not SACKed before (for RFC 6675 §5 and
    /// congestion control's DeliveredData). Octets cumulatively acked do not count.
    pub newly_sacked: usize,
    /// This ACK SACKed previously unSACKed data: RFC 6675 §2 counts such an ACK as
    /// a duplicate acknowledgment when it does not advance SND.UNA.
    pub new_sack_info: bool,
    /// The first block was a D-SACK (RFC 2883 §4: its left edge is below the
    /// cumulative ACK, or it lies within the second block). Not recorded as SACKed.
    pub dsack: Option<SackBlock>,
    /// Blocks ignored as malformed (`left >= right`), wholly below the ACK, or
    /// reaching beyond `snd_max` (SACKing data never sent).
    pub ignored: usize,
    /// SACKed ranges forgotten for lack of room (their data may be retransmitted
    /// needlessly; never the reverse).
    pub dropped: usize,
}

/// SACKed ranges above SND.UNA: sorted, disjoint, non-adjacent, within
/// `[HighACK, snd_max)` as of the last [`update`](Self::update), fixed capacity.
#[derive(Clone, Debug)]
pub struct Scoreboard {
    ranges: [SackBlock; MAX_SACKED_RANGES],
    len: usize,
    /// The cumulative ACK all ranges lie above (the highest seen since they were recorded).
    high_ack: SeqNumber,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Self::new()
    }
}

/// `x - base` as a signed offset.
fn off(x: SeqNumber, base: SeqNumber) -> i64 {
    i64::from(x.distance(base))
}

/// Clamps a non-negative i64 offset difference into usize.
fn bytes(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

/// The next range for [`Scoreboard::next_seg`] to (re)transmit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NextSeg {
    pub seq: SeqNumber,
    /// `1 ..= smss`, and never reaching into SACKed data.
    pub len: usize,
    pub rule: NextSegRule,
}

/// Which RFC 6675 §4 `NextSeg()` rule chose a [`NextSeg`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NextSegRule {
    /// Rule (1): the lowest unSACKed octet above HighRxt, below the highest SACKed
    /// octet, for which `IsLost` holds. Send it before new data.
    Lost,
    /// Rule (3): as rule (1) without `IsLost`. Send it only when rule (2), new
    /// data, is not possible (none queued, or the peer's window is closed).
    Unsacked,
}

impl Scoreboard {
    pub fn new() -> Self {
        Scoreboard {
            ranges: [SackBlock::default(); MAX_SACKED_RANGES],
            len: 0,
            high_ack: SeqNumber(0),
        }
    }

    fn live(&self) -> &[SackBlock] {
        &self.ranges[..self.len]
    }

    /// The SACKed ranges, lowest first.
    pub fn ranges(&self) -> &[SackBlock] {
        self.live()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// RFC 2018 §8: "After a retransmit timeout the data sender SHOULD turn off all
    /// of the SACKed bits, since the timeout might indicate that the data receiver
    /// has reneged." RFC 6675 §5.1 keeps this (on RTO the caller also sets its
    /// RecoveryPoint to HighData and leaves loss recovery).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Octets SACKed above SND.UNA in total.
    pub fn sacked_bytes(&self) -> usize {
        self.live()
            .iter()
            .map(|b| (b.right - b.left) as usize)
            .sum()
    }

    /// One past the highest SACKed octet (the right edge of the highest block).
    pub fn highest_sacked(&self) -> Option<SeqNumber> {
        self.live().last().map(|b| b.right)
    }

    pub fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.live()
            .iter()
            .any(|b| seq.in_window(b.left, b.right - b.left))
    }

    /// Processes the cumulative `ack` and SACK `blocks` of a received ACK
    /// (RFC 2018 §5): forgets what `ack` covers, then records each valid block.
    /// A block straddling `ack` is trimmed to it. `snd_max` is one past the highest
    /// octet ever sent. An `ack` older than one seen before changes nothing but its
    /// blocks are still considered.
    ///
    /// When full, a block that fits below the highest range evicts that range, and
    /// one above it is not recorded: the holes nearest SND.UNA matter most, and
    /// forgetting a SACK only risks a needless retransmission.
    pub fn update(
        &mut self,
        ack: SeqNumber,
        blocks: &[SackBlock],
        snd_max: SeqNumber,
    ) -> SackUpdate {
        let mut result = SackUpdate::default();
        if self.len == 0 || off(ack, self.high_ack) > 0 {
            self.high_ack = ack;
        }
        let base = self.high_ack;
        let win = off(snd_max, base);
        self.trim(base, win);

        for (i, &b) in blocks.iter().enumerate() {
            if b.right.distance(b.left) <= 0 {
                result.ignored += 1;
                continue;
            }
            // RFC 2883 §4: a first block below the cumulative ACK, or inside the
            // second block, reports a duplicate segment.
            if i == 0 {
                let below_ack = b.left.distance(ack) < 0;
                let inside_second = blocks.get(1).is_some_and(|s| {
                    s.right.distance(s.left) > 0
                        && b.left.distance(s.left) >= 0
                        && s.right.distance(b.right) >= 0
                });
                if below_ack || inside_second {
                    result.dsack = Some(b);
                }
            }
            let l = off(b.left, base);
            let r = l + i64::from(b.right - b.left);
            if r <= 0 || r > win {
                result.ignored += 1;
                continue;
            }
            let (added, dropped) = self.insert(base, l.max(0), r);
            result.newly_sacked += added;
            result.dropped += dropped;
        }
        result.new_sack_info = result.newly_sacked > 0;
        result
    }

    /// Keeps only what lies in `[base, base + win)`.
    fn trim(&mut self, base: SeqNumber, win: i64) {
        let mut kept = 0;
        for i in 0..self.len {
            let b = self.ranges[i];
            let l = off(b.left, base).max(0);
            let r = off(b.left, base) + i64::from(b.right - b.left);
            let r = r.min(win);
            if l < r {
                self.ranges[kept] = SackBlock {
                    left: base + bytes(l),
                    right: base + bytes(r),
                };
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Records `[base + l, base + r)` (`0 <= l < r`, all ranges already within
    /// `[base, base + 2^31)`). Returns (octets newly SACKed, ranges dropped).
    fn insert(&mut self, base: SeqNumber, l: i64, r: i64) -> (usize, usize) {
        let span = |b: &SackBlock| {
            let lo = off(b.left, base);
            (lo, lo + i64::from(b.right - b.left))
        };
        let first = self.live().partition_point(|b| span(b).1 < l);
        let last = self.live().partition_point(|b| span(b).0 <= r);
        if first == last {
            if self.len == MAX_SACKED_RANGES {
                if first == self.len {
                    return (0, 1);
                }
                self.len -= 1; // forget the highest range to make room
                self.ranges.copy_within(first..self.len, first + 1);
                self.ranges[first] = SackBlock {
                    left: base + bytes(l),
                    right: base + bytes(r),
                };
                self.len += 1;
                return (bytes(r - l), 1);
            }
            self.ranges.copy_within(first..self.len, first + 1);
            self.ranges[first] = SackBlock {
                left: base + bytes(l),
                right: base + bytes(r),
            };
            self.len += 1;
            return (bytes(r - l), 0);
        }
        let old: i64 = self.ranges[first..last]
            .iter()
            .map(|b| i64::from(b.right - b.left))
            .sum();
        let lo = l.min(span(&self.ranges[first]).0);
        let hi = r.max(span(&self.ranges[last - 1]).1);
        self.ranges[first] = SackBlock {
            left: base + bytes(lo),
            right: base + bytes(hi),
        };
        self.ranges.copy_within(last..self.len, first + 1);
        self.len -= last - first - 1;
        (bytes(hi - lo - old), 0)
    }

    /// RFC 6675 §4 `IsLost(SeqNum)`: "returns true when either DupThresh
    /// discontiguous SACKed sequences have arrived above 'SeqNum' or more than
    /// (DupThresh - 1) * SMSS bytes with sequence numbers greater than 'SeqNum'
    /// have been SACKed". A "discontiguous SACKed sequence" is one of the disjoint
    /// SACKed ranges. A SACKed octet is never lost.
    pub fn is_lost(&self, seq: SeqNumber, smss: usize) -> bool {
        if self.is_sacked(seq) {
            return false;
        }
        let mut count = 0;
        let mut above = 0usize;
        for b in self.live().iter().filter(|b| b.left.distance(seq) > 0) {
            count += 1;
            above = above.saturating_add((b.right - b.left) as usize);
        }
        count >= DUP_THRESH || above > (DUP_THRESH - 1).saturating_mul(smss)
    }

    /// The SACKed ranges as offsets from `snd_una`, clipped to `[0, win)`, lowest first.
    fn clipped(&self, snd_una: SeqNumber, win: i64) -> ([(i64, i64); MAX_SACKED_RANGES], usize) {
        let mut out = [(0, 0); MAX_SACKED_RANGES];
        let mut n = 0;
        for b in self.live() {
            let l = off(b.left, snd_una);
            let r = (l + i64::from(b.right - b.left)).min(win);
            if r > l.max(0) {
                out[n] = (l.max(0), r);
                n += 1;
            }
        }
        (out, n)
    }

    /// Calls `f(hole_start, hole_end, lost)` for each unSACKed hole in
    /// `[snd_una, snd_max)` (as offsets from `snd_una`), lowest first; the last
    /// hole is the one above the highest SACKed octet, if any.
    fn for_each_hole(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        smss: usize,
        mut f: impl FnMut(i64, i64, bool, bool) -> bool,
    ) {
        let win = off(snd_max, snd_una);
        if win <= 0 {
            return;
        }
        let (ranges, n) = self.clipped(snd_una, win);
        let ranges = &ranges[..n];
        let limit = (DUP_THRESH - 1).saturating_mul(smss);
        let mut sacked_above: usize = ranges.iter().map(|&(l, r)| bytes(r - l)).sum();
        let mut start = 0;
        for (k, &(l, r)) in ranges.iter().enumerate() {
            // Every octet of this hole has ranges k.. above it (IsLost per octet).
            let lost = n - k >= DUP_THRESH || sacked_above > limit;
            if start < l && !f(start, l, lost, true) {
                return;
            }
            sacked_above -= bytes(r - l);
            start = r;
        }
        if start < win {
            f(start, win, false, false);
        }
    }

    /// RFC 6675 §4 `SetPipe()`: the octets in flight. For each unSACKed octet S1 in
    /// `[snd_una, snd_max)`: "(a) If IsLost (S1) returns false: Pipe is incremented
    /// by 1 octet" and "(b) If S1 <= HighRxt: Pipe is incremented by 1 octet" (so a
    /// retransmitted octet not yet deemed lost counts twice). Exact, not estimated.
    pub fn pipe(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        high_rxt: SeqNumber,
        smss: usize,
    ) -> usize {
        let rxt = off(high_rxt, snd_una);
        let mut pipe = 0usize;
        self.for_each_hole(snd_una, snd_max, smss, |a, b, lost, _| {
            if !lost {
                pipe = pipe.saturating_add(bytes(b - a));
            }
            pipe = pipe.saturating_add(bytes(b.min(rxt) - a));
            true
        });
        pipe
    }

    /// RFC 6675 §4 `NextSeg()` rules (1) and (3): the lowest unSACKed octet S2 with
    /// "(1.a) S2 is greater than HighRxt" and "(1.b) S2 is less than the highest
    /// octet covered by any received SACK"; rule (1) if "(1.c) IsLost (S2) returns
    /// true", else rule (3). Up to `smss` octets from S2, stopping at SACKed data.
    ///
    /// Rule (2), new data, is the caller's: it sends a [`NextSegRule::Lost`] result
    /// first, then new data if any and the window allows, and only then a
    /// [`NextSegRule::Unsacked`] one. (`IsLost` only grows towards SND.UNA, so if the
    /// lowest candidate is not lost, no higher one is.) `None` when `smss` is 0.
    pub fn next_seg(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        high_rxt: SeqNumber,
        smss: usize,
    ) -> Option<NextSeg> {
        if smss == 0 {
            return None;
        }
        let from = off(high_rxt, snd_una).max(0);
        let mut found = None;
        self.for_each_hole(snd_una, snd_max, smss, |a, b, lost, below_sacked| {
            let a = a.max(from);
            if below_sacked && a < b {
                found = Some(NextSeg {
                    seq: snd_una + bytes(a),
                    len: bytes(b - a).min(smss),
                    rule: if lost {
                        NextSegRule::Lost
                    } else {
                        NextSegRule::Unsacked
                    },
                });
                return false;
            }
            true
        });
        found
    }

    /// RFC 6675 §4 `NextSeg()` rule (4), the rescue retransmission: "one segment of
    /// upto SMSS octets that MUST include the highest outstanding unSACKed sequence
    /// number". The caller allows it once per recovery: only when rules (1) to (3)
    /// gave nothing and "HighACK is greater than RescueRxt (or RescueRxt is
    /// undefined)"; it then sets RescueRxt to RecoveryPoint and leaves HighRxt alone.
    pub fn rescue_seg(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        smss: usize,
    ) -> Option<(SeqNumber, usize)> {
        if smss == 0 {
            return None;
        }
        let mut last = None;
        self.for_each_hole(snd_una, snd_max, smss, |a, b, _, _| {
            last = Some((a, b));
            true
        });
        let (a, b) = last?;
        let start = a.max(b - i64::try_from(smss).unwrap_or(i64::MAX));
        Some((snd_una + bytes(start), bytes(b - start)))
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

    fn s(x: u32) -> SeqNumber {
        SeqNumber(x)
    }

    #[test]
    fn update_merges_counts_new_bytes_and_trims_on_ack() {
        let mut sb = Scoreboard::new();
        let u = sb.update(s(1000), &[blk(1200, 1300)], s(2000));
        assert_eq!(
            (u.newly_sacked, u.new_sack_info, u.dsack),
            (100, true, None)
        );
        // Re-reported block plus a new one that touches it.
        let u = sb.update(s(1000), &[blk(1300, 1400), blk(1200, 1300)], s(2000));
        assert_eq!(u.newly_sacked, 100);
        assert_eq!(sb.ranges(), [blk(1200, 1400)]);
        let u = sb.update(s(1000), &[blk(1200, 1400)], s(2000));
        assert!(!u.new_sack_info);
        // The ACK covers part of the SACKed range: not "newly sacked".
        let u = sb.update(s(1250), &[blk(1500, 1600)], s(2000));
        assert_eq!(u.newly_sacked, 100);
        assert_eq!(sb.ranges(), [blk(1250, 1400), blk(1500, 1600)]);
        assert_eq!(sb.sacked_bytes(), 250);
        assert_eq!(sb.highest_sacked(), Some(s(1600)));
        assert!(sb.is_sacked(s(1399)) && !sb.is_sacked(s(1400)) && !sb.is_sacked(s(1249)));
        sb.clear();
        assert!(sb.is_empty() && sb.highest_sacked().is_none());
    }

    #[test]
    fn update_ignores_bad_blocks_and_reports_dsack() {
        let mut sb = Scoreboard::new();
        let u = sb.update(
            s(1000),
            &[
                blk(900, 1000),
                blk(1100, 1100),
                blk(1200, 1100),
                blk(1900, 2100),
            ],
            s(2000),
        );
        assert_eq!(u.ignored, 4);
        assert_eq!(u.dsack, Some(blk(900, 1000)));
        assert!(sb.is_empty());
        // RFC 2883 §4: a first block inside the second is a D-SACK too.
        let u = sb.update(s(1000), &[blk(1300, 1400), blk(1200, 1500)], s(2000));
        assert_eq!(u.dsack, Some(blk(1300, 1400)));
        assert_eq!(u.newly_sacked, 300);
        // A reordered, older ACK does not move HighACK back.
        sb.update(s(1400), &[], s(2000));
        sb.update(s(1000), &[blk(1000, 1100)], s(2000));
        assert_eq!(sb.ranges(), [blk(1400, 1500)]);
    }

    /// RFC 6675 §4 IsLost: "DupThresh discontiguous SACKed sequences have arrived
    /// above 'SeqNum'".
    #[test]
    fn is_lost_with_three_discontiguous_blocks() {
        let mut sb = Scoreboard::new();
        sb.update(
            s(100),
            &[blk(110, 120), blk(130, 140), blk(150, 160)],
            s(1000),
        );
        assert!(sb.is_lost(s(100), 1000));
        assert!(
            sb.is_lost(s(125), 9) && !sb.is_lost(s(125), 10),
            "2 blocks, 20 octets above"
        );
        assert!(!sb.is_lost(s(115), 1), "SACKed octets are not lost");
    }

    /// RFC 6675 §4 IsLost: "more than (DupThresh - 1) * SMSS bytes with sequence
    /// numbers greater than 'SeqNum' have been SACKed".
    #[test]
    fn is_lost_with_more_than_two_smss_sacked_above() {
        let mut sb = Scoreboard::new();
        sb.update(s(0), &[blk(1000, 3000)], s(10_000));
        assert!(!sb.is_lost(s(0), 1000), "exactly 2 SMSS is not more than");
        sb.update(s(0), &[blk(3000, 3001)], s(10_000));
        assert!(sb.is_lost(s(0), 1000));
        assert!(!sb.is_lost(s(3001), 1000), "nothing above");
    }

    /// Worked by hand: SMSS 100, ten segments 1000..2000 in flight. Segments 2, 4,
    /// 6, 8 (1100.., 1300.., 1500.., 1700..) are SACKed. Holes 1000.. and 1200..
    /// have >= 3 SACKed blocks above: lost. 1400.. has 2 blocks and 200 octets (not
    /// more than 2 * SMSS): not lost; neither are 1600.. and 1800..2000. Segment
    /// 1000.. was retransmitted (HighRxt + 1 = 1100). In flight: the 4 segments not
    /// lost plus 1 retransmission = 500 octets.
    #[test]
    fn pipe_worked_example_and_next_seg_rules() {
        let mut sb = Scoreboard::new();
        let sacks = [
            blk(1100, 1200),
            blk(1300, 1400),
            blk(1500, 1600),
            blk(1700, 1800),
        ];
        sb.update(s(1000), &sacks, s(2000));
        assert_eq!(sb.pipe(s(1000), s(2000), s(1000), 100), 400);
        assert_eq!(sb.pipe(s(1000), s(2000), s(1100), 100), 500);
        // Rule (1): the lowest lost hole above HighRxt.
        let first = sb.next_seg(s(1000), s(2000), s(1000), 100);
        assert_eq!(
            first,
            Some(NextSeg {
                seq: s(1000),
                len: 100,
                rule: NextSegRule::Lost
            })
        );
        let second = sb.next_seg(s(1000), s(2000), s(1100), 100);
        assert_eq!(
            second,
            Some(NextSeg {
                seq: s(1200),
                len: 100,
                rule: NextSegRule::Lost
            })
        );
        // Rule (3): the next unSACKed hole below the highest SACK, not (yet) lost.
        let third = sb.next_seg(s(1000), s(2000), s(1300), 100);
        assert_eq!(
            third,
            Some(NextSeg {
                seq: s(1400),
                len: 100,
                rule: NextSegRule::Unsacked
            })
        );
        // Above the highest SACKed octet neither rule applies ((1.b)).
        assert_eq!(sb.next_seg(s(1000), s(2000), s(1700), 100), None);
        // Rule (4): the rescue segment ends at the highest unSACKed octet.
        assert_eq!(sb.rescue_seg(s(1000), s(2000), 100), Some((s(1900), 100)));
        // A segment never reaches into SACKed data, and HighRxt may fall mid-hole.
        assert_eq!(
            sb.next_seg(s(1000), s(2000), s(1050), 1000)
                .map(|n| (n.seq, n.len)),
            Some((s(1050), 50))
        );
    }

    #[test]
    fn wraps_around_2_pow_32() {
        let una = s(u32::MAX - 149);
        let max = una + 1000u32;
        let mut sb = Scoreboard::new();
        let b1 = SackBlock {
            left: una + 100u32,
            right: una + 200u32,
        }; // crosses 2^32
        let b2 = SackBlock {
            left: una + 300u32,
            right: una + 400u32,
        };
        let b3 = SackBlock {
            left: una + 500u32,
            right: una + 600u32,
        };
        let u = sb.update(una, &[b3, b1, b2], max);
        assert_eq!(u.newly_sacked, 300);
        assert_eq!(sb.ranges(), [b1, b2, b3]);
        assert!(sb.is_sacked(s(u32::MAX)) && sb.is_sacked(s(0)));
        assert!(sb.is_lost(una, 1000));
        assert_eq!(
            sb.next_seg(una, max, una, 100),
            Some(NextSeg {
                seq: una,
                len: 100,
                rule: NextSegRule::Lost
            })
        );
        // 100 lost + (200 + 400 not lost)
        assert_eq!(sb.pipe(una, max, una, 100), 600);
        sb.update(una + 250u32, &[], max);
        assert_eq!(sb.ranges(), [b2, b3]);
        assert_eq!(sb.highest_sacked(), Some(una + 600u32));
    }

    #[test]
    fn full_scoreboard_forgets_highest_range() {
        let mut sb = Scoreboard::new();
        for i in 0..MAX_SACKED_RANGES as u32 {
            sb.update(s(0), &[blk(100 + 20 * i, 110 + 20 * i)], s(10_000));
        }
        let top = sb.highest_sacked();
        let u = sb.update(s(0), &[blk(5000, 5010)], s(10_000));
        assert_eq!((u.newly_sacked, u.dropped), (0, 1));
        assert_eq!(sb.highest_sacked(), top);
        assert_eq!(top, Some(s(730)));
        let u = sb.update(s(0), &[blk(10, 20)], s(10_000));
        assert_eq!((u.newly_sacked, u.dropped), (10, 1));
        assert_eq!(sb.ranges().len(), MAX_SACKED_RANGES);
        assert!(sb.is_sacked(s(10)) && !sb.is_sacked(s(720)));
        assert_eq!(sb.highest_sacked(), Some(s(710)));
    }

    /// RFC 6675 §4 SetPipe, literally: one octet at a time.
    fn pipe_per_octet(
        sb: &Scoreboard,
        una: SeqNumber,
        max: SeqNumber,
        rxt: SeqNumber,
        smss: usize,
    ) -> usize {
        let mut pipe = 0;
        let mut s1 = una;
        while s1.distance(max) < 0 {
            if !sb.is_sacked(s1) {
                if !sb.is_lost(s1, smss) {
                    pipe += 1;
                }
                if s1.distance(rxt) < 0 {
                    pipe += 1;
                }
            }
            s1 += 1u32;
        }
        pipe
    }

    proptest! {
        /// Random ACK/SACK sequences: never panics; ranges stay sorted, disjoint,
        /// non-adjacent, within [ack, snd_max) and within capacity; without overflow
        /// the scoreboard equals a bitmap model; pipe equals per-octet SetPipe;
        /// NextSeg picks an unSACKed range above HighRxt below the highest SACK.
        #[test]
        fn random_acks_keep_invariants(
            start in any::<u32>(),
            acks in prop::collection::vec(
                (0u32..60, prop::collection::vec((any::<bool>(), 0u32..1200, 0u32..200), 0..5), 0u32..80, 0u32..400, 1usize..300),
                1..40,
            ),
        ) {
            const W: usize = 1600;
            let una0 = SeqNumber(start);
            let mut sb = Scoreboard::new();
            let mut model = [false; W]; // offsets from una0
            let (mut ack_off, mut max_off) = (0u32, 200u32);
            for (ack_step, blocks, grow, rxt, smss) in acks {
                max_off = (max_off + grow).min(W as u32);
                ack_off = (ack_off + ack_step).min(max_off);
                let ack = una0 + ack_off;
                let snd_max = una0 + max_off;
                let blocks: Vec<SackBlock> = blocks
                    .iter()
                    .map(|&(garbage, l, n)| {
                        let l = if garbage { l.wrapping_mul(0x9e37_79b9) } else { l };
                        SackBlock { left: una0 + l, right: una0 + l.wrapping_add(n) }
                    })
                    .collect();
                let u = sb.update(ack, &blocks, snd_max);
                model[..ack_off as usize].iter_mut().for_each(|b| *b = false);
                for b in blocks.iter().filter(|b| b.right.distance(b.left) > 0) {
                    let l = i64::from(b.left.distance(una0));
                    let r = l + i64::from(b.right - b.left);
                    if r <= i64::from(max_off) && r > i64::from(ack_off) {
                        let l = l.max(i64::from(ack_off)) as usize;
                        model[l..r as usize].iter_mut().for_each(|x| *x = true);
                    }
                }
                prop_assert!(sb.ranges().len() <= MAX_SACKED_RANGES);
                let mut prev = ack_off;
                let mut first = true;
                for b in sb.ranges() {
                    let (l, r) = (b.left - una0, b.right - una0);
                    prop_assert!(l < r && r <= max_off && l >= ack_off);
                    prop_assert!(first || l > prev, "sorted, disjoint, non-adjacent");
                    prev = r;
                    first = false;
                }
                let agrees = (0..W).all(|i| model[i] == sb.is_sacked(una0 + i));
                if !agrees {
                    prop_assert!(u.dropped > 0, "diverged from the model without overflow");
                    // Resynchronise the model with what was kept.
                    for (i, m) in model.iter_mut().enumerate() {
                        *m = sb.is_sacked(una0 + i);
                    }
                }
                let high_rxt = una0 + (ack_off + rxt).min(max_off);
                prop_assert_eq!(
                    sb.pipe(ack, snd_max, high_rxt, smss),
                    pipe_per_octet(&sb, ack, snd_max, high_rxt, smss)
                );
                if let Some(n) = sb.next_seg(ack, snd_max, high_rxt, smss) {
                    prop_assert!(n.len >= 1 && n.len <= smss);
                    prop_assert!(n.seq.distance(high_rxt) >= 0 && n.seq.distance(ack) >= 0);
                    let end = n.seq + n.len;
                    prop_assert!(end.distance(sb.highest_sacked().unwrap()) < 0);
                    let mut x = n.seq;
                    while x != end {
                        prop_assert!(!sb.is_sacked(x));
                        x += 1u32;
                    }
                    prop_assert_eq!(n.rule == NextSegRule::Lost, sb.is_lost(n.seq, smss));
                }
                if let Some((seq, len)) = sb.rescue_seg(ack, snd_max, smss) {
                    prop_assert!(len >= 1 && len <= smss && !sb.is_sacked(seq));
                    prop_assert!(!sb.is_sacked(seq + (len - 1)));
                }
            }
        }
    }
}

//! Receive buffers the application posts ahead of its data
//! ([`crate::Tcp::post_recv`]): in-order payload that finds one waiting is
//! copied straight from the device's buffer into it (summed in the same
//! pass where the checksum is still to be verified), not into the receive
//! ring and out again. That leaves one copy of each received byte, the one
//! a `recv(2)` makes anyway.
//!
//! Buffers fill in the order they were posted; one segment may end one and
//! start the next. A buffer goes back to the application with whatever it
//! holds ([`crate::Tcp::take_recv`]), like a short read. At most
//! [`MAX_POSTED`] are held per connection; the queue's storage is taken on
//! the first post only.

use std::collections::VecDeque;

use ustack_ipv4::checksum;

use crate::error::TcpError;

/// Buffers one connection holds for the application at most; a further
/// [`crate::Tcp::post_recv`] is refused until one is taken back.
pub const MAX_POSTED: usize = 8;

/// A posted buffer handed back: `buf[..len]` is received data, in order.
/// `len == 0` only when the stream has ended and the buffer comes back
/// unused.
#[derive(Debug)]
pub struct Filled {
    /// The buffer the application posted.
    pub buf: Box<[u8]>,
    /// Bytes of received data at its start.
    pub len: usize,
}

impl Filled {
    /// The received bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A buffer [`crate::Tcp::post_recv`] did not take, handed back.
#[derive(Debug)]
pub struct PostRefused {
    /// The buffer, untouched.
    pub buf: Box<[u8]>,
    /// Why it was refused.
    pub reason: Refusal,
}

/// Why a posted buffer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// [`MAX_POSTED`] buffers are already posted on the connection.
    #[error("{MAX_POSTED} receive buffers already posted")]
    Full,
    /// The buffer has no room.
    #[error("receive buffer of length 0")]
    Empty,
    /// The stream has ended and all of it was read: nothing more will arrive.
    #[error("nothing more to receive: the stream has ended")]
    Ended,
    /// The connection failed.
    #[error(transparent)]
    Error(TcpError),
}

/// The posted buffers of one connection, oldest first. Every buffer before
/// the first one with room is full; every one after it is empty.
#[derive(Debug, Default)]
pub(crate) struct Posted {
    bufs: VecDeque<Filled>,
    /// Free bytes over all buffers.
    room: usize,
}

impl Posted {
    /// Whether any buffer is posted (filled or not).
    pub(crate) fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Free bytes over all posted buffers.
    #[inline]
    pub(crate) fn room(&self) -> usize {
        self.room
    }

    /// Whether a filled buffer waits for the application.
    pub(crate) fn has_data(&self) -> bool {
        self.bufs.front().is_some_and(|f| f.len > 0)
    }

    /// Received bytes held for the application over all buffers.
    pub(crate) fn filled(&self) -> usize {
        self.bufs.iter().map(|f| f.len).sum()
    }

    /// Adds an empty buffer after the others, or hands it back when
    /// [`MAX_POSTED`] are held or it has no room at all.
    pub(crate) fn push(&mut self, buf: Box<[u8]>) -> Result<(), Box<[u8]>> {
        if buf.is_empty() || self.bufs.len() >= MAX_POSTED {
            return Err(buf);
        }
        self.room += buf.len();
        self.bufs.push_back(Filled { buf, len: 0 });
        Ok(())
    }

    /// Index of the first buffer with room.
    #[inline]
    fn fill_index(&self) -> usize {
        self.bufs
            .iter()
            .position(|f| f.len < f.buf.len())
            .unwrap_or(self.bufs.len())
    }

    /// Copies as much of `data` as fits after the filled bytes, summing it
    /// on the way (RFC 1071), without counting it as filled. Returns the
    /// count placed and its partial sum; [`Posted::commit`] of the count
    /// makes it data.
    pub(crate) fn stage(&mut self, data: &[u8]) -> (usize, u32) {
        let mut done = 0;
        let mut acc = 0u32;
        let start = self.fill_index_hint();
        for f in self.bufs.range_mut(start..) {
            if done == data.len() {
                break;
            }
            let free = &mut f.buf[f.len..];
            let n = free.len().min(data.len() - done);
            let s = checksum::copy_and_sum(free, &data[done..done + n]);
            // A piece that starts at an odd offset of the data has its
            // bytes swapped in the 16-bit words of the sum.
            acc += u32::from(if done % 2 == 1 { s.swap_bytes() } else { s });
            done += n;
        }
        (done, acc)
    }

    /// Counts `n` bytes placed by [`Posted::stage`] as filled.
    pub(crate) fn commit(&mut self, mut n: usize) {
        let start = self.fill_index_hint();
        n = n.min(self.room);
        self.room -= n;
        for f in self.bufs.range_mut(start..) {
            if n == 0 {
                break;
            }
            let k = (f.buf.len() - f.len).min(n);
            f.len += k;
            n -= k;
        }
    }

    /// Copies as much of `data` as fits after the filled bytes and counts
    /// it as filled; returns the count.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let mut done = 0;
        let start = self.fill_index_hint();
        for f in self.bufs.range_mut(start..) {
            if done == data.len() {
                break;
            }
            let n = (f.buf.len() - f.len).min(data.len() - done);
            f.buf[f.len..f.len + n].copy_from_slice(&data[done..done + n]);
            f.len += n;
            done += n;
        }
        self.room -= done;
        done
    }

    /// Where filling resumes: past the full buffers (none when there is no
    /// room, so loops over the range end at once).
    #[inline]
    fn fill_index_hint(&self) -> usize {
        if self.room == 0 {
            self.bufs.len()
        } else {
            self.fill_index()
        }
    }

    /// The oldest buffer, when it holds data.
    pub(crate) fn take_filled(&mut self) -> Option<Filled> {
        if !self.has_data() {
            return None;
        }
        let f = self.bufs.pop_front()?;
        self.room -= f.buf.len() - f.len;
        Some(f)
    }

    /// The oldest buffer, filled or not.
    pub(crate) fn take_any(&mut self) -> Option<Filled> {
        let f = self.bufs.pop_front()?;
        self.room -= f.buf.len() - f.len;
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(sizes: &[usize]) -> Posted {
        let mut p = Posted::default();
        for &s in sizes {
            p.push(vec![0u8; s].into_boxed_slice()).unwrap();
        }
        p
    }

    #[test]
    fn a_segment_spans_two_buffers_and_its_sum_matches() {
        let mut p = posted(&[5, 8]);
        let data: Vec<u8> = (1..=11).collect();
        let (n, sum) = p.stage(&data);
        assert_eq!(n, 11);
        assert_eq!(checksum::fold(sum), checksum::fold(checksum::sum(&data, 0)));
        // Staged bytes are not data until committed.
        assert!(!p.has_data());
        assert_eq!(p.room(), 13);
        p.commit(n);
        assert_eq!(p.room(), 2);
        let a = p.take_filled().unwrap();
        assert_eq!(a.data(), &data[..5]);
        let b = p.take_filled().unwrap();
        assert_eq!(b.data(), &data[5..]);
        assert_eq!(p.room(), 0);
        assert!(p.take_filled().is_none());
    }

    #[test]
    fn filling_resumes_after_a_partial_buffer_and_stops_when_full() {
        let mut p = posted(&[4, 4]);
        assert_eq!(p.write(&[1, 2, 3]), 3);
        let (n, sum) = p.stage(&[4, 5, 6, 7, 8, 9]);
        assert_eq!(n, 5);
        assert_eq!(
            checksum::fold(sum),
            checksum::fold(checksum::sum(&[4, 5, 6, 7, 8], 0))
        );
        p.commit(n);
        assert_eq!(p.room(), 0);
        assert_eq!(p.write(&[10]), 0);
        assert_eq!(p.take_filled().unwrap().data(), &[1, 2, 3, 4]);
        assert_eq!(p.take_filled().unwrap().data(), &[5, 6, 7, 8]);
    }

    #[test]
    fn a_bad_segment_staged_then_dropped_is_overwritten_by_the_next() {
        let mut p = posted(&[8]);
        p.stage(&[9; 8]);
        assert_eq!(p.write(&[1, 2]), 2);
        assert_eq!(p.take_filled().unwrap().data(), &[1, 2]);
    }

    #[test]
    fn posting_is_bounded_and_empty_buffers_are_refused() {
        let mut p = posted(&[1; MAX_POSTED]);
        assert!(p.push(vec![0; 1].into_boxed_slice()).is_err());
        assert!(Posted::default().push(Box::new([])).is_err());
        assert_eq!(p.take_any().unwrap().len, 0);
        assert_eq!(p.room(), MAX_POSTED - 1);
    }
}

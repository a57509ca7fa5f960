//! Byte rings for each connection's send and receive queues, and the pool
//! their storage comes from.
//!
//! A ring has a *limit* (its logical capacity: what the receive window and
//! the send space are computed from) and *storage*, which it holds only while
//! bytes are queued. The connection attaches storage from the [`BufferPool`]
//! when data needs it and detaches it when the ring is empty, so an idle
//! connection holds no buffer memory. Growth (receive auto-tuning, the send
//! buffer following cwnd) moves the contents into larger storage, keeping
//! every byte at the same offset from the head, out-of-order data placed past
//! the end included.
//!
//! Storage sizes are powers of two from [`MIN_RING`] up; the pool keeps freed
//! storage per size class for reuse (bounded in count and bytes) and enforces
//! the stack-wide budget: it never hands out storage that would take the
//! bytes allocated (in rings and pooled) past the budget.

use ustack_ipv4::checksum;

/// Smallest ring storage, and the granularity of every size.
pub const MIN_RING: usize = 4096;

/// The storage size for a ring of `limit` bytes: the next power of two,
/// at least [`MIN_RING`].
pub fn ring_size(limit: usize) -> usize {
    limit.max(MIN_RING).next_power_of_two()
}

/// A byte queue of bounded logical size whose storage comes and goes.
#[derive(Debug)]
pub struct RingBuffer {
    /// Empty while the ring holds no storage; otherwise at least `limit`
    /// bytes, of which the first `limit` are the ring.
    buf: Box<[u8]>,
    limit: usize,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// A ring with its own storage of `capacity` bytes.
    #[cfg(test)]
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            buf: vec![0; capacity].into_boxed_slice(),
            limit: capacity,
            head: 0,
            len: 0,
        }
    }

    /// A ring of logical size `limit` without storage yet.
    pub fn unallocated(limit: usize) -> RingBuffer {
        RingBuffer {
            buf: Box::default(),
            limit,
            head: 0,
            len: 0,
        }
    }

    /// Logical capacity: what the window or the send space is computed from.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.limit
    }
    /// Bytes of storage held (0, or at least the limit).
    #[inline]
    pub fn storage_bytes(&self) -> usize {
        self.buf.len()
    }
    /// The ring's modulus: the limit while storage is held, else 0.
    #[inline]
    fn cap(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            self.limit
        }
    }
    #[inline]
    pub fn has_storage(&self) -> bool {
        !self.buf.is_empty()
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Logical free space (storage or not).
    #[inline]
    pub fn free(&self) -> usize {
        self.limit - self.len
    }

    /// Changes the logical size of a ring without storage (when it next takes
    /// storage, it needs this much). Ignored while storage is held: growing
    /// then goes through [`RingBuffer::grow_into`].
    pub fn set_limit(&mut self, limit: usize) {
        if !self.has_storage() && limit >= self.len {
            self.limit = limit;
        }
    }

    /// Gives an empty ring without storage `storage` (at least the limit).
    /// Returns the storage back if the ring cannot take it.
    pub fn attach(&mut self, storage: Box<[u8]>) -> Result<(), Box<[u8]>> {
        if self.has_storage() || !self.is_empty() || storage.len() < self.limit.max(1) {
            return Err(storage);
        }
        self.buf = storage;
        self.head = 0;
        Ok(())
    }

    /// Takes the storage whatever it holds, leaving an empty ring of limit
    /// `limit` (a closing connection's buffers).
    pub fn clear(&mut self, limit: usize) -> Box<[u8]> {
        self.head = 0;
        self.len = 0;
        self.limit = limit;
        core::mem::take(&mut self.buf)
    }

    /// Takes the storage of an empty ring, keeping its limit. The caller
    /// makes sure no out-of-order data is held past the end.
    pub fn detach(&mut self) -> Option<Box<[u8]>> {
        if !self.is_empty() || !self.has_storage() {
            return None;
        }
        self.head = 0;
        Some(core::mem::take(&mut self.buf))
    }

    /// Raises the limit to `limit` (not above the storage held), moving the
    /// ring within its storage or into `bigger` storage when given: every
    /// byte, queued or placed past the end by [`RingBuffer::write_at`], stays
    /// at its offset from the head. Returns the storage no longer used
    /// (empty if none), or `bigger` back when it does not fit `limit`.
    pub fn grow_into(&mut self, limit: usize, bigger: Option<Box<[u8]>>) -> Box<[u8]> {
        let cap = self.cap();
        if limit <= self.limit {
            return bigger.unwrap_or_default();
        }
        let mut new = match bigger {
            Some(b) if b.len() >= limit => b,
            Some(b) => return b,
            // With the head at 0 nothing wraps: offsets keep their places
            // when the ring extends into storage it already has.
            None if self.head == 0 && self.buf.len() >= limit => {
                self.limit = limit;
                return Box::default();
            }
            None => return Box::default(),
        };
        if cap == 0 {
            self.limit = limit;
            return match self.attach(new) {
                Ok(()) => Box::default(),
                Err(b) => b,
            };
        }
        let first = cap - self.head;
        new[..first].copy_from_slice(&self.buf[self.head..cap]);
        new[first..cap].copy_from_slice(&self.buf[..self.head]);
        self.head = 0;
        self.limit = limit;
        core::mem::replace(&mut self.buf, new)
    }

    /// Appends as much of `data` as fits; returns the count appended.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let mut done = 0;
        while done < data.len() {
            let n = self.write_with(|free| {
                let n = free.len().min(data.len() - done);
                free[..n].copy_from_slice(&data[done..done + n]);
                n
            });
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Lets `f` fill the first contiguous free region in place; `f` returns how
    /// many bytes it wrote. This is the zero-copy path for producers.
    pub fn write_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let cap = self.cap();
        if self.len == cap {
            return 0;
        }
        let tail = self.wrap(self.head + self.len);
        let end = if tail >= self.head { cap } else { self.head };
        let n = f(&mut self.buf[tail..end]).min(end - tail);
        self.len += n;
        n
    }

    /// Writes `data` `offset` bytes past the current end without making it
    /// readable (out-of-order data held until the gap before it fills).
    /// Returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.cap();
        if cap == 0 || offset >= self.free() {
            return 0;
        }
        let n = data.len().min(self.free() - offset);
        let start = self.wrap(self.head + self.len + offset);
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Copies as much of `data` as fits to where [`RingBuffer::write`]
    /// would put it, without making it readable (as [`RingBuffer::write_at`]
    /// at offset 0), summing it on the way (RFC 1071, [`checksum::copy_and_sum`]).
    /// Returns the count placed and the partial sum of those bytes; a
    /// [`RingBuffer::commit`] of the count makes them readable.
    pub fn stage_summed(&mut self, data: &[u8]) -> (usize, u32) {
        let cap = self.cap();
        // No storage (none attached, or none to be had): nothing fits.
        let n = data.len().min(cap - self.len);
        if n == 0 {
            return (0, 0);
        }
        let start = self.wrap(self.head + self.len);
        let first = n.min(cap - start);
        let a = checksum::copy_and_sum(&mut self.buf[start..], &data[..first]);
        let mut acc = u32::from(a);
        if first < n {
            let b = checksum::copy_and_sum(&mut self.buf[..n - first], &data[first..n]);
            // The second piece starts at an odd offset of the data when the
            // first is odd: its bytes sit swapped in the 16-bit words.
            acc += u32::from(if first % 2 == 1 { b.swap_bytes() } else { b });
        }
        (n, acc)
    }

    /// Makes `n` bytes already placed by [`RingBuffer::write_at`] readable.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.cap() - self.len);
    }

    /// Copies up to `out.len()` bytes starting `offset` bytes after the head,
    /// without removing them; returns the count copied.
    #[cfg(test)]
    pub fn peek(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let cap = self.cap();
        let n = out.len().min(self.len - offset);
        let start = self.wrap(self.head + offset);
        let first = n.min(cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// The `len` bytes starting `offset` bytes after the head, where they
    /// lie: one slice, or two when they cross the end of the storage (the
    /// second empty otherwise). Clamped to what is queued.
    pub fn slices(&self, offset: usize, len: usize) -> [&[u8]; 2] {
        if offset >= self.len {
            return [&[], &[]];
        }
        let cap = self.cap();
        let n = len.min(self.len - offset);
        let start = self.wrap(self.head + offset);
        let first = n.min(cap - start);
        [&self.buf[start..start + first], &self.buf[..n - first]]
    }

    /// `i % cap` for `i < 2 * cap`, which is every index the ring forms
    /// (head, len and offsets are each below cap): a compare instead of a
    /// 64-bit division on every segment and ACK.
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        let cap = self.cap();
        debug_assert!(i < 2 * cap.max(1));
        if i >= cap {
            i - cap
        } else {
            i
        }
    }

    /// Drops `n` bytes from the head. The head never jumps back to 0 when
    /// the buffer empties: data placed past the end by `write_at` stays put.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = self.wrap(self.head + n);
        self.len -= n;
    }

    /// Lets `f` look at the first contiguous run of queued bytes in place and
    /// drops as many as it returns: the zero-copy path for consumers.
    pub fn read_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> usize {
        let end = (self.head + self.len).min(self.cap());
        let n = f(&self.buf[self.head..end]).min(end - self.head);
        self.consume(n);
        n
    }

    /// Moves up to `out.len()` bytes from the head into `out`.
    #[cfg(test)]
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek(0, out);
        self.consume(n);
        n
    }
}

/// Storage kept per size class for reuse.
const POOL_PER_CLASS: usize = 64;
/// Most bytes pooled in all, whatever the budget: pooled storage is resident
/// memory nobody uses.
const POOL_MAX_BYTES: usize = 32 << 20;
/// Size classes: [`MIN_RING`] << 0 ..= [`MIN_RING`] << (CLASSES - 1) (1 GiB).
const CLASSES: usize = 19;

/// Where every ring's storage comes from, and the stack-wide budget for it,
/// with pressure states like Linux's `tcp_mem`: above three quarters of the
/// budget the pool is *under pressure* (buffers stop growing, rings taking
/// storage anew take their initial size) until use falls below half.
///
/// The budget counts all storage allocated, in rings and pooled. Storage
/// that would pass it is refused: the connection then stores less (a
/// receive segment is dropped and retransmitted, a send takes less).
/// Freed storage is pooled per size class (at most [`POOL_PER_CLASS`] each,
/// and at most an eighth of the budget or [`POOL_MAX_BYTES`] in all), so that steady traffic
/// recycles storage instead of allocating; the rest is freed.
#[derive(Debug)]
pub struct BufferPool {
    classes: Vec<Vec<Box<[u8]>>>,
    pooled_bytes: usize,
    budget: usize,
    allocated: usize,
    pressure: bool,
    pressure_events: u64,
    refused: u64,
    /// A gauge or counter of [`PoolStats`] may have moved since
    /// [`BufferPool::take_changed`] last said so.
    changed: bool,
}

/// Counters and gauges of a [`BufferPool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of storage allocated, in rings and pooled.
    pub allocated: usize,
    /// Of those, pooled for reuse.
    pub pooled: usize,
    /// Under memory pressure now.
    pub pressure: bool,
    /// Times the pool entered pressure.
    pub pressure_events: u64,
    /// Requests for storage refused by the budget.
    pub refused: u64,
}

fn class_of(size: usize) -> Option<usize> {
    if size < MIN_RING || !size.is_power_of_two() {
        return None;
    }
    let c = (size / MIN_RING).trailing_zeros() as usize;
    (c < CLASSES).then_some(c)
}

impl BufferPool {
    /// A pool that never lets storage pass `budget` bytes.
    pub fn new(budget: usize) -> BufferPool {
        BufferPool {
            classes: (0..CLASSES)
                .map(|_| Vec::with_capacity(POOL_PER_CLASS))
                .collect(),
            pooled_bytes: 0,
            budget,
            allocated: 0,
            pressure: false,
            pressure_events: 0,
            refused: 0,
            changed: false,
        }
    }

    /// Storage of `size` bytes (rounded by [`ring_size`]): recycled if one is
    /// pooled, else allocated if the budget allows (pooled storage of other
    /// sizes is freed first to make room). `None` when the budget is spent.
    pub fn take(&mut self, size: usize) -> Option<Box<[u8]>> {
        let size = ring_size(size);
        if let Some(b) = class_of(size).and_then(|c| self.classes[c].pop()) {
            self.pooled_bytes -= size;
            return Some(b);
        }
        for c in (0..CLASSES).rev() {
            if self.allocated + size <= self.budget {
                break;
            }
            while self.allocated + size > self.budget {
                let Some(b) = self.classes[c].pop() else {
                    break;
                };
                self.pooled_bytes -= b.len();
                self.allocated -= b.len();
            }
        }
        if self.allocated + size > self.budget {
            self.refused += 1;
            self.update_pressure();
            return None;
        }
        self.allocated += size;
        self.update_pressure();
        Some(resident(size))
    }

    /// Storage back from a ring: pooled or freed.
    pub fn give(&mut self, storage: Box<[u8]>) {
        let size = storage.len();
        if size == 0 {
            return;
        }
        match class_of(size) {
            Some(c)
                if !self.pressure
                    && self.classes[c].len() < POOL_PER_CLASS
                    && self.pooled_bytes + size <= (self.budget / 8).min(POOL_MAX_BYTES) =>
            {
                self.classes[c].push(storage);
                self.pooled_bytes += size;
            }
            _ => {
                self.allocated = self.allocated.saturating_sub(size);
                drop(storage);
            }
        }
        self.update_pressure();
    }

    /// Whether `extra` more bytes may be taken to grow a buffer: not under
    /// pressure, and within the budget.
    pub fn may_grow(&self, extra: usize) -> bool {
        !self.pressure && self.allocated + extra <= self.budget
    }

    /// Under memory pressure: buffers do not grow.
    pub fn under_pressure(&self) -> bool {
        self.pressure
    }

    /// Bytes of storage allocated, in rings and pooled.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// The budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes of storage held for reuse.
    pub fn held_bytes(&self) -> usize {
        self.pooled_bytes
    }

    /// Counters and gauges.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            allocated: self.allocated,
            pooled: self.pooled_bytes,
            pressure: self.pressure,
            pressure_events: self.pressure_events,
            refused: self.refused,
        }
    }

    /// Whether [`BufferPool::stats`] may differ from when this last
    /// returned true: a table mirrors the gauges in its own counters after
    /// every event, and most events take and give nothing.
    #[inline]
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    /// Every change of `allocated` or `refused` ends here.
    fn update_pressure(&mut self) {
        self.changed = true;
        if !self.pressure && self.allocated > self.budget / 4 * 3 {
            self.pressure = true;
            self.pressure_events += 1;
        } else if self.pressure && self.allocated < self.budget / 2 {
            self.pressure = false;
        }
    }
}

#[cfg(test)]
mod tests;

/// Zeroed storage whose every page is already resident. Zeroed allocations
/// come from fresh, untouched pages; touching them now makes the process's
/// RSS follow what the budget counts instead of creeping up for minutes as
/// rings first fill their storage (which a leak check would read as growth).
fn resident(size: usize) -> Box<[u8]> {
    let mut b = vec![0u8; size].into_boxed_slice();
    for page in b.chunks_mut(4096) {
        // Not a constant the compiler may know is already there.
        page[0] = core::hint::black_box(0);
    }
    b
}

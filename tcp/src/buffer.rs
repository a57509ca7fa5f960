//! Fixed-capacity byte ring used for each connection's send and receive queues.
//! Allocated once when the connection is created; never grows.

#[derive(Debug)]
pub struct RingBuffer {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl RingBuffer {
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer::from_storage(vec![0; capacity].into_boxed_slice())
    }

    /// An empty ring over existing storage. Old contents are never read:
    /// only bytes written since are readable.
    pub fn from_storage(buf: Box<[u8]>) -> RingBuffer {
        RingBuffer {
            buf,
            head: 0,
            len: 0,
        }
    }

    pub fn into_storage(self) -> Box<[u8]> {
        self.buf
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn free(&self) -> usize {
        self.buf.len() - self.len
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
        let cap = self.buf.len();
        if self.len == cap {
            return 0;
        }
        let tail = (self.head + self.len) % cap;
        let end = if tail >= self.head { cap } else { self.head };
        let n = f(&mut self.buf[tail..end]).min(end - tail);
        self.len += n;
        n
    }

    /// Writes `data` `offset` bytes past the current end without making it
    /// readable (out-of-order data held until the gap before it fills).
    /// Returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.buf.len();
        if offset >= self.free() {
            return 0;
        }
        let n = data.len().min(self.free() - offset);
        let start = (self.head + self.len + offset) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Makes `n` bytes already placed by [`RingBuffer::write_at`] readable.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.free());
    }

    /// Copies up to `out.len()` bytes starting `offset` bytes after the head,
    /// without removing them; returns the count copied.
    pub fn peek(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let cap = self.buf.len();
        let n = out.len().min(self.len - offset);
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Drops `n` bytes from the head. The head never jumps back to 0 when
    /// the buffer empties: data placed past the end by `write_at` stays put.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len().max(1);
        self.len -= n;
    }

    /// Lets `f` look at the first contiguous run of queued bytes in place and
    /// drops as many as it returns: the zero-copy path for consumers.
    pub fn read_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> usize {
        let end = (self.head + self.len).min(self.buf.len());
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

/// Keeps the storage of closed connections' rings for new ones, so that
/// accepting a connection costs neither an allocation nor zero-filling its
/// buffers (the bulk of a SYN's cost otherwise). Bounded: what does not fit
/// is freed.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
}

impl BufferPool {
    pub fn new(max_buffers: usize) -> BufferPool {
        BufferPool {
            free: Vec::with_capacity(max_buffers),
        }
    }

    /// A ring of exactly `capacity` bytes, recycled when one is pooled.
    pub fn take(&mut self, capacity: usize) -> RingBuffer {
        match self.free.iter().rposition(|b| b.len() == capacity) {
            Some(i) => RingBuffer::from_storage(self.free.swap_remove(i)),
            None => RingBuffer::new(capacity),
        }
    }

    pub fn give(&mut self, ring: RingBuffer) {
        if ring.capacity() > 0 && self.free.len() < self.free.capacity() {
            self.free.push(ring.into_storage());
        }
    }

    /// Bytes of ring storage held for reuse.
    pub fn held_bytes(&self) -> usize {
        self.free.iter().map(|b| b.len()).sum()
    }

    /// Storage held for reuse.
    #[cfg(test)]
    pub fn pooled(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_preserves_order() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.write(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(r.write(b"ghijklmn"), 6);
        assert_eq!(r.free(), 0);
        let mut all = [0u8; 8];
        assert_eq!(r.peek(0, &mut all), 8);
        assert_eq!(&all, b"efghijkl");
        let mut mid = [0u8; 3];
        assert_eq!(r.peek(2, &mut mid), 3);
        assert_eq!(&mid, b"ghi");
        r.consume(8);
        assert!(r.is_empty());
    }

    #[test]
    fn write_with_uses_contiguous_space_only() {
        let mut r = RingBuffer::new(8);
        r.write(b"123456");
        r.consume(4);
        let n = r.write_with(|free| {
            assert_eq!(free.len(), 2);
            free.copy_from_slice(b"78");
            2
        });
        assert_eq!(n, 2);
        assert_eq!(r.write_with(|free| free.len()), 4);
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn read_with_sees_contiguous_run_and_consumes_what_it_returns() {
        let mut r = RingBuffer::new(8);
        r.write(b"abcdefgh");
        r.consume(6);
        r.write(b"ij");
        assert_eq!(
            r.read_with(|d| {
                assert_eq!(d, b"gh");
                1
            }),
            1
        );
        assert_eq!(r.read_with(|d| d.len()), 1);
        assert_eq!(
            r.read_with(|d| {
                assert_eq!(d, b"ij");
                2
            }),
            2
        );
        assert!(r.is_empty());
    }

    #[test]
    fn write_at_holds_data_until_committed() {
        let mut r = RingBuffer::new(8);
        r.write(b"abcdef");
        r.consume(5);
        assert_eq!(r.write_at(2, b"XYZW"), 4);
        assert_eq!(r.len(), 1);
        assert_eq!(r.write(b"gh"), 2);
        r.commit(4);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out), 7);
        assert_eq!(&out[..7], b"fghXYZW");
        assert_eq!(r.write_at(8, b"x"), 0, "beyond capacity");
    }

    #[test]
    fn out_of_order_data_survives_the_reader_emptying_the_buffer() {
        let mut r = RingBuffer::new(16);
        r.write(b"abc");
        r.write_at(2, b"fg");
        let mut out = [0u8; 3];
        assert_eq!(r.read(&mut out), 3, "reader drains everything contiguous");
        r.write(b"de");
        r.commit(2);
        let mut rest = [0u8; 4];
        assert_eq!(r.read(&mut rest), 4);
        assert_eq!(&rest, b"defg");
    }

    #[test]
    fn pool_recycles_storage_and_stays_bounded() {
        let mut pool = BufferPool::new(2);
        let mut a = pool.take(8);
        a.write(b"secret");
        let ptr = a.peek(0, &mut [0u8; 1]);
        assert_eq!(ptr, 1);
        pool.give(a);
        let b = pool.take(8);
        assert!(b.is_empty(), "a recycled ring starts empty");
        assert_eq!(b.peek(0, &mut [0u8; 8]), 0, "old bytes are not readable");
        pool.give(b);
        pool.give(RingBuffer::new(8));
        pool.give(RingBuffer::new(8));
        assert_eq!(pool.pooled(), 2, "bounded");
        assert_eq!(pool.take(16).capacity(), 16, "other sizes are allocated");
    }

    #[test]
    fn peek_past_end_copies_nothing() {
        let mut r = RingBuffer::new(4);
        r.write(b"ab");
        assert_eq!(r.peek(2, &mut [0u8; 4]), 0);
        assert_eq!(r.peek(5, &mut [0u8; 4]), 0);
    }
}

//! An in-memory, single-threaded, full-duplex link: two engines in one thread.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::{Link, LinkError, LinkStats};

/// A bounded FIFO of packets stored in one slab allocated up front:
/// slot `i` is `slab[i * mtu..][..mtu]`, its packet length is `lens[i]`.
struct Ring {
    slab: Box<[u8]>,
    lens: Box<[usize]>,
    mtu: usize,
    /// Index of the oldest packet.
    head: usize,
    /// Packets queued.
    count: usize,
}

impl Ring {
    fn new(mtu: usize, capacity: usize) -> Ring {
        Ring {
            slab: vec![0; mtu * capacity].into_boxed_slice(),
            lens: vec![0; capacity].into_boxed_slice(),
            mtu,
            head: 0,
            count: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Copies `packet` into the next free slot; false if the ring is full.
    fn push(&mut self, packet: &[u8]) -> bool {
        if self.count == self.capacity() {
            return false;
        }
        let slot = (self.head + self.count) % self.capacity();
        self.slab[slot * self.mtu..][..packet.len()].copy_from_slice(packet);
        self.lens[slot] = packet.len();
        self.count += 1;
        true
    }

    fn front_len(&self) -> Option<usize> {
        (self.count > 0).then(|| self.lens[self.head])
    }

    /// Copies the oldest packet into `buf` (which must be long enough) and removes it.
    fn pop_into(&mut self, buf: &mut [u8]) -> usize {
        let len = self.lens[self.head];
        buf[..len].copy_from_slice(&self.slab[self.head * self.mtu..][..len]);
        self.head = (self.head + 1) % self.capacity();
        self.count -= 1;
        len
    }
}

/// One end of an in-memory link made by [`pipe`]. What one end sends, the
/// other receives, in order. Not `Send`: both ends live on one thread.
pub struct PipeEnd {
    tx: Rc<RefCell<Ring>>,
    rx: Rc<RefCell<Ring>>,
    mtu: usize,
    name: &'static str,
    stats: LinkStats,
}

/// Makes a connected pair of in-memory links. Each direction queues at most
/// `capacity` packets of at most `mtu` bytes; all buffers are allocated here,
/// once. A send into a full queue drops the packet and counts it in
/// `tx_dropped`; a send larger than `mtu` is an error.
///
/// # Panics
/// If `capacity` is zero or `mtu` is below [`crate::MIN_IPV4_MTU`]: those
/// are programming errors in a test, not runtime conditions.
pub fn pipe(mtu: usize, capacity: usize) -> (PipeEnd, PipeEnd) {
    assert!(capacity > 0, "pipe capacity must be at least one packet");
    assert!(
        mtu >= crate::MIN_IPV4_MTU,
        "pipe MTU {mtu} is below the IPv4 minimum of {}",
        crate::MIN_IPV4_MTU
    );
    let a_to_b = Rc::new(RefCell::new(Ring::new(mtu, capacity)));
    let b_to_a = Rc::new(RefCell::new(Ring::new(mtu, capacity)));
    let a = PipeEnd {
        tx: a_to_b.clone(),
        rx: b_to_a.clone(),
        mtu,
        name: "pipe-a",
        stats: LinkStats::default(),
    };
    let b = PipeEnd {
        tx: b_to_a,
        rx: a_to_b,
        mtu,
        name: "pipe-b",
        stats: LinkStats::default(),
    };
    (a, b)
}

impl PipeEnd {
    /// Packets waiting to be received by this end.
    pub fn pending(&self) -> usize {
        self.rx.borrow().count
    }
}

impl std::fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeEnd")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("pending", &self.pending())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Link for PipeEnd {
    /// A packet longer than `buf` stays queued and `BufferTooSmall` is returned.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        let mut rx = self.rx.borrow_mut();
        let Some(needed) = rx.front_len() else {
            return Ok(None);
        };
        if needed > buf.len() {
            return Err(LinkError::BufferTooSmall {
                device: self.name.to_owned(),
                len: buf.len(),
                needed,
            });
        }
        let len = rx.pop_into(buf);
        self.stats.count_rx(len);
        Ok(Some(len))
    }

    fn send(&mut self, packet: &[u8]) -> Result<(), LinkError> {
        if packet.len() > self.mtu {
            return Err(LinkError::PacketTooLarge {
                device: self.name.to_owned(),
                len: packet.len(),
                mtu: self.mtu,
            });
        }
        if self.tx.borrow_mut().push(packet) {
            self.stats.count_tx(packet.len());
        } else {
            self.stats.tx_dropped += 1;
            tracing::trace!(
                link = self.name,
                len = packet.len(),
                "queue full, packet dropped"
            );
        }
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }

    fn name(&self) -> &str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_cross_in_order_both_ways() {
        let (mut a, mut b) = pipe(100, 4);
        a.send(&[1; 10]).unwrap();
        a.send(&[2; 20]).unwrap();
        b.send(&[3; 30]).unwrap();
        assert_eq!((a.pending(), b.pending()), (1, 2));

        let mut buf = [0u8; 100];
        assert_eq!(b.recv(&mut buf).unwrap(), Some(10));
        assert_eq!(&buf[..10], &[1; 10]);
        assert_eq!(b.recv(&mut buf).unwrap(), Some(20));
        assert_eq!(&buf[..20], &[2; 20]);
        assert_eq!(b.recv(&mut buf).unwrap(), None);
        assert_eq!(a.recv(&mut buf).unwrap(), Some(30));
        assert_eq!(a.recv(&mut buf).unwrap(), None);

        assert_eq!(a.stats().tx_packets, 2);
        assert_eq!(a.stats().tx_bytes, 30);
        assert_eq!(b.stats().rx_packets, 2);
        assert_eq!(b.stats().rx_bytes, 30);
    }

    #[test]
    fn full_queue_drops_and_counts_then_wraps() {
        let (mut a, mut b) = pipe(68, 2);
        for i in 0..3u8 {
            a.send(&[i; 5]).unwrap();
        }
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(a.stats().tx_packets, 2);
        let mut buf = [0u8; 68];
        assert_eq!(b.recv(&mut buf).unwrap(), Some(5));
        assert_eq!(buf[0], 0);
        // The freed slot is reused: the ring wraps around.
        a.send(&[9; 68]).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), Some(5));
        assert_eq!(buf[0], 1);
        assert_eq!(b.recv(&mut buf).unwrap(), Some(68));
        assert_eq!(buf, [9; 68]);
    }

    #[test]
    fn oversized_send_and_short_buffer_are_errors() {
        let (mut a, mut b) = pipe(68, 2);
        let err = a.send(&[0; 69]).unwrap_err();
        assert!(matches!(
            err,
            LinkError::PacketTooLarge {
                len: 69,
                mtu: 68,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "pipe-a: packet of 69 bytes is larger than the MTU of 68 bytes"
        );

        a.send(&[0; 40]).unwrap();
        let mut small = [0u8; 20];
        assert!(matches!(
            b.recv(&mut small),
            Err(LinkError::BufferTooSmall {
                len: 20,
                needed: 40,
                ..
            })
        ));
        // The packet is still there for a big enough buffer.
        assert_eq!(b.pending(), 1);
        assert_eq!(b.recv(&mut [0u8; 68]).unwrap(), Some(40));
    }

    #[test]
    fn pipe_is_usable_as_any_link() {
        let (a, _b) = pipe(1500, 1);
        let link: crate::AnyLink = a.into();
        assert_eq!(link.mtu(), 1500);
        assert_eq!(link.poll_fd(), None);
        assert_eq!(link.name(), "pipe-a");
    }
}

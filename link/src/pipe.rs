//! An in-memory, single-threaded, full-duplex link: two engines in one thread.
//! Optionally with TCP segmentation offload ([`pipe_tso`]): a super-frame
//! crosses whole, as the peer's GRO would present it.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::{vnet, Link, LinkError, LinkStats};

/// A bounded FIFO of packets stored in one slab allocated up front:
/// slot `i` is `slab[i * slot..][..slot]`, its packet length is `lens[i]`
/// and whether its checksum is partial (a super-frame) is `partial[i]`.
struct Ring {
    slab: Box<[u8]>,
    lens: Box<[usize]>,
    partial: Box<[bool]>,
    /// Bytes per slot: the largest packet either kind of send may queue.
    slot: usize,
    /// Index of the oldest packet.
    head: usize,
    /// Packets queued.
    count: usize,
}

impl Ring {
    fn new(slot: usize, capacity: usize) -> Ring {
        Ring {
            slab: vec![0; slot * capacity].into_boxed_slice(),
            lens: vec![0; capacity].into_boxed_slice(),
            partial: vec![false; capacity].into_boxed_slice(),
            slot,
            head: 0,
            count: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Copies `packet` into the next free slot; false if the ring is full.
    fn push(&mut self, packet: &[u8], partial: bool) -> bool {
        if self.count == self.capacity() {
            return false;
        }
        let slot = (self.head + self.count) % self.capacity();
        self.slab[slot * self.slot..][..packet.len()].copy_from_slice(packet);
        self.lens[slot] = packet.len();
        self.partial[slot] = partial;
        self.count += 1;
        true
    }

    fn front_len(&self) -> Option<usize> {
        (self.count > 0).then(|| self.lens[self.head])
    }

    /// Copies the oldest packet into `buf` (which must be long enough) and
    /// removes it; returns its length and whether its checksum is partial.
    fn pop_into(&mut self, buf: &mut [u8]) -> (usize, bool) {
        let len = self.lens[self.head];
        let partial = self.partial[self.head];
        buf[..len].copy_from_slice(&self.slab[self.head * self.slot..][..len]);
        self.head = (self.head + 1) % self.capacity();
        self.count -= 1;
        (len, partial)
    }
}

/// One end of an in-memory link made by [`pipe`]. What one end sends, the
/// other receives, in order. Not `Send`: both ends live on one thread.
pub struct PipeEnd {
    tx: Rc<RefCell<Ring>>,
    rx: Rc<RefCell<Ring>>,
    mtu: usize,
    /// Largest super-frame `send_segmented` takes; 0: no offload.
    tso_max: usize,
    /// Whether the packet last received was a super-frame.
    rx_trusted: bool,
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
    pipe_tso(mtu, capacity, 0)
}

/// Like [`pipe`], with TCP segmentation offload on both ends when
/// `tso_max` is above 0: [`Link::send_segmented`] takes TCP/IPv4
/// super-frames of up to `tso_max` bytes (checked as a TUN device would,
/// pseudo-header checksum included) and queues each WHOLE, as the peer's
/// GRO would present the segments; the receiving end's
/// [`Link::rx_checksum_trusted`] is true for exactly those packets (their
/// checksum is partial). Each queue slot holds `max(mtu, tso_max)` bytes,
/// allocated here, once; the receiving end needs a buffer that large.
/// [`PipeEnd::set_tso_max`] turns the offload off or down on one end.
///
/// # Panics
/// As [`pipe`], and if `tso_max` is above 0 but below `mtu` or above 65535.
pub fn pipe_tso(mtu: usize, capacity: usize, tso_max: usize) -> (PipeEnd, PipeEnd) {
    assert!(capacity > 0, "pipe capacity must be at least one packet");
    assert!(
        mtu >= crate::MIN_IPV4_MTU,
        "pipe MTU {mtu} is below the IPv4 minimum of {}",
        crate::MIN_IPV4_MTU
    );
    assert!(
        tso_max == 0 || (mtu..=MAX_IPV4_PACKET).contains(&tso_max),
        "pipe TSO maximum {tso_max} is not in {mtu}..={MAX_IPV4_PACKET}"
    );
    let slot = mtu.max(tso_max);
    let a_to_b = Rc::new(RefCell::new(Ring::new(slot, capacity)));
    let b_to_a = Rc::new(RefCell::new(Ring::new(slot, capacity)));
    let end = |tx, rx, name| PipeEnd {
        tx,
        rx,
        mtu,
        tso_max,
        rx_trusted: false,
        name,
        stats: LinkStats::default(),
    };
    let a = end(a_to_b.clone(), b_to_a.clone(), "pipe-a");
    let b = end(b_to_a, a_to_b, "pipe-b");
    (a, b)
}

/// The IPv4 total length field's limit.
const MAX_IPV4_PACKET: usize = 65535;

impl PipeEnd {
    /// Packets waiting to be received by this end.
    pub fn pending(&self) -> usize {
        self.rx.borrow().count
    }

    /// Sets what this end's [`Link::tso_max_size`] reports and its
    /// `send_segmented` accepts: 0 turns the offload off. The queues keep
    /// their size.
    ///
    /// # Panics
    /// If `max` is above 0 but below the MTU, or above the slot size the
    /// pair was made with ([`pipe_tso`]'s `max(mtu, tso_max)`).
    pub fn set_tso_max(&mut self, max: usize) {
        let slot = self.tx.borrow().slot;
        assert!(
            max == 0 || (self.mtu..=slot).contains(&max),
            "{}: TSO maximum {max} is not in {}..={slot}",
            self.name,
            self.mtu
        );
        self.tso_max = max;
    }

    fn enqueue(&mut self, packet: &[u8], partial: bool) {
        if self.tx.borrow_mut().push(packet, partial) {
            self.stats.count_tx(packet.len());
        } else {
            self.stats.tx_dropped += 1;
            tracing::trace!(
                link = self.name,
                len = packet.len(),
                "queue full, packet dropped"
            );
        }
    }
}

impl std::fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeEnd")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("tso_max", &self.tso_max)
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
        let (len, partial) = rx.pop_into(buf);
        self.rx_trusted = partial;
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
        self.enqueue(packet, false);
        Ok(())
    }

    fn tso_max_size(&self) -> usize {
        self.tso_max
    }

    /// Queues the super-frame whole (no segmentation) after the checks a
    /// TUN device makes; see [`pipe_tso`].
    fn send_segmented(&mut self, packet: &[u8], segment_payload: u16) -> Result<(), LinkError> {
        if self.tso_max == 0 {
            return Err(LinkError::InvalidConfig(format!(
                "{}: no TCP segmentation offload",
                self.name
            )));
        }
        if packet.len() > self.tso_max {
            return Err(LinkError::PacketTooLarge {
                device: self.name.to_owned(),
                len: packet.len(),
                mtu: self.tso_max,
            });
        }
        if let Err(reason) = vnet::tcp4_tx_header(packet, segment_payload, self.mtu) {
            return Err(LinkError::MalformedPacket {
                device: self.name.to_owned(),
                reason,
            });
        }
        self.enqueue(packet, true);
        Ok(())
    }

    fn rx_checksum_trusted(&self) -> bool {
        self.rx_trusted
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
    fn superframes_cross_whole_and_only_they_are_trusted() {
        let (mut a, mut b) = pipe_tso(1500, 4, 65535);
        assert_eq!((a.tso_max_size(), b.tso_max_size()), (65535, 65535));
        let sf = vnet::tests::superframe(12, 60_000);
        a.send(&[0x45; 100]).unwrap();
        a.send_segmented(&sf, 1448).unwrap();
        a.send(&[0x45; 1500]).unwrap();
        assert_eq!(a.stats().tx_packets, 3);
        assert_eq!(a.stats().tx_bytes, 100 + sf.len() as u64 + 1500);

        let mut buf = vec![0u8; 65535];
        assert!(!b.rx_checksum_trusted());
        assert_eq!(b.recv(&mut buf).unwrap(), Some(100));
        assert!(!b.rx_checksum_trusted());
        assert_eq!(b.recv(&mut buf).unwrap(), Some(sf.len()));
        assert!(b.rx_checksum_trusted());
        assert_eq!(&buf[..sf.len()], &sf[..]);
        assert_eq!(b.recv(&mut buf).unwrap(), Some(1500));
        assert!(!b.rx_checksum_trusted());
        // Nothing received leaves the flag as it was.
        assert_eq!(b.recv(&mut buf).unwrap(), None);
        assert!(!b.rx_checksum_trusted());

        // Small super-frames (one segment's worth) are trusted too: their
        // checksum is just as partial.
        let small = vnet::tests::superframe(0, 10);
        b.send_segmented(&small, 1448).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), Some(small.len()));
        assert!(a.rx_checksum_trusted());
    }

    #[test]
    fn superframe_checks_and_limits() {
        let (mut a, mut b) = pipe_tso(1500, 1, 20_000);
        let sf = vnet::tests::superframe(0, 30_000);
        assert!(matches!(
            a.send_segmented(&sf, 1460),
            Err(LinkError::PacketTooLarge { mtu: 20_000, .. })
        ));
        let mut bad = vnet::tests::superframe(0, 10_000);
        bad[36] ^= 0x55;
        let err = a.send_segmented(&bad, 1460).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipe-a: cannot send malformed packet: TCP checksum field is not the pseudo-header sum"
        );
        assert!(matches!(
            a.send_segmented(&vnet::tests::superframe(0, 10_000), 1461),
            Err(LinkError::MalformedPacket { .. })
        ));
        // Normal sends still stop at the MTU.
        assert!(a.send(&[0; 1501]).is_err());
        // A full queue drops the super-frame and counts it.
        let ok = vnet::tests::superframe(0, 10_000);
        a.send_segmented(&ok, 1460).unwrap();
        a.send_segmented(&ok, 1460).unwrap();
        assert_eq!((a.stats().tx_packets, a.stats().tx_dropped), (1, 1));
        // Too small a receive buffer: the frame stays queued.
        assert!(matches!(
            b.recv(&mut [0u8; 1500]),
            Err(LinkError::BufferTooSmall { needed: 10_040, .. })
        ));
        assert_eq!(b.recv(&mut vec![0u8; 20_000]).unwrap(), Some(10_040));

        // Offload off on one end: the default error; the other end keeps it.
        a.set_tso_max(0);
        assert_eq!(a.tso_max_size(), 0);
        assert!(matches!(
            a.send_segmented(&ok, 1460),
            Err(LinkError::InvalidConfig(_))
        ));
        b.send_segmented(&ok, 1460).unwrap();
        // A plain pipe has no offload at all.
        let (mut c, _d) = pipe(1500, 1);
        assert_eq!(c.tso_max_size(), 0);
        assert!(c.send_segmented(&ok, 1460).is_err());
        assert!(!c.rx_checksum_trusted());
    }

    #[test]
    #[should_panic(expected = "TSO maximum 65535 is not in 1500..=20000")]
    fn tso_max_cannot_outgrow_the_slots() {
        let (mut a, _b) = pipe_tso(1500, 1, 20_000);
        a.set_tso_max(65535);
    }

    #[test]
    fn pipe_is_usable_as_any_link() {
        let (a, _b) = pipe(1500, 1);
        let link: crate::AnyLink = a.into();
        assert_eq!(link.mtu(), 1500);
        assert_eq!(link.poll_fd(), None);
        assert_eq!(link.name(), "pipe-a");
        assert_eq!(link.tso_max_size(), 0);
        let (a, _b) = pipe_tso(1500, 1, 65535);
        let link: crate::AnyLink = a.into();
        assert_eq!(link.tso_max_size(), 65535);
        assert!(!link.rx_checksum_trusted());
    }
}

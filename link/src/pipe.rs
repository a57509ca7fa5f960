//! An in-memory, single-threaded, full-duplex link: two engines in one thread.
//! Optionally with TCP segmentation offload ([`pipe_tso`]): a super-frame
//! crosses whole, as the peer's GRO would present it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::Rc;

use ustack_ipv4::{DeviceCaps, RxChecksum, RxInfo, RxPacket, TxPacket, MAX_PACKET_LEN};

use crate::{check_parts, no_tso, vnet, Link, LinkError, LinkStats};

/// A bounded FIFO of packets. A slot's buffer is allocated the first time
/// the queue is that deep and kept afterwards; freed buffers are reused
/// last-in first-out, so the few packets in flight cycle through memory
/// that is still in cache, and a pipe that never holds more than a handful
/// of packets never allocates more than a handful of slots.
struct Ring {
    /// Queued packets, oldest first: buffer, length, what the receiver is
    /// told.
    queue: VecDeque<(Box<[u8]>, usize, RxInfo)>,
    /// Buffers of dequeued packets, the most recently freed last.
    spare: Vec<Box<[u8]>>,
    /// Bytes per slot: the largest packet either kind of send may queue.
    slot: usize,
    /// Packets the queue holds at most.
    capacity: usize,
}

impl Ring {
    fn new(slot: usize, capacity: usize) -> Ring {
        Ring {
            queue: VecDeque::with_capacity(capacity),
            spare: Vec::with_capacity(capacity),
            slot,
            capacity,
        }
    }

    /// Gathers `pkt` (at most `slot` bytes) into the next free slot; false
    /// if the ring is full.
    fn push(&mut self, pkt: &TxPacket<'_>, info: RxInfo) -> bool {
        if self.queue.len() == self.capacity {
            return false;
        }
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| vec![0; self.slot].into_boxed_slice());
        let len = pkt
            .copy_to(&mut buf)
            .expect("callers check the length against the slot size");
        self.queue.push_back((buf, len, info));
        true
    }

    fn front_len(&self) -> Option<usize> {
        self.queue.front().map(|&(_, len, _)| len)
    }

    /// Lends the oldest packet to `f`, then removes it; `None` when empty.
    fn pop_with<R>(&mut self, f: impl FnOnce(&[u8], RxInfo) -> R) -> Option<(usize, R)> {
        let (buf, len, info) = self.queue.pop_front()?;
        let r = f(&buf[..len], info);
        self.spare.push(buf);
        Some((len, r))
    }

    /// Copies the oldest packet into `buf` (which must be long enough) and
    /// removes it; returns its length and what the receiver is told.
    fn pop_into(&mut self, buf: &mut [u8]) -> Option<RxPacket> {
        let (len, info) = self.pop_with(|pkt, info| {
            buf[..pkt.len()].copy_from_slice(pkt);
            info
        })?;
        Some(RxPacket { len, info })
    }
}

/// One end of an in-memory link made by [`pipe`]. What one end sends, the
/// other receives, in order. Not `Send`: both ends live on one thread.
pub struct PipeEnd {
    tx: Rc<RefCell<Ring>>,
    rx: Rc<RefCell<Ring>>,
    mtu: usize,
    /// Largest super-frame `send` takes; 0: no offload.
    tso_max: usize,
    name: &'static str,
    stats: LinkStats,
}

/// Makes a connected pair of in-memory links. Each direction queues at most
/// `capacity` packets of at most `mtu` bytes; a slot's buffer is allocated
/// when the queue first gets that deep and reused from then on. A send into
/// a full queue drops the packet and counts it in `tx_dropped`; a send
/// larger than `mtu` is an error. Every packet is received
/// [`RxChecksum::Unverified`].
///
/// # Panics
/// If `capacity` is zero or `mtu` is below [`crate::MIN_IPV4_MTU`]: those
/// are programming errors in a test, not runtime conditions.
pub fn pipe(mtu: usize, capacity: usize) -> (PipeEnd, PipeEnd) {
    pipe_tso(mtu, capacity, 0)
}

/// Like [`pipe`], with TCP segmentation offload on both ends when
/// `tso_max` is above 0 ([`DeviceCaps::tso_max`]): [`Link::send`] takes
/// TCP/IPv4 super-frames (`segment: Some(n)`) of up to `tso_max` bytes
/// (checked as a TUN device would, pseudo-header checksum included) and
/// queues each WHOLE, as the peer's GRO would present the segments. The
/// receiving end reports exactly those packets [`RxChecksum::Partial`]
/// (their checksum is), with [`RxInfo::gro_segment`] `Some(n)` when the
/// frame was longer than one segment (a TUN device would have cut it).
/// Each queue slot holds `max(mtu, tso_max)` bytes, allocated on first use;
/// the receiving end needs a buffer that large ([`DeviceCaps::max_rx_len`]).
/// [`PipeEnd::set_tso_max`] turns the offload off or down on one end.
///
/// # Panics
/// As [`pipe`], and if `tso_max` is above 0 but below `mtu` or above
/// [`MAX_PACKET_LEN`].
pub fn pipe_tso(mtu: usize, capacity: usize, tso_max: usize) -> (PipeEnd, PipeEnd) {
    assert!(capacity > 0, "pipe capacity must be at least one packet");
    assert!(
        mtu >= crate::MIN_IPV4_MTU,
        "pipe MTU {mtu} is below the IPv4 minimum of {}",
        crate::MIN_IPV4_MTU
    );
    assert!(
        tso_max == 0 || (mtu..=MAX_PACKET_LEN).contains(&tso_max),
        "pipe TSO maximum {tso_max} is not in {mtu}..={MAX_PACKET_LEN}"
    );
    let slot = mtu.max(tso_max);
    let a_to_b = Rc::new(RefCell::new(Ring::new(slot, capacity)));
    let b_to_a = Rc::new(RefCell::new(Ring::new(slot, capacity)));
    let end = |tx, rx, name| PipeEnd {
        tx,
        rx,
        mtu,
        tso_max,
        name,
        stats: LinkStats::default(),
    };
    let a = end(a_to_b.clone(), b_to_a.clone(), "pipe-a");
    let b = end(b_to_a, a_to_b, "pipe-b");
    (a, b)
}

impl PipeEnd {
    /// Packets waiting to be received by this end.
    pub fn pending(&self) -> usize {
        self.rx.borrow().queue.len()
    }

    /// Sets what this end's [`DeviceCaps::tso_max`] reports and its `send`
    /// accepts: 0 turns the offload off. Meant right after [`pipe_tso`],
    /// before the end is used (caps are otherwise fixed once opened). The
    /// queues keep their size.
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

    fn enqueue(&mut self, pkt: &TxPacket<'_>, len: usize, info: RxInfo) {
        if self.tx.borrow_mut().push(pkt, info) {
            self.stats.count_tx(len);
        } else {
            self.stats.tx_dropped += 1;
            tracing::trace!(link = self.name, len, "queue full, packet dropped");
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
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
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
        let got = rx.pop_into(buf);
        if let Some(p) = &got {
            self.stats.count_rx(p.len);
        }
        Ok(got)
    }

    /// Lends the packet from its queue slot: no copy, and `buf` unused.
    /// Replies `f` sends go to the other queue, so the slot stays put.
    fn recv_with(&mut self, _buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        let rx = self.rx.clone();
        let mut rx = rx.borrow_mut();
        match rx.pop_with(|pkt, info| f(pkt, info, &mut |p| self.send(p))) {
            Some((len, ())) => {
                self.stats.count_rx(len);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Copies the parts into a queue slot. A super-frame is queued whole
    /// (no segmentation) after the checks a TUN device makes; see
    /// [`pipe_tso`].
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        check_parts(pkt, self.name)?;
        let len = pkt.len();
        let Some(segment) = pkt.segment else {
            if len > self.mtu {
                return Err(LinkError::PacketTooLarge {
                    device: self.name.to_owned(),
                    len,
                    mtu: self.mtu,
                });
            }
            self.enqueue(pkt, len, RxInfo::default());
            return Ok(());
        };
        if self.tso_max == 0 {
            return Err(no_tso(self.name));
        }
        if len > self.tso_max {
            return Err(LinkError::PacketTooLarge {
                device: self.name.to_owned(),
                len,
                mtu: self.tso_max,
            });
        }
        let hdr = vnet::tcp4_tx_header(pkt, segment, self.mtu).map_err(|reason| {
            LinkError::MalformedPacket {
                device: self.name.to_owned(),
                reason,
            }
        })?;
        let info = RxInfo {
            checksum: RxChecksum::Partial,
            gro_segment: hdr.is_gso().then_some(segment),
        };
        self.enqueue(pkt, len, info);
        Ok(())
    }

    /// Every packet is copied into a queue slot ([`TxPacket::copy_to`]),
    /// which finishes partial TCP checksums on the way.
    fn caps(&self) -> DeviceCaps {
        DeviceCaps {
            tso_max: self.tso_max,
            finishes_checksums: true,
            ..DeviceCaps::ip(self.mtu)
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
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

    /// Sends `p` as an ordinary packet in one part.
    fn send(l: &mut PipeEnd, p: &[u8]) -> Result<(), LinkError> {
        l.send(&TxPacket::new(&[p]))
    }

    #[test]
    fn recv_with_lends_the_queued_packet_and_replies_reach_the_peer() {
        let (mut a, mut b) = pipe(1500, 4);
        send(&mut a, &[0x45, 1, 2]).unwrap();
        send(&mut a, &[0x45, 3]).unwrap();
        let mut seen = Vec::new();
        // An empty buffer: the packet is lent from the queue, not copied.
        let got = b
            .recv_with(&mut [], &mut |pkt, _, tx| {
                seen.extend_from_slice(pkt);
                tx(&TxPacket::new(&[&[0x45, 9]])).unwrap();
            })
            .unwrap();
        assert!(got);
        assert_eq!(seen, [0x45, 1, 2]);
        assert_eq!(b.pending(), 1, "only the lent packet is gone");
        assert_eq!(b.stats().rx_packets, 1);
        assert_eq!(b.stats().tx_packets, 1);
        let mut buf = [0u8; 1500];
        assert_eq!(a.recv(&mut buf).unwrap().map(|p| p.len), Some(2));
        assert_eq!(&buf[..2], &[0x45, 9]);
        assert!(b.recv_with(&mut [], &mut |_, _, _| {}).unwrap());
        assert!(!b.recv_with(&mut [], &mut |_, _, _| {}).unwrap());
    }

    /// Sends `p` as a super-frame of `seg`-byte segments, in two parts.
    fn send_sf(l: &mut PipeEnd, p: &[u8], seg: u16) -> Result<(), LinkError> {
        let (h, d) = p.split_at(p.len().min(52));
        l.send(&TxPacket {
            parts: &[h, d],
            segment: Some(seg),
            partial_checksum: false,
        })
    }

    fn len(got: Option<RxPacket>) -> Option<usize> {
        got.map(|p| p.len)
    }

    #[test]
    fn packets_cross_in_order_both_ways() {
        let (mut a, mut b) = pipe(100, 4);
        send(&mut a, &[1; 10]).unwrap();
        a.send(&TxPacket::new(&[&[2; 5], &[], &[2; 15]])).unwrap();
        send(&mut b, &[3; 30]).unwrap();
        assert_eq!((a.pending(), b.pending()), (1, 2));

        let mut buf = [0u8; 100];
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(
            got,
            RxPacket {
                len: 10,
                info: RxInfo::default()
            }
        );
        assert_eq!(&buf[..10], &[1; 10]);
        assert_eq!(len(b.recv(&mut buf).unwrap()), Some(20));
        assert_eq!(&buf[..20], &[2; 20]);
        assert_eq!(b.recv(&mut buf).unwrap(), None);
        assert_eq!(len(a.recv(&mut buf).unwrap()), Some(30));
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
            send(&mut a, &[i; 5]).unwrap();
        }
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(a.stats().tx_packets, 2);
        let mut buf = [0u8; 68];
        assert_eq!(len(b.recv(&mut buf).unwrap()), Some(5));
        assert_eq!(buf[0], 0);
        // The freed slot is reused: the ring wraps around.
        send(&mut a, &[9; 68]).unwrap();
        assert_eq!(len(b.recv(&mut buf).unwrap()), Some(5));
        assert_eq!(buf[0], 1);
        assert_eq!(len(b.recv(&mut buf).unwrap()), Some(68));
        assert_eq!(buf, [9; 68]);
    }

    #[test]
    fn oversized_send_short_buffer_and_long_gather_lists_are_errors() {
        let (mut a, mut b) = pipe(68, 2);
        let err = send(&mut a, &[0; 69]).unwrap_err();
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
        let nine: [&[u8]; crate::MAX_TX_PARTS + 1] = [&[0x45]; crate::MAX_TX_PARTS + 1];
        assert!(matches!(
            a.send(&TxPacket::new(&nine)),
            Err(LinkError::MalformedPacket { .. })
        ));
        a.send(&TxPacket::new(&nine[..crate::MAX_TX_PARTS]))
            .unwrap();
        assert_eq!(len(b.recv(&mut [0u8; 68]).unwrap()), Some(8));

        send(&mut a, &[0; 40]).unwrap();
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
        assert_eq!(len(b.recv(&mut [0u8; 68]).unwrap()), Some(40));
    }

    #[test]
    fn superframes_cross_whole_and_only_they_are_partial() {
        let (mut a, mut b) = pipe_tso(1500, 4, 65535);
        assert_eq!((a.caps().tso_max, b.caps().tso_max), (65535, 65535));
        assert_eq!(b.caps().max_rx_len(), MAX_PACKET_LEN);
        let sf = vnet::tests::superframe(12, 60_000);
        send(&mut a, &[0x45; 100]).unwrap();
        send_sf(&mut a, &sf, 1448).unwrap();
        send(&mut a, &[0x45; 1500]).unwrap();
        assert_eq!(a.stats().tx_packets, 3);
        assert_eq!(a.stats().tx_bytes, 100 + sf.len() as u64 + 1500);

        let mut buf = vec![0u8; 65535];
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!((got.len, got.info), (100, RxInfo::default()));
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(got.len, sf.len());
        assert_eq!(
            got.info,
            RxInfo {
                checksum: RxChecksum::Partial,
                gro_segment: Some(1448)
            }
        );
        assert_eq!(&buf[..sf.len()], &sf[..]);
        let got = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!((got.len, got.info), (1500, RxInfo::default()));
        assert_eq!(b.recv(&mut buf).unwrap(), None);

        // Small super-frames (one segment's worth) are partial too, but
        // were not merged from several segments.
        let small = vnet::tests::superframe(0, 10);
        send_sf(&mut b, &small, 1448).unwrap();
        let got = a.recv(&mut buf).unwrap().unwrap();
        assert_eq!(got.len, small.len());
        assert_eq!(
            got.info,
            RxInfo {
                checksum: RxChecksum::Partial,
                gro_segment: None
            }
        );
    }

    #[test]
    fn superframe_checks_and_limits() {
        let (mut a, mut b) = pipe_tso(1500, 1, 20_000);
        let sf = vnet::tests::superframe(0, 30_000);
        assert!(matches!(
            send_sf(&mut a, &sf, 1460),
            Err(LinkError::PacketTooLarge { mtu: 20_000, .. })
        ));
        let mut bad = vnet::tests::superframe(0, 10_000);
        bad[36] ^= 0x55;
        let err = send_sf(&mut a, &bad, 1460).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipe-a: cannot send malformed packet: TCP checksum field is not the pseudo-header sum"
        );
        assert!(matches!(
            send_sf(&mut a, &vnet::tests::superframe(0, 10_000), 1461),
            Err(LinkError::MalformedPacket { .. })
        ));
        // Normal sends still stop at the MTU.
        assert!(send(&mut a, &[0; 1501]).is_err());
        // A full queue drops the super-frame and counts it.
        let ok = vnet::tests::superframe(0, 10_000);
        send_sf(&mut a, &ok, 1460).unwrap();
        send_sf(&mut a, &ok, 1460).unwrap();
        assert_eq!((a.stats().tx_packets, a.stats().tx_dropped), (1, 1));
        // Too small a receive buffer: the frame stays queued.
        assert!(matches!(
            b.recv(&mut [0u8; 1500]),
            Err(LinkError::BufferTooSmall { needed: 10_040, .. })
        ));
        assert_eq!(len(b.recv(&mut vec![0u8; 20_000]).unwrap()), Some(10_040));

        // Offload off on one end: InvalidConfig; the other end keeps it.
        a.set_tso_max(0);
        assert_eq!(a.caps().tso_max, 0);
        assert!(matches!(
            send_sf(&mut a, &ok, 1460),
            Err(LinkError::InvalidConfig(_))
        ));
        send_sf(&mut b, &ok, 1460).unwrap();
        // A plain pipe has no segmentation offload; like every pipe it
        // finishes checksums in its copy.
        let (mut c, _d) = pipe(1500, 1);
        let want = DeviceCaps {
            finishes_checksums: true,
            ..DeviceCaps::ip(1500)
        };
        assert_eq!(c.caps(), want);
        assert!(send_sf(&mut c, &ok, 1460).is_err());
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
        assert_eq!(link.caps().tso_max, 0);
        assert!(link.caps().finishes_checksums);
        assert_eq!(link.poll_fd(), None);
        assert_eq!(link.poll_at(), None);
        assert_eq!(link.name(), "pipe-a");
        let (a, _b) = pipe_tso(1500, 1, 65535);
        let link: crate::AnyLink = a.into();
        assert_eq!(link.caps().tso_max, 65535);
    }
}

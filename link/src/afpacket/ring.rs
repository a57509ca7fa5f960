//! The memory-mapped rings of the packet socket (Documentation/networking/
//! packet_mmap.rst): a `TPACKET_V3` receive ring of blocks, each holding
//! many frames, and a transmit ring of fixed-size frames, both in one
//! `mmap` region shared with the kernel.
//!
//! Ownership of the memory is decided by the status words the two sides
//! write: a receive block is ours from the moment the kernel sets
//! `TP_STATUS_USER` in its descriptor until we write `TP_STATUS_KERNEL`
//! back; a transmit frame is ours while its status is `TP_STATUS_AVAILABLE`
//! and the kernel's once we write `TP_STATUS_SEND_REQUEST`. Status words are
//! read with acquire and written with release ordering, so the frame bytes
//! and the status travel together (the kernel pairs them with
//! `smp_wmb`/`smp_rmb`). No Rust reference is ever made to memory the
//! kernel owns.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::sys::set_struct_opt;

// linux/if_packet.h
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;

/// Offsets in `struct tpacket_block_desc` (its `tpacket_hdr_v1`).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// Offsets in `struct tpacket3_hdr`.
const FRAME_NEXT: usize = 0;
const FRAME_SNAPLEN: usize = 12;
const FRAME_LEN: usize = 16;
const FRAME_STATUS: usize = 20;
const FRAME_MAC: usize = 24;
/// Where a transmit frame's data starts: `TPACKET3_HDRLEN -
/// sizeof(struct sockaddr_ll)`, i.e. `TPACKET_ALIGN(sizeof(tpacket3_hdr))`
/// (`tpacket_parse_header` in net/packet/af_packet.c without
/// `PACKET_TX_HAS_OFF`).
pub(super) const TX_DATA_OFFSET: usize = 48;

/// Size of each receive block: a GSO super-packet (up to 64 KiB) must fit
/// in one block with its headers, or the kernel truncates it.
pub(super) const RX_BLOCK: usize = 128 * 1024;
/// `tp_frame_size` of the receive ring: in V3 only a unit of accounting
/// (frames are packed, each as long as it needs).
const RX_FRAME_UNIT: usize = 2048;
/// Size of each transmit block (frames never straddle blocks).
const TX_BLOCK: usize = 64 * 1024;

/// How large the rings are and how long the kernel holds a partly filled
/// receive block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes of receive ring, in blocks of 128 KiB (rounded up; at least
    /// two blocks), e.g. 4 MiB: 32 blocks, some 2,700 full-size frames or
    /// 64 GSO super-packets. When it is full the kernel drops frames (TCP
    /// retransmits them). 0, the default: no receive ring, one `recvmsg`
    /// per frame. A `TPACKET_V3` ring wakes the reader once per block, so
    /// a lone packet waits for [`RingConfig::block_timeout`]: over veth a
    /// ping took 0.90 ms with the ring against 0.05 ms without, and every
    /// request/response exchange pays that; a bulk receiver saves system
    /// calls with it.
    pub rx_bytes: usize,
    /// Bytes of transmit ring, in frames of the MTU plus headers rounded
    /// up to a power of two (2 KiB at MTU 1500: 512 frames in 1 MiB; at
    /// least 8 frames). When every frame waits for the kernel, `send` drops
    /// the packet and counts it in `tx_dropped`. 0, the default: no
    /// transmit ring, one `sendmsg` per frame or per GSO super-frame (a
    /// slot holds one frame, so with a ring the link offers no
    /// segmentation offload; over veth a download ran at 4.0 Gbit/s with
    /// the ring and 38.4 without).
    pub tx_bytes: usize,
    /// `tp_retire_blk_tov`: the kernel hands over a block that is not full
    /// after this long (whole milliseconds, at least 1), and only wakes us
    /// for a whole block: a packet waits until a later one no longer fits
    /// its block, or for this timer (up to twice this long, by how the
    /// kernel's timer runs). The price of one wake-up per block; default
    /// 1 ms.
    pub block_timeout: Duration,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            rx_bytes: 0,
            tx_bytes: 0,
            block_timeout: Duration::from_millis(1),
        }
    }
}

impl RingConfig {
    /// Largest ring either way: 256 MiB.
    pub const MAX_BYTES: usize = 256 << 20;

    /// The reason this configuration cannot work, for a person.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.rx_bytes > Self::MAX_BYTES {
            return Err(format!(
                "receive ring of {} bytes is above {} bytes",
                self.rx_bytes,
                Self::MAX_BYTES
            ));
        }
        if self.tx_bytes > Self::MAX_BYTES {
            return Err(format!(
                "transmit ring of {} bytes is above {} bytes",
                self.tx_bytes,
                Self::MAX_BYTES
            ));
        }
        let ms = self.block_timeout.as_millis();
        if !(1..=1000).contains(&ms) {
            return Err(format!("block timeout of {ms} ms is outside 1..=1000 ms"));
        }
        Ok(())
    }
}

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// A pointer into the shared region that may cross threads with the link.
#[derive(Clone, Copy)]
struct RingPtr(NonNull<u8>);

// SAFETY: the region is plain memory shared with the kernel, not with other
// threads of ours: a link (and so each ring) is used by one thread at a
// time (`&mut self`), and moving it moves nothing but this address.
unsafe impl Send for RingPtr {}

impl RingPtr {
    /// The status word at `off`, as an atomic the kernel also writes.
    ///
    /// # Safety
    /// `off` is within the mapping and 4-byte aligned (both status words
    /// sit at aligned offsets of aligned headers).
    unsafe fn word<'a>(self, off: usize) -> &'a AtomicU32 {
        // SAFETY: per the contract; AtomicU32 has u32's layout, and atomic
        // access is what memory written by another agent needs.
        unsafe { &*self.0.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// A 16- or 32-bit header field written by the kernel before it
    /// released the block or frame to us.
    ///
    /// # Safety
    /// `off..off + 4` is within the mapping, in memory we own now.
    unsafe fn u32_at(self, off: usize) -> u32 {
        // SAFETY: per the contract; read_unaligned needs no alignment.
        unsafe { self.0.as_ptr().add(off).cast::<u32>().read_unaligned() }
    }

    /// # Safety
    /// As [`RingPtr::u32_at`], for two bytes.
    unsafe fn u16_at(self, off: usize) -> u16 {
        // SAFETY: per the contract.
        unsafe { self.0.as_ptr().add(off).cast::<u16>().read_unaligned() }
    }
}

/// The mapping itself; unmapped on drop (after both rings, which only hold
/// addresses into it and do nothing when dropped).
pub(super) struct Mapping {
    base: RingPtr,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; no reference
        // into the region outlives the link that owns the mapping.
        unsafe { libc::munmap(self.base.0.as_ptr().cast(), self.len) };
    }
}

/// What [`setup`] made: the mapping and the rings inside it.
pub(super) struct Rings {
    pub(super) rx: Option<RxRing>,
    pub(super) tx: Option<TxRing>,
    /// `None` when neither ring was made.
    pub(super) map: Option<Mapping>,
}

/// Why the rings could not be set up: the system call that failed.
#[derive(Debug)]
pub(super) struct SetupError {
    pub(super) op: &'static str,
    pub(super) source: io::Error,
}

/// Switches `fd` to `TPACKET_V3`, asks for the rings and maps them. A
/// transmit ring the kernel refuses (before Linux 4.11 with a virtio-net
/// header) is left out and reported in `tx_refused`; the receive ring is
/// required. Must run before `bind` and after `PACKET_VNET_HDR`.
pub(super) fn setup(
    fd: RawFd,
    cfg: &RingConfig,
    mtu: usize,
    vnet_len: usize,
) -> Result<(Rings, Option<io::Error>), SetupError> {
    let err = |op| move |source| SetupError { op, source };
    let version: libc::c_int = TPACKET_V3;
    set_struct_opt(fd, libc::SOL_PACKET, PACKET_VERSION, &version)
        .map_err(err("set PACKET_VERSION TPACKET_V3"))?;
    let rx_blocks = cfg.rx_bytes.div_ceil(RX_BLOCK).max(2);
    let rx_req = TpacketReq3 {
        block_size: RX_BLOCK as u32,
        block_nr: rx_blocks as u32,
        frame_size: RX_FRAME_UNIT as u32,
        frame_nr: (rx_blocks * (RX_BLOCK / RX_FRAME_UNIT)) as u32,
        retire_blk_tov: cfg.block_timeout.as_millis().max(1) as u32,
        ..TpacketReq3::default()
    };
    // Frames the kernel finds malformed are marked and skipped rather than
    // retried forever; the option is refused once a ring exists.
    let loss: libc::c_int = 1;
    set_struct_opt(fd, libc::SOL_PACKET, PACKET_LOSS, &loss).map_err(err("set PACKET_LOSS"))?;
    let rx_blocks = if cfg.rx_bytes > 0 {
        set_struct_opt(fd, libc::SOL_PACKET, PACKET_RX_RING, &rx_req)
            .map_err(err("set PACKET_RX_RING"))?;
        rx_blocks
    } else {
        0
    };
    let frame = (TX_DATA_OFFSET + vnet_len + crate::ethernet::HEADER_LEN + mtu)
        .next_power_of_two()
        .max(2048);
    let block = frame.max(TX_BLOCK);
    let mut tx_refused = None;
    let mut tx_len = 0;
    let mut tx_req = TpacketReq3::default();
    if cfg.tx_bytes > 0 {
        let frames = (cfg.tx_bytes / frame).max(8);
        let per_block = block / frame;
        let blocks = frames.div_ceil(per_block);
        tx_req = TpacketReq3 {
            block_size: block as u32,
            block_nr: blocks as u32,
            frame_size: frame as u32,
            frame_nr: (blocks * per_block) as u32,
            ..TpacketReq3::default()
        };
        match set_struct_opt(fd, libc::SOL_PACKET, PACKET_TX_RING, &tx_req) {
            Ok(()) => tx_len = blocks * block,
            Err(e) => tx_refused = Some(e),
        }
    }
    let rx_len = rx_blocks * RX_BLOCK;
    let len = rx_len + tx_len;
    if len == 0 {
        let rings = Rings {
            rx: None,
            tx: None,
            map: None,
        };
        return Ok((rings, tx_refused));
    }
    // SAFETY: a fresh shared mapping of the socket's rings, at no fixed
    // address; the kernel checks `len` against the rings it allocated.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(SetupError {
            op: "mmap the packet rings",
            source: io::Error::last_os_error(),
        });
    }
    let Some(base) = NonNull::new(base.cast::<u8>()) else {
        return Err(SetupError {
            op: "mmap the packet rings",
            source: io::Error::other("mmap returned a null address"),
        });
    };
    let base = RingPtr(base);
    let rx = (rx_len > 0).then_some(RxRing {
        base,
        blocks: rx_blocks,
        current: 0,
        open: None,
    });
    let tx = (tx_len > 0).then(|| TxRing {
        // SAFETY: the transmit ring follows the receive ring in the mapping.
        base: RingPtr(unsafe { NonNull::new_unchecked(base.0.as_ptr().add(rx_len)) }),
        frame,
        per_block: block / frame,
        block,
        frames: tx_req.frame_nr as usize,
        head: 0,
        pending: 0,
    });
    let map = Some(Mapping { base, len });
    Ok((Rings { rx, tx, map }, tx_refused))
}

/// The block being read: where its next frame is and how many are left.
#[derive(Clone, Copy)]
struct OpenBlock {
    offset: usize,
    left: u32,
}

/// The `TPACKET_V3` receive ring: `blocks` blocks of [`RX_BLOCK`] bytes,
/// which the kernel fills and hands over in order.
pub(super) struct RxRing {
    base: RingPtr,
    blocks: usize,
    /// The block the kernel hands over next (or the one being read).
    current: usize,
    open: Option<OpenBlock>,
}

/// Where a received frame's parts lie in the slice [`RxRing::frame`] lends:
/// the link-layer header at `mac`, `len` bytes from there; `truncated`
/// when the kernel could not store all of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxFrame {
    pub(super) mac: usize,
    pub(super) len: usize,
    pub(super) truncated: bool,
}

impl RxRing {
    fn block(&self) -> usize {
        self.current * RX_BLOCK
    }

    /// The next frame the kernel handed over: the whole of its block from
    /// the frame's header on, and where the frame lies in it. `None` when
    /// the kernel holds the current block. The frame stays ours until
    /// [`RxRing::release`].
    pub(super) fn frame(&mut self) -> Option<(&mut [u8], RxFrame)> {
        // Empty blocks (a timer retired one with nothing in it) are handed
        // back at once; a full lap means every block was empty.
        for _ in 0..=self.blocks {
            if let Some(open) = self.open {
                let start = self.block() + open.offset;
                // SAFETY: the block is ours (TP_STATUS_USER seen below) and
                // `offset` was checked to leave room for a frame header.
                let (snaplen, len, mac) = unsafe {
                    (
                        self.base.u32_at(start + FRAME_SNAPLEN) as usize,
                        self.base.u32_at(start + FRAME_LEN) as usize,
                        usize::from(self.base.u16_at(start + FRAME_MAC)),
                    )
                };
                let room = RX_BLOCK - open.offset;
                if mac + snaplen > room {
                    // Not a frame the kernel would write: give the block back.
                    self.open = Some(OpenBlock { left: 1, ..open });
                    self.release();
                    continue;
                }
                // SAFETY: `start..start + room` is inside this block, which
                // the kernel handed over (TP_STATUS_USER, read with acquire)
                // and does not touch until `release` writes
                // TP_STATUS_KERNEL; `&mut self` makes this the only
                // reference into the block, and it lives no longer than
                // that borrow. The rest of the mapping (other blocks, the
                // transmit ring) is disjoint from it.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(self.base.0.as_ptr().add(start), room)
                };
                let frame = RxFrame {
                    mac,
                    len: snaplen,
                    truncated: snaplen < len,
                };
                return Some((bytes, frame));
            }
            let at = self.block();
            // SAFETY: the descriptor of block `current`, inside the mapping.
            let status = unsafe { self.base.word(at + BLOCK_STATUS) }.load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                return None;
            }
            // SAFETY: the block is ours now; its descriptor is in bounds.
            let (left, first) = unsafe {
                (
                    self.base.u32_at(at + BLOCK_NUM_PKTS),
                    self.base.u32_at(at + BLOCK_FIRST_PKT) as usize,
                )
            };
            self.open = Some(OpenBlock {
                offset: first,
                left,
            });
            if left == 0 || first + FRAME_MAC + 2 > RX_BLOCK {
                self.open = Some(OpenBlock { offset: 0, left: 1 });
                self.release();
            }
        }
        None
    }

    /// Done with the frame [`RxRing::frame`] returned: moves to the next
    /// one, and after the block's last frame returns the block to the
    /// kernel.
    pub(super) fn release(&mut self) {
        let Some(open) = self.open else { return };
        let left = open.left.saturating_sub(1);
        let start = self.block() + open.offset;
        if left > 0 {
            // SAFETY: the frame header at `start` is in our block.
            let next = unsafe { self.base.u32_at(start + FRAME_NEXT) } as usize;
            let offset = open.offset + next;
            if next > 0 && offset + FRAME_MAC + 2 <= RX_BLOCK {
                self.open = Some(OpenBlock { offset, left });
                return;
            }
        }
        let at = self.block();
        // SAFETY: the descriptor of our block; after this store the kernel
        // owns the block again and we keep no reference into it.
        unsafe { self.base.word(at + BLOCK_STATUS) }.store(TP_STATUS_KERNEL, Ordering::Release);
        self.open = None;
        self.current = (self.current + 1) % self.blocks;
    }

    /// Whether a frame waits in a block we already hold (the fd's POLLIN
    /// does not report those).
    pub(super) fn holding(&self) -> bool {
        self.open.is_some()
    }
}

/// The transmit ring: `frames` frames of `frame` bytes, filled in order;
/// one `sendto` asks the kernel to send every frame marked since.
pub(super) struct TxRing {
    base: RingPtr,
    frame: usize,
    per_block: usize,
    block: usize,
    frames: usize,
    /// The next frame to fill.
    head: usize,
    /// Frames marked for sending since the last kick.
    pending: usize,
}

impl TxRing {
    fn at(&self, i: usize) -> usize {
        (i / self.per_block) * self.block + (i % self.per_block) * self.frame
    }

    /// The data area of the next frame when it is ours, to fill and then
    /// [`TxRing::commit`]; `None` while the kernel still holds it.
    pub(super) fn slot(&mut self) -> Option<&mut [u8]> {
        let at = self.at(self.head);
        // SAFETY: the status word of frame `head`, inside the ring.
        let status = unsafe { self.base.word(at + FRAME_STATUS) }.load(Ordering::Acquire);
        if status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT {
            return None;
        }
        // SAFETY: the frame is ours (AVAILABLE, read with acquire: the
        // kernel is done with it) until `commit` hands it over; `&mut self`
        // makes this the only reference to it; the data area lies inside
        // the frame.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.base.0.as_ptr().add(at + TX_DATA_OFFSET),
                self.frame - TX_DATA_OFFSET,
            )
        })
    }

    /// Hands the frame [`TxRing::slot`] lent, now holding `len` bytes, to
    /// the kernel for the next kick.
    pub(super) fn commit(&mut self, len: usize) {
        let at = self.at(self.head);
        let base = self.base.0.as_ptr();
        // SAFETY: the header of frame `head`, still ours; the length and
        // next-offset fields are written before the status (release).
        unsafe {
            base.add(at + FRAME_LEN)
                .cast::<u32>()
                .write_unaligned(len as u32);
            base.add(at + FRAME_NEXT).cast::<u32>().write_unaligned(0);
            self.base
                .word(at + FRAME_STATUS)
                .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        }
        self.head = (self.head + 1) % self.frames;
        self.pending += 1;
    }

    /// Frames waiting for a kick.
    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    /// Frames in the ring.
    pub(super) fn capacity(&self) -> usize {
        self.frames
    }

    /// One `sendto(fd, NULL, 0, MSG_DONTWAIT)`: the kernel sends every
    /// frame marked `TP_STATUS_SEND_REQUEST`. A full device queue leaves the
    /// rest marked for the next kick (`Err` with `WouldBlock`/`ENOBUFS`).
    pub(super) fn kick(&mut self, fd: RawFd) -> io::Result<()> {
        loop {
            // SAFETY: no buffer and no address: the data is in the ring.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                self.pending = 0;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory laid out as the kernel lays out a ring, 8-byte aligned.
    struct Fake(Vec<u64>);

    impl Fake {
        fn new(bytes: usize) -> Fake {
            Fake(vec![0; bytes / 8])
        }
        fn ptr(&mut self) -> RingPtr {
            RingPtr(NonNull::new(self.0.as_mut_ptr().cast::<u8>()).expect("non-null"))
        }
        fn bytes(&mut self) -> &mut [u8] {
            let len = self.0.len() * 8;
            // SAFETY: the Vec's own memory, viewed as bytes.
            unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
        }
        fn put32(&mut self, at: usize, v: u32) {
            self.bytes()[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        fn put16(&mut self, at: usize, v: u16) {
            self.bytes()[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        }
        fn get32(&mut self, at: usize) -> u32 {
            u32::from_ne_bytes(self.bytes()[at..at + 4].try_into().expect("4 bytes"))
        }
        /// Hands block `b` to user space holding frames of `lens` bytes,
        /// each 80 bytes of header before its MAC header.
        fn fill_block(&mut self, b: usize, lens: &[u32]) {
            let base = b * RX_BLOCK;
            let mut off = 48;
            self.put32(base + BLOCK_NUM_PKTS, lens.len() as u32);
            self.put32(base + BLOCK_FIRST_PKT, off as u32);
            for (i, &len) in lens.iter().enumerate() {
                let at = base + off;
                let size = (80 + len as usize).next_multiple_of(16);
                let next = if i + 1 < lens.len() { size as u32 } else { 0 };
                self.put32(at + FRAME_NEXT, next);
                self.put32(at + FRAME_SNAPLEN, len);
                self.put32(at + FRAME_LEN, len);
                self.put16(at + FRAME_MAC, 80);
                self.bytes()[at + 80] = i as u8 + 1;
                off += size;
            }
            self.put32(base + BLOCK_STATUS, TP_STATUS_USER);
        }
    }

    fn rx(fake: &mut Fake, blocks: usize) -> RxRing {
        RxRing {
            base: fake.ptr(),
            blocks,
            current: 0,
            open: None,
        }
    }

    #[test]
    fn frames_of_a_block_come_in_order_and_the_block_goes_back_after_the_last() {
        let mut fake = Fake::new(2 * RX_BLOCK);
        let mut ring = rx(&mut fake, 2);
        assert!(ring.frame().is_none(), "the kernel holds every block");
        fake.fill_block(0, &[60, 1514, 100]);
        for (i, len) in [60, 1514, 100].into_iter().enumerate() {
            let (bytes, f) = ring.frame().expect("a frame");
            assert_eq!((f.mac, f.len, f.truncated), (80, len, false));
            assert_eq!(bytes[f.mac], i as u8 + 1, "frame {i} is the one written");
            assert!(ring.holding());
            ring.release();
        }
        assert_eq!(fake.get32(BLOCK_STATUS), TP_STATUS_KERNEL);
        assert!(!ring.holding());
        assert!(ring.frame().is_none(), "block 1 is still the kernel's");
        fake.fill_block(1, &[42]);
        assert_eq!(ring.frame().expect("block 1").1.len, 42);
        ring.release();
        assert_eq!(fake.get32(RX_BLOCK + BLOCK_STATUS), TP_STATUS_KERNEL);
    }

    #[test]
    fn empty_and_malformed_blocks_are_handed_back_without_a_frame() {
        let mut fake = Fake::new(3 * RX_BLOCK);
        let mut ring = rx(&mut fake, 3);
        // Retired by the timer with nothing in it.
        fake.put32(BLOCK_STATUS, TP_STATUS_USER);
        // A first frame past the end of the block.
        fake.put32(RX_BLOCK + BLOCK_NUM_PKTS, 1);
        fake.put32(RX_BLOCK + BLOCK_FIRST_PKT, RX_BLOCK as u32);
        fake.put32(RX_BLOCK + BLOCK_STATUS, TP_STATUS_USER);
        // A frame claiming more bytes than the block has.
        fake.fill_block(2, &[60]);
        fake.put32(2 * RX_BLOCK + 48 + FRAME_SNAPLEN, RX_BLOCK as u32);
        assert!(ring.frame().is_none());
        for b in 0..3 {
            assert_eq!(
                fake.get32(b * RX_BLOCK + BLOCK_STATUS),
                TP_STATUS_KERNEL,
                "block {b}"
            );
        }
    }

    #[test]
    fn a_truncated_frame_says_so() {
        let mut fake = Fake::new(2 * RX_BLOCK);
        let mut ring = rx(&mut fake, 2);
        fake.fill_block(0, &[100]);
        fake.put32(48 + FRAME_LEN, 70_000);
        let (_, f) = ring.frame().expect("a frame");
        assert!(f.truncated);
    }

    #[test]
    fn transmit_frames_are_lent_until_the_kernel_has_sent_them() {
        let mut fake = Fake::new(2 * TX_BLOCK);
        let mut ring = TxRing {
            base: fake.ptr(),
            frame: 2048,
            per_block: TX_BLOCK / 2048,
            block: TX_BLOCK,
            frames: 2 * TX_BLOCK / 2048,
            head: 0,
            pending: 0,
        };
        for i in 0..ring.capacity() {
            let slot = ring.slot().expect("a free frame");
            assert_eq!(slot.len(), 2048 - TX_DATA_OFFSET);
            slot[0] = 0xab;
            ring.commit(60 + i);
        }
        assert_eq!(ring.pending(), ring.capacity());
        assert!(ring.slot().is_none(), "every frame waits for the kernel");
        assert_eq!(fake.get32(FRAME_STATUS), TP_STATUS_SEND_REQUEST);
        assert_eq!(fake.get32(FRAME_LEN), 60);
        // The second block's first frame.
        assert_eq!(
            fake.get32(TX_BLOCK + FRAME_LEN),
            60 + TX_BLOCK as u32 / 2048
        );
        assert_eq!(fake.bytes()[TX_DATA_OFFSET], 0xab);
        // The kernel sent the first frame.
        fake.put32(FRAME_STATUS, TP_STATUS_AVAILABLE);
        assert!(ring.slot().is_some());
    }
}

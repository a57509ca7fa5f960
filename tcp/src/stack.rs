//! The socket layer: a table of connections keyed by 4-tuple, listeners with
//! accept queues, demultiplexing of IPv4 packets to connections, RSTs for
//! closed ports, ICMP echo, timers, and the handle-based socket API.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use tracing::{debug, trace};
use ustack_ipv4::{icmp, protocol, Ipv4Packet, Ipv4Repr, Ipv4Stats};

use crate::buffer::BufferPool;
use crate::conn::{State, Tcb, TcpConfig};
use crate::error::TcpError;
use crate::rng::{IsnGenerator, Rng};
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{Flags, TcpPacket, TcpRepr};

/// Configuration of one stack instance (one IPv4 address on one link).
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The address the stack owns; packets to any other address are dropped.
    pub addr: Ipv4Addr,
    /// Largest IPv4 packet the link carries.
    pub mtu: usize,
    /// Upper bound on connections of every state, TIME-WAIT included.
    pub max_connections: usize,
    /// Local ports `connect` picks from when none is given.
    pub ephemeral_ports: (u16, u16),
    /// Verify TCP checksums on input. Turned off only for links whose
    /// packets may carry unfinished checksums and cannot be corrupted
    /// (Linux loopback seen through a raw socket).
    pub verify_tcp_checksum: bool,
    /// Largest IPv4 packet [`Stack::poll_segmented`] may hand out: a TCP
    /// super-frame for a link with segmentation offload (TSO) to cut into
    /// segments. At most 65535; 0 (or anything up to `mtu`): no super-frames.
    pub tso_max: usize,
    /// Per-connection tunables. `tcp.mss` is lowered to fit `mtu`.
    pub tcp: TcpConfig,
}

impl StackConfig {
    pub fn new(addr: Ipv4Addr, mtu: usize) -> StackConfig {
        StackConfig {
            addr,
            mtu,
            max_connections: 4096,
            ephemeral_ports: (49152, 65535),
            verify_tcp_checksum: true,
            tso_max: 0,
            tcp: TcpConfig::default(),
        }
    }
}

/// Handle of a connection. Stale handles (of a freed slot) are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    idx: u32,
    gen: u32,
}

/// Handle of a listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u16);

impl ListenerId {
    pub fn port(self) -> u16 {
        self.0
    }
}

/// Counters for everything the stack dropped or did on its own.
#[derive(Debug, Default, Clone)]
pub struct StackStats {
    pub ip: Ipv4Stats,
    pub tcp_rx_segments: u64,
    pub tcp_tx_segments: u64,
    pub tcp_bad_header: u64,
    pub tcp_bad_checksum: u64,
    pub tcp_rst_sent: u64,
    pub tcp_no_listener: u64,
    pub tcp_syn_dropped: u64,
    pub tcp_conns_opened: u64,
    pub tcp_conns_closed: u64,
    /// Connections given up after too many retransmissions or probes,
    /// including ones whose handle the application had already closed.
    pub tcp_timeouts: u64,
}

/// Who holds a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Created by a listener's SYN; `queued` once in its accept queue.
    Listener { port: u16, queued: bool },
    /// The application holds a `ConnId`.
    User,
    /// The application closed its handle; the TCB finishes the close alone.
    Orphan,
}

#[derive(Debug)]
struct Entry {
    tcb: Tcb,
    owner: Owner,
    in_ready: bool,
    in_tx: bool,
    /// Deadline of this connection's live entry in the timer heap.
    timer_at: Option<Instant>,
    /// Every event about this connection is recorded inside this span.
    span: tracing::Span,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    entry: Option<Entry>,
}

#[derive(Debug)]
struct Listener {
    backlog: usize,
    /// Connections created by this listener and not yet accepted.
    pending: usize,
    queue: VecDeque<ConnId>,
}

type Tuple = (SocketAddrV4, SocketAddrV4);

/// A TCP/IPv4 host: everything above the link.
pub struct Stack {
    cfg: StackConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    table: HashMap<Tuple, u32>,
    listeners: HashMap<u16, Listener>,
    ready: VecDeque<ConnId>,
    tx_queue: VecDeque<u32>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// RSTs owed for aborted connections whose TCB is already gone.
    rst_queue: VecDeque<(SocketAddrV4, SocketAddrV4, TcpRepr)>,
    isn: IsnGenerator,
    rng: Box<dyn Rng>,
    ip_ident: u16,
    stats: StackStats,
    scratch: Vec<u8>,
    /// Storage of closed connections' buffers, reused by new ones.
    pool: BufferPool,
}

const IP_HDR: usize = Ipv4Repr::HEADER_LEN;
const MAX_PENDING_RST: usize = 64;
/// Buffers kept for reuse (two per connection): enough for 32 connections
/// opening as fast as others close.
const BUFFER_POOL: usize = 64;

impl Stack {
    pub fn new(mut cfg: StackConfig, mut rng: Box<dyn Rng>) -> Stack {
        let mtu_mss = cfg.mtu.saturating_sub(40).clamp(64, u16::MAX as usize) as u16;
        cfg.tcp.mss = cfg.tcp.mss.min(mtu_mss);
        let isn = IsnGenerator::new(rng.as_mut());
        cfg.tso_max = cfg.tso_max.min(usize::from(u16::MAX));
        let scratch = vec![0; cfg.mtu.max(cfg.tso_max).max(IP_HDR + 60)];
        Stack {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            table: HashMap::new(),
            listeners: HashMap::new(),
            ready: VecDeque::new(),
            tx_queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            rst_queue: VecDeque::new(),
            isn,
            rng,
            ip_ident: 0,
            stats: StackStats::default(),
            scratch,
            pool: BufferPool::new(BUFFER_POOL),
        }
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }
    pub fn addr(&self) -> Ipv4Addr {
        self.cfg.addr
    }
    pub fn stats(&self) -> &StackStats {
        &self.stats
    }
    /// Connections in the table, of every state.
    pub fn connection_count(&self) -> usize {
        self.live
    }

    // ----------------------------------------------------------- packet in

    /// Processes one received IPv4 packet. Replies that cannot wait (RSTs, ICMP
    /// echo replies) go to `tx` at once; connection output waits for [`Stack::poll`].
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8], tx: &mut impl FnMut(&[u8])) {
        self.handle_packet_inner(now, packet, self.cfg.verify_tcp_checksum, tx);
    }

    /// [`Stack::handle_packet`] for a packet whose TCP checksum the link
    /// vouches for (already verified by the kernel, or left unfinished by a
    /// local sender, as in a coalesced GRO super-frame): it is not verified.
    pub fn handle_packet_trusted(
        &mut self,
        now: Instant,
        packet: &[u8],
        tx: &mut impl FnMut(&[u8]),
    ) {
        self.handle_packet_inner(now, packet, false, tx);
    }

    fn handle_packet_inner(
        &mut self,
        now: Instant,
        packet: &[u8],
        verify_checksum: bool,
        tx: &mut impl FnMut(&[u8]),
    ) {
        self.stats.ip.rx_packets += 1;
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(p) => p,
            Err(e) => {
                self.stats.ip.record(&e);
                trace!(%e, "ipv4 dropped");
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&ip) {
            Ok(r) => r,
            Err(e) => {
                self.stats.ip.record(&e);
                trace!(%e, "ipv4 dropped");
                return;
            }
        };
        if repr.is_fragment() {
            self.stats.ip.rx_fragments += 1;
            return;
        }
        if repr.dst_addr != self.cfg.addr {
            self.stats.ip.rx_not_for_us += 1;
            return;
        }
        match repr.protocol {
            protocol::TCP => self.handle_tcp(now, &repr, ip.payload(), verify_checksum, tx),
            protocol::ICMP => match icmp::answer_echo(&repr, ip.payload(), &mut self.scratch) {
                Ok(Some(n)) => {
                    self.stats.ip.icmp_echo_answered += 1;
                    tx(&self.scratch[..n]);
                }
                Ok(None) => {}
                Err(e) => {
                    self.stats.ip.record(&e);
                    trace!(%e, "icmp dropped");
                }
            },
            _ => self.stats.ip.rx_unknown_protocol += 1,
        }
    }

    fn handle_tcp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        segment: &[u8],
        verify_checksum: bool,
        tx: &mut impl FnMut(&[u8]),
    ) {
        self.stats.tcp_rx_segments += 1;
        let pkt = match TcpPacket::new_checked(segment) {
            Ok(p) => p,
            Err(e) => {
                self.stats.tcp_bad_header += 1;
                trace!(%e, "tcp dropped");
                return;
            }
        };
        if verify_checksum && !pkt.verify_checksum(ip.src_addr, ip.dst_addr) {
            self.stats.tcp_bad_checksum += 1;
            trace!(src = %ip.src_addr, "tcp checksum mismatch");
            return;
        }
        let seg = match TcpRepr::parse(&pkt) {
            Ok(s) => s,
            Err(e) => {
                self.stats.tcp_bad_header += 1;
                trace!(%e, "tcp dropped");
                return;
            }
        };
        let payload = pkt.payload();
        let local = SocketAddrV4::new(ip.dst_addr, seg.dst_port);
        let remote = SocketAddrV4::new(ip.src_addr, seg.src_port);
        trace!(%remote, flags = ?seg.flags, seq = %seg.seq, ack = %seg.ack, wnd = seg.window, len = payload.len(), "rx");

        if let Some(&idx) = self.table.get(&(local, remote)) {
            let reuse = seg.flags.syn()
                && !seg.flags.ack()
                && self.listeners.contains_key(&local.port())
                && self
                    .entry(idx)
                    .is_some_and(|e| e.tcb.time_wait_reusable_by(seg.seq));
            if !reuse {
                let Some(e) = self
                    .slots
                    .get_mut(idx as usize)
                    .and_then(|s| s.entry.as_mut())
                else {
                    return;
                };
                let _span = e.span.clone().entered();
                let rst = e.tcb.handle_segment(&self.cfg.tcp, now, &seg, payload);
                if let Some(r) = rst {
                    self.send_rst(local, remote, &r, tx);
                }
                self.after_event(idx, now, true);
                return;
            }
            debug!(%local, %remote, "new SYN recycles a TIME-WAIT connection");
            self.free_slot(idx);
        }

        if self.listeners.contains_key(&local.port()) {
            self.handle_listen(now, local, remote, &seg, tx);
        } else {
            self.stats.tcp_no_listener += 1;
            if let Some(r) = reset_for_closed_port(&seg, payload.len()) {
                self.send_rst(local, remote, &r, tx);
            }
        }
    }

    /// LISTEN state processing (RFC 9293 §3.10.7.2).
    fn handle_listen(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        tx: &mut impl FnMut(&[u8]),
    ) {
        if seg.flags.rst() {
            return;
        }
        if seg.flags.ack() {
            let rst = TcpRepr::rst(seg.dst_port, seg.src_port, seg.ack);
            self.send_rst(local, remote, &rst, tx);
            return;
        }
        if !seg.flags.syn() || seg.flags.fin() {
            return;
        }
        let Some(l) = self.listeners.get(&local.port()) else {
            return;
        };
        if l.pending >= l.backlog || self.live >= self.cfg.max_connections {
            // The peer retransmits its SYN; by then there may be room.
            self.stats.tcp_syn_dropped += 1;
            debug!(%local, %remote, "SYN dropped: backlog or connection table full");
            return;
        }
        let iss = self.isn.isn(local, remote, now);
        let span = conn_span(local, remote);
        let ts_offset = self.rng.next_u64() as u32;
        let pool = &mut self.pool;
        let tcb = span
            .in_scope(|| Tcb::accept_syn(&self.cfg.tcp, pool, local, remote, iss, ts_offset, seg));
        let owner = Owner::Listener {
            port: local.port(),
            queued: false,
        };
        let idx = self.insert(tcb, owner, span);
        if let Some(l) = self.listeners.get_mut(&local.port()) {
            l.pending += 1;
        }
        self.after_event(idx, now, true);
    }

    // ------------------------------------------------------------- polling

    /// Fires due timers and sends everything connections have to send.
    pub fn poll(&mut self, now: Instant, tx: &mut impl FnMut(&[u8])) {
        self.poll_inner(now, false, &mut |p, _| tx(p));
    }

    /// [`Stack::poll`] for a link with TCP segmentation offload: new data may
    /// leave as super-frames of up to [`StackConfig::tso_max`] bytes. `tx`
    /// gets each packet with its segment payload size: 0 for an ordinary
    /// packet; otherwise the packet is a super-frame for the device to cut
    /// into segments of that much payload, and its TCP checksum field holds
    /// only the pseudo-header sum (Linux CHECKSUM_PARTIAL) for the device to
    /// finish.
    pub fn poll_segmented(&mut self, now: Instant, tx: &mut impl FnMut(&[u8], u16)) {
        self.poll_inner(now, true, tx);
    }

    fn poll_inner(&mut self, now: Instant, segmented: bool, tx: &mut impl FnMut(&[u8], u16)) {
        // Each entry due now is handled once: a timer re-armed for `now`
        // waits for the next poll instead of spinning this loop.
        let mut budget = self.timers.len();
        while let Some(&Reverse((at, idx, gen))) = self.timers.peek() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.timers.pop();
            let cfg = &self.cfg.tcp;
            let Some(slot) = self.slots.get_mut(idx as usize) else {
                continue;
            };
            if slot.gen != gen {
                continue;
            }
            let Some(e) = slot.entry.as_mut() else {
                continue;
            };
            if e.timer_at != Some(at) {
                continue;
            }
            e.timer_at = None;
            let _span = e.span.clone().entered();
            e.tcb.on_timer(cfg, now);
            self.after_event(idx, now, true);
        }

        while let Some((local, remote, rst)) = self.rst_queue.pop_front() {
            self.send_rst(local, remote, &rst, &mut |p| tx(p, 0));
        }

        let (limit, max_segs) = if segmented && self.cfg.tso_max > self.cfg.mtu {
            // Worst case per segment: one MSS of payload plus 40 bytes of
            // TCP options and the fixed headers.
            let per_seg = usize::from(self.cfg.tcp.mss) + 40 + 20;
            (
                self.cfg.tso_max,
                ((self.cfg.tso_max - IP_HDR) / per_seg).max(1),
            )
        } else {
            (self.cfg.mtu, 1)
        };
        while let Some(idx) = self.tx_queue.pop_front() {
            let Some(e) = self
                .slots
                .get_mut(idx as usize)
                .and_then(|s| s.entry.as_mut())
            else {
                continue;
            };
            e.in_tx = false;
            let _span = e.span.clone().entered();
            let src = *e.tcb.local().ip();
            let dst = *e.tcb.remote().ip();
            while let Some((n, seg)) =
                e.tcb
                    .poll_transmit_segmented(now, &mut self.scratch[IP_HDR..limit], max_segs)
            {
                // A super-frame's segments get consecutive IDs from the
                // device (Linux GSO increments the ID per segment).
                let segs = if seg > 0 {
                    let thl = usize::from(self.scratch[IP_HDR + 12] >> 4) * 4;
                    n.saturating_sub(thl).div_ceil(seg).max(1)
                } else {
                    1
                };
                self.ip_ident = self.ip_ident.wrapping_add(1);
                emit_ipv4(&mut self.scratch, src, dst, self.ip_ident, n);
                self.ip_ident = self.ip_ident.wrapping_add(segs as u16 - 1);
                self.stats.tcp_tx_segments += segs as u64;
                tx(&self.scratch[..IP_HDR + n], seg as u16);
            }
            self.after_event(idx, now, false);
        }
    }

    /// When [`Stack::poll`] must next be called: `Some(now-or-earlier)` when
    /// output is waiting, the earliest timer otherwise, `None` when idle.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.tx_queue.is_empty() || !self.rst_queue.is_empty() {
            return Some(Instant::ZERO);
        }
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next connection whose application-visible state changed (data to
    /// read, send space, connection established or closed, error).
    pub fn poll_ready(&mut self) -> Option<ConnId> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(e) = self.entry_by_id_mut(id) {
                e.in_ready = false;
                return Some(id);
            }
        }
        None
    }

    // ---------------------------------------------------------- socket API

    /// Opens a listening port with an accept queue of `backlog` connections
    /// (counting those still in the handshake).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, TcpError> {
        if self.listeners.contains_key(&port) {
            return Err(TcpError::AddrInUse(SocketAddrV4::new(self.cfg.addr, port)));
        }
        self.listeners.insert(
            port,
            Listener {
                backlog: backlog.max(1),
                pending: 0,
                queue: VecDeque::new(),
            },
        );
        Ok(ListenerId(port))
    }

    /// Takes the next established connection from a listener's queue.
    pub fn accept(&mut self, l: ListenerId) -> Option<ConnId> {
        loop {
            let listener = self.listeners.get_mut(&l.0)?;
            let id = listener.queue.pop_front()?;
            listener.pending = listener.pending.saturating_sub(1);
            if let Some(e) = self.entry_by_id_mut(id) {
                e.owner = Owner::User;
                return Some(id);
            }
        }
    }

    /// Active open towards `remote`. The SYN goes out on the next `poll`.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: Option<u16>,
    ) -> Result<ConnId, TcpError> {
        if self.live >= self.cfg.max_connections {
            return Err(TcpError::TooManyConnections(self.cfg.max_connections));
        }
        let port = match local_port {
            Some(p) => p,
            None => self.pick_ephemeral(remote)?,
        };
        let local = SocketAddrV4::new(self.cfg.addr, port);
        if self.table.contains_key(&(local, remote)) {
            return Err(TcpError::AddrInUse(local));
        }
        let iss = self.isn.isn(local, remote, now);
        let span = conn_span(local, remote);
        let ts_offset = self.rng.next_u64() as u32;
        let pool = &mut self.pool;
        let tcb =
            span.in_scope(|| Tcb::connect(&self.cfg.tcp, pool, local, remote, iss, ts_offset));
        let idx = self.insert(tcb, Owner::User, span);
        self.after_event(idx, now, true);
        Ok(self.id_of(idx))
    }

    fn pick_ephemeral(&mut self, remote: SocketAddrV4) -> Result<u16, TcpError> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let start = (self.rng.next_u64() % u64::from(span)) as u32;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let local = SocketAddrV4::new(self.cfg.addr, port);
            if !self.table.contains_key(&(local, remote)) && !self.listeners.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(TcpError::NoEphemeralPort(remote))
    }

    /// Reads received data. `Ok(0)` is end of stream (the peer sent FIN).
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let r = self
            .entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .recv(buf);
        self.enqueue_tx(idx);
        r
    }

    /// Zero-copy read: `f` sees the next contiguous received bytes in place and
    /// returns how many it consumed. `Ok(0)` with [`Stack::at_eof`] is end of stream.
    pub fn recv_with(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let r = self
            .entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .recv_with(f);
        self.enqueue_tx(idx);
        r
    }

    /// Queues data for sending; returns how much was taken.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        self.send_with(id, |space| {
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    /// Zero-copy send: `f` writes into the send queue's next contiguous free
    /// region and returns how many bytes it wrote.
    pub fn send_with(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let r = self
            .entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .send_with(f);
        if r.is_ok() {
            self.enqueue_tx(idx);
        }
        r
    }

    /// Free space in the send queue.
    pub fn send_space(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.send_space())
    }

    /// Half-close: a FIN follows the queued data; receiving goes on.
    pub fn shutdown(&mut self, id: ConnId, now: Instant) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        if let Some(e) = self.entry_mut(idx) {
            let _span = e.span.clone().entered();
            e.tcb.shutdown();
        }
        self.after_event(idx, now, true);
        Ok(())
    }

    /// Releases the handle. Queued data is still delivered and the connection
    /// closes gracefully in the background — unless received data was left
    /// unread, in which case the peer gets a RST (RFC 9293 §3.10.4, as Linux does),
    /// so it learns that the data was lost.
    pub fn close(&mut self, id: ConnId, now: Instant) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        let Some(e) = self.entry_mut(idx) else {
            return Err(TcpError::InvalidHandle);
        };
        e.owner = Owner::Orphan;
        let _span = e.span.clone().entered();
        if e.tcb.recv_queue_len() > 0 {
            self.abort_idx(idx);
        } else {
            e.tcb.shutdown();
            self.after_event(idx, now, true);
        }
        Ok(())
    }

    /// Resets the connection (RST to the peer) and releases the handle.
    pub fn abort(&mut self, id: ConnId) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        self.abort_idx(idx);
        Ok(())
    }

    fn abort_idx(&mut self, idx: u32) {
        let Some(e) = self.entry_mut(idx) else { return };
        let (local, remote) = (e.tcb.local(), e.tcb.remote());
        let _span = e.span.clone().entered();
        if let Some(rst) = e.tcb.abort() {
            if self.rst_queue.len() < MAX_PENDING_RST {
                self.rst_queue.push_back((local, remote, rst));
            }
        }
        self.free_slot(idx);
    }

    pub fn state(&self, id: ConnId) -> Result<State, TcpError> {
        Ok(self.user_entry(id)?.tcb.state())
    }

    /// The connection's sticky error, if it was reset or timed out.
    pub fn error(&self, id: ConnId) -> Result<Option<TcpError>, TcpError> {
        Ok(self.user_entry(id)?.tcb.error())
    }

    pub fn local_addr(&self, id: ConnId) -> Result<SocketAddrV4, TcpError> {
        Ok(self.user_entry(id)?.tcb.local())
    }

    pub fn peer_addr(&self, id: ConnId) -> Result<SocketAddrV4, TcpError> {
        Ok(self.user_entry(id)?.tcb.remote())
    }

    /// Bytes sent but not yet acknowledged plus bytes not yet sent.
    pub fn send_queue_len(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.send_queue_len())
    }

    pub fn recv_queue_len(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.recv_queue_len())
    }

    /// True when the peer's FIN arrived and every byte before it was read.
    pub fn at_eof(&self, id: ConnId) -> Result<bool, TcpError> {
        Ok(self.user_entry(id)?.tcb.at_eof())
    }

    // ---------------------------------------------------------- internals

    fn insert(&mut self, tcb: Tcb, owner: Owner, span: tracing::Span) -> u32 {
        let key = (tcb.local(), tcb.remote());
        let entry = Entry {
            tcb,
            owner,
            in_ready: false,
            in_tx: false,
            timer_at: None,
            span,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].entry = Some(entry);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    entry: Some(entry),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.table.insert(key, idx);
        self.live += 1;
        self.stats.tcp_conns_opened += 1;
        idx
    }

    fn free_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let Some(mut e) = slot.entry.take() else {
            return;
        };
        slot.gen = slot.gen.wrapping_add(1);
        e.tcb.release_buffers(&mut self.pool, true);
        self.table.remove(&(e.tcb.local(), e.tcb.remote()));
        if let Owner::Listener {
            port,
            queued: false,
        } = e.owner
        {
            if let Some(l) = self.listeners.get_mut(&port) {
                l.pending = l.pending.saturating_sub(1);
            }
        }
        if matches!(e.tcb.error(), Some(TcpError::TimedOut { .. })) {
            self.stats.tcp_timeouts += 1;
        }
        self.free.push(idx);
        self.live -= 1;
        self.stats.tcp_conns_closed += 1;
    }

    /// Bookkeeping after anything happened to a connection: accept queue,
    /// readiness, freeing, timers and (when `want_tx`) the transmit queue.
    fn after_event(&mut self, idx: u32, now: Instant, want_tx: bool) {
        let gen = match self.slots.get(idx as usize) {
            Some(s) if s.entry.is_some() => s.gen,
            _ => return,
        };
        let id = ConnId { idx, gen };
        if let Some(e) = self
            .slots
            .get_mut(idx as usize)
            .and_then(|s| s.entry.as_mut())
        {
            if e.tcb.state() == State::TimeWait {
                // TIME-WAIT lasts a minute and needs no buffers.
                e.tcb.release_buffers(&mut self.pool, false);
            }
        }
        let Some(e) = self.entry_mut(idx) else { return };
        let notify = e.tcb.take_notify();
        let state = e.tcb.state();
        let owner = e.owner;

        // Orphans that receive data cannot deliver it: reset (RFC 9293 §3.10.4).
        if owner == Owner::Orphan && e.tcb.recv_queue_len() > 0 {
            self.abort_idx(idx);
            return;
        }
        if state == State::Closed
            && matches!(owner, Owner::Orphan | Owner::Listener { queued: false, .. })
        {
            if want_tx {
                // A final segment may still be owed (e.g. the ACK of a RST-less close).
                self.enqueue_tx(idx);
            }
            self.free_slot(idx);
            return;
        }
        let Some(e) = self.entry_mut(idx) else { return };
        if notify {
            match owner {
                Owner::Listener {
                    port,
                    queued: false,
                } if state != State::SynReceived => {
                    e.owner = Owner::Listener { port, queued: true };
                    if let Some(l) = self.listeners.get_mut(&port) {
                        l.queue.push_back(id);
                    }
                }
                Owner::User if !e.in_ready => {
                    e.in_ready = true;
                    self.ready.push_back(id);
                }
                _ => {}
            }
        }
        if want_tx {
            self.enqueue_tx(idx);
        }
        let Some(e) = self
            .slots
            .get_mut(idx as usize)
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        if let Some(at) = e.tcb.poll_at() {
            let at = at.max(now);
            if e.timer_at.is_none_or(|t| at < t) {
                e.timer_at = Some(at);
                self.timers.push(Reverse((at, idx, gen)));
            }
        }
    }

    fn enqueue_tx(&mut self, idx: u32) {
        if let Some(e) = self.entry_mut(idx) {
            if !e.in_tx {
                e.in_tx = true;
                self.tx_queue.push_back(idx);
            }
        }
    }

    fn send_rst(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        rst: &TcpRepr,
        tx: &mut impl FnMut(&[u8]),
    ) {
        let hl = rst.header_len();
        let buf = &mut self.scratch[IP_HDR..IP_HDR + hl];
        let mut pkt = TcpPacket::new_unchecked(&mut *buf);
        rst.emit(&mut pkt);
        pkt.fill_checksum(*local.ip(), *remote.ip());
        self.ip_ident = self.ip_ident.wrapping_add(1);
        emit_ipv4(
            &mut self.scratch,
            *local.ip(),
            *remote.ip(),
            self.ip_ident,
            hl,
        );
        self.stats.tcp_rst_sent += 1;
        trace!(%remote, seq = %rst.seq, "tx RST");
        tx(&self.scratch[..IP_HDR + hl]);
    }

    fn id_of(&self, idx: u32) -> ConnId {
        ConnId {
            idx,
            gen: self.slots[idx as usize].gen,
        }
    }

    fn entry(&self, idx: u32) -> Option<&Entry> {
        self.slots.get(idx as usize)?.entry.as_ref()
    }

    fn entry_mut(&mut self, idx: u32) -> Option<&mut Entry> {
        self.slots.get_mut(idx as usize)?.entry.as_mut()
    }

    fn entry_by_id_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(id.idx as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.entry.as_mut()
    }

    fn user_entry(&self, id: ConnId) -> Result<&Entry, TcpError> {
        let slot = self
            .slots
            .get(id.idx as usize)
            .ok_or(TcpError::InvalidHandle)?;
        match &slot.entry {
            Some(e) if slot.gen == id.gen && e.owner == Owner::User => Ok(e),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    fn user_idx(&self, id: ConnId) -> Result<u32, TcpError> {
        self.user_entry(id).map(|_| id.idx)
    }
}

fn conn_span(local: SocketAddrV4, remote: SocketAddrV4) -> tracing::Span {
    tracing::debug_span!("tcp", %local, %remote)
}

/// RFC 9293 §3.10.7.1: the reply to a segment for a connection that does not exist.
fn reset_for_closed_port(seg: &TcpRepr, payload_len: usize) -> Option<TcpRepr> {
    if seg.flags.rst() {
        return None;
    }
    if seg.flags.ack() {
        return Some(TcpRepr::rst(seg.dst_port, seg.src_port, seg.ack));
    }
    let seg_len = payload_len + usize::from(seg.flags.syn()) + usize::from(seg.flags.fin());
    Some(TcpRepr {
        flags: Flags::RST | Flags::ACK,
        ack: seg.seq + seg_len,
        ..TcpRepr::rst(seg.dst_port, seg.src_port, SeqNumber(0))
    })
}

/// Writes the IPv4 header in front of a `payload_len`-byte TCP segment that
/// already sits at `buf[20..]`.
fn emit_ipv4(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, ident: u16, payload_len: usize) {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: protocol::TCP,
        payload_len,
        ttl: 64,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..IP_HDR + payload_len]);
    repr.emit(&mut ip);
}

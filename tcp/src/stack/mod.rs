//! The TCP layer above IP: a table of connections keyed by 4-tuple,
//! listeners with accept queues, demultiplexing of segments to connections,
//! RSTs for closed ports, ICMP errors routed to the connection they name,
//! timers, and the handle-based socket API. [`Tcp`] is a
//! [`Transport`](ustack_ipv4::Transport) of the IP layer
//! ([`ustack_ipv4::IpStack`]), which hands it segments and sends what it
//! hands down.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use ustack_ipv4::{IpSend, Ipv4Repr};

use crate::buffer::BufferPool;
use crate::conn::{State, Tcb, TcpConfig};
use crate::error::TcpError;
use crate::rng::{IsnGenerator, Rng};
use crate::seq::SeqNumber;
use crate::syncookie::SynCookieJar;
use crate::time::Instant;
use crate::wire::{Flags, TcpRepr};

mod capture;
mod cookies;
mod invariants;
mod lookup;
mod memory;
mod rx;
mod socket_api;
mod time_wait;
mod transport;
mod tx;

pub use capture::{CaptureFilter, CaptureRequest};
pub use cookies::{ListenOptions, SynCookies};
pub use time_wait::TimeWaitStats;
use time_wait::TimeWaitTable;
#[cfg(test)]
mod size_tests;

/// Configuration of the TCP layer: the connection table and the defaults
/// of every connection. The interface (address, MTU, segmentation offload)
/// comes from the IP layer below, when it attaches this transport.
#[derive(Debug, Clone)]
pub struct TcpLayerConfig {
    /// Upper bound on connections the application can see or is owed
    /// (handshaking, open, closing). An idle connection costs its state only
    /// (no buffers), so the default is high. Connections that closed first
    /// and wait out TIME-WAIT alone are records, bounded by `max_time_wait`.
    pub max_connections: usize,
    /// Upper bound on TIME-WAIT records (about 80 bytes each with their
    /// index). At the bound the oldest record goes first.
    pub max_time_wait: usize,
    /// Most bytes of send and receive buffer storage all connections
    /// together may hold (pooled storage included). Above three quarters of
    /// it the layer is under memory pressure: buffers stop growing. It is
    /// never exceeded: a connection that finds no memory stores less.
    pub buffer_budget: usize,
    /// Local ports `connect` picks from when none is given.
    pub ephemeral_ports: (u16, u16),
    /// Per-connection tunables. `tcp.mss` is lowered to fit the MTU.
    pub tcp: TcpConfig,
}

impl Default for TcpLayerConfig {
    fn default() -> TcpLayerConfig {
        TcpLayerConfig {
            max_connections: 262_144,
            max_time_wait: 262_144,
            buffer_budget: 1 << 30,
            ephemeral_ports: (49152, 65535),
            tcp: TcpConfig::default(),
        }
    }
}

/// Handle of a connection. Stale handles (of a freed slot) are rejected.
/// Ordered arbitrarily but consistently (for use in maps and heaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    idx: u32,
    gen: u32,
}

impl ConnId {
    /// The connection's slot in the table: dense (below the most
    /// connections the table has held at once) and reused once the
    /// connection is freed, so an application can keep per-connection state
    /// in a `Vec` indexed by it instead of a hash map, comparing the whole
    /// `ConnId` to tell a reused slot from its old tenant.
    pub fn slot(self) -> usize {
        self.idx as usize
    }
}

/// Handle of a listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u16);

impl ListenerId {
    /// The port it listens on.
    pub fn port(self) -> u16 {
        self.0
    }
}

/// Counters for everything the TCP layer dropped or did on its own.
#[derive(Debug, Default, Clone)]
pub struct TcpStats {
    /// Segments handed to TCP by the IP layer.
    pub tcp_rx_segments: u64,
    /// Wire segments sent (a super-frame counts its segments).
    pub tcp_tx_segments: u64,
    /// Segments with a malformed header or options.
    pub tcp_bad_header: u64,
    /// Segments whose checksum did not verify.
    pub tcp_bad_checksum: u64,
    /// RSTs sent.
    pub tcp_rst_sent: u64,
    /// Segments for a port nobody listens on.
    pub tcp_no_listener: u64,
    /// SYNs dropped because the backlog or the table was full (a listener
    /// without SYN cookies), and valid cookies that found the table full
    /// of connections still in a handshake.
    pub tcp_syn_dropped: u64,
    /// SYN-ACKs sent with a SYN cookie instead of a connection.
    pub tcp_syncookies_sent: u64,
    /// Connections created from a valid SYN cookie.
    pub tcp_syncookies_ok: u64,
    /// ACKs dropped because the cookie they acknowledged was invalid or stale.
    pub tcp_syncookies_failed: u64,
    /// Valid cookie ACKs dropped because the accept queue was full.
    pub tcp_listen_overflow: u64,
    /// Connections reset to make room for a new one in a full table.
    pub tcp_evicted: u64,
    /// Connections created.
    pub tcp_conns_opened: u64,
    /// Connections freed.
    pub tcp_conns_closed: u64,
    /// ICMP errors a connection acted on (RFC 5927).
    pub tcp_icmp_applied: u64,
    /// ICMP errors ignored: no such connection, or a quoted sequence
    /// number outside SND.UNA..SND.NXT (RFC 5927 §4.1).
    pub tcp_icmp_ignored: u64,
    /// Connections given up after too many retransmissions or probes,
    /// including ones whose handle the application had already closed.
    pub tcp_timeouts: u64,
    /// Bytes of buffer storage held now, in connections and pooled (gauge).
    pub tcp_mem_allocated: u64,
    /// 1 while under memory pressure (gauge; see `buffer_budget`).
    pub tcp_mem_pressure: u64,
    /// Times the layer entered memory pressure.
    pub tcp_mem_pressure_events: u64,
    /// Requests for buffer storage refused because the budget was spent.
    pub tcp_mem_refused: u64,
    /// Segments whose data was dropped for lack of buffer memory (the
    /// peer retransmits it).
    pub tcp_mem_rx_dropped: u64,
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
    /// Connections created by this listener and not yet accepted: at most
    /// `backlog` from SYNs, and cookie connections while fewer than
    /// `backlog` wait in `queue`, so at most twice `backlog`.
    pending: usize,
    queue: VecDeque<ConnId>,
    syn_cookies: SynCookies,
    /// When this listener last answered a SYN with a cookie.
    cookie_sent_at: Option<Instant>,
}

type Tuple = (SocketAddrV4, SocketAddrV4);

/// The TCP layer: connections, listeners and the socket API.
pub struct Tcp {
    cfg: TcpLayerConfig,
    /// The interface below, once the IP layer attached this transport.
    addr: Ipv4Addr,
    mtu: usize,
    tso_max: usize,
    /// The device finishes TCP checksums in its copy (`DeviceCaps`).
    finishes_checksums: bool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    table: lookup::ConnTable,
    listeners: HashMap<u16, Listener>,
    ready: VecDeque<ConnId>,
    tx_queue: VecDeque<u32>,
    /// (deadline, slot, generation) of each connection's next wake-up.
    /// Entries left stale by a timer that moved earlier are skipped when
    /// due, and compacted away before the heap would grow and whenever
    /// they reach 64 beyond twice the live connections.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// RSTs owed for aborted connections whose TCB is already gone.
    rst_queue: VecDeque<(SocketAddrV4, SocketAddrV4, TcpRepr)>,
    isn: IsnGenerator,
    /// SYN cookie secrets, drawn when the first cookie is sent.
    cookies: Option<SynCookieJar>,
    /// Evicted connections the application held, to report once more.
    evicted: VecDeque<ConnId>,
    rng: Box<dyn Rng>,
    stats: TcpStats,
    /// One outgoing segment (or super-frame), TCP header first.
    scratch: Vec<u8>,
    /// Where every connection's buffer storage comes from, within the budget.
    pool: BufferPool,
    /// Connections that closed first and wait out 2 × MSL as records.
    time_wait: TimeWaitTable,
    /// Any-address capture, when on.
    capture: Option<capture::Capture>,
    /// Connections whose application found no buffer memory for a send:
    /// told "ready" once the pool leaves pressure. At most one entry per
    /// refused send, bounded by `max_connections` (more are not recorded:
    /// those applications retry on their next event).
    mem_waiters: Vec<ConnId>,
}

const IP_HDR: usize = Ipv4Repr::HEADER_LEN;
/// IPv4 and TCP headers without options: what the MSS leaves of the MTU.
const HEADERS: usize = IP_HDR + 20;
const MAX_PENDING_RST: usize = 64;

impl Tcp {
    /// A TCP layer with no connections; it learns its address and MTU when
    /// an [`IpStack`](ustack_ipv4::IpStack) attaches it.
    pub fn new(cfg: TcpLayerConfig, mut rng: Box<dyn Rng>) -> Tcp {
        let isn = IsnGenerator::new(rng.as_mut());
        let time_wait = TimeWaitTable::new(cfg.max_time_wait, cfg.tcp.time_wait);
        let cfg_budget = cfg.buffer_budget;
        Tcp {
            cfg,
            addr: Ipv4Addr::UNSPECIFIED,
            mtu: 0,
            tso_max: 0,
            finishes_checksums: false,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            table: lookup::ConnTable::default(),
            listeners: HashMap::new(),
            ready: VecDeque::new(),
            tx_queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            rst_queue: VecDeque::new(),
            isn,
            cookies: None,
            evicted: VecDeque::new(),
            rng,
            stats: TcpStats::default(),
            scratch: Vec::new(),
            pool: BufferPool::new(cfg_budget),
            mem_waiters: Vec::new(),
            time_wait,
            capture: None,
        }
    }

    /// The configuration, with the MSS as lowered to fit the MTU.
    pub fn config(&self) -> &TcpLayerConfig {
        &self.cfg
    }
    /// The local address connections are made from.
    pub fn local_ip(&self) -> Ipv4Addr {
        self.addr
    }
    /// The counters.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }
    /// Connections in the table, of every state.
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// 4-tuples in TIME-WAIT, kept as records outside the connection table.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    /// Counters of the TIME-WAIT records.
    pub fn time_wait_stats(&self) -> &TimeWaitStats {
        self.time_wait.stats()
    }

    /// Bytes the TIME-WAIT records and their index hold.
    pub fn time_wait_memory(&self) -> usize {
        self.time_wait.memory()
    }

    /// Bytes of send and receive ring storage the layer holds: in live
    /// connections and kept for reuse. Never more than the budget.
    pub fn buffer_memory(&self) -> usize {
        self.pool.allocated()
    }

    /// Bytes of ring storage kept for reuse (part of [`Tcp::buffer_memory`]).
    pub fn pooled_buffer_memory(&self) -> usize {
        self.pool.held_bytes()
    }

    /// Connections that still have something to finish: every state but
    /// TIME-WAIT (and CLOSED), whoever holds them (the application, an
    /// accept queue, or nobody after [`close`](Self::close)). What a graceful
    /// shutdown waits for: once this is 0, no peer is owed anything.
    pub fn active_connection_count(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter(|e| !matches!(e.tcb.state(), State::TimeWait | State::Closed))
            .count()
    }

    // ------------------------------------------------------------- polling

    /// Fires due timers and sends everything connections have to send; new
    /// data leaves as super-frames when the interface has TSO.
    fn poll_inner(&mut self, now: Instant, tx: &mut impl IpSend) {
        // Each entry due now is handled once: a timer re-armed for `now`
        // waits for the next poll instead of spinning this loop.
        self.time_wait.expire(now);
        if self.timers.len() > 2 * self.live + 64 {
            self.compact_timers();
        }
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
            self.send_rst(local, remote, &rst, tx);
        }

        while let Some(idx) = self.tx_queue.pop_front() {
            self.transmit(idx, now, tx);
        }
    }

    /// Drops the heap's stale entries (a connection whose timer moved
    /// earlier leaves its old entry behind until that is due) once they
    /// outnumber the live ones, so the heap stays within a small multiple
    /// of the connections, not of the timer re-arms in the longest timer's
    /// span.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.live {
            return;
        }
        let slots = &self.slots;
        self.timers.retain(|&Reverse((at, idx, gen))| {
            slots.get(idx as usize).is_some_and(|s| {
                s.gen == gen && s.entry.as_ref().is_some_and(|e| e.timer_at == Some(at))
            })
        });
    }

    /// When the next poll is due: `Some(now-or-earlier)` when output is
    /// waiting, the earliest timer otherwise, `None` when idle.
    fn next_poll(&self) -> Option<Instant> {
        if !self.tx_queue.is_empty() || !self.rst_queue.is_empty() {
            return Some(Instant::ZERO);
        }
        let conn = self.timers.peek().map(|Reverse((at, _, _))| *at);
        match (conn, self.time_wait.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next connection whose application-visible state changed (data to
    /// read, send space, connection established or closed, error).
    pub fn poll_ready(&mut self) -> Option<ConnId> {
        if let Some(id) = self.evicted.pop_front() {
            return Some(id);
        }
        while let Some(id) = self.ready.pop_front() {
            if let Some(e) = self.entry_by_id_mut(id) {
                e.in_ready = false;
                return Some(id);
            }
        }
        None
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
        e.tcb.release_all(&mut self.pool);
        self.sync_mem_stats();
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
        if matches!(
            e.tcb.error(),
            Some(TcpError::TimedOut { .. } | TcpError::Unreachable { .. })
        ) {
            self.stats.tcp_timeouts += 1;
        }
        self.free.push(idx);
        self.live -= 1;
        self.stats.tcp_conns_closed += 1;
    }

    /// Bookkeeping after anything happened to a connection: accept queue,
    /// readiness, freeing, timers and (when `want_tx`) the transmit queue.
    fn after_event(&mut self, idx: u32, now: Instant, want_tx: bool) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let gen = slot.gen;
        let Some(e) = slot.entry.as_mut() else {
            return;
        };
        let id = ConnId { idx, gen };
        // Empty queues hold no memory; TIME-WAIT holds no buffers at all.
        e.tcb.release_idle(&self.cfg.tcp, &mut self.pool);
        let notify = e.tcb.take_notify();
        let state = e.tcb.state();
        let owner = e.owner;
        let orphan_data = owner == Owner::Orphan && e.tcb.recv_queue_len() > 0;
        self.sync_mem_stats();
        self.wake_mem_waiters();

        // Orphans that receive data cannot deliver it: reset (RFC 9293 §3.10.4).
        if orphan_data {
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
        if state == State::TimeWait && owner == Owner::Orphan {
            if want_tx {
                // The ACK of the peer's FIN leaves first; the transmit path
                // comes back here and the TCB becomes a record.
                self.enqueue_tx(idx);
            } else if self.entry(idx).is_some_and(|e| !e.in_tx) {
                self.enter_time_wait(idx, now);
            }
            return;
        }
        // The common case, after every segment: one borrow of the entry.
        let Some(e) = slot_entry(&mut self.slots, idx) else {
            return;
        };
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
        if want_tx && !e.in_tx {
            e.in_tx = true;
            self.tx_queue.push_back(idx);
        }
        if e.in_tx {
            // Queued to send: the next poll, due at once while the queue
            // holds anything (`next_poll`), transmits and comes back here,
            // and the timer is filed then, after what was sent has cancelled
            // a delayed ACK or moved the RTO. Filing it now as well would
            // leave a stale heap entry behind for every request answered
            // at once.
            return;
        }
        if let Some(at) = e.tcb.poll_at() {
            let at = at.max(now);
            if e.timer_at.is_none_or(|t| at < t) {
                e.timer_at = Some(at);
                if self.timers.len() == self.timers.capacity() {
                    // Stale entries make room before the heap grows.
                    self.compact_timers();
                }
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
        slot_entry(&mut self.slots, idx)
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

/// The live entry in slot `idx`. A function of the slots alone, so that
/// the entry can be held while the table's other fields (the buffer pool,
/// the config, the stats) are used, which [`Tcp::entry_mut`] does not allow.
#[inline]
fn slot_entry(slots: &mut [Slot], idx: u32) -> Option<&mut Entry> {
    slots.get_mut(idx as usize)?.entry.as_mut()
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

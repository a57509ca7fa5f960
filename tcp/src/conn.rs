//! One connection's transmission control block and its state machine
//! (RFC 9293 §3.3.2 states, §3.10 event processing).
//!
//! A `Tcb` knows nothing of other connections, addresses' routing or packets'
//! IPv4 headers: the [`crate::Stack`] demultiplexes to it, asks it what to send
//! (`poll_transmit`) and when to wake it (`poll_at`).

use core::net::SocketAddrV4;
use core::time::Duration;

use tracing::{debug, trace};

use crate::assembler::{Assembler, SackGenerator};
use crate::buffer::{BufferPool, RingBuffer};
use crate::cc::{self, AnyCc, CongestionControl};
use crate::error::TcpError;
use crate::rack::Rack;
use crate::rtt::RttEstimator;
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{Flags, SackBlock, SackBlocks, TcpOptions, TcpPacket, TcpRepr};

/// Largest window field (RFC 9293 §3.1).
const MAX_WINDOW: usize = u16::MAX as usize;

/// RFC 8985 §7.2 WCDelAckT: the peer's worst-case delayed-ACK time, added
/// to the probe timeout when a single segment is in flight.
const WORST_CASE_DELACK: Duration = Duration::from_millis(200);

/// RFC 5961 §7 limit on challenge ACKs, per connection.
const CHALLENGE_ACKS_PER_SECOND: u32 = 10;

/// Least time between ACKs answering out-of-window pure ACKs.
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WSCALE: u8 = 14;

/// The smallest shift that lets a `buffer`-byte window fit the 16-bit field.
fn wscale_for(buffer: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WSCALE && (buffer >> shift) > MAX_WINDOW {
        shift += 1;
    }
    shift
}

/// Connection states of RFC 9293 §3.3.2. LISTEN is represented by a listener
/// in the stack, never by a `Tcb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// States after the three-way handshake in which the peer's sequence
    /// numbers are known (RFC 9293 §3.5 "synchronized").
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent)
    }
}

/// Tunables of every connection.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// MSS we announce; the stack derives it from the link MTU (MTU - 40).
    pub mss: u16,
    /// Bytes the application may queue for sending.
    pub send_buffer: usize,
    /// Bytes of received data held for the application; the advertised window.
    pub recv_buffer: usize,
    /// RFC 6298 §2.1 initial RTO (1 s).
    pub rto_initial: Duration,
    /// Lower bound on the RTO. RFC 6298 §2.4 says 1 s; like Linux we use 200 ms,
    /// since a 1 s floor makes every loss on a LAN or TUN link cost a second.
    pub rto_min: Duration,
    /// Upper bound on the RTO (RFC 6298 §2.5 allows >= 60 s; Linux uses 120 s).
    pub rto_max: Duration,
    /// Retransmissions of a SYN or SYN-ACK before giving up (Linux: 6).
    pub syn_retries: u32,
    /// Retransmissions of data or FIN before giving up (RFC 1122 §4.2.3.5 R2).
    pub data_retries: u32,
    /// How long TIME-WAIT lasts: 2 x MSL (RFC 9293 §3.4.2). Linux uses 60 s.
    pub time_wait: Duration,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3): RTT measurement and PAWS.
    pub timestamps: bool,
    /// Offer selective acknowledgements (RFC 2018).
    pub sack: bool,
    /// Congestion control algorithm (RFC 9438 CUBIC by default).
    pub congestion: cc::Algorithm,
    /// Disable Nagle's algorithm (RFC 9293 §3.7.4), like TCP_NODELAY.
    pub nodelay: bool,
    /// Longest an ACK may be delayed (RFC 9293 §3.8.6.3: under 0.5 s).
    pub ack_delay: Duration,
    /// Send keep-alive probes after this long without hearing from the peer
    /// (RFC 1122 §4.2.3.6; off by default, as it must be).
    pub keepalive: Option<Duration>,
    /// Interval between unanswered keep-alive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keep-alive probes before the connection is dropped.
    pub keepalive_probes: u32,
    /// Give up when sent data stays unacknowledged this long (RFC 9293 §3.8.4
    /// USER TIMEOUT, RFC 5482). `None`: only the retransmission limits apply.
    pub user_timeout: Option<Duration>,
}

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            mss: 1460,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            syn_retries: 6,
            data_retries: 10,
            time_wait: Duration::from_secs(60),
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion: cc::Algorithm::Cubic,
            nodelay: false,
            ack_delay: Duration::from_millis(40),
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            user_timeout: None,
        }
    }
}

/// Loss recovery in progress (RFC 6675 §5 with SACK, RFC 6582 without).
#[derive(Debug, Clone, Copy)]
struct Recovery {
    /// RecoveryPoint: recovery ends when this is cumulatively acknowledged.
    point: SeqNumber,
    /// RFC 5681 §3.2 / RFC 6582 window inflation (without SACK only).
    inflation: usize,
    /// Proportional Rate Reduction (RFC 6937), with SACK: RecoverFS,
    /// prr_delivered, prr_out, and what the last ACK allows us to send.
    recover_fs: usize,
    prr_delivered: usize,
    prr_out: usize,
    sndcnt: usize,
}

/// Transmission control block (RFC 9293 §3.3.1 variable names).
#[derive(Debug)]
pub struct Tcb {
    state: State,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    passive: bool,

    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// Highest sequence number sent plus one; `snd_nxt` falls back to
    /// `snd_una` on a retransmission timeout while `snd_max` stays.
    snd_max: SeqNumber,
    snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Sequence number of the first byte in `send_buf`.
    snd_data_start: SeqNumber,
    send_mss: usize,
    /// MSS we announce in our SYN.
    our_mss: u16,
    send_buf: RingBuffer,
    /// The application shut down its sending side: a FIN follows the data.
    fin_queued: bool,

    /// Shift applied to windows the peer advertises (RFC 7323 §2.3).
    snd_wscale: u8,
    /// Shift applied to windows we advertise.
    rcv_wscale: u8,
    /// Window scaling in effect (before the handshake ends: offered).
    wscale_ok: bool,
    /// Timestamps in effect (before the handshake ends: offered).
    ts_ok: bool,
    /// Per-connection offset of our timestamp clock (RFC 7323 §5.4).
    ts_offset: u32,
    /// TS.Recent of RFC 7323 §4.3.
    ts_recent: u32,
    /// Last.ACK.sent of RFC 7323 §4.3.
    last_ack_sent: SeqNumber,
    /// SACK permitted in both directions (before the handshake ends: offered).
    sack_ok: bool,
    /// One RTT sample per round trip from timestamps (RFC 7323 §4.2):
    /// the next is taken from an ACK at or beyond this sequence number.
    rtt_sample_after: SeqNumber,

    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the last window we advertised (never moved left,
    /// RFC 9293 §3.8.6.2.2).
    rcv_adv: SeqNumber,
    recv_buf: RingBuffer,
    fin_received: bool,
    ack_pending: bool,

    /// Out-of-order data held in `recv_buf` beyond RCV.NXT (RFC 9293 §3.10.7.4).
    assembler: Assembler,
    sack_gen: SackGenerator,
    /// A FIN that arrived beyond a gap: processed when RCV.NXT reaches it.
    ooo_fin: Option<SeqNumber>,
    /// A duplicate segment arrived: the next ACK carries a D-SACK (RFC 2883).
    dsack_pending: bool,
    /// No ACK in reply to an out-of-window pure ACK before this time.
    oow_ack_allowed: Instant,
    /// Challenge ACKs sent in the one-second window starting here.
    challenge_window: Instant,
    challenge_count: u32,
    /// Segments received since our last ACK, and when a delayed ACK is due.
    segs_unacked: u32,
    delack_deadline: Option<Instant>,
    ack_delay: Duration,

    cc: AnyCc,
    /// RACK-TLP (RFC 8985), used when the peer sends SACKs.
    rack: Rack,
    rack_deadline: Option<Instant>,
    tlp_deadline: Option<Instant>,
    tlp_due: bool,
    /// A probe was sent and no ACK has advanced SND.UNA since (one at a time
    /// outside recovery).
    tlp_outstanding: bool,
    /// Probes in recovery back off exponentially until something is delivered.
    tlp_backoff: u32,
    /// Duplicate ACKs (NewReno loss detection, peers without SACK).
    dup_acks: u32,
    recovery: Option<Recovery>,
    /// No new recovery until this is acknowledged (RFC 6582 §3.2 step 1,
    /// RFC 6675 §5.1 after an RTO).
    recover: SeqNumber,
    /// Retransmit the segment at SND.UNA next (fast retransmit, partial ACK).
    rtx_front: bool,
    max_snd_wnd: u32,
    nodelay: bool,

    /// Last time anything arrived from the peer (keep-alive).
    last_heard: Instant,
    keepalive: Option<Duration>,
    keepalive_interval: Duration,
    keepalive_probes: u32,
    keepalive_sent: u32,
    /// Since when the oldest unacknowledged data has waited (user timeout).
    unacked_since: Option<Instant>,
    user_timeout: Option<Duration>,

    rtt: RttEstimator,
    rtx_deadline: Option<Instant>,
    rtx_count: u32,
    persist_deadline: Option<Instant>,
    persist_backoff: u32,
    probe_due: bool,
    time_wait_deadline: Option<Instant>,
    error: Option<TcpError>,
    /// Something the application can observe changed (data, space, state, error).
    notify: bool,
}

impl Tcb {
    fn new(
        cfg: &TcpConfig,
        pool: &mut BufferPool,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        ts_offset: u32,
        passive: bool,
    ) -> Tcb {
        Tcb {
            state: State::Closed,
            local,
            remote,
            passive,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_data_start: iss + 1u32,
            send_mss: 536,
            our_mss: cfg.mss,
            send_buf: pool.take(cfg.send_buffer),
            fin_queued: false,
            snd_wscale: 0,
            rcv_wscale: if cfg.window_scaling {
                wscale_for(cfg.recv_buffer)
            } else {
                0
            },
            wscale_ok: cfg.window_scaling,
            ts_ok: cfg.timestamps,
            ts_offset,
            ts_recent: 0,
            last_ack_sent: SeqNumber(0),
            sack_ok: cfg.sack,
            rtt_sample_after: iss,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            recv_buf: pool.take(cfg.recv_buffer),
            fin_received: false,
            ack_pending: false,
            assembler: Assembler::new(),
            sack_gen: SackGenerator::new(),
            ooo_fin: None,
            dsack_pending: false,
            oow_ack_allowed: Instant::ZERO,
            challenge_window: Instant::ZERO,
            challenge_count: 0,
            segs_unacked: 0,
            delack_deadline: None,
            ack_delay: cfg.ack_delay,
            cc: cc::new(cfg.congestion, 536),
            rack: Rack::new(),
            rack_deadline: None,
            tlp_deadline: None,
            tlp_due: false,
            tlp_outstanding: false,
            tlp_backoff: 0,
            dup_acks: 0,
            recovery: None,
            recover: iss,
            rtx_front: false,
            max_snd_wnd: 0,
            nodelay: cfg.nodelay,
            last_heard: Instant::ZERO,
            keepalive: cfg.keepalive,
            keepalive_interval: cfg.keepalive_interval,
            keepalive_probes: cfg.keepalive_probes,
            keepalive_sent: 0,
            unacked_since: None,
            user_timeout: cfg.user_timeout,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtx_deadline: None,
            rtx_count: 0,
            persist_deadline: None,
            persist_backoff: 0,
            probe_due: false,
            time_wait_deadline: None,
            error: None,
            notify: false,
        }
    }

    /// Active OPEN (RFC 9293 §3.10.1): the SYN goes out on the next `poll_transmit`.
    pub fn connect(
        cfg: &TcpConfig,
        pool: &mut BufferPool,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        ts_offset: u32,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, pool, local, remote, iss, ts_offset, false);
        tcb.set_state(State::SynSent);
        tcb
    }

    /// A SYN arrived for a listener (RFC 9293 §3.10.7.2): the new TCB is in
    /// SYN-RECEIVED and the SYN-ACK goes out on the next `poll_transmit`.
    pub fn accept_syn(
        cfg: &TcpConfig,
        pool: &mut BufferPool,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        ts_offset: u32,
        syn: &TcpRepr,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, pool, local, remote, iss, ts_offset, true);
        tcb.on_peer_syn(cfg, syn);
        tcb.set_state(State::SynReceived);
        tcb
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }
    pub fn error(&self) -> Option<TcpError> {
        self.error
    }
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    pub fn is_passive(&self) -> bool {
        self.passive
    }
    /// Bytes queued for sending that the peer has not acknowledged yet.
    pub fn send_queue_len(&self) -> usize {
        self.send_buf.len()
    }
    pub fn send_space(&self) -> usize {
        if self.fin_queued {
            0
        } else {
            self.send_buf.free()
        }
    }
    pub fn recv_queue_len(&self) -> usize {
        self.recv_buf.len()
    }
    /// True once the peer's FIN has been received and all data before it read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.recv_buf.is_empty()
    }
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// Gives the buffers back once they can hold nothing more: closed, or in
    /// TIME-WAIT with everything acknowledged and read. A retransmitted FIN
    /// in TIME-WAIT then meets a zero window and is still ACKed.
    /// With `force`, the connection is being freed and they go back anyway.
    pub fn release_buffers(&mut self, pool: &mut BufferPool, force: bool) {
        let idle = matches!(self.state, State::TimeWait | State::Closed)
            && self.send_buf.is_empty()
            && self.recv_buf.is_empty();
        if (idle || force) && self.send_buf.capacity() + self.recv_buf.capacity() > 0 {
            pool.give(core::mem::replace(&mut self.send_buf, RingBuffer::new(0)));
            pool.give(core::mem::replace(&mut self.recv_buf, RingBuffer::new(0)));
        }
    }

    /// Returns and clears the "application-visible change" flag.
    pub fn take_notify(&mut self) -> bool {
        core::mem::take(&mut self.notify)
    }

    fn set_state(&mut self, next: State) {
        if self.state != next {
            debug!(from = ?self.state, to = ?next, "state");
            self.state = next;
            self.notify = true;
        }
    }

    fn fail(&mut self, err: TcpError) {
        debug!(%err, "connection failed");
        self.error = Some(err);
        self.set_state(State::Closed);
        self.clear_timers();
    }

    fn clear_timers(&mut self) {
        self.rtx_deadline = None;
        self.persist_deadline = None;
        self.time_wait_deadline = None;
        self.delack_deadline = None;
        self.rack_deadline = None;
        self.tlp_deadline = None;
        self.unacked_since = None;
    }

    fn enter_time_wait(&mut self, cfg: &TcpConfig, now: Instant) {
        self.set_state(State::TimeWait);
        self.rtx_deadline = None;
        self.persist_deadline = None;
        self.time_wait_deadline = Some(now + cfg.time_wait);
    }

    /// The peer's SYN (or SYN-ACK) arrived: its ISN, options and window.
    fn on_peer_syn(&mut self, cfg: &TcpConfig, syn: &TcpRepr) {
        self.irs = syn.seq;
        self.rcv_nxt = syn.seq + 1u32;
        self.rcv_adv = self.rcv_nxt;
        self.apply_syn_options(cfg, &syn.options);
        // The window field of a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = u32::from(syn.window);
        self.snd_wl1 = syn.seq;
    }

    /// Options of the peer's SYN or SYN-ACK: what is in effect is what both
    /// sides offered (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    fn apply_syn_options(&mut self, cfg: &TcpConfig, opts: &TcpOptions) {
        // RFC 9293 §3.7.1: without an MSS option assume 536 (RFC 1122 §4.2.2.6).
        let peer = opts.mss.map_or(536, usize::from).max(64);
        self.send_mss = peer.min(usize::from(cfg.mss));
        self.cc.set_mss(self.send_mss);
        match opts.window_scale {
            Some(shift) if self.wscale_ok => {
                // RFC 7323 §2.3: a shift above 14 is used as 14.
                self.snd_wscale = shift.min(MAX_WSCALE);
            }
            _ => {
                self.wscale_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        match opts.timestamps {
            Some((tsval, _)) if self.ts_ok => self.ts_recent = tsval,
            _ => self.ts_ok = false,
        }
        self.sack_ok &= opts.sack_permitted;
    }

    /// Our timestamp clock: milliseconds plus a per-connection offset.
    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Bytes of payload that fit in a segment with header `header_len`
    /// (RFC 9293 §3.7.1: options come out of the MSS).
    fn payload_room(&self, header_len: usize) -> usize {
        (self.send_mss + 20).saturating_sub(header_len).max(1)
    }

    /// Sequence number our FIN occupies (meaningful once `fin_queued`).
    fn fin_seq(&self) -> SeqNumber {
        self.snd_data_start + self.send_buf.len()
    }

    fn our_fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.fin_seq() + 1u32
    }

    /// The receive window we would advertise now.
    fn rcv_wnd(&self) -> u32 {
        self.recv_buf.free().min(MAX_WINDOW << self.rcv_wscale) as u32
    }

    /// The window field for a segment: never scaled on a SYN (RFC 7323 §2.2).
    ///
    /// Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge stays
    /// where it was advertised until it can move by min(buffer / 2,
    /// Eff.snd.MSS); small openings are not offered.
    fn window_field(&self, syn: bool) -> u16 {
        if syn {
            return self.recv_buf.free().min(MAX_WINDOW) as u16;
        }
        let free = self.rcv_wnd();
        let advertised = self.rcv_adv.distance(self.rcv_nxt).max(0) as u32;
        let wnd = if free >= advertised + self.sws_threshold() as u32 {
            free
        } else {
            advertised.min(free)
        };
        (wnd >> self.rcv_wscale).min(MAX_WINDOW as u32) as u16
    }

    /// min(Fr · RCV.BUFF, Eff.snd.MSS) of RFC 9293 §3.8.6.2.2, Fr = 1/2.
    fn sws_threshold(&self) -> usize {
        (self.recv_buf.capacity() / 2).min(self.eff_mss()).max(1)
    }

    /// Eff.snd.MSS (RFC 9293 §3.7.1): the MSS less our usual options.
    fn eff_mss(&self) -> usize {
        self.payload_room(if self.ts_ok { 32 } else { 20 })
    }

    /// Whether the peer may have anything to tell us we would act on; used by
    /// the stack to decide whether a TIME-WAIT entry may be recycled.
    pub fn time_wait_reusable_by(&self, syn_seq: SeqNumber) -> bool {
        // RFC 9293 §3.10.7.4 (TIME-WAIT) / RFC 6191: a new SYN whose sequence
        // number is above the old connection's final one may reopen the tuple.
        self.state == State::TimeWait && syn_seq.distance(self.rcv_nxt) > 0
    }

    // ---------------------------------------------------------------- input

    /// SEGMENT ARRIVES (RFC 9293 §3.10.7.3 and §3.10.7.4). Returns a RST to
    /// send when the rules call for one.
    pub fn handle_segment(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> Option<TcpRepr> {
        let rst = match self.state {
            State::Closed | State::Listen => None,
            State::SynSent => self.handle_syn_sent(cfg, now, seg),
            _ => self.handle_synchronized(cfg, now, seg, payload),
        };
        self.update_persist(now);
        self.update_tlp(now);
        rst
    }

    fn handle_syn_sent(&mut self, cfg: &TcpConfig, now: Instant, seg: &TcpRepr) -> Option<TcpRepr> {
        let f = seg.flags;
        // First, check the ACK bit: it must acknowledge our SYN and nothing more.
        if f.ack() && (seg.ack.distance(self.iss) <= 0 || seg.ack.distance(self.snd_max) > 0) {
            if f.rst() {
                return None;
            }
            return Some(self.rst_with_seq(seg.ack));
        }
        // Second, RST: only with an acceptable ACK (RFC 5961 §3.2 / RFC 9293 §3.10.7.3).
        if f.rst() {
            if f.ack() {
                self.fail(TcpError::ConnectionRefused(self.remote));
            }
            return None;
        }
        if !f.syn() {
            return None;
        }
        self.on_peer_syn(cfg, seg);
        self.last_heard = now;
        if f.ack() {
            self.snd_wl2 = seg.ack;
            self.snd_una = seg.ack;
            self.rtt.on_ack(seg.ack, now);
            self.rtx_count = 0;
            self.rtx_deadline = None;
            self.set_state(State::Established);
            self.ack_pending = true;
        } else {
            // Simultaneous open: answer with SYN-ACK from SYN-RECEIVED.
            self.set_state(State::SynReceived);
            self.snd_nxt = self.iss;
        }
        None
    }

    fn handle_synchronized(
        &mut self,
        cfg: &TcpConfig,
        now: Instant,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> Option<TcpRepr> {
        let f = seg.flags;

        // A duplicate of the peer's SYN while we are in SYN-RECEIVED means our
        // SYN-ACK was lost: send it again now rather than at the next RTO.
        if self.state == State::SynReceived && f.syn() && !f.ack() && seg.seq == self.irs {
            self.snd_nxt = self.iss;
            return None;
        }

        // PAWS (RFC 7323 §5.3 R1): an older timestamp marks an old duplicate.
        // (TS.Recent is never invalidated by 24 days of idleness here: no
        // connection of ours idles that long without keep-alive.)
        let tsval = seg
            .options
            .timestamps
            .filter(|_| self.ts_ok)
            .map(|(v, _)| v);
        if let Some(v) = tsval {
            if !f.rst() && (v.wrapping_sub(self.ts_recent) as i32) < 0 {
                trace!(tsval = v, ts_recent = self.ts_recent, "PAWS: old timestamp");
                self.ack_pending = true;
                return None;
            }
        }

        // First: sequence number acceptability (RFC 9293 §3.10.7.4, four cases).
        let seg_len = payload.len() + usize::from(f.syn()) + usize::from(f.fin());
        let wnd = self.rcv_wnd();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            // Like Linux (tcp_sequence), a zero-length segment exactly at the
            // right edge is taken: a sender with a full window in flight puts
            // that sequence number on its pure ACKs.
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd + 1),
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        // With a zero window, still take ACKs and RSTs from a segment at RCV.NXT
        // (RFC 9293 §3.10.7.4: "special allowance ... valid ACKs, URGs, and RSTs").
        let control_only = !acceptable && wnd == 0 && seg.seq == self.rcv_nxt;
        if !acceptable && !control_only {
            if self.state == State::TimeWait && f.fin() && !f.rst() {
                // RFC 9293 §3.10.7.4: a retransmitted FIN in TIME-WAIT is
                // acknowledged and restarts the 2 MSL timeout.
                self.time_wait_deadline = Some(now + cfg.time_wait);
            }
            if !f.rst() {
                trace!(seq = %seg.seq, rcv_nxt = %self.rcv_nxt, wnd, "unacceptable segment");
                if self.sack_ok && !payload.is_empty() && seg.seq.distance(self.rcv_nxt) < 0 {
                    // RFC 2883: tell the sender this data arrived twice.
                    self.sack_gen.on_duplicate(SackBlock {
                        left: seg.seq,
                        right: seg.seq + payload.len(),
                    });
                    self.dsack_pending = true;
                }
                // A reply to an unacceptable pure ACK could answer another such
                // reply forever; limit those (as Linux's tcp_oow_rate_limited).
                if seg_len > 0 || now >= self.oow_ack_allowed {
                    self.ack_pending = true;
                    if seg_len == 0 {
                        self.oow_ack_allowed = now + OOW_ACK_INTERVAL;
                    }
                }
            }
            return None;
        }
        self.last_heard = now;
        self.keepalive_sent = 0;

        // RFC 7323 §4.3 (3): remember the timestamp to echo.
        if let Some(v) = tsval {
            if seg.seq.distance(self.last_ack_sent) <= 0
                && (v.wrapping_sub(self.ts_recent) as i32) >= 0
            {
                self.ts_recent = v;
            }
        }

        // Second: RST (RFC 5961 §3.2): reset only on an exact match, challenge
        // ACK for any other in-window RST.
        if f.rst() {
            if seg.seq != self.rcv_nxt {
                self.challenge_ack(now);
                return None;
            }
            match self.state {
                State::SynReceived if self.passive => {
                    // Back to LISTEN: the embryonic connection just disappears.
                    self.set_state(State::Closed);
                    self.clear_timers();
                }
                State::SynReceived => self.fail(TcpError::ConnectionRefused(self.remote)),
                State::Closing | State::LastAck | State::TimeWait => {
                    self.set_state(State::Closed);
                    self.clear_timers();
                }
                _ => self.fail(TcpError::ConnectionReset),
            }
            return None;
        }

        // Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2).
        if f.syn() {
            self.challenge_ack(now);
            return None;
        }

        // Fifth: the ACK field.
        if !f.ack() {
            return None;
        }
        if self.state == State::SynReceived {
            if seg.ack.distance(self.snd_una) > 0 && seg.ack.distance(self.snd_max) <= 0 {
                self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                self.set_state(State::Established);
            } else {
                return Some(self.rst_with_seq(seg.ack));
            }
        }
        if seg.ack.distance(self.snd_max) > 0 {
            // Acknowledges something not yet sent: ACK and drop.
            self.ack_pending = true;
            return None;
        }
        // RACK (RFC 8985 §6.2): every ACK updates what is known delivered,
        // then segments sent before a delivered one may be deemed lost.
        let mut rack_lost = 0;
        let mut delivered = 0;
        if self.sack_ok {
            delivered = self.rack.on_ack(seg.ack, seg.options.sack.as_slice(), now);
            let (lost, timer) = self.rack.detect_loss(now);
            self.rack_deadline = timer;
            rack_lost = lost;
        }
        let window_changed = (u32::from(seg.window) << self.snd_wscale) != self.snd_wnd;
        if seg.ack.distance(self.snd_una) > 0 {
            let tsecr = seg.options.timestamps.map(|(_, ecr)| ecr);
            self.on_new_ack(cfg, now, seg.ack, tsecr);
        } else if !self.sack_ok
            && seg.ack == self.snd_una
            && self.snd_max != self.snd_una
            && payload.is_empty()
            && !f.fin()
            && !window_changed
        {
            // RFC 5681 §2 "duplicate acknowledgment" (peers without SACK).
            self.on_dup_ack(now);
        }
        if rack_lost > 0 {
            self.enter_recovery(now);
        }
        if self.sack_ok {
            self.prr_on_ack(delivered);
            if delivered > 0 {
                // Restart the probe timeout from this sign of life.
                self.tlp_backoff = 0;
                if self.recovery.is_some() {
                    self.tlp_deadline = None;
                    self.tlp_outstanding = false;
                }
            }
        }

        if seg.ack.distance(self.snd_una) >= 0
            && (self.snd_wl1.distance(seg.seq) < 0
                || (self.snd_wl1 == seg.seq && self.snd_wl2.distance(seg.ack) <= 0))
        {
            let was_zero = self.snd_wnd == 0;
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            if was_zero && self.snd_wnd > 0 {
                self.notify = true;
            }
        }
        if self.state == State::Closed || self.state == State::TimeWait || control_only {
            return None;
        }

        // Seventh: segment text (RFC 9293 §3.10.7.4). Data beyond a gap is
        // kept in the receive buffer at its offset and reported by SACK.
        let accepts_text = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        let mut fin = f.fin();
        let mut data = payload;
        let mut seq = seg.seq;
        if seq.distance(self.rcv_nxt) < 0 {
            let skip = (self.rcv_nxt - seq) as usize;
            if skip > data.len() {
                // Everything including any FIN was seen before.
                data = &[];
                fin = false;
            } else {
                data = &data[skip..];
            }
            seq = self.rcv_nxt;
        }
        let offset = (seq - self.rcv_nxt) as usize;
        if offset > 0 {
            // RFC 5681 §4.2: an out-of-order segment is ACKed at once (one
            // without data or FIN is a pure ACK: answering it would echo).
            if data.is_empty() && !fin {
                return None;
            }
            if accepts_text {
                let stored = self.recv_buf.write_at(offset, data);
                if stored > 0 && self.assembler.add(offset, stored).is_ok() {
                    if let Some((start, len)) = self.assembler.range_containing(offset) {
                        self.sack_gen.on_out_of_order(SackBlock {
                            left: self.rcv_nxt + start,
                            right: self.rcv_nxt + (start + len),
                        });
                    }
                }
                if fin && stored == data.len() {
                    self.ooo_fin = Some(seq + data.len());
                }
            }
            self.ack_pending = true;
            return None;
        }
        if !data.is_empty() || fin {
            let mut filled_gap = false;
            if accepts_text && !data.is_empty() {
                let n = self.recv_buf.write(data);
                if n < data.len() {
                    fin = false;
                }
                self.rcv_nxt += n;
                self.assembler.advance(n);
                let more = self.assembler.take_front();
                if more > 0 {
                    self.recv_buf.commit(more);
                    self.rcv_nxt += more;
                    filled_gap = true;
                }
                if self.ooo_fin == Some(self.rcv_nxt) {
                    fin = true;
                }
                if n + more > 0 {
                    self.notify = true;
                }
            }
            // Delayed ACK (RFC 5681 §4.2, RFC 9293 §3.8.6.3): at least every
            // second segment, at once when a gap fills or data still waits
            // behind one, otherwise within `ack_delay`.
            // A coalesced (GRO) super-frame counts as the full-sized segments
            // it carries, so it is acknowledged at once, as Linux does.
            self.segs_unacked += (data.len() / self.eff_mss().max(1)).max(1) as u32;
            if filled_gap || fin || self.segs_unacked >= 2 || !self.assembler.is_empty() {
                self.ack_pending = true;
            } else if self.delack_deadline.is_none() {
                self.delack_deadline = Some(now + self.ack_delay);
            }
        }

        // Eighth: FIN.
        if fin && !self.fin_received {
            self.fin_received = true;
            self.ooo_fin = None;
            self.rcv_nxt += 1u32;
            self.ack_pending = true;
            self.notify = true;
            match self.state {
                State::SynReceived | State::Established => self.set_state(State::CloseWait),
                State::FinWait1 => {
                    if self.our_fin_acked() {
                        self.enter_time_wait(cfg, now);
                    } else {
                        self.set_state(State::Closing);
                    }
                }
                State::FinWait2 => self.enter_time_wait(cfg, now),
                _ => {}
            }
        }
        None
    }

    /// RFC 5961 §7: challenge ACKs are rate-limited, so a blind attacker
    /// cannot turn forged RSTs or SYNs into an ACK flood.
    fn challenge_ack(&mut self, now: Instant) {
        if now >= self.challenge_window + Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < CHALLENGE_ACKS_PER_SECOND {
            self.challenge_count += 1;
            self.ack_pending = true;
        }
    }

    /// A duplicate ACK from a peer without SACK: the third starts fast
    /// retransmit and NewReno recovery (RFC 5681 §3.2, RFC 6582).
    fn on_dup_ack(&mut self, now: Instant) {
        self.dup_acks = self.dup_acks.saturating_add(1);
        if let Some(r) = self.recovery.as_mut() {
            // RFC 5681 §3.2 step 4: each further duplicate inflates cwnd.
            r.inflation += self.send_mss;
            return;
        }
        if self.dup_acks >= 3 {
            self.enter_recovery(now);
        }
    }

    /// Loss detected: one congestion response per window of data.
    fn enter_recovery(&mut self, now: Instant) {
        if self.recovery.is_some() {
            return;
        }
        // RFC 6582 §3.2 step 2, RFC 6675 §5.1: no second response for the
        // window that caused the last one (or was in flight at an RTO).
        let beyond = self.snd_una.distance(self.recover);
        let allowed = if self.sack_ok {
            beyond >= 0
        } else {
            beyond > 0
        };
        if !allowed {
            return;
        }
        let flight = (self.snd_max - self.snd_una) as usize;
        trace!(snd_una = %self.snd_una, flight, "loss recovery");
        self.cc.on_congestion_event(now, flight);
        self.recover = self.snd_max;
        self.recovery = Some(Recovery {
            point: self.snd_max,
            inflation: if self.sack_ok { 0 } else { 3 * self.send_mss },
            recover_fs: flight,
            prr_delivered: 0,
            prr_out: 0,
            // The fast retransmit goes out at once, whatever found the loss
            // (an ACK or the reordering timer): RFC 6675 §5 (4.2).
            sndcnt: self.send_mss,
        });
        self.tlp_deadline = None;
        // Without SACK, the segment at SND.UNA is the one presumed lost.
        self.rtx_front = !self.sack_ok;
    }

    /// SND.UNA < SEG.ACK =< SND.MAX: new data (or our SYN/FIN) acknowledged.
    fn on_new_ack(&mut self, cfg: &TcpConfig, now: Instant, ack: SeqNumber, tsecr: Option<u32>) {
        let acked = (ack - self.snd_una) as usize;
        let flight_before = (self.snd_max - self.snd_una) as usize;

        let data_acked = ack
            .distance(self.snd_data_start)
            .clamp(0, self.send_buf.len() as i32) as usize;
        self.send_buf.consume(data_acked);
        self.snd_data_start += data_acked;
        self.snd_una = ack;
        if self.snd_nxt.distance(ack) < 0 {
            self.snd_nxt = ack;
        }
        // RTTM (RFC 7323 §4): the echoed timestamp dates the segment that
        // caused this ACK, retransmission or not.
        match tsecr.filter(|&e| self.ts_ok && e != 0) {
            Some(ecr) => {
                if ack.distance(self.rtt_sample_after) >= 0 {
                    let ms = self.ts_now(now).wrapping_sub(ecr);
                    if ms < 60_000 {
                        self.rtt
                            .on_timestamp_sample(Duration::from_millis(u64::from(ms)));
                    }
                    self.rtt_sample_after = self.snd_max;
                }
            }
            None => self.rtt.on_ack(ack, now),
        }
        // Forward progress ends the back-off even without a fresh sample:
        // after a timeout everything in flight is a retransmission, so Karn's
        // rule alone would keep the doubled RTO for the rest of the transfer.
        self.rtt.reset_backoff();
        self.rtx_count = 0;
        self.rtx_deadline = if self.snd_una == self.snd_max {
            None
        } else {
            Some(now + self.rtt.rto())
        };
        self.unacked_since = (self.snd_una != self.snd_max).then_some(now);
        self.dup_acks = 0;
        self.tlp_outstanding = false;
        self.tlp_deadline = None;
        self.tlp_backoff = 0;
        match self.recovery.as_mut() {
            Some(r) if ack.distance(r.point) >= 0 => {
                // Full acknowledgement: recovery ends (RFC 6582 §3.2 step 3).
                self.recovery = None;
                self.cc.on_recovery_exit(now);
            }
            // With SACK, RACK decides what else is lost.
            Some(_) if self.sack_ok => {}
            Some(r) => {
                // Partial acknowledgement (RFC 6582 §3.2 step 5): the next hole
                // is lost too. Deflate by what was acked, add back one SMSS.
                r.inflation = r.inflation.saturating_sub(acked) + self.send_mss;
                self.rtx_front = true;
            }
            None => self.cc.on_ack(now, acked, flight_before, self.rtt.srtt()),
        }
        if data_acked > 0 {
            self.notify = true;
        }
        if self.our_fin_acked() {
            match self.state {
                State::FinWait1 => self.set_state(State::FinWait2),
                State::Closing => self.enter_time_wait(cfg, now),
                State::LastAck => {
                    self.set_state(State::Closed);
                    self.clear_timers();
                }
                _ => {}
            }
        }
    }

    fn rst_with_seq(&self, seq: SeqNumber) -> TcpRepr {
        TcpRepr::rst(self.local.port(), self.remote.port(), seq)
    }

    // --------------------------------------------------------------- timers

    /// Earliest time the connection needs `on_timer`.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        // A chain of branch-free minimums over "never" = u64::MAX: this runs
        // after every segment in and out.
        let at = |t: Option<Instant>| t.map_or(u64::MAX, Instant::total_micros);
        let min = at(self.rtx_deadline)
            .min(at(self.persist_deadline))
            .min(at(self.time_wait_deadline))
            .min(at(self.delack_deadline))
            .min(at(self.rack_deadline))
            .min(at(self.tlp_deadline))
            .min(at(self.keepalive_at()))
            .min(at(self.user_timeout_at()));
        (min != u64::MAX).then_some(Instant::from_micros(min))
    }

    /// Next keep-alive probe (RFC 1122 §4.2.3.6): only on an idle connection.
    fn keepalive_at(&self) -> Option<Instant> {
        let idle = self.keepalive?;
        let idle_state = matches!(self.state, State::Established | State::CloseWait)
            && self.snd_una == self.snd_max
            && self.send_buf.is_empty();
        idle_state.then(|| self.last_heard + idle + self.keepalive_interval * self.keepalive_sent)
    }

    fn user_timeout_at(&self) -> Option<Instant> {
        Some(self.unacked_since? + self.user_timeout?)
    }

    pub fn on_timer(&mut self, cfg: &TcpConfig, now: Instant) {
        if self.time_wait_deadline.is_some_and(|t| now >= t) {
            self.time_wait_deadline = None;
            self.set_state(State::Closed);
            return;
        }
        if self.user_timeout_at().is_some_and(|t| now >= t) {
            self.fail(TcpError::TimedOut {
                retries: self.rtx_count,
            });
            return;
        }
        if self.delack_deadline.is_some_and(|t| now >= t) {
            self.delack_deadline = None;
            self.ack_pending = true;
        }
        if self.rack_deadline.is_some_and(|t| now >= t) {
            // RFC 8985 §6.3 reordering timer.
            let (lost, timer) = self.rack.detect_loss(now);
            self.rack_deadline = timer;
            if lost > 0 {
                self.enter_recovery(now);
            }
        }
        if self.tlp_deadline.is_some_and(|t| now >= t) {
            self.tlp_deadline = None;
            self.tlp_due = true;
            self.tlp_backoff = self.tlp_backoff.saturating_add(1);
        }
        if self.keepalive_at().is_some_and(|t| now >= t) {
            if self.keepalive_sent >= self.keepalive_probes {
                self.fail(TcpError::TimedOut {
                    retries: self.keepalive_sent,
                });
                return;
            }
            self.keepalive_sent += 1;
            self.probe_due = true;
        }

        if self.rtx_deadline.is_some_and(|t| now >= t) {
            self.rtx_count += 1;
            let limit = match self.state {
                State::SynSent | State::SynReceived => cfg.syn_retries,
                _ => cfg.data_retries,
            };
            if self.rtx_count > limit {
                self.fail(TcpError::TimedOut { retries: limit });
                return;
            }
            // RFC 6298 §5.4-5.6: retransmit the earliest unacknowledged segment,
            // back off, restart the timer. Everything after snd_una is resent
            // (go-back-N); selective retransmission needs SACK (a later feature).
            self.rtt.on_retransmit();
            // RFC 5681 §3.1 eq. 4 / RFC 6675 §5.1: back to slow start from
            // one segment, forget SACK state, no recovery for this window.
            let flight = (self.snd_max - self.snd_una) as usize;
            if self.state.is_synchronized() && flight > 0 {
                self.cc.on_rto(now, flight);
            }
            self.rack.clear();
            self.rack_deadline = None;
            self.tlp_deadline = None;
            self.tlp_due = false;
            self.tlp_outstanding = false;
            self.recovery = None;
            self.rtx_front = false;
            self.dup_acks = 0;
            self.recover = self.snd_max;
            self.snd_nxt = self.snd_una;
            self.rtx_deadline = Some(now + self.rtt.rto());
            trace!(rto = ?self.rtt.rto(), count = self.rtx_count, "retransmission timeout");
        }
        if self.persist_deadline.is_some_and(|t| now >= t) {
            self.persist_deadline = None;
            self.probe_due = true;
            self.persist_backoff = self.persist_backoff.saturating_add(1);
        }
    }

    /// Persist timer (RFC 9293 §3.8.6.1): armed while the peer's window is zero,
    /// data waits and nothing is in flight to elicit a window update.
    fn update_persist(&mut self, now: Instant) {
        // Also the SWS override timer (RFC 9293 §3.8.6.2.1): data held back
        // because the window is smaller than a segment, with nothing in flight.
        let unsent = self.unsent_len();
        let stalled = self.state.is_synchronized()
            && unsent > 0
            && self.snd_una == self.snd_max
            && (self.snd_wnd as usize) < unsent.min(self.send_mss);
        if !stalled {
            self.persist_deadline = None;
            self.persist_backoff = 0;
            self.probe_due = false;
        } else if self.persist_deadline.is_none() && !self.probe_due {
            let backoff = self.rtt.rto() * (1u32 << self.persist_backoff.min(10));
            self.persist_deadline = Some(now + backoff.min(Duration::from_secs(60)));
        }
    }

    fn unsent_len(&self) -> usize {
        let sent = self.snd_nxt.distance(self.snd_data_start).max(0) as usize;
        self.send_buf.len().saturating_sub(sent)
    }

    // --------------------------------------------------------------- output

    /// Writes the next segment to send (TCP header and payload, checksum
    /// filled) into `out`, which has room for one IP payload. Returns its length.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.poll_transmit_segmented(now, out, 1)
            .map(|(len, _)| len)
    }

    /// Like [`Tcb::poll_transmit`], but new data may leave as one super-frame
    /// of up to `max_segs` segments for a device with TCP segmentation
    /// offload. Returns `(length, segment_payload)`: `segment_payload` is 0
    /// for an ordinary segment; otherwise the payload is several times that,
    /// the device is to cut it there, and the checksum field holds only the
    /// pseudo-header sum (Linux CHECKSUM_PARTIAL), which the device finishes.
    ///
    /// Each wire segment of a super-frame gets its own RACK record, so loss
    /// detection and retransmission work on segments exactly as without
    /// offload; retransmissions, probes and everything sent in recovery stay
    /// single segments.
    pub fn poll_transmit_segmented(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_segs: usize,
    ) -> Option<(usize, usize)> {
        let res = self.next_segment(now, out, max_segs.max(1));
        self.update_persist(now);
        self.update_tlp(now);
        res
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) while data is outstanding;
    /// never later than the retransmission timer.
    ///
    /// Unlike RFC 8985 §7.2 (and Linux), the probe is armed in recovery too,
    /// and an unanswered probe is followed by more, each after twice the
    /// wait of the one before, until the RTO. With a small window, a flight
    /// can go silent: the data (or a retransmission) arrives, its ACK is
    /// lost, and so is the answer to the one probe. Without another probe
    /// that costs a full RTO (200 ms at least) where the path's RTT may be
    /// 50 µs: over TUN with segmentation offload and 5 % loss each way, 22
    /// such RTOs took 4.4 s of a 5.9 s download of 100 MB.
    fn update_tlp(&mut self, now: Instant) {
        let eligible =
            self.sack_ok && self.may_send_data() && self.snd_una != self.snd_max && !self.tlp_due;
        if !eligible {
            self.tlp_deadline = None;
            return;
        }
        if self.tlp_deadline.is_none() {
            if let Some(pto) = self.rack.pto(WORST_CASE_DELACK) {
                let at = now + pto * (1u32 << self.tlp_backoff.min(16));
                self.tlp_deadline = Some(self.rtx_deadline.map_or(at, |r| at.min(r)));
            }
        }
    }

    fn next_segment(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_segs: usize,
    ) -> Option<(usize, usize)> {
        let mut repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: self.window_field(false),
            urgent: 0,
            options: TcpOptions::default(),
        };
        if self.ts_ok {
            repr.options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        let syn_due =
            matches!(self.state, State::SynSent | State::SynReceived) && self.snd_nxt == self.iss;
        if syn_due {
            repr.flags = if self.state == State::SynSent {
                Flags::SYN
            } else {
                Flags::SYN | Flags::ACK
            };
            repr.options.mss = Some(self.our_mss);
            repr.window = self.window_field(true);
            if self.wscale_ok {
                repr.options.window_scale = Some(self.rcv_wscale);
            }
            repr.options.sack_permitted = self.sack_ok;
            if self.ts_ok {
                let ecr = if self.state == State::SynSent {
                    0
                } else {
                    self.ts_recent
                };
                repr.options.timestamps = Some((self.ts_now(now), ecr));
            }
            if self.state == State::SynSent {
                repr.ack = SeqNumber(0);
            }
            let len = self.emit(repr, 0, out)?;
            self.advance_snd_nxt(now, 1);
            return Some((len, 0));
        }
        if !self.state.is_synchronized() {
            return None;
        }

        let may_send_data = self.may_send_data();
        let sent = self.snd_nxt.distance(self.snd_data_start).max(0) as usize;
        let unsent = self.send_buf.len().saturating_sub(sent);
        let wnd_end = self.snd_una + self.snd_wnd;
        let usable_wnd = wnd_end.distance(self.snd_nxt).max(0) as usize;
        // Room for SACK blocks when we may report some (RFC 2018 §3).
        let sack_room = if self.sack_ok && (!self.assembler.is_empty() || self.dsack_pending) {
            4 + 8 * self.max_sack_blocks()
        } else {
            0
        };
        let header_len = repr.header_len() + sack_room;
        let seg_room = self.payload_room(header_len);
        let max_payload = seg_room.min(out.len().saturating_sub(header_len));

        // Loss recovery chooses retransmissions first (RFC 6675 §5, RFC 6582).
        if may_send_data {
            if let Some((seq, len)) = self.pick_retransmission(max_payload) {
                return self.emit_data(now, repr, seq, len, Tx::Retransmit, out);
            }
            if self.tlp_due {
                // Tail loss probe (RFC 8985 §7): the peer's answer (SACK)
                // lets RACK find what was lost at the tail.
                self.tlp_due = false;
                self.tlp_outstanding = true;
                if self.recovery.is_some() {
                    // In recovery the open question is SND.UNA's segment: its
                    // duplicate draws an ACK that tells the whole state.
                    if let Some((start, end)) = self.rack.first_unsacked() {
                        let len = ((end - start) as usize).min(max_payload);
                        return self.emit_data(now, repr, start, len, Tx::Retransmit, out);
                    }
                }
                // RFC 8985 §7.3 prefers new data; we repeat the last segment
                // instead: a receiver may delay its ACK for new in-order data
                // (Linux: up to 200 ms, as long as our RTO), but answers a
                // duplicate at once.
                if let Some((start, end)) = self.rack.last() {
                    let len = ((end - start) as usize).min(max_payload);
                    return self.emit_data(now, repr, start, len, Tx::Retransmit, out);
                }
            }
        }

        // New data, within the peer's window and the congestion window. With
        // segmentation offload, several full segments may go as one frame
        // (never in recovery, where PRR meters single segments).
        let frame_room = if max_segs > 1 && self.recovery.is_none() && !self.probe_due {
            (seg_room * max_segs).min(out.len().saturating_sub(header_len))
        } else {
            max_payload
        };
        let mut n = if may_send_data {
            unsent.min(usable_wnd).min(self.cwnd_room()).min(frame_room)
        } else {
            0
        };
        if n > max_payload {
            // A short last segment is held back under the same rules as a
            // short segment on its own (below), judged as if the full ones
            // before it were already in flight: with Nagle, only when it
            // empties the queue and Nagle is off.
            let tail = n % seg_room;
            if tail != 0 && !(n == unsent && self.nodelay) {
                n -= tail;
            }
        }
        let segment_payload = if n > seg_room { seg_room } else { 0 };
        // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) with Nagle (§3.7.4):
        // a short segment goes out only if it empties the queue while nothing
        // is unacknowledged (or Nagle is off), if it is half the largest
        // window seen, or when the override timer fired.
        if n > 0 && n < max_payload {
            let all_queued = n == unsent;
            let idle = self.snd_nxt == self.snd_una;
            let half_window = n >= (self.max_snd_wnd / 2) as usize && self.max_snd_wnd > 0;
            if !((all_queued && (self.nodelay || idle)) || half_window || self.probe_due) {
                n = 0;
            }
        }
        let fin = self.fin_queued
            && may_send_data
            && sent + n == self.send_buf.len()
            && self.snd_nxt + n == self.fin_seq();
        if n > 0 || fin {
            self.probe_due = false;
            let seq = self.snd_nxt;
            return self.emit_data(
                now,
                repr,
                seq,
                n + usize::from(fin),
                Tx::New { segment_payload },
                out,
            );
        }
        if self.probe_due {
            // Zero-window or keep-alive probe: an old sequence number makes
            // the peer answer with its current window and ACK.
            self.probe_due = false;
            repr.seq = self.snd_una + u32::MAX;
            return self.emit(repr, 0, out).map(|len| (len, 0));
        }
        if self.ack_pending {
            // After a timeout SND.NXT is rewound for go-back-N; a pure ACK
            // must still carry the first never-sent number, or the peer finds
            // it below RCV.NXT, rejects it and ignores its ACK (as BSD does,
            // tcp_output uses snd_max for data-less segments).
            repr.seq = self.snd_max;
            return self.emit(repr, 0, out).map(|len| (len, 0));
        }
        None
    }

    fn may_send_data(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    fn max_sack_blocks(&self) -> usize {
        // 40 option bytes: 3 blocks fit beside timestamps, 4 without.
        if self.ts_ok {
            3
        } else {
            4
        }
    }

    /// RFC 6937 §3: on each ACK in recovery, how much may be sent: in
    /// proportion to what was delivered while pipe exceeds ssthresh, then
    /// slow-start reduction bound (PRR-SSRB) back up to ssthresh. The first
    /// ACK of a recovery always allows the fast retransmit (RFC 6675 §5 (4.2)).
    fn prr_on_ack(&mut self, delivered: usize) {
        let pipe = self.pipe();
        let ssthresh = self.cc.ssthresh();
        let mss = self.send_mss;
        let Some(r) = self.recovery.as_mut() else {
            return;
        };
        let first = r.prr_delivered == 0 && r.prr_out == 0;
        r.prr_delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            let fs = r.recover_fs.max(1);
            (r.prr_delivered * ssthresh)
                .div_ceil(fs)
                .saturating_sub(r.prr_out)
        } else {
            let limit = r.prr_delivered.saturating_sub(r.prr_out).max(delivered) + mss;
            (ssthresh - pipe).min(limit)
        };
        r.sndcnt = if first { sndcnt.max(mss) } else { sndcnt };
    }

    /// Bytes in the network: RACK's count when it tracks every segment.
    fn pipe(&self) -> usize {
        self.rack
            .in_flight()
            .unwrap_or((self.snd_nxt - self.snd_una) as usize)
    }

    /// What the congestion controller lets us add to the network now.
    fn cwnd_room(&self) -> usize {
        let cwnd = self.cc.cwnd();
        if self.sack_ok {
            return match self.recovery {
                Some(r) => r.sndcnt,
                None => cwnd.saturating_sub(self.pipe()),
            };
        }
        match self.recovery {
            // RFC 5681 §3.2 steps 3-4: the inflated window.
            Some(r) => (cwnd + r.inflation).saturating_sub((self.snd_max - self.snd_una) as usize),
            // RFC 3042 limited transmit: one new segment per early duplicate ACK.
            None => (cwnd + self.dup_acks.min(2) as usize * self.send_mss)
                .saturating_sub((self.snd_nxt - self.snd_una) as usize),
        }
    }

    /// The retransmission loss recovery wants next, as (start, sequence length).
    fn pick_retransmission(&mut self, max_payload: usize) -> Option<(SeqNumber, usize)> {
        if self.sack_ok {
            // RACK: segments deemed lost, lowest first, as cwnd allows.
            let (start, end) = self.rack.first_lost()?;
            let len = ((end - start) as usize).min(max_payload);
            let room = match self.recovery {
                Some(r) => r.sndcnt,
                None => self.cc.cwnd().saturating_sub(self.pipe()),
            };
            return (room >= len.min(self.send_mss)).then_some((start, len));
        }
        self.recovery?;
        if !self.rtx_front {
            return None;
        }
        // Fast retransmit / NewReno partial ACK: the segment at SND.UNA.
        self.rtx_front = false;
        let len = ((self.snd_max - self.snd_una) as usize).min(max_payload);
        (len > 0).then_some((self.snd_una, len))
    }

    fn sack_option(&mut self) -> SackBlocks {
        let mut tmp = [SackBlock::default(); crate::assembler::MAX_RANGES];
        let current = self.assembler.sack_blocks(self.rcv_nxt, &mut tmp);
        let max = self.max_sack_blocks();
        self.sack_gen.blocks(self.rcv_nxt, current, max)
    }

    /// Sends `seq_len` units of sequence space from `seq`: buffered data, and
    /// our FIN if the range reaches it. Retransmissions leave SND.NXT alone.
    fn emit_data(
        &mut self,
        now: Instant,
        mut repr: TcpRepr,
        seq: SeqNumber,
        seq_len: usize,
        kind: Tx,
        out: &mut [u8],
    ) -> Option<(usize, usize)> {
        let (retransmission, segment_payload) = match kind {
            Tx::Retransmit => (true, 0),
            Tx::New { segment_payload } => (false, segment_payload),
        };
        let off = seq.distance(self.snd_data_start).max(0) as usize;
        let data_len = seq_len.min(self.send_buf.len().saturating_sub(off));
        let fin = self.fin_queued && seq_len > data_len && seq + data_len == self.fin_seq();
        repr.seq = seq;
        if fin {
            repr.flags |= Flags::FIN;
        }
        if data_len > 0 && off + data_len == self.send_buf.len() {
            repr.flags |= Flags::PSH;
        }
        let len = self.emit(repr, data_len, out)?;
        let segment_payload = if data_len > segment_payload {
            segment_payload
        } else {
            0
        };
        if data_len > 0 {
            self.send_buf.peek(off, &mut out[len - data_len..len]);
            let mut pkt = TcpPacket::new_unchecked(&mut out[..len]);
            if segment_payload > 0 {
                pkt.fill_partial_checksum(*self.local.ip(), *self.remote.ip());
            } else {
                pkt.fill_checksum(*self.local.ip(), *self.remote.ip());
            }
        }
        let used = data_len + usize::from(fin);
        if let Some(r) = self.recovery.as_mut() {
            r.prr_out += used;
            r.sndcnt = r.sndcnt.saturating_sub(used);
        }
        if self.sack_ok {
            if retransmission {
                self.rack.on_retransmit(seq, seq + used, now);
            } else {
                let fresh = seq.distance(self.snd_max) >= 0;
                if segment_payload > 0 {
                    // One record per wire segment the device will cut.
                    let mut at = 0;
                    while at < used {
                        let end = (at + segment_payload).min(used);
                        // A FIN alone after the last full segment rides on it.
                        let end = if used - end == 1 && fin { used } else { end };
                        self.rack.on_send(seq + at, seq + end, now, !fresh);
                        at = end;
                    }
                } else {
                    self.rack.on_send(seq, seq + used, now, !fresh);
                }
                self.tlp_deadline = None;
            }
        }
        if retransmission {
            trace!(%seq, len = used, "retransmit");
            self.rtt.discard_sample();
            if self.rtx_deadline.is_none() {
                self.rtx_deadline = Some(now + self.rtt.rto());
            }
        } else {
            self.advance_snd_nxt(now, used);
        }
        Some((len, segment_payload))
    }

    /// Emits the header of `repr` followed by room for `payload_len` bytes and
    /// records that the ACK and window went out. For a segment without payload
    /// the checksum is filled here; otherwise after the payload is copied.
    fn emit(&mut self, mut repr: TcpRepr, payload_len: usize, out: &mut [u8]) -> Option<usize> {
        let report_sack = self.sack_ok
            && repr.flags.ack()
            && !repr.flags.syn()
            && (!self.assembler.is_empty() || self.dsack_pending);
        if report_sack {
            repr.options.sack = self.sack_option();
            self.dsack_pending = false;
        }
        let len = repr.header_len() + payload_len;
        if len > out.len() {
            return None;
        }
        let mut pkt = TcpPacket::new_unchecked(&mut out[..len]);
        repr.emit(&mut pkt);
        if payload_len == 0 {
            pkt.fill_checksum(*self.local.ip(), *self.remote.ip());
        }
        if repr.flags.ack() {
            self.ack_pending = false;
            self.delack_deadline = None;
            self.segs_unacked = 0;
            self.last_ack_sent = repr.ack;
            let shift = if repr.flags.syn() { 0 } else { self.rcv_wscale };
            self.rcv_adv = self
                .rcv_adv
                .max(self.rcv_nxt + (u32::from(repr.window) << shift));
        }
        trace!(flags = ?repr.flags, seq = %repr.seq, ack = %repr.ack, wnd = repr.window, len = payload_len, "tx");
        Some(len)
    }

    fn advance_snd_nxt(&mut self, now: Instant, seq_len: usize) {
        if seq_len == 0 {
            return;
        }
        let fresh = self.snd_nxt.distance(self.snd_max) >= 0;
        // The user timeout is about data: a SYN waits under syn_retries.
        if self.unacked_since.is_none() && self.state.is_synchronized() {
            self.unacked_since = Some(now);
        }
        self.snd_nxt += seq_len;
        if self.snd_nxt.distance(self.snd_max) > 0 {
            self.snd_max = self.snd_nxt;
        }
        if fresh {
            self.rtt.on_send(self.snd_nxt, now);
        }
        if self.rtx_deadline.is_none() {
            self.rtx_deadline = Some(now + self.rtt.rto());
        }
    }

    // ----------------------------------------------------------- user calls

    /// RECEIVE (RFC 9293 §3.10.3). Ok(0) means end of stream.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, TcpError> {
        let mut total = 0;
        // The queued bytes may wrap around the ring: take both runs.
        for _ in 0..2 {
            match self.recv_with(|d| {
                let n = d.len().min(out.len() - total);
                out[total..total + n].copy_from_slice(&d[..n]);
                n
            }) {
                Ok(n) if n > 0 => total += n,
                r if total == 0 => return r,
                _ => break,
            }
        }
        Ok(total)
    }

    /// Zero-copy RECEIVE: `f` sees the next contiguous received bytes and
    /// returns how many it consumed. Ok(0) with [`Tcb::at_eof`] is end of stream.
    pub fn recv_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> Result<usize, TcpError> {
        if !self.recv_buf.is_empty() {
            let n = self.recv_buf.read_with(f);
            self.maybe_window_update();
            return Ok(n);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(TcpError::NotConnected),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Receiver side of SWS avoidance (RFC 9293 §3.8.6.2.2): announce a larger
    /// window only once it has grown by min(buffer / 2, MSS).
    fn maybe_window_update(&mut self) {
        let right = self.rcv_nxt + self.rcv_wnd();
        let growth = right.distance(self.rcv_adv).max(0) as usize;
        if growth >= self.sws_threshold() {
            self.ack_pending = true;
        }
    }

    /// SEND (RFC 9293 §3.10.2): queue as much of `data` as fits.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        self.send_with(|space| {
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    /// Zero-copy SEND: `f` writes straight into the send queue's free space and
    /// returns how much it wrote. May be called repeatedly (the space may wrap).
    pub fn send_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued {
            return Err(TcpError::SendAfterShutdown);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            _ => return Err(TcpError::NotConnected),
        }
        let n = self.send_buf.write_with(f);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// CLOSE of the sending direction (RFC 9293 §3.10.4): a FIN follows the
    /// queued data; receiving continues (half-close).
    pub fn shutdown(&mut self) {
        match self.state {
            State::SynSent => {
                self.set_state(State::Closed);
                self.clear_timers();
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            _ => {}
        }
    }

    /// ABORT (RFC 9293 §3.10.5): returns the RST to send, if the peer should hear of it.
    pub fn abort(&mut self) -> Option<TcpRepr> {
        let rst = match self.state {
            State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait => Some(TcpRepr {
                flags: Flags::RST | Flags::ACK,
                ack: self.rcv_nxt,
                ..self.rst_with_seq(self.snd_nxt)
            }),
            _ => None,
        };
        self.set_state(State::Closed);
        self.clear_timers();
        rst
    }
}

/// What [`Tcb::emit_data`] sends.
#[derive(Debug, Clone, Copy)]
enum Tx {
    /// Sequence space sent before; SND.NXT stays.
    Retransmit,
    /// New data; `segment_payload` > 0 makes it a super-frame to be cut
    /// into segments of that much payload.
    New { segment_payload: usize },
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Memory per connection is the TCB plus its two buffers plus RACK's
    /// records (one per segment in flight); the TCB itself must stay small.
    #[test]
    fn tcb_stays_compact() {
        let size = core::mem::size_of::<Tcb>();
        println!("size_of::<Tcb>() = {size} bytes");
        assert!(size <= 2048, "Tcb grew to {size} bytes");
    }
}

//! One connection's transmission control block and its state machine
//! (RFC 9293 §3.3.2 states, §3.10 event processing).
//!
//! A `Tcb` knows nothing of other connections, addresses' routing or packets'
//! IPv4 headers: the [`crate::Stack`] demultiplexes to it, asks it what to send
//! (`poll_transmit_gather`) and when to wake it (`poll_at`).

use core::net::SocketAddrV4;
use core::time::Duration;

use tracing::debug;
use ustack_ipv4::icmp::IcmpError;

use crate::assembler::{Assembler, SackGenerator};
use crate::buffer::RingBuffer;
use crate::cc::{self, AnyCc, CongestionControl};
use crate::error::TcpError;
use crate::rack::Rack;
use crate::rtt::RttEstimator;
use crate::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::{TcpOptions, TcpRepr};

mod config;
mod cookie;
mod icmp;
mod input;
mod memory;
mod output;
mod posted;
mod recovery;
mod timers;
mod user;

#[cfg(test)]
mod tests;

pub use config::{State, TcpConfig};
pub use icmp::MIN_PATH_MTU;
use posted::Posted;
pub use posted::{Filled, PostRefused, Refusal, MAX_POSTED};
use recovery::Recovery;
use timers::{TimerKind, Timers};

/// Largest window field (RFC 9293 §3.1).
const MAX_WINDOW: usize = u16::MAX as usize;

/// RFC 8985 §7.2 WCDelAckT: the peer's worst-case delayed-ACK time, added
/// to the probe timeout when a single segment is in flight.
const WORST_CASE_DELACK: Duration = Duration::from_millis(200);

/// RFC 5961 §7 limit on challenge ACKs, per connection.
const CHALLENGE_ACKS_PER_SECOND: u32 = 10;

/// Least time between ACKs answering out-of-window pure ACKs.
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// IPv4 and TCP headers without options: path MTU less these is the
/// largest MSS the path takes.
const HEADERS: usize = 40;

/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WSCALE: u8 = 14;

/// In-order bytes a receiver lets go unacknowledged within one batch of
/// received frames (see [`Tcb::stretch_ack_due`]): a little under a full
/// 64 KiB super-frame, so that one is acknowledged on its own, as Linux
/// acknowledges each GRO aggregate, and smaller ones two or so at a time.
const STRETCH_ACK: usize = 60 * 1024;

/// The smallest shift that lets a `buffer`-byte window fit the 16-bit field.
/// The window scale we offer (RFC 7323 §2.2): enough for the largest buffer
/// the connection may auto-tune to; `None` with window scaling off.
pub(crate) fn offered_wscale(cfg: &TcpConfig) -> Option<u8> {
    cfg.window_scaling
        .then(|| wscale_for(cfg.recv_buffer.max(cfg.recv_buffer_max)))
}

fn wscale_for(buffer: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WSCALE && (buffer >> shift) > MAX_WINDOW {
        shift += 1;
    }
    shift
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
    /// End of the last short data segment sent (Minshall's Nagle, below).
    snd_sml: SeqNumber,
    snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Sequence number of the first byte in `send_buf`.
    snd_data_start: SeqNumber,
    send_mss: usize,
    /// RFC 1191 path MTU: the interface MTU, lowered by ICMP.
    path_mtu: usize,
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
    /// Receive buffer size auto-tuning aims for (storage follows when data
    /// next arrives).
    rcv_target: u32,
    /// Dynamic right-sizing: the most the application read in one round
    /// trip, what it read since the round began, when the round ends (one
    /// RTT, as known when it began, after its start), and the receiver's
    /// RTT estimate in ms from timestamps (0: none yet).
    rcv_space: u32,
    rcv_copied: u32,
    rcv_space_due: Instant,
    rcv_rtt_ms: u32,
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
    ack_delay: Duration,
    /// ACKs still to send without delay (Linux's quick-ACK mode; see
    /// `Tcb::quick_ack_due`), and whether the connection answers what it
    /// receives at once, so ACKs ride on replies (Linux's ping-pong mode).
    quick_acks: u8,
    pingpong: bool,
    /// When in-order data last arrived.
    last_data_rcvd: Option<Instant>,
    /// Bytes of the segment being processed that [`Tcb::stage_payload`]
    /// already placed at the receive ring's end (not yet readable).
    staged: usize,
    /// The staged bytes went into [`Tcb::posted`], not the ring.
    staged_posted: bool,
    /// Receive buffers the application posted ([`Tcb::post_recv`]).
    posted: Posted,
    /// The device finishes TCP checksums in its copy of each packet
    /// (`DeviceCaps::finishes_checksums`): segments with data leave with
    /// only the pseudo-header sum ([`Tcb::set_device_checksums`]).
    device_checksums: bool,

    cc: AnyCc,
    /// RACK-TLP (RFC 8985), used when the peer sends SACKs.
    rack: Rack,
    /// When data last went out (RFC 5681 §4.1 restart after idle).
    last_data_sent: Option<Instant>,
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
    user_timeout: Option<Duration>,

    rtt: RttEstimator,
    rtx_count: u32,
    persist_backoff: u32,
    probe_due: bool,
    /// Every deadline of the connection.
    timers: Timers,
    error: Option<TcpError>,
    /// The last soft ICMP error (RFC 1122 §4.2.3.9), reported if the
    /// connection times out; forgotten when the peer acknowledges data.
    soft_error: Option<IcmpError>,
    /// Something the application can observe changed (data, space, state, error).
    notify: bool,
}

impl Tcb {
    pub(super) fn new(
        cfg: &TcpConfig,
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
            snd_sml: iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_data_start: iss + 1u32,
            send_mss: 536,
            path_mtu: usize::from(cfg.mss) + HEADERS,
            our_mss: cfg.mss,
            send_buf: RingBuffer::unallocated(cfg.send_buffer),
            fin_queued: false,
            snd_wscale: 0,
            rcv_wscale: offered_wscale(cfg).unwrap_or(0),
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
            recv_buf: RingBuffer::unallocated(cfg.recv_buffer),
            rcv_target: cfg.recv_buffer as u32,
            rcv_space: 0,
            rcv_copied: 0,
            rcv_space_due: Instant::ZERO,
            rcv_rtt_ms: 0,
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
            ack_delay: cfg.ack_delay,
            quick_acks: 0,
            pingpong: false,
            last_data_rcvd: None,
            staged: 0,
            staged_posted: false,
            posted: Posted::default(),
            device_checksums: false,
            cc: cc::new(cfg.congestion, 536),
            rack: Rack::new(),
            last_data_sent: None,
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
            user_timeout: cfg.user_timeout,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtx_count: 0,
            persist_backoff: 0,
            probe_due: false,
            timers: Timers::new(),
            error: None,
            soft_error: None,
            notify: false,
        }
    }

    /// Active OPEN (RFC 9293 §3.10.1): the SYN goes out on the next `poll_transmit_gather`.
    pub fn connect(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        ts_offset: u32,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, local, remote, iss, ts_offset, false);
        tcb.set_state(State::SynSent);
        tcb
    }

    /// A SYN arrived for a listener (RFC 9293 §3.10.7.2): the new TCB is in
    /// SYN-RECEIVED and the SYN-ACK goes out on the next `poll_transmit_gather`.
    pub fn accept_syn(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        ts_offset: u32,
        syn: &TcpRepr,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, local, remote, iss, ts_offset, true);
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
        self.recv_buf.len() + self.posted.filled()
    }
    /// True once the peer's FIN has been received and all data before it read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.recv_buf.is_empty() && !self.posted.has_data()
    }

    /// Bytes of ring storage this connection holds (both directions): 0
    /// while both queues are empty.
    pub fn buffer_bytes(&self) -> usize {
        self.send_buf.storage_bytes() + self.recv_buf.storage_bytes()
    }

    /// The receive buffer's current size: the most window it may offer.
    pub fn recv_buffer_size(&self) -> usize {
        self.recv_buf.capacity()
    }

    /// The send buffer's current size.
    pub fn send_buffer_size(&self) -> usize {
        self.send_buf.capacity()
    }

    /// Checks what must hold between any two events, for the fuzz targets
    /// (through `Tcp::check_invariants`): SND.UNA <= SND.NXT <= SND.MAX in
    /// sequence space, the rings within their capacity and within
    /// `cfg`'s buffer sizes, and, once synchronized, everything sent but
    /// unacknowledged still held in the send ring (plus SYN and FIN).
    pub fn check_invariants(&self, cfg: &TcpConfig) -> Result<(), String> {
        let (una, nxt, max) = (self.snd_una, self.snd_nxt, self.snd_max);
        if !(una <= nxt && nxt <= max) {
            return Err(format!(
                "sequence space: SND.UNA {una:?} SND.NXT {nxt:?} SND.MAX {max:?} in {:?}",
                self.state
            ));
        }
        let (send, recv) = (&self.send_buf, &self.recv_buf);
        let send_max = cfg.send_buffer.max(cfg.send_buffer_max);
        if send.len() > send.capacity() || send.capacity() > send_max {
            return Err(format!(
                "send ring holds {} of {} bytes (configured {send_max})",
                send.len(),
                send.capacity(),
            ));
        }
        let recv_max = cfg.recv_buffer.max(cfg.recv_buffer_max);
        if recv.len() > recv.capacity() || recv.capacity() > recv_max {
            return Err(format!(
                "receive ring holds {} of {} bytes (configured {recv_max})",
                recv.len(),
                recv.capacity(),
            ));
        }
        if send.has_storage() && send.storage_bytes() < send.capacity()
            || recv.has_storage() && recv.storage_bytes() < recv.capacity()
        {
            return Err("ring storage smaller than its limit".into());
        }
        let advertised = self.rcv_adv.distance(self.rcv_nxt).max(0) as usize;
        if self.state.is_synchronized()
            && self.recv_buf.capacity() > 0
            && recv.len() + advertised > recv.capacity()
        {
            return Err(format!(
                "window reneged: {advertised} advertised, {} of {} queued",
                recv.len(),
                recv.capacity()
            ));
        }
        if self.state.is_synchronized() {
            let in_flight = max - una;
            if in_flight as usize > send.len() + 2 {
                return Err(format!(
                    "{in_flight} bytes in flight but {} in the send ring in {:?}",
                    send.len(),
                    self.state
                ));
            }
        }
        Ok(())
    }

    /// Returns and clears the "application-visible change" flag.
    pub fn take_notify(&mut self) -> bool {
        core::mem::take(&mut self.notify)
    }

    pub(super) fn set_state(&mut self, next: State) {
        if self.state != next {
            debug!(from = ?self.state, to = ?next, "state");
            self.state = next;
            self.notify = true;
        }
    }

    pub(super) fn fail(&mut self, err: TcpError) {
        debug!(%err, "connection failed");
        self.error = Some(err);
        self.set_state(State::Closed);
        self.clear_timers();
    }

    pub(super) fn clear_timers(&mut self) {
        self.timers.clear_all();
    }

    pub(super) fn enter_time_wait(&mut self, cfg: &TcpConfig, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.clear(TimerKind::Retransmit);
        self.timers.clear(TimerKind::Persist);
        self.timers.set(TimerKind::TimeWait, now + cfg.time_wait);
    }

    /// The peer's SYN (or SYN-ACK) arrived: its ISN, options and window.
    pub(super) fn on_peer_syn(&mut self, cfg: &TcpConfig, syn: &TcpRepr) {
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
    pub(super) fn apply_syn_options(&mut self, cfg: &TcpConfig, opts: &TcpOptions) {
        // RFC 9293 §3.7.1: without an MSS option assume 536 (RFC 1122 §4.2.2.6).
        let peer = opts.mss.map_or(536, usize::from).max(64);
        // The path MTU may have been lowered while our SYN was out (RFC 1191).
        self.send_mss = peer.min(usize::from(cfg.mss)).min(self.path_mtu - HEADERS);
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
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Bytes of payload that fit in a segment with header `header_len`
    /// (RFC 9293 §3.7.1: options come out of the MSS).
    pub(super) fn payload_room(&self, header_len: usize) -> usize {
        (self.send_mss + 20).saturating_sub(header_len).max(1)
    }

    /// Sequence number our FIN occupies (meaningful once `fin_queued`).
    pub(super) fn fin_seq(&self) -> SeqNumber {
        self.snd_data_start + self.send_buf.len()
    }

    pub(super) fn our_fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.fin_seq() + 1u32
    }

    /// The receive window we would advertise now.
    pub(super) fn rcv_wnd(&self) -> u32 {
        self.recv_buf.free().min(MAX_WINDOW << self.rcv_wscale) as u32
    }

    /// The window field for a segment: never scaled on a SYN (RFC 7323 §2.2).
    ///
    /// Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge stays
    /// where it was advertised until it can move by min(buffer / 2,
    /// Eff.snd.MSS); small openings are not offered.
    pub(super) fn window_field(&self, syn: bool) -> u16 {
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
    pub(super) fn sws_threshold(&self) -> usize {
        (self.recv_buf.capacity() / 2).min(self.eff_mss()).max(1)
    }

    /// Eff.snd.MSS (RFC 9293 §3.7.1): the MSS less our usual options.
    pub(super) fn eff_mss(&self) -> usize {
        self.payload_room(if self.ts_ok { 32 } else { 20 })
    }

    /// Whether the peer may have anything to tell us we would act on; used by
    /// the stack to decide whether a TIME-WAIT entry may be recycled.
    pub fn time_wait_reusable_by(&self, syn_seq: SeqNumber) -> bool {
        // RFC 9293 §3.10.7.4 (TIME-WAIT) / RFC 6191: a new SYN whose sequence
        // number is above the old connection's final one may reopen the tuple.
        self.state == State::TimeWait && syn_seq.distance(self.rcv_nxt) > 0
    }

    /// An ACK is owed now and enough in-order data went unacknowledged
    /// that it should leave before the rest of a batch of received frames
    /// is read: [`STRETCH_ACK`] bytes, or a quarter of the receive
    /// window when that is less (never below two segments).
    ///
    /// A device with receive offloads hands over super-frames of many
    /// segments (RFC 5681 §4.2's "every second full-sized segment" is met
    /// by each one). Acknowledging every frame at once doubles the ACKs a
    /// kernel sender processes against Linux's own receiver, whose GRO
    /// acknowledges per 64 KB aggregate; acknowledging only at the end of a
    /// batch stalls the sender's clock.
    pub fn stretch_ack_due(&self) -> bool {
        if !self.ack_pending {
            return false;
        }
        let unacked = self.rcv_nxt.distance(self.last_ack_sent).max(0) as usize;
        let floor = 2 * usize::from(self.our_mss);
        unacked >= STRETCH_ACK.min(self.recv_buf.capacity() / 4).max(floor)
    }

    /// What a TIME-WAIT record keeps once this TCB is gone (RFC 9293
    /// §3.10.7.4): SND.NXT, RCV.NXT, (TS.Recent, our timestamp offset) when
    /// timestamps are in use, and the window field to repeat in its ACKs.
    pub fn time_wait_state(&self) -> (SeqNumber, SeqNumber, Option<(u32, u32)>, u16) {
        let ts = self.ts_ok.then_some((self.ts_recent, self.ts_offset));
        (self.snd_max, self.rcv_nxt, ts, self.window_field(false))
    }
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

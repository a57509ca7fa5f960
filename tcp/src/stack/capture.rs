//! Any-address capture: connections to destinations that are not ours.
//!
//! A TUN device that whole networks are routed into (a VPN, a transparent
//! proxy) sees SYNs to every address behind it. With capture on, the IP
//! layer hands such segments to TCP ([`Transport::takes_foreign_dst`]), and a
//! SYN to a (destination, port) that no ordinary listener has and that the
//! [`CaptureFilter`] takes becomes a [`CaptureRequest`] for the application.
//! Like gVisor's TCP forwarder, the handshake waits for the application's
//! answer: [`Tcp::capture_accept`] sends the SYN-ACK (the connection's local
//! address is the original destination, so every segment it sends carries
//! that source), [`Tcp::capture_refuse`] sends a RST. A proxy can thus
//! connect to the real destination first and refuse the client exactly when
//! the destination refused it. SYNs the filter does not take get a RST, as a
//! closed port does (counted in `tcp_no_listener`).
//!
//! Ordinary listeners answer only the interface's own address. ICMP errors
//! about captured connections are not applied (the IP layer hands TCP only
//! those quoting the interface's own address), so a captured connection
//! learns of a smaller path MTU only by retransmitting.
//!
//! [`Transport::takes_foreign_dst`]: ustack_ipv4::Transport::takes_foreign_dst

use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;
use std::collections::{HashMap, VecDeque};

use tracing::debug;
use ustack_ipv4::{IpSend, Ipv4Subnet};

use super::{conn_span, reset_for_closed_port, ConnId, Owner, Tcp, Tuple, MAX_PENDING_RST};
use crate::conn::Tcb;
use crate::error::TcpError;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// Which destinations a capture takes: addresses inside any of its subnets
/// (every address when none is given) and ports inside any of its ranges
/// (every port when none is given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    subnets: Vec<Ipv4Subnet>,
    ports: Vec<RangeInclusive<u16>>,
}

impl CaptureFilter {
    /// Takes every address and every port.
    pub fn any() -> CaptureFilter {
        CaptureFilter::default()
    }

    /// Also takes the addresses of `net` (the first call restricts the
    /// filter from every address to `net`).
    pub fn subnet(mut self, net: Ipv4Subnet) -> CaptureFilter {
        self.subnets.push(net);
        self
    }

    /// Also takes the ports of `ports` (the first call restricts the filter
    /// from every port to `ports`).
    pub fn ports(mut self, ports: RangeInclusive<u16>) -> CaptureFilter {
        self.ports.push(ports);
        self
    }

    /// Whether connections to `addr` may be taken (on some port).
    pub fn takes_addr(&self, addr: Ipv4Addr) -> bool {
        self.subnets.is_empty() || self.subnets.iter().any(|n| n.contains(addr))
    }

    /// Whether a connection to `dst` is taken.
    pub fn takes(&self, dst: SocketAddrV4) -> bool {
        self.takes_addr(*dst.ip())
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(&dst.port())))
    }
}

/// A SYN the capture took, waiting for the application's answer:
/// [`Tcp::capture_accept`] or [`Tcp::capture_refuse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureRequest {
    /// The original destination: the connection's local address once accepted.
    pub local: SocketAddrV4,
    /// The peer that sent the SYN.
    pub remote: SocketAddrV4,
}

/// The capture's state inside [`Tcp`].
#[derive(Debug)]
pub(super) struct Capture {
    filter: CaptureFilter,
    backlog: usize,
    /// SYNs not yet answered; `true` once handed to the application.
    /// At most `backlog`: further SYNs are dropped (the peer retries).
    pending: HashMap<Tuple, (TcpRepr, bool)>,
    /// Requests in arrival order; stale ones (answered, or cancelled by the
    /// peer's RST) are skipped and pruned, so it stays within `backlog`.
    queue: VecDeque<Tuple>,
}

impl Tcp {
    /// Turns any-address capture on (or replaces its filter and backlog):
    /// SYNs to destinations `filter` takes that no listener has become
    /// [`CaptureRequest`]s ([`Tcp::capture_next`]), at most `backlog` of
    /// them unanswered at a time (SYNs past that are dropped; the peer
    /// retransmits). The IP layer must carry this TCP in an
    /// [`IpStack`](ustack_ipv4::IpStack), which then delivers segments to
    /// the addresses the filter takes.
    ///
    /// The application must answer every request it takes: an unanswered
    /// one holds its place in the backlog.
    pub fn capture(&mut self, filter: CaptureFilter, backlog: usize) {
        let backlog = backlog.max(1);
        match &mut self.capture {
            Some(c) => {
                // Requests already waiting keep their places.
                c.filter = filter;
                c.backlog = backlog.max(c.pending.len());
            }
            None => {
                self.capture = Some(Capture {
                    filter,
                    backlog,
                    pending: HashMap::new(),
                    queue: VecDeque::new(),
                })
            }
        }
    }

    /// Turns capture off; every unanswered SYN is refused with a RST on the
    /// next poll. Returns how many were refused.
    pub fn stop_capture(&mut self) -> usize {
        let Some(c) = self.capture.take() else {
            return 0;
        };
        let n = c.pending.len();
        for ((local, remote), (syn, _)) in c.pending {
            if let Some(rst) = reset_for_closed_port(&syn, 0) {
                self.rst_queue.push_back((local, remote, rst));
            }
        }
        n
    }

    /// Whether capture is on and takes connections to `addr`.
    pub fn captures(&self, addr: Ipv4Addr) -> bool {
        self.capture
            .as_ref()
            .is_some_and(|c| c.filter.takes_addr(addr))
    }

    /// The next captured SYN to answer, oldest first.
    pub fn capture_next(&mut self) -> Option<CaptureRequest> {
        let c = self.capture.as_mut()?;
        while let Some(key) = c.queue.pop_front() {
            if let Some((_, handed)) = c.pending.get_mut(&key).filter(|(_, h)| !*h) {
                *handed = true;
                return Some(CaptureRequest {
                    local: key.0,
                    remote: key.1,
                });
            }
        }
        None
    }

    /// Accepts a captured SYN: the SYN-ACK goes out on the next poll, from
    /// the original destination. The connection belongs to the application
    /// at once, in SYN-RECEIVED until the peer's ACK arrives. Fails with
    /// `InvalidHandle` when the request is unknown or was cancelled (the
    /// peer reset it, or capture stopped) and `TooManyConnections` when the
    /// table is full (the request is refused then).
    pub fn capture_accept(
        &mut self,
        now: Instant,
        req: CaptureRequest,
    ) -> Result<ConnId, TcpError> {
        let (local, remote) = (req.local, req.remote);
        let syn = self
            .capture
            .as_mut()
            .and_then(|c| c.pending.remove(&(local, remote)))
            .map(|(syn, _)| syn)
            .ok_or(TcpError::InvalidHandle)?;
        if self.live >= self.cfg.max_connections || self.table.contains_key(&(local, remote)) {
            self.refuse_syn(local, remote, &syn);
            return Err(TcpError::TooManyConnections(self.cfg.max_connections));
        }
        let iss = self.isn.isn(local, remote, now);
        let span = conn_span(local, remote);
        let ts_offset = self.isn.ts_offset(local, remote);
        let tcb =
            span.in_scope(|| Tcb::accept_syn(&self.cfg.tcp, local, remote, iss, ts_offset, &syn));
        let idx = self.insert(tcb, Owner::User, span);
        self.after_event(idx, now, true);
        Ok(self.id_of(idx))
    }

    /// Refuses a captured SYN: the peer gets a RST on the next poll, as from
    /// a closed port. Returns false when the request is unknown or was
    /// cancelled already.
    pub fn capture_refuse(&mut self, req: CaptureRequest) -> bool {
        let key = (req.local, req.remote);
        match self.capture.as_mut().and_then(|c| c.pending.remove(&key)) {
            Some((syn, _)) => {
                self.refuse_syn(req.local, req.remote, &syn);
                true
            }
            None => false,
        }
    }

    fn refuse_syn(&mut self, local: SocketAddrV4, remote: SocketAddrV4, syn: &TcpRepr) {
        self.stats.tcp_no_listener += 1;
        if let Some(rst) = reset_for_closed_port(syn, 0) {
            if self.rst_queue.len() < MAX_PENDING_RST {
                self.rst_queue.push_back((local, remote, rst));
            }
        }
    }

    /// The capture's bounds, for [`Tcp::check_invariants`].
    pub(super) fn check_capture(&self) -> Result<(), String> {
        match &self.capture {
            Some(c) if c.pending.len() > c.backlog || c.queue.len() > c.backlog => Err(format!(
                "capture: {} pending and {} queued, backlog {}",
                c.pending.len(),
                c.queue.len(),
                c.backlog
            )),
            _ => Ok(()),
        }
    }

    /// Whether a segment to `local` with no connection of its own goes to
    /// the capture: capture is on, its filter takes `local`, and no ordinary
    /// listener (on our own address) has the port.
    pub(super) fn capture_takes(&self, local: SocketAddrV4) -> bool {
        let listened = *local.ip() == self.addr && self.listeners.contains_key(&local.port());
        !listened && self.capture.as_ref().is_some_and(|c| c.filter.takes(local))
    }

    /// A segment for a captured destination with no connection: LISTEN
    /// processing (RFC 9293 §3.10.7.2), except that a SYN waits for the
    /// application instead of being answered.
    pub(super) fn handle_capture(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        tx: &mut impl IpSend,
    ) {
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        let key = (local, remote);
        if seg.flags.rst() {
            // The peer gave up its SYN (RFC 9293 §3.10.7.2 ignores a RST in
            // LISTEN; here there is a half-open request to cancel).
            if c.pending
                .get(&key)
                .is_some_and(|(syn, _)| seg.seq == syn.seq + 1u32)
            {
                c.pending.remove(&key);
            }
            return;
        }
        if seg.flags.ack() {
            let rst = TcpRepr::rst(seg.dst_port, seg.src_port, seg.ack);
            self.send_rst(local, remote, &rst, tx);
            return;
        }
        if !seg.flags.syn() || seg.flags.fin() || c.pending.contains_key(&key) {
            // A retransmitted SYN waits with the first.
            return;
        }
        if c.pending.len() >= c.backlog {
            self.stats.tcp_syn_dropped += 1;
            debug!(%local, %remote, "captured SYN dropped: capture backlog full");
            return;
        }
        if c.queue.len() >= c.backlog {
            let pending = &c.pending;
            c.queue
                .retain(|k| pending.get(k).is_some_and(|(_, handed)| !handed));
        }
        c.pending.insert(key, (*seg, false));
        c.queue.push_back(key);
        debug!(%local, %remote, "captured SYN waits for the application");
    }
}

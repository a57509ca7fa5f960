//! ARP for IPv4 over Ethernet (RFC 826) and the neighbour cache.
//!
//! The wire part is a view plus a `Repr`, as for Ethernet. The cache,
//! [`Neighbours`], is pure: it owns no socket and reads no clock; time comes
//! in as `now`, and it answers with what the caller should do (send to a
//! MAC, send an ARP request, nothing). That keeps every timing rule testable
//! without a network.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ustack_ipv4::TxPacket;

use crate::ethernet::MacAddr;

/// Offsets in an ARP packet for Ethernet and IPv4 (RFC 826, "Packet format").
pub mod field {
    use std::ops::Range;
    /// `ar$hrd`, hardware address space: 1 for Ethernet ([`HTYPE_ETHERNET`](super::HTYPE_ETHERNET)).
    pub const HTYPE: Range<usize> = 0..2;
    /// `ar$pro`, protocol address space, an EtherType: 0x0800 for IPv4.
    pub const PTYPE: Range<usize> = 2..4;
    /// `ar$hln`, bytes per hardware address: 6 for Ethernet.
    pub const HLEN: usize = 4;
    /// `ar$pln`, bytes per protocol address: 4 for IPv4.
    pub const PLEN: usize = 5;
    /// `ar$op`, the operation: 1 request, 2 reply ([`ArpOp`](super::ArpOp)).
    pub const OPER: Range<usize> = 6..8;
    /// `ar$sha`, sender hardware (MAC) address.
    pub const SHA: Range<usize> = 8..14;
    /// `ar$spa`, sender protocol (IPv4) address.
    pub const SPA: Range<usize> = 14..18;
    /// `ar$tha`, target hardware address; zero in a request (RFC 5227).
    pub const THA: Range<usize> = 18..24;
    /// `ar$tpa`, target protocol (IPv4) address: the one being asked about.
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// `ar$hrd` for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation, `ar$op` (RFC 826): the only two values
/// [`ArpRepr::parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Code 1: who has `target_ip`? Sent to broadcast; also an announcement
    /// when sender and target address are the same (RFC 5227 §2.3).
    Request,
    /// Code 2: `sender_ip` is at `sender_mac`; sent to the requester's MAC.
    Reply,
}

impl ArpOp {
    fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

/// Why an ARP packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    /// Shorter than the 28 bytes of an Ethernet/IPv4 ARP packet; carries the length.
    #[error("ARP packet of {0} bytes is shorter than 28")]
    Truncated(usize),
    /// Address types other than Ethernet (hardware type 1, 6-byte addresses)
    /// and IPv4 (EtherType 0x0800, 4-byte addresses).
    #[error("ARP packet is not Ethernet/IPv4 (htype {htype}, ptype {ptype:#06x}, hlen {hlen}, plen {plen})")]
    UnsupportedTypes {
        /// `ar$hrd` as received.
        htype: u16,
        /// `ar$pro` as received.
        ptype: u16,
        /// `ar$hln` as received.
        hlen: u8,
        /// `ar$pln` as received.
        plen: u8,
    },
    /// An operation other than request (1) or reply (2), e.g. RARP's 3 and 4;
    /// carries the value.
    #[error("unknown ARP operation {0}")]
    UnknownOp(u16),
}

/// A view over an ARP packet, length-checked once.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buf: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buf` if it holds at least [`PACKET_LEN`] bytes (trailing
    /// Ethernet padding is allowed); the field values are checked by
    /// [`ArpRepr::parse`].
    pub fn new_checked(buf: T) -> Result<ArpPacket<T>, ArpError> {
        let len = buf.as_ref().len();
        if len < PACKET_LEN {
            return Err(ArpError::Truncated(len));
        }
        Ok(ArpPacket { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// `ar$hrd`, the hardware address space (1 = Ethernet).
    pub fn htype(&self) -> u16 {
        be16(&self.b()[field::HTYPE])
    }
    /// `ar$pro`, the protocol address space as an EtherType (0x0800 = IPv4).
    pub fn ptype(&self) -> u16 {
        be16(&self.b()[field::PTYPE])
    }
    /// `ar$hln`, the hardware address length in bytes.
    pub fn hlen(&self) -> u8 {
        self.b()[field::HLEN]
    }
    /// `ar$pln`, the protocol address length in bytes.
    pub fn plen(&self) -> u8 {
        self.b()[field::PLEN]
    }
    /// `ar$op`, the raw operation code (1 request, 2 reply).
    pub fn oper(&self) -> u16 {
        be16(&self.b()[field::OPER])
    }
    /// `ar$sha`, assuming 6-byte hardware addresses.
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[field::SHA]).unwrap_or_default()
    }
    /// `ar$spa`, assuming 4-byte protocol addresses.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip(&self.b()[field::SPA])
    }
    /// `ar$tha`, assuming 6-byte hardware addresses; zero in most requests.
    pub fn target_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[field::THA]).unwrap_or_default()
    }
    /// `ar$tpa`, assuming 4-byte protocol addresses.
    pub fn target_ip(&self) -> Ipv4Addr {
        ip(&self.b()[field::TPA])
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub op: ArpOp,
    /// The sender's MAC address, `ar$sha`: what a receiver learns.
    pub sender_mac: MacAddr,
    /// The sender's IPv4 address, `ar$spa`.
    pub sender_ip: Ipv4Addr,
    /// `ar$tha`: the requester's MAC in a reply; [`MacAddr::ZERO`] in a request.
    pub target_mac: MacAddr,
    /// `ar$tpa`: the address asked about in a request; the requester's in a reply.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 request or reply; anything else is an
    /// [`ArpError`] (the caller drops it).
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr, ArpError> {
        let (htype, ptype, hlen, plen) = (p.htype(), p.ptype(), p.hlen(), p.plen());
        if htype != HTYPE_ETHERNET
            || ptype != crate::ethernet::ETHERTYPE_IPV4
            || hlen != 6
            || plen != 4
        {
            return Err(ArpError::UnsupportedTypes {
                htype,
                ptype,
                hlen,
                plen,
            });
        }
        let op = match p.oper() {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => return Err(ArpError::UnknownOp(other)),
        };
        Ok(ArpRepr {
            op,
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// Writes the 28-byte packet, with the Ethernet/IPv4 type and length fields.
    pub fn emit(&self, out: &mut [u8; PACKET_LEN]) {
        let ArpRepr {
            op,
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        } = *self;
        out[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out[field::PTYPE].copy_from_slice(&crate::ethernet::ETHERTYPE_IPV4.to_be_bytes());
        out[field::HLEN] = 6;
        out[field::PLEN] = 4;
        out[field::OPER].copy_from_slice(&op.code().to_be_bytes());
        out[field::SHA].copy_from_slice(&sender_mac.0);
        out[field::SPA].copy_from_slice(&sender_ip.octets());
        out[field::THA].copy_from_slice(&target_mac.0);
        out[field::TPA].copy_from_slice(&target_ip.octets());
    }

    /// An ARP announcement of our own address (RFC 5227 section 2.3: sender
    /// and target protocol address both ours, target hardware address zero),
    /// sent as a broadcast request so every neighbour updates its cache.
    pub fn announcement(mac: MacAddr, addr: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: addr,
            target_mac: MacAddr::ZERO,
            target_ip: addr,
        }
    }
}

/// Limits and timers of the neighbour cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Most entries, resolved or not.
    pub capacity: usize,
    /// How long a learned mapping is used without being confirmed again.
    pub reachable_for: Duration,
    /// Time between ARP requests for one address.
    pub retry_after: Duration,
    /// Requests per resolution attempt before it fails.
    pub max_requests: u32,
    /// After a failed attempt, packets to that address are dropped at once
    /// for this long (no new requests), so a dead neighbour costs no flood.
    pub hold_down: Duration,
    /// Packets waiting for one address.
    pub queue_per_neighbour: usize,
    /// Packets waiting for all addresses together.
    pub queue_total: usize,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            capacity: 256,
            reachable_for: Duration::from_secs(60),
            retry_after: Duration::from_secs(1),
            max_requests: 3,
            hold_down: Duration::from_secs(20),
            queue_per_neighbour: 16,
            queue_total: 64,
        }
    }
}

#[derive(Debug)]
enum Entry {
    Resolved {
        mac: MacAddr,
        confirmed: Instant,
        /// When a refresh request was last sent for a stale entry.
        last_probe: Option<Instant>,
        probes: u32,
    },
    Incomplete {
        requests: u32,
        last_request: Instant,
        /// (global arrival number, packet)
        queue: VecDeque<(u64, Vec<u8>)>,
    },
    Failed {
        until: Instant,
    },
}

/// What to do with an outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAction {
    /// Send it now to `mac`; if `probe`, also send an ARP request to refresh
    /// a stale mapping.
    Send {
        /// The neighbour's MAC address, for the Ethernet destination.
        mac: MacAddr,
        /// The mapping is stale (older than [`NeighbourConfig::reachable_for`]) and
        /// an ARP request is due to confirm it (RFC 1122 §2.3.2.1).
        probe: bool,
    },
    /// The packet was queued until the address resolves; if `request`,
    /// send an ARP request now.
    Queued {
        /// An ARP request for the address is due now (the first, or a retry after
        /// [`NeighbourConfig::retry_after`]).
        request: bool,
    },
    /// Dropped: the address did not resolve (or the queue rules dropped it).
    Dropped,
}

/// Counters of the neighbour cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourStats {
    /// ARP requests the cache asked for: first tries, retries and probes of
    /// stale mappings.
    pub requests: u64,
    /// Addresses that went from waiting to resolved by an ARP packet.
    pub resolved: u64,
    /// Resolution attempts that ran out of requests and put the address in
    /// hold-down ([`NeighbourConfig::hold_down`]).
    pub failed: u64,
    /// Packets dropped because their neighbour did not answer.
    pub unresolved_dropped: u64,
    /// Packets dropped (oldest first) because a waiting queue was full.
    pub queue_dropped: u64,
    /// Entries removed to make room in a full cache (failed ones first, then
    /// the least recently confirmed, then the oldest attempt).
    pub evicted: u64,
}

/// The neighbour cache with its queues of packets awaiting resolution.
#[derive(Debug)]
pub struct Neighbours {
    cfg: NeighbourConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    queued_total: usize,
    next_seq: u64,
    stats: NeighbourStats,
}

impl Neighbours {
    /// An empty cache with room for `cfg.capacity` entries reserved up front.
    pub fn new(cfg: NeighbourConfig) -> Neighbours {
        Neighbours {
            entries: HashMap::with_capacity(cfg.capacity),
            cfg,
            queued_total: 0,
            next_seq: 0,
            stats: NeighbourStats::default(),
        }
    }

    /// Counters since the cache was made.
    pub fn stats(&self) -> NeighbourStats {
        self.stats
    }

    /// Entries now held, resolved, waiting or failed; at most
    /// [`NeighbourConfig::capacity`].
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds no entry of any kind.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting for resolution, all neighbours together.
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// The MAC a packet to `addr` would go to now, if known and fresh.
    pub fn lookup(&self, addr: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        match self.entries.get(&addr)? {
            Entry::Resolved { mac, confirmed, .. }
                if now.saturating_duration_since(*confirmed) < self.cfg.reachable_for =>
            {
                Some(*mac)
            }
            _ => None,
        }
    }

    /// Decides what happens to `packet`, bound for next hop `addr`. The
    /// packet is copied (its parts gathered into one buffer) only when it
    /// must wait for resolution.
    pub fn on_send(&mut self, addr: Ipv4Addr, packet: &TxPacket<'_>, now: Instant) -> SendAction {
        let cfg = self.cfg;
        self.expire_failed_attempt(addr, now);
        match self.entries.get_mut(&addr) {
            Some(Entry::Resolved {
                mac,
                confirmed,
                last_probe,
                probes,
            }) => {
                let age = now.saturating_duration_since(*confirmed);
                if age < cfg.reachable_for {
                    return SendAction::Send {
                        mac: *mac,
                        probe: false,
                    };
                }
                // Stale: keep using the old mapping while asking again, and
                // forget it if the neighbour stays silent (RFC 1122 2.3.2.1).
                let due =
                    last_probe.is_none_or(|t| now.saturating_duration_since(t) >= cfg.retry_after);
                if due && *probes >= cfg.max_requests {
                    self.entries.remove(&addr);
                    return self.on_send(addr, packet, now);
                }
                if due {
                    *last_probe = Some(now);
                    *probes += 1;
                    self.stats.requests += 1;
                }
                SendAction::Send {
                    mac: *mac,
                    probe: due,
                }
            }
            Some(Entry::Failed { .. }) => {
                self.stats.unresolved_dropped += 1;
                SendAction::Dropped
            }
            Some(Entry::Incomplete {
                requests,
                last_request,
                ..
            }) => {
                let request = now.saturating_duration_since(*last_request) >= cfg.retry_after;
                if request {
                    *requests += 1;
                    *last_request = now;
                    self.stats.requests += 1;
                }
                self.enqueue(addr, packet);
                SendAction::Queued { request }
            }
            None => {
                self.make_room(now);
                self.entries.insert(
                    addr,
                    Entry::Incomplete {
                        requests: 1,
                        last_request: now,
                        queue: VecDeque::new(),
                    },
                );
                self.stats.requests += 1;
                self.enqueue(addr, packet);
                SendAction::Queued { request: true }
            }
        }
    }

    /// An incomplete entry whose last request went unanswered past the
    /// retry interval, with no requests left, fails: its packets are
    /// dropped and the address is held down.
    fn expire_failed_attempt(&mut self, addr: Ipv4Addr, now: Instant) {
        let cfg = self.cfg;
        match self.entries.get(&addr) {
            Some(Entry::Incomplete {
                requests,
                last_request,
                queue,
            }) if *requests >= cfg.max_requests
                && now.saturating_duration_since(*last_request) >= cfg.retry_after =>
            {
                let n = queue.len();
                self.queued_total -= n;
                self.stats.unresolved_dropped += n as u64;
                self.stats.failed += 1;
                self.entries.insert(
                    addr,
                    Entry::Failed {
                        until: now + cfg.hold_down,
                    },
                );
            }
            Some(Entry::Failed { until }) if now >= *until => {
                self.entries.remove(&addr);
            }
            _ => {}
        }
    }

    fn enqueue(&mut self, addr: Ipv4Addr, packet: &TxPacket<'_>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let per = self.cfg.queue_per_neighbour;
        if let Some(Entry::Incomplete { queue, .. }) = self.entries.get_mut(&addr) {
            if queue.len() >= per {
                queue.pop_front();
                self.queued_total -= 1;
                self.stats.queue_dropped += 1;
            }
            let mut copy = vec![0u8; packet.len()];
            packet.copy_to(&mut copy);
            queue.push_back((seq, copy));
            self.queued_total += 1;
        }
        while self.queued_total > self.cfg.queue_total {
            // Drop the oldest packet of all: the queue whose head arrived first.
            let oldest = self
                .entries
                .values_mut()
                .filter_map(|e| match e {
                    Entry::Incomplete { queue, .. } => {
                        queue.front().map(|(s, _)| *s).map(|s| (s, queue))
                    }
                    _ => None,
                })
                .min_by_key(|(s, _)| *s);
            match oldest {
                Some((_, q)) => {
                    q.pop_front();
                    self.queued_total -= 1;
                    self.stats.queue_dropped += 1;
                }
                None => break,
            }
        }
    }

    /// Frees a slot when the cache is full: failed entries first, then the
    /// least recently confirmed mapping, then the oldest attempt.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.cfg.capacity {
            return;
        }
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| match e {
                Entry::Failed { .. } => (0, now),
                Entry::Resolved { confirmed, .. } => (1, *confirmed),
                Entry::Incomplete { last_request, .. } => (2, *last_request),
            })
            .map(|(a, _)| *a);
        if let Some(a) = victim {
            if let Some(Entry::Incomplete { queue, .. }) = self.entries.remove(&a) {
                self.queued_total -= queue.len();
                self.stats.unresolved_dropped += queue.len() as u64;
            }
            self.stats.evicted += 1;
        }
    }

    /// Learns `addr` is at `mac` from an ARP packet (RFC 826, "Packet
    /// reception": update an existing entry; create one only when the packet
    /// was addressed to us). Packets that were waiting for `addr` are
    /// appended to `ready` for the caller to send to `mac`.
    pub fn on_arp(
        &mut self,
        addr: Ipv4Addr,
        mac: MacAddr,
        for_us: bool,
        now: Instant,
        ready: &mut Vec<Vec<u8>>,
    ) {
        if !mac.is_unicast() || addr.is_unspecified() || addr.is_broadcast() {
            return;
        }
        let known = self.entries.contains_key(&addr);
        if !known && !for_us {
            return;
        }
        if !known {
            self.make_room(now);
        }
        let resolved = Entry::Resolved {
            mac,
            confirmed: now,
            last_probe: None,
            probes: 0,
        };
        if let Some(Entry::Incomplete { queue, .. }) = self.entries.insert(addr, resolved) {
            self.stats.resolved += 1;
            self.queued_total -= queue.len();
            ready.extend(queue.into_iter().map(|(_, p)| p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    /// `on_send` of `p` in one part.
    fn send(n: &mut Neighbours, addr: Ipv4Addr, p: &[u8], now: Instant) -> SendAction {
        n.on_send(addr, &TxPacket::new(&[p]), now)
    }

    fn cache() -> Neighbours {
        Neighbours::new(NeighbourConfig::default())
    }

    #[test]
    fn arp_round_trips_and_rejects_bad_packets() {
        let repr = ArpRepr {
            op: ArpOp::Reply,
            sender_mac: MAC,
            sender_ip: PEER,
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            target_ip: Ipv4Addr::new(10, 1, 0, 2),
        };
        let mut b = [0u8; PACKET_LEN];
        repr.emit(&mut b);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), repr);

        assert_eq!(
            ArpPacket::new_checked(&b[..27]).unwrap_err(),
            ArpError::Truncated(27)
        );
        let mut bad = b;
        bad[field::OPER].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&bad[..]).unwrap()),
            Err(ArpError::UnknownOp(9))
        );
        let mut bad = b;
        bad[field::HLEN] = 8;
        assert!(matches!(
            ArpRepr::parse(&ArpPacket::new_checked(&bad[..]).unwrap()),
            Err(ArpError::UnsupportedTypes { hlen: 8, .. })
        ));
    }

    #[test]
    fn unknown_address_queues_then_flushes_on_reply() {
        let mut n = cache();
        let t0 = Instant::now();
        assert_eq!(
            send(&mut n, PEER, b"one", t0),
            SendAction::Queued { request: true }
        );
        // A packet in parts is queued gathered into one buffer.
        assert_eq!(
            n.on_send(PEER, &TxPacket::new(&[b"t", b"", b"wo"]), t0),
            SendAction::Queued { request: false }
        );
        assert_eq!(n.queued(), 2);
        let mut ready = Vec::new();
        n.on_arp(PEER, MAC, true, t0, &mut ready);
        assert_eq!(ready, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(n.queued(), 0);
        assert_eq!(
            send(&mut n, PEER, b"three", t0),
            SendAction::Send {
                mac: MAC,
                probe: false
            }
        );
    }

    #[test]
    fn requests_are_retried_a_bounded_number_of_times_then_held_down() {
        let cfg = NeighbourConfig::default();
        let mut n = Neighbours::new(cfg);
        let t0 = Instant::now();
        let mut requests = 0;
        for i in 0..20u32 {
            let now = t0 + cfg.retry_after * i / 2;
            match send(&mut n, PEER, b"x", now) {
                SendAction::Queued { request: true } => requests += 1,
                SendAction::Queued { request: false } | SendAction::Dropped => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(requests, cfg.max_requests);
        assert_eq!(n.stats().failed, 1);
        assert!(n.stats().unresolved_dropped > 0);
        assert_eq!(n.queued(), 0);
        // After the hold-down a new attempt starts.
        let later = t0 + cfg.retry_after * 20 + cfg.hold_down;
        assert_eq!(
            send(&mut n, PEER, b"y", later),
            SendAction::Queued { request: true }
        );
    }

    #[test]
    fn queues_are_bounded_and_drop_the_oldest() {
        let cfg = NeighbourConfig::default();
        let mut n = Neighbours::new(cfg);
        let t0 = Instant::now();
        for i in 0..100u8 {
            send(&mut n, PEER, &[i], t0);
        }
        assert_eq!(n.queued(), cfg.queue_per_neighbour);
        assert_eq!(
            n.stats().queue_dropped,
            100 - cfg.queue_per_neighbour as u64
        );
        let mut ready = Vec::new();
        n.on_arp(PEER, MAC, true, t0, &mut ready);
        let firsts: Vec<u8> = ready.iter().map(|p| p[0]).collect();
        assert_eq!(firsts, (84..100).collect::<Vec<u8>>());

        // Across neighbours: the global bound holds, oldest first.
        let mut n = Neighbours::new(cfg);
        for i in 0..10u8 {
            for k in 0..10u8 {
                send(&mut n, Ipv4Addr::new(10, 2, 0, i), &[i, k], t0);
            }
        }
        assert_eq!(n.queued(), cfg.queue_total);
        let mut ready = Vec::new();
        n.on_arp(Ipv4Addr::new(10, 2, 0, 0), MAC, true, t0, &mut ready);
        assert!(ready.is_empty(), "neighbour 0's packets were the oldest");
    }

    #[test]
    fn entries_expire_get_probed_and_are_forgotten_when_silent() {
        let cfg = NeighbourConfig::default();
        let mut n = Neighbours::new(cfg);
        let t0 = Instant::now();
        n.on_arp(PEER, MAC, true, t0, &mut Vec::new());
        assert_eq!(n.lookup(PEER, t0), Some(MAC));
        let stale = t0 + cfg.reachable_for;
        assert_eq!(n.lookup(PEER, stale), None);
        assert_eq!(
            send(&mut n, PEER, b"x", stale),
            SendAction::Send {
                mac: MAC,
                probe: true
            }
        );
        assert_eq!(
            send(&mut n, PEER, b"x", stale),
            SendAction::Send {
                mac: MAC,
                probe: false
            }
        );
        let mut t = stale;
        for _ in 0..cfg.max_requests {
            t += cfg.retry_after;
            send(&mut n, PEER, b"x", t);
        }
        // Probes exhausted: back to resolving from scratch.
        assert!(matches!(
            send(&mut n, PEER, b"x", t + cfg.retry_after),
            SendAction::Queued { request: true }
        ));
    }

    #[test]
    fn only_packets_for_us_create_entries_and_the_cache_is_bounded() {
        let cfg = NeighbourConfig {
            capacity: 4,
            ..NeighbourConfig::default()
        };
        let mut n = Neighbours::new(cfg);
        let t0 = Instant::now();
        n.on_arp(PEER, MAC, false, t0, &mut Vec::new());
        assert!(n.is_empty());
        n.on_arp(PEER, MacAddr::BROADCAST, true, t0, &mut Vec::new());
        assert!(n.is_empty(), "a group MAC is never learned");
        for i in 0..10u8 {
            let t = t0 + Duration::from_millis(u64::from(i));
            n.on_arp(Ipv4Addr::new(10, 3, 0, i), MAC, true, t, &mut Vec::new());
        }
        assert_eq!(n.len(), 4);
        assert_eq!(n.stats().evicted, 6);
        assert!(n
            .lookup(Ipv4Addr::new(10, 3, 0, 9), t0 + Duration::from_millis(9))
            .is_some());
        assert!(n.lookup(Ipv4Addr::new(10, 3, 0, 0), t0).is_none());
    }
}

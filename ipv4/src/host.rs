//! The IPv4 host: one interface, and the transports above it.
//!
//! [`IpStack`] owns everything that is IP: the interface (address, prefix,
//! device capabilities), validation and destination filtering of received
//! packets, fragment reassembly ([`crate::frag`]), ICMP (echo answered here;
//! errors handed to the transport that sent the datagram they quote),
//! dispatch by protocol number, the IP ID, fragmentation of datagrams larger
//! than the MTU, and the IP statistics.
//!
//! A transport (TCP, later UDP) implements [`Transport`] and is carried as a
//! type parameter: every call from the IP layer into it, and from it back
//! into the IP layer's sender ([`IpSend`]), is static dispatch. Two
//! transports compose as one type that dispatches on the protocol number.
//!
//! Sans-I/O: packets come in as slices with what the device vouched for
//! ([`RxInfo`]), go out as gather lists ([`TxPacket`]) through a closure the
//! caller supplies, and time is an argument.

use core::net::Ipv4Addr;
use core::ops::{Deref, DerefMut};

use crate::device::{DeviceCaps, RxInfo, TxPacket};
use crate::frag::{self, FragConfig, Reassembler};
use crate::icmp::{self, IcmpError, IcmpPacket};
use crate::{protocol, Instant, Ipv4Packet, Ipv4Repr, Ipv4Stats, Ipv4Subnet, MAX_PAYLOAD_LEN};

/// Most parts of a gather list a transport may hand down; the IP header
/// takes one more.
pub const MAX_PAYLOAD_PARTS: usize = 6;

/// Configuration of the IP layer of one interface.
#[derive(Debug, Clone)]
pub struct IpConfig {
    /// The interface's own address and prefix; packets to any other
    /// destination are dropped, unless the transport captures them
    /// ([`Transport::takes_foreign_dst`]).
    pub subnet: Ipv4Subnet,
    /// TTL of the datagrams this host sends (64, as Linux and BSD use).
    pub ttl: u8,
    /// Bounds of fragment reassembly.
    pub frag: FragConfig,
}

impl IpConfig {
    /// An interface at `subnet` with the default TTL and reassembly bounds.
    pub fn new(subnet: Ipv4Subnet) -> IpConfig {
        IpConfig {
            subnet,
            ttl: 64,
            frag: FragConfig::default(),
        }
    }
}

/// What a transport learns of the interface below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// The interface's address and prefix.
    pub subnet: Ipv4Subnet,
    /// What the device can do.
    pub caps: DeviceCaps,
}

impl Interface {
    /// The interface's own address.
    pub const fn addr(&self) -> Ipv4Addr {
        self.subnet.addr()
    }
}

/// TCP segmentation offload of one outgoing datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tso {
    /// Payload bytes per segment the device cuts.
    pub segment: u16,
    /// How many segments the device will make (each takes an IP ID).
    pub segments: u16,
}

/// A datagram a transport hands down to be sent.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Source address (the interface's own).
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number of the payload.
    pub protocol: u8,
    /// The transport's header and data, as a gather list of at most
    /// [`MAX_PAYLOAD_PARTS`] parts.
    pub payload: &'a [&'a [u8]],
    /// DF: never fragment (TCP sets it and sizes segments to the path MTU).
    pub dont_frag: bool,
    /// DSCP and ECN bits.
    pub dscp_ecn: u8,
    /// `Some`: a super-frame for the device to cut (its transport checksum
    /// holds only the pseudo-header sum); only when the interface has TSO.
    pub tso: Option<Tso>,
    /// An ordinary TCP datagram whose checksum holds only the pseudo-header
    /// sum, for the device to finish ([`TxPacket::partial_checksum`]); only
    /// when the interface's caps say [`DeviceCaps::finishes_checksums`].
    pub partial_checksum: bool,
}

/// Where a transport sends datagrams: the IP layer's sender.
pub trait IpSend {
    /// Adds the IP header and sends `dgram`, fragmenting it when it is
    /// larger than the MTU and DF is clear. A datagram that cannot be sent
    /// (too long with DF set, too many parts) is dropped and counted.
    fn send(&mut self, dgram: &Outgoing<'_>);
}

/// A transport protocol above the IP layer.
pub trait Transport {
    /// Called once, by [`IpStack::new`], with the interface below.
    fn attach(&mut self, iface: &Interface);

    /// True for each IP protocol number this transport takes.
    fn handles(&self, protocol: u8) -> bool;

    /// A datagram for this transport arrived: `ip` is its header (for a
    /// reassembled datagram, of the whole), `payload` the transport's bytes,
    /// `info` what the device vouched for. Replies that cannot wait go to
    /// `out` at once.
    fn receive<O: IpSend>(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        info: RxInfo,
        out: &mut O,
    );

    /// An ICMP error arrived about a datagram this transport sent: `quoted`
    /// is the header it quotes (its `payload_len` as the original claimed),
    /// `quoted_payload` the quoted transport bytes (at least 8).
    fn icmp_error(
        &mut self,
        now: Instant,
        err: IcmpError,
        quoted: &Ipv4Repr,
        quoted_payload: &[u8],
    );

    /// Fires due timers and sends what the transport has to send.
    fn poll<O: IpSend>(&mut self, now: Instant, out: &mut O);

    /// When [`Transport::poll`] must next be called; `None` when idle.
    fn poll_at(&self) -> Option<Instant>;

    /// Any-address capture: true when this transport takes datagrams of
    /// `protocol` addressed to `dst`, an address that is not the
    /// interface's own (a TUN device that traffic for whole networks is
    /// routed into). Asked per datagram, only for unicast destinations;
    /// the default takes none, as RFC 1122 §3.2.1.3 has a host do.
    fn takes_foreign_dst(&self, dst: Ipv4Addr, protocol: u8) -> bool {
        let _ = (dst, protocol);
        false
    }
}

/// An IPv4 host over one device, carrying the transport `T`.
///
/// It dereferences to `T`, so a transport's socket API is called on the
/// stack directly (`stack.listen(80, 128)` for TCP).
#[derive(Debug)]
pub struct IpStack<T> {
    iface: Interface,
    ttl: u8,
    transport: T,
    frag: Reassembler,
    stats: Ipv4Stats,
    ident: u16,
    /// Gathers a multi-part datagram that must be fragmented.
    scratch: Vec<u8>,
}

impl<T: Transport> IpStack<T> {
    /// A host at `cfg.subnet` on a device that can do `caps`, carrying
    /// `transport`.
    pub fn new(cfg: IpConfig, caps: DeviceCaps, mut transport: T) -> IpStack<T> {
        let iface = Interface {
            subnet: cfg.subnet,
            caps,
        };
        transport.attach(&iface);
        IpStack {
            iface,
            ttl: cfg.ttl,
            transport,
            frag: Reassembler::new(cfg.frag),
            stats: Ipv4Stats::default(),
            ident: 0,
            scratch: Vec::new(),
        }
    }

    /// Processes one received packet. Replies that cannot wait (ICMP echo
    /// replies, RSTs) go to `tx` at once; the rest waits for [`IpStack::poll`].
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        info: RxInfo,
        tx: &mut impl FnMut(&TxPacket<'_>),
    ) {
        self.stats.rx_packets += 1;
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(p) => p,
            Err(e) => return self.stats.record(&e),
        };
        let repr = match Ipv4Repr::parse(&ip) {
            Ok(r) => r,
            Err(e) => return self.stats.record(&e),
        };
        if repr.dst_addr != self.iface.addr() && !self.captured(&repr) {
            self.stats.rx_not_for_us += 1;
            return;
        }
        // RFC 1122 §3.2.1.3: a source that is not a unicast address.
        let src = repr.src_addr;
        if src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || src == self.iface.subnet.broadcast() && self.iface.subnet.prefix_len() < 31
        {
            self.stats.rx_bad_source += 1;
            return;
        }
        let IpStack {
            iface,
            ttl,
            transport,
            frag,
            stats,
            ident,
            scratch,
        } = self;
        let mut out = Sender {
            caps: iface.caps,
            ttl: *ttl,
            ident,
            stats,
            scratch,
            tx,
        };
        if !repr.is_fragment() {
            return deliver(now, iface, transport, &repr, ip.payload(), info, &mut out);
        }
        out.stats.rx_fragments += 1;
        if let Some(d) = frag.push(now, &repr, ip.payload()) {
            out.stats.rx_reassembled += 1;
            // The device vouched for the fragments, not for the transport
            // checksum of the whole.
            let info = RxInfo::default();
            deliver(now, iface, transport, &d.repr, d.payload, info, &mut out);
        }
    }

    /// Whether the transport captures `repr`, a datagram to an address not
    /// our own: only unicast destinations qualify (TCP never runs to a
    /// broadcast or multicast address, RFC 1122 §4.2.3.10), and never ICMP,
    /// which is answered for the interface's own address only.
    fn captured(&self, repr: &Ipv4Repr) -> bool {
        let dst = repr.dst_addr;
        let unicast = !(dst.is_broadcast()
            || dst.is_multicast()
            || dst.is_unspecified()
            || dst == self.iface.subnet.broadcast() && self.iface.subnet.prefix_len() < 31);
        unicast
            && repr.protocol != protocol::ICMP
            && self.transport.handles(repr.protocol)
            && self.transport.takes_foreign_dst(dst, repr.protocol)
    }

    /// Fires due timers (reassembly and the transport's) and sends
    /// everything the transport has to send.
    pub fn poll(&mut self, now: Instant, tx: &mut impl FnMut(&TxPacket<'_>)) {
        if self.frag.poll_at().is_some_and(|at| at <= now) {
            self.frag.expire(now);
        }
        let mut out = Sender {
            caps: self.iface.caps,
            ttl: self.ttl,
            ident: &mut self.ident,
            stats: &mut self.stats,
            scratch: &mut self.scratch,
            tx,
        };
        self.transport.poll(now, &mut out);
    }

    /// When [`IpStack::poll`] must next be called: `Some(now-or-earlier)`
    /// when output is waiting, the earliest timer otherwise, `None` when idle.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.transport.poll_at(), self.frag.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<T> IpStack<T> {
    /// The interface: address, prefix, device capabilities.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The interface's own address.
    pub fn addr(&self) -> Ipv4Addr {
        self.iface.addr()
    }

    /// IP-layer counters.
    pub fn ip_stats(&self) -> &Ipv4Stats {
        &self.stats
    }

    /// The reassembly state: its counters and the memory it holds.
    pub fn reassembly(&self) -> &Reassembler {
        &self.frag
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, for its socket API.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}

impl<T> Deref for IpStack<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.transport
    }
}

impl<T> DerefMut for IpStack<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}

/// Hands a whole datagram to ICMP or to the transport.
fn deliver<T: Transport, F: FnMut(&TxPacket<'_>)>(
    now: Instant,
    iface: &Interface,
    transport: &mut T,
    repr: &Ipv4Repr,
    payload: &[u8],
    info: RxInfo,
    out: &mut Sender<'_, F>,
) {
    match repr.protocol {
        protocol::ICMP => icmp_input(now, iface, transport, repr, payload, out),
        p if transport.handles(p) => {
            out.stats.rx_delivered += 1;
            transport.receive(now, repr, payload, info, out);
        }
        _ => out.stats.rx_unknown_protocol += 1,
    }
}

/// ICMP (RFC 792): echo requests are answered, errors about datagrams we
/// sent go to the transport that sent them, the rest is counted.
fn icmp_input<T: Transport, F: FnMut(&TxPacket<'_>)>(
    now: Instant,
    iface: &Interface,
    transport: &mut T,
    repr: &Ipv4Repr,
    payload: &[u8],
    out: &mut Sender<'_, F>,
) {
    let msg = match IcmpPacket::new_checked(payload) {
        Ok(m) => m,
        Err(e) => return out.stats.record(&e),
    };
    if !msg.verify_checksum() {
        return out.stats.record(&crate::Error::IcmpBadChecksum);
    }
    if let Some(header) = icmp::echo_reply_header(&msg) {
        out.stats.icmp_echo_answered += 1;
        // RFC 1122 §3.2.2.6: the reply carries the request's data; it may be
        // fragmented like any datagram, so DF stays clear.
        out.send(&Outgoing {
            src: repr.dst_addr,
            dst: repr.src_addr,
            protocol: protocol::ICMP,
            payload: &[&header, msg.data()],
            dont_frag: false,
            dscp_ecn: repr.dscp_ecn & !0x03,
            tso: None,
            partial_checksum: false,
        });
        return;
    }
    let Some(err) = msg.error() else {
        out.stats.icmp_other += 1;
        return;
    };
    match icmp::quoted_datagram(msg.data()) {
        Some((quoted, bytes))
            if quoted.src_addr == iface.addr() && transport.handles(quoted.protocol) =>
        {
            out.stats.icmp_errors_delivered += 1;
            transport.icmp_error(now, err, &quoted, bytes);
        }
        _ => out.stats.icmp_errors_ignored += 1,
    }
}

/// The IP layer's sender, lent to a transport for one call.
struct Sender<'a, F> {
    caps: DeviceCaps,
    ttl: u8,
    ident: &'a mut u16,
    stats: &'a mut Ipv4Stats,
    scratch: &'a mut Vec<u8>,
    tx: &'a mut F,
}

impl<F: FnMut(&TxPacket<'_>)> IpSend for Sender<'_, F> {
    fn send(&mut self, d: &Outgoing<'_>) {
        let payload_len: usize = d.payload.iter().map(|p| p.len()).sum();
        if payload_len > MAX_PAYLOAD_LEN || d.payload.len() > MAX_PAYLOAD_PARTS {
            self.stats.tx_too_long += 1;
            return;
        }
        let limit = match d.tso {
            Some(_) if self.caps.tso_max > 0 => self.caps.tso_max,
            _ => self.caps.mtu,
        };
        *self.ident = self.ident.wrapping_add(1);
        let repr = Ipv4Repr {
            src_addr: d.src,
            dst_addr: d.dst,
            protocol: d.protocol,
            payload_len,
            ttl: self.ttl,
            ident: *self.ident,
            dont_frag: d.dont_frag,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: d.dscp_ecn,
        };
        if repr.buffer_len() <= limit {
            let mut header = [0u8; Ipv4Repr::HEADER_LEN];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut header[..]));
            let mut parts: [&[u8]; MAX_PAYLOAD_PARTS + 1] = [&[]; MAX_PAYLOAD_PARTS + 1];
            parts[0] = &header;
            parts[1..=d.payload.len()].copy_from_slice(d.payload);
            let segment = d.tso.filter(|_| self.caps.tso_max > 0);
            (self.tx)(&TxPacket {
                parts: &parts[..=d.payload.len()],
                segment: segment.map(|t| t.segment),
                partial_checksum: d.partial_checksum && segment.is_none(),
            });
            self.stats.tx_packets += 1;
            if let Some(t) = segment {
                // The device gives each segment its own ID (Linux GSO).
                *self.ident = self.ident.wrapping_add(t.segments.saturating_sub(1));
            }
            return;
        }
        if d.dont_frag || d.tso.is_some() || d.partial_checksum {
            self.stats.tx_too_long += 1;
            return;
        }
        self.fragment(&repr, d.payload);
    }
}

impl<F: FnMut(&TxPacket<'_>)> Sender<'_, F> {
    /// RFC 791 §3.2: sends `repr`'s datagram as fragments that fit the MTU.
    fn fragment(&mut self, repr: &Ipv4Repr, payload: &[&[u8]]) {
        let whole: &[u8] = match payload {
            [one] => one,
            parts => {
                self.scratch.clear();
                for p in parts {
                    self.scratch.extend_from_slice(p);
                }
                &self.scratch[..]
            }
        };
        let (tx, stats) = (&mut *self.tx, &mut *self.stats);
        let sent = frag::fragment(repr, whole, self.caps.mtu, |header, part| {
            tx(&TxPacket::new(&[header, part]));
            stats.tx_fragments += 1;
        });
        match sent {
            Ok(_) => stats.tx_packets += 1,
            Err(_) => stats.tx_too_long += 1,
        }
    }
}

#[cfg(test)]
mod tests;

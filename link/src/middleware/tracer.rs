//! One `tracing` line per packet, at trace level, for whatever link it wraps.

use std::fmt;
use std::os::fd::RawFd;

use ustack_ipv4::{protocol, DeviceCaps, Ipv4Packet, RxPacket, TxPacket};

use crate::{Link, LinkError, LinkStats};

/// A one-line description of an IPv4 packet, parsed only when displayed
/// (so a disabled trace level costs nothing) and never panicking: whatever
/// cannot be read is shown as such.
#[derive(Clone, Copy)]
pub struct PacketSummary<'a>(pub &'a [u8]);

/// [`PacketSummary`] of a packet to send, in parts: its headers are
/// gathered (on the stack) only when displayed.
#[derive(Clone, Copy)]
pub struct TxSummary<'a>(pub &'a TxPacket<'a>);

/// Bytes of a packet a summary reads: the longest IPv4 header and the
/// fixed part of a TCP header.
const SUMMARY_HEAD: usize = 60 + 20;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Describes the packet whose first bytes are `p` and whose length is
/// `len` (`p.len()` for a whole packet, more for a gathered head).
fn summarise(f: &mut fmt::Formatter<'_>, p: &[u8], len: usize) -> fmt::Result {
    let Some(&vihl) = p.first() else {
        return f.write_str("empty");
    };
    if vihl >> 4 != 4 || p.len() < 20 {
        return write!(f, "not IPv4 (version {}, {len} bytes)", vihl >> 4);
    }
    // At least 20 bytes: the fixed-header accessors stay in bounds.
    let ip = Ipv4Packet::new_unchecked(p);
    let ihl = ip.header_len();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let l4 = p.get(ihl..).unwrap_or(&[]);
    let l4_len = len.saturating_sub(ihl);
    match ip.protocol() {
        protocol::TCP if ip.frag_offset() == 0 => {
            let (Some(sport), Some(dport), Some(seq), Some(ack), Some(&off), Some(&fl)) = (
                be16(l4, 0),
                be16(l4, 2),
                be32(l4, 4),
                be32(l4, 8),
                l4.get(12),
                l4.get(13),
            ) else {
                return write!(f, "TCP {src} > {dst} truncated");
            };
            let mut flags = String::with_capacity(6);
            for (bit, c) in [
                (0x02, 'S'),
                (0x10, '.'),
                (0x08, 'P'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x20, 'U'),
            ] {
                if fl & bit != 0 {
                    flags.push(c);
                }
            }
            let data = l4_len.saturating_sub(usize::from(off >> 4) * 4);
            write!(
                f,
                "TCP {src}:{sport} > {dst}:{dport} [{flags}] seq {seq} ack {ack} len {data}"
            )
        }
        protocol::ICMP => match (l4.first(), l4.get(1)) {
            (Some(t), Some(c)) => write!(f, "ICMP {src} > {dst} type {t} code {c}"),
            _ => write!(f, "ICMP {src} > {dst} truncated"),
        },
        other => write!(f, "proto {other} {src} > {dst}"),
    }
}

impl fmt::Display for PacketSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        summarise(f, self.0, self.0.len())
    }
}

impl fmt::Display for TxSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut head = [0u8; SUMMARY_HEAD];
        let n = self.0.copy_prefix(&mut head);
        summarise(f, &head[..n], self.0.len())
    }
}

/// Traces every packet crossing the wrapped link: direction, length, what
/// the device said about it (received) or the TSO segment size (sent), and
/// a [`PacketSummary`], as `tracing::trace!` events of target
/// `ustack_link::trace`. Otherwise transparent: [`RxInfo`](crate::RxInfo)
/// passes through unchanged, and so do the caps, except that while tracing
/// is on the stack finishes checksums itself, so that what is traced is what
/// goes on the wire.
#[derive(Debug)]
pub struct Tracer<L> {
    inner: L,
    /// Trace level was enabled for the target when the tracer was made.
    tracing: bool,
}

impl<L: Link> Tracer<L> {
    /// Wraps `inner`. Whether target `ustack_link::trace` is enabled at
    /// trace level is decided here, once: a tracer made while it is not
    /// passes packets through untouched, at the cost of one test each.
    pub fn new(inner: L) -> Tracer<L> {
        let tracing = tracing::enabled!(target: "ustack_link::trace", tracing::Level::TRACE);
        Tracer { inner, tracing }
    }

    /// The wrapped link, e.g. to read its own counters or caps.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably; packets it sends or receives directly are not
    /// traced.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }
}

fn trace_rx(pkt: &[u8], info: crate::RxInfo) {
    tracing::trace!(
        target: "ustack_link::trace",
        dir = "rx",
        len = pkt.len(),
        checksum = ?info.checksum,
        gro = ?info.gro_segment,
        "{}",
        PacketSummary(pkt)
    );
}

fn trace_tx(pkt: &TxPacket<'_>) {
    tracing::trace!(
        target: "ustack_link::trace",
        dir = "tx",
        len = pkt.len(),
        tso = ?pkt.segment,
        "{}",
        TxSummary(pkt)
    );
}

impl<L: Link> Link for Tracer<L> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let got = self.inner.recv(buf)?;
        if let Some(p) = got.filter(|_| self.tracing) {
            trace_rx(&buf[..p.len], p.info);
        }
        Ok(got)
    }

    /// Traces the packet lent and what `f` sends. While tracing is off, `f`
    /// goes to the inner link as it is: wrapping it would cost two dynamic
    /// calls per packet for events nobody records.
    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        if !self.tracing {
            return self.inner.recv_with(buf, f);
        }
        self.inner.recv_with(buf, &mut |pkt, info, tx| {
            trace_rx(pkt, info);
            f(pkt, info, &mut |p| {
                trace_tx(p);
                tx(p)
            });
        })
    }

    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        if self.tracing {
            trace_tx(pkt);
        }
        self.inner.send(pkt)
    }

    /// The inner link's; while tracing, checksums are finished by the
    /// stack, so that what is traced is what goes on the wire.
    fn caps(&self) -> DeviceCaps {
        let inner = self.inner.caps();
        DeviceCaps {
            finishes_checksums: inner.finishes_checksums && !self.tracing,
            ..inner
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.poll_fd()
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        self.inner.poll_at()
    }

    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_packet() -> Vec<u8> {
        let mut p = vec![0u8; 40 + 5];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&7u32.to_be_bytes());
        p[28..32].copy_from_slice(&9u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = 0x18;
        p
    }

    #[test]
    fn summarises_tcp() {
        assert_eq!(
            PacketSummary(&tcp_packet()).to_string(),
            "TCP 10.0.0.1:1234 > 10.0.0.2:80 [.P] seq 7 ack 9 len 5"
        );
    }

    #[test]
    fn never_panics_on_any_prefix_or_garbage() {
        let p = tcp_packet();
        for n in 0..=p.len() {
            let _ = PacketSummary(&p[..n]).to_string();
        }
        let mut bad = p.clone();
        bad[0] = 0x4f; // IHL 60 bytes, longer than the packet
        assert!(PacketSummary(&bad).to_string().contains("truncated"));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (x % 80) as usize;
            let junk: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8 ^ 0x40).collect();
            let _ = PacketSummary(&junk).to_string();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }

    #[test]
    fn summarises_a_gather_list_like_the_whole_packet() {
        let p = tcp_packet();
        let parts = [&p[..3], &p[3..35], &p[35..]];
        let pkt = TxPacket::new(&parts);
        assert_eq!(TxSummary(&pkt).to_string(), PacketSummary(&p).to_string());
        // A long payload beyond the gathered head still counts.
        let payload = [0u8; 1000];
        let parts = [&p[..40], &payload[..]];
        assert!(TxSummary(&TxPacket::new(&parts))
            .to_string()
            .ends_with("len 1000"));
        assert_eq!(TxSummary(&TxPacket::new(&[])).to_string(), "empty");
    }

    #[test]
    fn offloads_pass_through() {
        let (a, mut b) = crate::pipe_tso(1500, 4, 65535);
        let untraced = Tracer::new(crate::pipe(1500, 4).0);
        assert!(
            untraced.caps().finishes_checksums,
            "no trace: the device's caps"
        );
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish();
        let mut t = tracing::subscriber::with_default(subscriber, || Tracer::new(a));
        assert_eq!(t.caps().tso_max, t.inner().caps().tso_max);
        assert_eq!(t.caps().tso_max, 65535);
        assert!(
            !t.caps().finishes_checksums,
            "what is traced is what is sent"
        );
        let sf = crate::vnet::tests::superframe(0, 20_000);
        let sf_pkt = TxPacket {
            parts: &[&sf[..]],
            segment: Some(1460),
            partial_checksum: false,
        };
        t.send(&sf_pkt).unwrap();
        b.send(&sf_pkt).unwrap();
        let mut buf = vec![0u8; 65535];
        let via_pipe = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(via_pipe.len, sf.len());
        let via_tracer = t.recv(&mut buf).unwrap().unwrap();
        assert_eq!(via_tracer, via_pipe);
        assert_eq!(via_tracer.info.checksum, crate::RxChecksum::Partial);
        assert_eq!(
            PacketSummary(&sf).to_string(),
            "TCP 10.0.0.2:80 > 10.0.0.1:4000 [.] seq 0 ack 0 len 20000"
        );
    }
}

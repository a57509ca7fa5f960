//! One `tracing` line per packet, at trace level, for whatever link it wraps.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use crate::{Link, LinkError, LinkStats};

/// A one-line description of an IPv4 packet, parsed only when displayed
/// (so a disabled trace level costs nothing) and never panicking: whatever
/// cannot be read is shown as such.
#[derive(Clone, Copy)]
pub struct PacketSummary<'a>(pub &'a [u8]);

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl fmt::Display for PacketSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        let Some(&vihl) = p.first() else {
            return f.write_str("empty");
        };
        if vihl >> 4 != 4 || p.len() < 20 {
            return write!(f, "not IPv4 (version {}, {} bytes)", vihl >> 4, p.len());
        }
        let ihl = usize::from(vihl & 0x0f) * 4;
        let proto = p[9];
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let frag = be16(p, 6).unwrap_or(0) & 0x1fff;
        let l4 = p.get(ihl..).unwrap_or(&[]);
        match proto {
            6 if frag == 0 => {
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
                let data = l4.len().saturating_sub(usize::from(off >> 4) * 4);
                write!(
                    f,
                    "TCP {src}:{sport} > {dst}:{dport} [{flags}] seq {seq} ack {ack} len {data}"
                )
            }
            1 => match (l4.first(), l4.get(1)) {
                (Some(t), Some(c)) => write!(f, "ICMP {src} > {dst} type {t} code {c}"),
                _ => write!(f, "ICMP {src} > {dst} truncated"),
            },
            other => write!(f, "proto {other} {src} > {dst}"),
        }
    }
}

/// Traces every packet crossing the wrapped link: direction, length and a
/// [`PacketSummary`], as `tracing::trace!` events of target `ustack_link::trace`.
#[derive(Debug)]
pub struct Tracer<L> {
    inner: L,
}

impl<L: Link> Tracer<L> {
    pub fn new(inner: L) -> Tracer<L> {
        Tracer { inner }
    }

    pub fn inner(&self) -> &L {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }
}

impl<L: Link> Link for Tracer<L> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        let got = self.inner.recv(buf)?;
        if let Some(n) = got {
            tracing::trace!(target: "ustack_link::trace", dir = "rx", len = n, trusted = self.inner.rx_checksum_trusted(), "{}", PacketSummary(&buf[..n]));
        }
        Ok(got)
    }

    fn send(&mut self, packet: &[u8]) -> Result<(), LinkError> {
        tracing::trace!(target: "ustack_link::trace", dir = "tx", len = packet.len(), "{}", PacketSummary(packet));
        self.inner.send(packet)
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.poll_fd()
    }

    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn rx_checksum_offloaded(&self) -> bool {
        self.inner.rx_checksum_offloaded()
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        self.inner.poll_at()
    }

    fn tso_max_size(&self) -> usize {
        self.inner.tso_max_size()
    }

    fn send_segmented(&mut self, packet: &[u8], segment_payload: u16) -> Result<(), LinkError> {
        tracing::trace!(target: "ustack_link::trace", dir = "tx", len = packet.len(), tso = segment_payload, "{}", PacketSummary(packet));
        self.inner.send_segmented(packet, segment_payload)
    }

    fn rx_checksum_trusted(&self) -> bool {
        self.inner.rx_checksum_trusted()
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
    fn offloads_pass_through() {
        let (a, mut b) = crate::pipe_tso(1500, 4, 65535);
        let mut t = Tracer::new(a);
        assert_eq!(t.tso_max_size(), 65535);
        let sf = crate::vnet::tests::superframe(0, 20_000);
        t.send_segmented(&sf, 1460).unwrap();
        b.send_segmented(&sf, 1460).unwrap();
        let mut buf = vec![0u8; 65535];
        assert_eq!(b.recv(&mut buf).unwrap(), Some(sf.len()));
        assert!(b.rx_checksum_trusted());
        assert_eq!(t.recv(&mut buf).unwrap(), Some(sf.len()));
        assert!(t.rx_checksum_trusted());
        assert_eq!(
            PacketSummary(&sf).to_string(),
            "TCP 10.0.0.2:80 > 10.0.0.1:4000 [.] seq 0 ack 0 len 20000"
        );
    }
}

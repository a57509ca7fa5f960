//! pcap capture (the classic libpcap format, through the `pcap-file` crate).
//!
//! With a TUN device's offloads on (the default), one record is one
//! super-frame as it crossed the device: up to 64 KiB, a whole burst of TCP
//! segments under one IP header, where the wire would carry MTU-sized
//! packets. The device leaves such packets' TCP checksum partial (virtio-net
//! NEEDS_CSUM: only the pseudo-header sum is in the field, the kernel or
//! the device finishes it); the record is a copy with the IP header and TCP
//! checksums completed, so Wireshark's checksum checks pass. The packet the
//! link carries is never changed. Run with `--no-offload` to capture
//! wire-sized packets, one record per segment.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter as FileWriter};
use pcap_file::DataLink;

use ustack_ipv4::checksum::{checksum, fold, pseudo_header_sum, sum};
use ustack_ipv4::{DeviceCaps, RxChecksum, RxPacket, TxPacket, MAX_PACKET_LEN};

use crate::ethernet::HEADER_LEN as ETHERNET_HEADER_LEN;
use crate::{Link, LinkError, LinkStats};

/// Largest record we write: a 64 KiB IPv4 packet in an Ethernet frame.
const SNAPLEN: u32 = (MAX_PACKET_LEN + ETHERNET_HEADER_LEN) as u32;

/// What the records of a capture start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapLinkType {
    /// LINKTYPE_RAW (101): each record is an IP packet.
    Raw,
    /// LINKTYPE_ETHERNET (1): each record is an Ethernet II frame.
    Ethernet,
}

/// An open capture file. Records are buffered and flushed on drop; a write
/// error is reported once and disables the capture, never the link.
pub struct PcapSink {
    writer: Option<FileWriter<BufWriter<File>>>,
    path: String,
    scratch: Vec<u8>,
    records: u64,
}

impl std::fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink")
            .field("path", &self.path)
            .field("records", &self.records)
            .finish()
    }
}

impl PcapSink {
    /// Creates (truncates) `path` and writes the file header.
    pub fn create(path: &Path, link_type: PcapLinkType) -> Result<PcapSink, LinkError> {
        let label = format!("pcap file {}", path.display());
        let file = File::create(path).map_err(|source| LinkError::Io {
            device: label.clone(),
            op: "create",
            source,
        })?;
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: match link_type {
                PcapLinkType::Raw => DataLink::RAW,
                PcapLinkType::Ethernet => DataLink::ETHERNET,
            },
            ..PcapHeader::default()
        };
        let writer =
            FileWriter::with_header(BufWriter::new(file), header).map_err(|e| LinkError::Io {
                device: label,
                op: "write header",
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(PcapSink {
            writer: Some(writer),
            path: path.display().to_string(),
            scratch: Vec::with_capacity(2048),
            records: 0,
        })
    }

    /// Records of packets written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes one record made of `parts` laid end to end, gathered into
    /// the sink's own buffer (capture is a debug tool; the buffer grows to
    /// the largest packet once and is reused).
    pub fn record(&mut self, parts: &[&[u8]]) {
        self.record_with(parts, false);
    }

    /// [`record`](Self::record) of an IPv4 packet whose TCP checksum the
    /// device left partial: the record's IP header and TCP checksums are
    /// completed in the sink's buffer (the packet itself is untouched).
    pub fn record_completing_checksums(&mut self, parts: &[&[u8]]) {
        self.record_with(parts, true);
    }

    fn record_with(&mut self, parts: &[&[u8]], complete: bool) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        self.scratch.clear();
        for p in parts {
            self.scratch.extend_from_slice(p);
        }
        if complete {
            complete_checksums(&mut self.scratch);
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = self.scratch.len() as u32;
        if let Err(e) = writer.write_packet(&PcapPacket::new(ts, len, &self.scratch)) {
            tracing::warn!(path = %self.path, %e, "pcap write failed; capture stopped");
            self.writer = None;
            return;
        }
        self.records += 1;
    }
}

/// Fills in the IPv4 header checksum and, for TCP, the TCP checksum over
/// the pseudo-header (RFC 9293 §3.1) of the IPv4 packet in `pkt`. Anything
/// else, or a packet too short to hold its headers, is left as it is.
fn complete_checksums(pkt: &mut [u8]) {
    const TCP: u8 = 6;
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]])).min(pkt.len());
    if ihl < 20 || total < ihl {
        return;
    }
    pkt[10..12].fill(0);
    let ip = checksum(&pkt[..ihl]);
    pkt[10..12].copy_from_slice(&ip.to_be_bytes());
    // Only a first (or only) fragment carries the TCP header.
    let frag_offset = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
    let more_frags = pkt[6] & 0x20 != 0;
    if pkt[9] != TCP || frag_offset != 0 || more_frags || total - ihl < 20 {
        return;
    }
    let src = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = std::net::Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let seg = &mut pkt[ihl..total];
    seg[16..18].fill(0);
    let pseudo = pseudo_header_sum(src, dst, TCP, seg.len() as u16);
    let tcp = !fold(sum(seg, pseudo));
    seg[16..18].copy_from_slice(&tcp.to_be_bytes());
}

impl Drop for PcapSink {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            use std::io::Write;
            if let Err(e) = w.into_writer().flush() {
                tracing::warn!(path = %self.path, %e, "pcap flush failed");
            }
        }
    }
}

/// Records every IP packet crossing the wrapped link (LINKTYPE_RAW): what
/// the link received, and what was handed to it to send. Without a sink it
/// passes packets through untouched.
#[derive(Debug)]
pub struct PcapWriter<L> {
    inner: L,
    sink: Option<PcapSink>,
}

impl<L: Link> PcapWriter<L> {
    /// Wraps `inner`, recording into `sink` (make it with [`PcapLinkType::Raw`]:
    /// records are bare IP packets); `None` records nothing, so a runtime can
    /// wrap unconditionally and pay only a branch without `--pcap`.
    pub fn new(inner: L, sink: Option<PcapSink>) -> PcapWriter<L> {
        PcapWriter { inner, sink }
    }

    /// The wrapped link, e.g. to read its own counters or caps.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably; packets it sends or receives directly are not
    /// recorded.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// The capture, if any (e.g. for its [`records`](PcapSink::records) count).
    pub fn sink(&self) -> Option<&PcapSink> {
        self.sink.as_ref()
    }
}

fn record_tx(sink: &mut PcapSink, pkt: &TxPacket<'_>) {
    if pkt.segment.is_some() {
        sink.record_completing_checksums(pkt.parts);
    } else {
        sink.record(pkt.parts);
    }
}

impl<L: Link> Link for PcapWriter<L> {
    /// Records the packet as received (a super-frame whole; a checksum the
    /// sender left partial completed in the record); the inner link's
    /// [`RxInfo`](crate::RxInfo) and the packet pass through unchanged.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<RxPacket>, LinkError> {
        let got = self.inner.recv(buf)?;
        if let (Some(p), Some(sink)) = (got, &mut self.sink) {
            let data: &[&[u8]] = &[&buf[..p.len]];
            if p.info.checksum == RxChecksum::Partial {
                sink.record_completing_checksums(data);
            } else {
                sink.record(data);
            }
        }
        Ok(got)
    }

    /// Records the packet lent and what `f` sends, as `recv` and `send` do.
    /// Without a sink, `f` goes to the inner link as it is: no wrapping
    /// closures, so an idle writer costs one test per batch.
    fn recv_with(&mut self, buf: &mut [u8], f: &mut crate::RxFn<'_>) -> Result<bool, LinkError> {
        let PcapWriter { inner, sink } = self;
        let Some(sink) = sink.as_mut() else {
            return inner.recv_with(buf, f);
        };
        inner.recv_with(buf, &mut |pkt, info, tx| {
            if info.checksum == RxChecksum::Partial {
                sink.record_completing_checksums(&[pkt]);
            } else {
                sink.record(&[pkt]);
            }
            f(pkt, info, &mut |p| {
                record_tx(sink, p);
                tx(p)
            });
        })
    }

    /// Records the packet as handed over — a super-frame as one packet, its
    /// TCP checksum (partial in the packet) completed in the record — then
    /// passes it on unchanged.
    fn send(&mut self, pkt: &TxPacket<'_>) -> Result<(), LinkError> {
        if let Some(sink) = &mut self.sink {
            record_tx(sink, pkt);
        }
        self.inner.send(pkt)
    }

    /// The inner link's; while capturing, checksums are finished by the
    /// stack, so that the capture holds them.
    fn caps(&self) -> DeviceCaps {
        let inner = self.inner.caps();
        DeviceCaps {
            finishes_checksums: inner.finishes_checksums && self.sink.is_none(),
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
    use crate::pipe;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn records_both_directions_and_reads_back() {
        let path =
            std::env::temp_dir().join(format!("ustack-pcap-unit-{}.pcap", std::process::id()));
        let (a, mut b) = pipe(1500, 8);
        let sink = PcapSink::create(&path, PcapLinkType::Raw).unwrap();
        let mut a = PcapWriter::new(a, Some(sink));
        a.send(&TxPacket::new(&[&[0x45, 1], &[2, 3]])).unwrap();
        b.send(&TxPacket::new(&[&[0x45, 9, 9]])).unwrap();
        let mut buf = [0u8; 1500];
        assert_eq!(a.recv(&mut buf).unwrap().map(|p| p.len), Some(3));
        assert_eq!(a.sink().unwrap().records(), 2);
        drop(a);
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::RAW);
        let first = r.next_packet().unwrap().unwrap();
        assert_eq!(&first.data[..], &[0x45, 1, 2, 3]);
        let second = r.next_packet().unwrap().unwrap();
        assert_eq!(&second.data[..], &[0x45, 9, 9]);
        assert!(r.next_packet().is_none());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn superframes_are_recorded_whole_and_offloads_pass_through() {
        let path =
            std::env::temp_dir().join(format!("ustack-pcap-tso-{}.pcap", std::process::id()));
        let (a, mut b) = crate::pipe_tso(1500, 4, 65535);
        let sink = PcapSink::create(&path, PcapLinkType::Raw).unwrap();
        let mut a = PcapWriter::new(a, Some(sink));
        assert_eq!(a.caps().tso_max, a.inner().caps().tso_max);
        assert_eq!(a.caps().tso_max, 65535);
        // The capture is written before the pipe would finish a checksum.
        assert!(a.inner().caps().finishes_checksums && !a.caps().finishes_checksums);
        let sf = crate::vnet::tests::superframe(12, 50_000);
        let sf_pkt = TxPacket {
            parts: &[&sf[..52], &sf[52..]],
            segment: Some(1448),
            partial_checksum: false,
        };
        a.send(&sf_pkt).unwrap();
        b.send(&sf_pkt).unwrap();
        let mut buf = vec![0u8; 65535];
        let got = a.recv(&mut buf).unwrap().unwrap();
        assert_eq!(got.len, sf.len());
        assert_eq!(got.info.checksum, crate::RxChecksum::Partial);
        assert_eq!(got.info.gro_segment, Some(1448));
        assert_eq!(b.recv(&mut buf).unwrap().map(|p| p.len), Some(sf.len()));
        drop(a);
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        for _ in 0..2 {
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!(p.orig_len as usize, sf.len());
            // The same packet, its checksums completed in the record only.
            assert_eq!(&p.data[40..], &sf[40..]);
            assert_eq!(&p.data[..10], &sf[..10]);
            assert!(crate::vnet::tests::transport_checksum_ok(&p.data));
            assert_eq!(ustack_ipv4::checksum::checksum(&p.data[..20]), 0);
            assert!(!crate::vnet::tests::transport_checksum_ok(&sf));
        }
        assert!(r.next_packet().is_none());
        let _ = std::fs::remove_file(&path);
    }
}

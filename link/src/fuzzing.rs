//! Entry points for the fuzz targets in `fuzz/` into the crate-private
//! virtio-net header code (the `vnet` module is private). Not a stable API:
//! hidden from the documentation and free to change with the internals.

use ustack_ipv4::{RxInfo, TxPacket};

use crate::vnet::{self, VnetHdr};

/// Length of the legacy virtio-net header.
pub const VNET_HDR_LEN: usize = vnet::LEN;

/// The receive path of a device with a virtio-net header in front of
/// `packet`: decodes `hdr` (checking it encodes back to the same bytes),
/// reads what it vouches for, and when it asks for a partial checksum to be
/// finished (`NEEDS_CSUM`), finishes it in `packet` from `csum_start`, as
/// the AF_PACKET backend does. `Err` says why the packet would be dropped.
pub fn vnet_rx(hdr: &[u8; VNET_HDR_LEN], packet: &mut [u8]) -> Result<RxInfo, &'static str> {
    let decoded = VnetHdr::decode(hdr);
    assert_eq!(&decoded.encode(), hdr, "virtio-net header round trip");
    let info = decoded.rx_info()?;
    if decoded.flags & vnet::F_NEEDS_CSUM != 0
        && !vnet::complete_checksum(
            packet,
            usize::from(decoded.csum_start),
            usize::from(decoded.csum_offset),
        )
    {
        return Err("checksum offsets outside the packet");
    }
    Ok(info)
}

/// Recomputes the TCP or UDP checksum of an unfragmented IPv4 packet (what
/// the fault injector does before corrupting one); false when `packet` is
/// not such a packet.
pub fn finish_transport_checksum(packet: &mut [u8]) -> bool {
    vnet::finish_transport_checksum(packet)
}

/// The virtio-net header that would make the kernel cut `packet`, a TCP/IPv4
/// super-frame, into segments of `segment_payload` bytes within `mtu`, as
/// encoded bytes; `Err` says why the frame is refused.
pub fn tcp4_tx_header(
    packet: &[u8],
    segment_payload: u16,
    mtu: usize,
) -> Result<[u8; VNET_HDR_LEN], &'static str> {
    vnet::tcp4_tx_header(&TxPacket::new(&[packet]), segment_payload, mtu).map(|h| h.encode())
}

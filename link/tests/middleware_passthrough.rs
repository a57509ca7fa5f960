//! The command-line binaries always wrap their link in the capture, fault
//! and trace middleware. With no capture file, no faults and no trace level
//! that stack must cost the device nothing it offers: the checksum it would
//! finish and the packets it lends in place.

use ustack_link::middleware::{FaultConfig, FaultInjector, PcapWriter, Tracer};
use ustack_link::{pipe, Link, TxPacket};

#[test]
fn idle_middleware_keeps_the_devices_offloads_and_lends_its_packets() {
    let (a, mut b) = pipe(1500, 4);
    let device = a.caps();
    assert!(device.finishes_checksums, "the pipe finishes checksums");
    let faults = FaultInjector::new(PcapWriter::new(a, None), FaultConfig::default())
        .expect("no faults is a valid configuration");
    let mut link = Tracer::new(faults);
    assert_eq!(link.caps(), device, "caps through idle middleware");

    let packet = [0x45u8; 60];
    b.send(&TxPacket::new(&[&packet[..]])).expect("pipe send");
    let mut buf = vec![0u8; 1500];
    let buf_range = buf.as_ptr_range();
    let mut lent = None;
    let got = link
        .recv_with(&mut buf, &mut |pkt, _, _| {
            lent = Some((pkt.len(), buf_range.contains(&pkt.as_ptr())));
        })
        .expect("recv_with");
    assert!(got, "a packet was waiting");
    let (len, copied) = lent.expect("the closure saw the packet");
    assert_eq!(len, packet.len());
    assert!(!copied, "the packet was copied into the caller's buffer");
}

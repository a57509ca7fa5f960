//! IPv4 header view and repr on arbitrary bytes, and the Internet checksum
//! against a reference implementation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack_fuzz::reference_sum;
use ustack_ipv4::{checksum, Error, Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    // The checksum: the fast paths (short, long, lanes) against the obvious
    // sum, split anywhere even, and the 20-byte special case.
    let whole = checksum::fold(checksum::sum(data, 0));
    assert_eq!(
        whole % 0xffff,
        reference_sum(data) % 0xffff,
        "checksum of {} bytes",
        data.len()
    );
    assert_eq!(checksum::checksum(data), !whole);
    if let Some(&split) = data.first() {
        let split = (usize::from(split) * 2).min(data.len() & !1);
        let chained = checksum::sum(&data[split..], checksum::sum(&data[..split], 0));
        assert_eq!(checksum::fold(chained) % 0xffff, whole % 0xffff);
    }
    if let Some(h) = data.first_chunk::<20>() {
        assert_eq!(
            checksum::sum_header(h) % 0xffff,
            checksum::fold(checksum::sum(h, 0)) % 0xffff
        );
    }

    let unchecked = Ipv4Packet::new_unchecked(data);
    let parsed = Ipv4Repr::parse(&unchecked);
    let packet = match Ipv4Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(parsed, Err(e), "parse and new_checked disagree");
            return;
        }
    };
    let _ = (
        packet.version(),
        packet.dscp_ecn(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.ttl(),
        packet.protocol(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
        packet.options(),
    );
    assert!(packet.header_len() >= 20 && packet.header_len() <= data.len());
    assert!(usize::from(packet.total_len()) <= data.len());
    let verified = packet.verify_checksum();
    let repr = match parsed {
        Ok(r) => r,
        Err(Error::BadChecksum) => {
            assert!(!verified);
            return;
        }
        Err(e) => panic!("new_checked accepted what parse rejects: {e}"),
    };
    assert!(verified);
    assert_eq!(repr.payload_len, packet.payload().len());
    assert_eq!(repr.frag_offset, packet.frag_offset());

    // Emit round trip (options are never emitted).
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    let again = Ipv4Packet::new_checked(&buf[..]).expect("emitted header checks");
    assert_eq!(Ipv4Repr::parse(&again), Ok(repr));

    // fill_checksum makes any header verify.
    let mut copy = data.to_vec();
    let mut p = Ipv4Packet::new_unchecked(&mut copy[..]);
    p.set_ttl(repr.ttl.wrapping_add(1));
    p.fill_checksum();
    assert!(p.verify_checksum());
});

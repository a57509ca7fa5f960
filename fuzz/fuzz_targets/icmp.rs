//! ICMP messages on arbitrary bytes: the view, error classification, the
//! echo reply header (its incrementally updated checksum must be right
//! whenever the request's was) and the quoted datagram of an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack_ipv4::icmp::{echo_reply_header, quoted_datagram, IcmpError, IcmpPacket, HEADER_LEN};
use ustack_ipv4::{Error, Ipv4Packet};

fn check_quote(data: &[u8]) {
    if let Some((repr, payload)) = quoted_datagram(data) {
        assert!(
            payload.len() >= 8,
            "a quote carries at least 8 payload bytes"
        );
        assert!(data.ends_with(payload));
        let ip = Ipv4Packet::new_unchecked(data);
        assert_eq!(data.len() - payload.len(), ip.header_len());
        assert_eq!(
            (repr.src_addr, repr.dst_addr, repr.protocol),
            (ip.src_addr(), ip.dst_addr(), ip.protocol())
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_quote(data);
    let packet = match IcmpPacket::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(data.len() < HEADER_LEN);
            assert!(matches!(e, Error::IcmpTruncated { .. }));
            return;
        }
    };
    let (t, code, rest) = (
        packet.msg_type(),
        packet.msg_code(),
        packet.rest_of_header(),
    );
    let _ = (packet.echo_ident(), packet.echo_seq_no(), packet.checksum());
    let err = packet.error();
    assert_eq!(err, IcmpError::from_message(t, code, rest));
    if let Some(e) = err {
        let _ = (e.is_hard(), e.to_string());
        check_quote(packet.data());
    }
    let valid = packet.verify_checksum();
    match echo_reply_header(&packet) {
        Some(header) => {
            assert_eq!((t, code), (8, 0));
            assert_eq!(header[0], 0);
            assert_eq!(
                &header[4..8],
                &data[4..8],
                "identifier and sequence number kept"
            );
            let mut reply = header.to_vec();
            reply.extend_from_slice(packet.data());
            let reply = IcmpPacket::new_checked(&reply[..]).expect("a whole header");
            assert_eq!(
                reply.verify_checksum(),
                valid,
                "reply checksum of a request whose own is {valid}"
            );
        }
        None => assert!((t, code) != (8, 0)),
    }

    // fill_checksum makes any message verify.
    let mut copy = data.to_vec();
    let mut p = IcmpPacket::new_checked(&mut copy[..]).expect("checked above");
    p.fill_checksum();
    assert!(p.verify_checksum());
});

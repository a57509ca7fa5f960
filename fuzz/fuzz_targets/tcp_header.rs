//! TCP headers on arbitrary bytes: the view, the repr with its options, the
//! checksum, and the emit round trip parse(emit(repr)) == repr for every
//! repr that parses (up to what emit documents: the ack field is written as
//! 0 without the ACK flag, and SACK blocks that do not fit 40 option bytes
//! are dropped).
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use ustack_tcp::wire::{TcpPacket, TcpRepr, WireError};
use ustack_tcp::SeqNumber;

/// What a repr looks like after emit and parse.
fn round_trip(r: &TcpRepr) -> TcpRepr {
    let hl = r.header_len();
    assert!(
        (20..=60).contains(&hl) && hl.is_multiple_of(4),
        "header length {hl}"
    );
    let mut buf = vec![0u8; hl];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]));
    let p = TcpPacket::new_checked(&buf[..]).expect("an emitted header checks");
    assert_eq!(p.header_len(), hl);
    TcpRepr::parse(&p).expect("an emitted header parses")
}

fuzz_target!(|data: &[u8]| {
    let (addrs, seg) = data.split_at(data.len().min(8));
    let mut a = [0u8; 8];
    a[..addrs.len()].copy_from_slice(addrs);
    let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
    let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);

    let packet = match TcpPacket::new_checked(seg) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(
                e,
                WireError::Truncated { .. } | WireError::BadDataOffset(_)
            ));
            assert!(TcpRepr::parse(&TcpPacket::new_unchecked(seg)).is_err());
            return;
        }
    };
    let _ = (packet.checksum(), packet.verify_checksum(src, dst));
    assert_eq!(packet.options().len() + 20, packet.header_len());
    assert_eq!(packet.payload().len(), seg.len() - packet.header_len());
    let mut copy = seg.to_vec();
    let mut p = TcpPacket::new_unchecked(&mut copy[..]);
    p.fill_checksum(src, dst);
    assert!(p.verify_checksum(src, dst));

    let Ok(repr) = TcpRepr::parse(&packet) else {
        return;
    };
    assert_eq!(repr.src_port, packet.src_port());
    assert_eq!(repr.seq, packet.seq_number());
    let once = round_trip(&repr);
    let mut expected = repr;
    if !repr.flags.ack() {
        expected.ack = SeqNumber(0);
    }
    let (kept, sent) = (once.options.sack.as_slice(), repr.options.sack.as_slice());
    assert!(
        sent.starts_with(kept),
        "SACK blocks {kept:?} not a prefix of {sent:?}"
    );
    expected.options.sack = once.options.sack;
    assert_eq!(once, expected, "round trip of {repr:?}");
    if kept.len() < sent.len() {
        // Dropped only for want of room.
        assert!(
            once.header_len() + 8 > 60,
            "SACK block dropped from a {}-byte header",
            once.header_len()
        );
    }
    // What emit writes parses back to itself exactly.
    assert_eq!(round_trip(&once), once);
});

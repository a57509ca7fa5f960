use super::*;
use proptest::prelude::*;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A SYN as Linux sends it, checksum computed independently (for 10.0.0.1 → 10.0.0.2).
const LINUX_SYN: [u8; 40] = [
    0xa4, 0xc2, 0x00, 0x50, // ports 42178 → 80
    0x3e, 0x1f, 0x5a, 0x9c, // seq
    0x00, 0x00, 0x00, 0x00, // ack
    0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
    0x54, 0xc5, 0x00, 0x00, // checksum, urgent
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x04, 0x02, 0x08, 0x0a, // SACK-permitted, timestamps ...
    0x00, 0x98, 0xa5, 0xe1, // TSval
    0x00, 0x00, 0x00, 0x00, // TSecr
    0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
];

fn syn_repr() -> TcpRepr {
    TcpRepr {
        src_port: 42178,
        dst_port: 80,
        seq: SeqNumber(0x3e1f_5a9c),
        ack: SeqNumber(0),
        flags: Flags::SYN,
        window: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x0098_a5e1, 0)),
            sack: SackBlocks::default(),
        },
    }
}

fn parse(buf: &[u8]) -> Result<TcpRepr, WireError> {
    TcpRepr::parse(&TcpPacket::new_checked(buf)?)
}

/// A 20-byte header followed by `opts` (length a multiple of 4).
fn with_options(opts: &[u8]) -> Vec<u8> {
    let mut buf = LINUX_SYN[..20].to_vec();
    buf[12] = (((20 + opts.len()) / 4) << 4) as u8;
    buf.extend_from_slice(opts);
    buf
}

#[test]
fn linux_syn_every_field() {
    let p = TcpPacket::new_checked(&LINUX_SYN[..]).unwrap();
    assert_eq!(p.src_port(), 42178);
    assert_eq!(p.dst_port(), 80);
    assert_eq!(p.seq_number(), SeqNumber(0x3e1f_5a9c));
    assert_eq!(p.ack_number(), SeqNumber(0));
    assert_eq!(p.header_len(), 40);
    assert_eq!(p.flags(), Flags::SYN);
    assert_eq!(p.window_len(), 64240);
    assert_eq!(p.checksum(), 0x54c5);
    assert_eq!(p.urgent_ptr(), 0);
    assert_eq!(p.options(), &LINUX_SYN[20..]);
    assert!(p.payload().is_empty());
    assert!(p.verify_checksum(SRC, DST));
    assert_eq!(TcpRepr::parse(&p), Ok(syn_repr()));
}

#[test]
fn emit_reproduces_linux_syn() {
    let r = syn_repr();
    assert_eq!(r.header_len(), 40);
    let mut buf = [0u8; 40];
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    r.emit(&mut p);
    assert_eq!(p.checksum(), 0);
    p.fill_checksum(SRC, DST);
    assert_eq!(buf, LINUX_SYN);
}

#[test]
fn checksum_fails_after_bit_flip() {
    let mut seg = LINUX_SYN.to_vec();
    seg.extend_from_slice(b"payload");
    let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
    p.fill_checksum(SRC, DST);
    assert!(p.verify_checksum(SRC, DST));
    assert!(!p.verify_checksum(SRC, Ipv4Addr::new(10, 0, 0, 3)));
    for bit in [0, 100, 8 * seg.len() - 1] {
        let mut bad = seg.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!TcpPacket::new_unchecked(&bad[..]).verify_checksum(SRC, DST));
    }
}

#[test]
fn malformed_options_rejected() {
    let bad = |kind, offset| Err(WireError::BadOption { kind, offset });
    // Length 0 and 1 can never be valid: the length counts kind and length bytes.
    assert_eq!(parse(&with_options(&[0x1e, 0, 1, 1])), bad(0x1e, 20));
    assert_eq!(parse(&with_options(&[1, 0x1e, 1, 1])), bad(0x1e, 21));
    // Runs past the end of the options.
    assert_eq!(parse(&with_options(&[1, 1, 0x1e, 3])), bad(0x1e, 22));
    // A kind with no room for its length byte.
    assert_eq!(parse(&with_options(&[1, 1, 1, 2])), bad(2, 23));
    // Known kinds with the wrong length.
    assert_eq!(parse(&with_options(&[2, 3, 5, 1])), bad(2, 20));
    assert_eq!(parse(&with_options(&[3, 4, 7, 1])), bad(3, 20));
    assert_eq!(parse(&with_options(&[4, 3, 0, 1])), bad(4, 20));
    assert_eq!(parse(&with_options(&[1, 1, 8, 6, 0, 0, 0, 0])), bad(8, 22));
    assert_eq!(parse(&with_options(&[1, 1, 5, 6, 0, 0, 0, 0])), bad(5, 22));
    assert_eq!(parse(&with_options(&[1, 1, 5, 2])), bad(5, 22));
}

#[test]
fn unknown_option_skipped_and_eol_ends() {
    let r = parse(&with_options(&[0x1e, 4, 0xff, 0xff, 2, 4, 0x05, 0xdc])).unwrap();
    assert_eq!(r.options.mss, Some(1500));
    // After EOL nothing is parsed, not even garbage.
    let r = parse(&with_options(&[3, 3, 2, 0, 0x1e, 0, 0, 0])).unwrap();
    assert_eq!(r.options.window_scale, Some(2));
    assert_eq!(r.options.mss, None);
}

#[test]
fn sack_blocks_parsed_in_order() {
    let mut opts = vec![1, 1, 5, 18];
    opts.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40]);
    let r = parse(&with_options(&opts)).unwrap();
    let blocks = r.options.sack.as_slice();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        (blocks[0].left, blocks[0].right),
        (SeqNumber(10), SeqNumber(20))
    );
    assert_eq!(
        (blocks[1].left, blocks[1].right),
        (SeqNumber(30), SeqNumber(40))
    );
}

#[test]
fn truncated_and_bad_data_offset() {
    assert_eq!(
        parse(&LINUX_SYN[..19]),
        Err(WireError::Truncated { len: 19, need: 20 })
    );
    assert_eq!(
        parse(&LINUX_SYN[..39]),
        Err(WireError::Truncated { len: 39, need: 40 })
    );
    let mut buf = LINUX_SYN;
    buf[12] = 0x40;
    assert_eq!(parse(&buf), Err(WireError::BadDataOffset(4)));
}

#[test]
fn sack_blocks_dropped_to_fit() {
    let mut r = syn_repr();
    r.flags = Flags::ACK;
    r.options.mss = None;
    r.options.window_scale = None;
    r.options.sack_permitted = false;
    for i in 0..4u32 {
        r.options.sack.push(SackBlock {
            left: SeqNumber(i * 100),
            right: SeqNumber(i * 100 + 50),
        });
    }
    // Timestamps (12) leave room for three blocks (4 + 24).
    assert_eq!(r.header_len(), 60);
    let mut buf = [0u8; 60];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]));
    let parsed = parse(&buf).unwrap();
    assert_eq!(
        parsed.options.sack.as_slice(),
        &r.options.sack.as_slice()[..3]
    );
}

fn arb_repr() -> impl Strategy<Value = TcpRepr> {
    let blocks = proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4);
    (
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
        (any::<u8>(), any::<u16>(), any::<u16>()),
        (
            any::<Option<u16>>(),
            any::<Option<u8>>(),
            any::<bool>(),
            any::<Option<(u32, u32)>>(),
            blocks,
        ),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack), (flags, window, urgent), (mss, ws, sackp, ts, b))| {
                let flags = Flags(flags);
                let mut sack = SackBlocks::default();
                for (l, r) in b {
                    sack.push(SackBlock {
                        left: SeqNumber(l),
                        right: SeqNumber(r),
                    });
                }
                TcpRepr {
                    src_port,
                    dst_port,
                    seq: SeqNumber(seq),
                    ack: SeqNumber(if flags.ack() { ack } else { 0 }),
                    flags,
                    window,
                    urgent,
                    options: TcpOptions {
                        mss,
                        window_scale: ws,
                        sack_permitted: sackp,
                        timestamps: ts,
                        sack,
                    },
                }
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = TcpPacket::new_checked(&buf[..]) {
            let _ = (p.options(), p.payload(), p.flags(), p.verify_checksum(SRC, DST));
            let _ = TcpRepr::parse(&p);
        }
        let _ = parse_options(&buf);
    }

    #[test]
    fn emit_parse_round_trip(r in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..16)) {
        let len = r.header_len();
        prop_assert!(len <= 60 && len % 4 == 0);
        let mut buf = vec![0u8; len + payload.len()];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum(SRC, DST);
        prop_assert!(p.verify_checksum(SRC, DST));
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(packet.payload(), &payload[..]);
        let parsed = TcpRepr::parse(&packet).unwrap();
        let mut expected = r;
        let kept = r.options.layout().sack_blocks;
        expected.options.sack = SackBlocks::default();
        for b in r.options.sack.as_slice().iter().take(kept) {
            expected.options.sack.push(*b);
        }
        if kept == usize::from(r.options.sack.len) {
            prop_assert_eq!(parsed, r);
        }
        prop_assert_eq!(parsed, expected);
    }
}

proptest! {
    /// The aligned-timestamp shortcut answers as the general parser does,
    /// for that layout and for twelve bytes that only resemble it.
    #[test]
    fn aligned_timestamps_parse_as_any_layout(
        tsval in any::<u32>(),
        tsecr in any::<u32>(),
        head in proptest::array::uniform4(prop_oneof![Just(1u8), Just(8u8), Just(10u8), any::<u8>()]),
    ) {
        let mut opts = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        opts[4..8].copy_from_slice(&tsval.to_be_bytes());
        opts[8..].copy_from_slice(&tsecr.to_be_bytes());
        let fast = parse_options(&opts).unwrap();
        prop_assert_eq!(fast, parse_options_any(&opts).unwrap());
        prop_assert_eq!(fast.timestamps, Some((tsval, tsecr)));
        opts[..4].copy_from_slice(&head);
        prop_assert_eq!(parse_options(&opts), parse_options_any(&opts));
    }
}

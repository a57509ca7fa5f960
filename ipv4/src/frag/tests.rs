use super::*;
use crate::Ipv4Packet;
use proptest::prelude::*;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const T0: Instant = Instant::from_millis(1_000);

/// A datagram header for protocol `proto`, identification `ident`.
fn header(proto: u8, ident: u16) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: SRC,
        dst_addr: DST,
        protocol: proto,
        payload_len: 0,
        ttl: 64,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
}

/// The header of a fragment of `h` at `offset` carrying `len` bytes.
fn frag_of(h: &Ipv4Repr, offset: u16, more: bool, len: usize) -> Ipv4Repr {
    Ipv4Repr {
        payload_len: len,
        more_frags: more,
        frag_offset: offset,
        ..*h
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A deterministic shuffle (Fisher-Yates over xorshift64).
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// `payload` split by [`fragment`] at `mtu`, each fragment parsed back from the wire.
fn split(h: &Ipv4Repr, payload: &[u8], mtu: usize) -> Vec<(Ipv4Repr, Vec<u8>)> {
    let mut out = Vec::new();
    fragment(h, payload, mtu, |hdr, part| {
        let mut wire = hdr.to_vec();
        wire.extend_from_slice(part);
        let packet = Ipv4Packet::new_checked(&wire[..]).expect("valid header");
        assert!(packet.verify_checksum());
        let repr = Ipv4Repr::parse(&packet).expect("parses");
        out.push((repr, packet.payload().to_vec()));
    })
    .expect("fragments");
    out
}

/// Pushes every fragment; returns the datagram the last push completed, copied.
fn push_all(
    r: &mut Reassembler,
    now: Instant,
    frags: &[(Ipv4Repr, Vec<u8>)],
) -> Option<(Ipv4Repr, Vec<u8>)> {
    let mut result = None;
    for (i, (ip, payload)) in frags.iter().enumerate() {
        let got = r
            .push(now, ip, payload)
            .map(|d| (d.repr, d.payload.to_vec()));
        assert_eq!(r.memory(), r.recount(), "running count after fragment {i}");
        assert!(r.memory() <= r.config().budget);
        if got.is_some() {
            assert!(result.is_none(), "completed twice");
            result = got;
        }
    }
    result
}

fn reassembler() -> Reassembler {
    Reassembler::new(FragConfig::default())
}

/// Fragments `len` pseudo-random bytes at `mtu`, delivers them in the order
/// `order` gives, and checks the datagram comes back byte-exact.
fn roundtrip(len: usize, mtu: usize, order: impl FnOnce(&mut Vec<(Ipv4Repr, Vec<u8>)>)) -> usize {
    let h = header(protocol::UDP, 7);
    let payload = bytes(len as u64, len);
    let mut frags = split(&h, &payload, mtu);
    let n = frags.len();
    order(&mut frags);
    let mut r = reassembler();
    let (repr, got) = push_all(&mut r, T0, &frags).expect("reassembled");
    assert_eq!(got, payload);
    assert_eq!(
        repr,
        Ipv4Repr {
            payload_len: len,
            ..h
        }
    );
    assert_eq!((r.pending(), r.stats().reassembled), (0, 1));
    n
}

#[test]
fn new_allocates_nothing() {
    let r = reassembler();
    assert_eq!((r.memory(), r.pending(), r.poll_at()), (0, 0, None));
    assert_eq!(
        (r.map.capacity(), r.slots.capacity(), r.spare.capacity()),
        (0, 0, 0)
    );
}

#[test]
fn two_fragments_in_order_and_reversed() {
    assert_eq!(roundtrip(2000, 1500, |_| {}), 2);
    assert_eq!(roundtrip(2000, 1500, |f| f.reverse()), 2);
}

#[test]
fn forty_five_fragments_in_order_reversed_shuffled() {
    // 45 fragments of 1480 bytes, the last shorter.
    let len = 44 * 1480 + 100;
    assert_eq!(roundtrip(len, 1500, |_| {}), 45);
    assert_eq!(roundtrip(len, 1500, |f| f.reverse()), 45);
    for seed in 1..5 {
        assert_eq!(roundtrip(len, 1500, |f| shuffle(f, seed)), 45);
    }
}

#[test]
fn out_of_order_falls_back_to_rotation_when_budget_is_tight() {
    let h = header(protocol::UDP, 1);
    let payload = bytes(3, 2000);
    let (first, last) = payload.split_at(1480);
    // The last fragment first: its buffer grows to 520, then to 2000 bytes
    // (capped by the known final length), with 4 fragment records.
    let held = ENTRY_OVERHEAD + 2000 + MIN_FRAGS_CAP * size_of::<Frag>();
    // Room for those but not for a second 2000-byte buffer to copy into.
    let mut r = Reassembler::new(FragConfig {
        budget: held + 100,
        ..FragConfig::default()
    });
    assert!(r.push(T0, &frag_of(&h, 1480, false, 520), last).is_none());
    let d = r
        .push(T0, &frag_of(&h, 0, true, 1480), first)
        .expect("reassembled");
    assert!(d.payload == &payload[..]);
    assert_eq!(r.memory(), held - ENTRY_OVERHEAD);
}

#[test]
fn rotate_in_place_orders_pieces() {
    // Datagram "AAAABBCCC" stored as C, A, B.
    let mut bufs = Bufs {
        data: b"CCCAAAABB".to_vec(),
        frags: vec![
            Frag {
                offset: 0,
                len: 4,
                pos: 3,
            },
            Frag {
                offset: 4,
                len: 2,
                pos: 7,
            },
            Frag {
                offset: 6,
                len: 3,
                pos: 0,
            },
        ],
    };
    rotate_in_place(&mut bufs);
    assert_eq!(bufs.data, b"AAAABBCCC");
}

#[test]
fn keyed_by_src_dst_protocol_ident() {
    let base = header(protocol::UDP, 5);
    let others = [
        Ipv4Repr {
            src_addr: DST,
            ..base
        },
        Ipv4Repr {
            dst_addr: SRC,
            ..base
        },
        Ipv4Repr {
            protocol: 200,
            ..base
        },
        Ipv4Repr { ident: 6, ..base },
    ];
    let mut r = reassembler();
    let mut all = vec![base];
    all.extend(others);
    let payloads: Vec<_> = (0..all.len()).map(|i| bytes(i as u64 + 1, 3000)).collect();
    let parts: Vec<_> = all
        .iter()
        .zip(&payloads)
        .map(|(h, p)| split(h, p, 1500))
        .collect();
    // First fragments of all five, then the rest: none may complete another.
    for p in &parts {
        assert!(r.push(T0, &p[0].0, &p[0].1).is_none());
    }
    assert_eq!(r.pending(), 5);
    for (p, payload) in parts.iter().zip(&payloads) {
        let (_, got) = push_all(&mut r, T0, &p[1..]).expect("reassembled");
        assert_eq!(&got, payload);
    }
    assert_eq!(r.pending(), 0);
}

#[test]
fn exact_duplicates_are_ignored_and_counted() {
    let h = header(protocol::UDP, 2);
    let payload = bytes(5, 4000);
    let f = split(&h, &payload, 1500);
    let mut r = reassembler();
    let dup = [
        f[0].clone(),
        f[0].clone(),
        f[1].clone(),
        f[0].clone(),
        f[1].clone(),
        f[2].clone(),
    ];
    let (_, got) = push_all(&mut r, T0, &dup).expect("reassembled");
    assert_eq!(got, payload);
    assert_eq!(r.stats().duplicates, 3);
    assert_eq!(r.stats().overlap, 0);
}

#[test]
fn overlap_discards_datagram_and_leaves_tombstone() {
    let h = header(protocol::UDP, 3);
    let mut r = reassembler();
    assert!(r.push(T0, &frag_of(&h, 0, true, 16), &[1; 16]).is_none());
    // Starts inside the first fragment: an overlap, not a duplicate.
    assert!(r.push(T0, &frag_of(&h, 8, false, 16), &[2; 16]).is_none());
    assert_eq!((r.stats().overlap, r.pending()), (1, 0));
    // The rest of the datagram cannot bring it back half-way.
    assert!(r.push(T0, &frag_of(&h, 16, false, 8), &[3; 8]).is_none());
    assert!(r.push(T0, &frag_of(&h, 0, true, 16), &[1; 16]).is_none());
    assert_eq!(r.stats().after_discard, 2);
    assert_eq!(
        r.memory(),
        ENTRY_OVERHEAD + r.spare.iter().map(Bufs::bytes).sum::<usize>()
    );
    // After the timeout the key is free again.
    let later = T0 + Duration::from_secs(30);
    assert_eq!(
        r.expire(later),
        0,
        "a tombstone is not a timed-out datagram"
    );
    assert!(r.push(later, &frag_of(&h, 0, true, 16), &[1; 16]).is_none());
    assert!(r.push(later, &frag_of(&h, 16, false, 8), &[3; 8]).is_some());
}

#[test]
fn overlap_with_following_fragment_and_same_offset() {
    let h = header(protocol::UDP, 4);
    let mut r = reassembler();
    r.push(T0, &frag_of(&h, 16, true, 16), &[1; 16]);
    // Ends inside the fragment after it.
    r.push(T0, &frag_of(&h, 8, true, 16), &[2; 16]);
    assert_eq!(r.stats().overlap, 1);
    let h = header(protocol::UDP, 5);
    r.push(T0, &frag_of(&h, 16, true, 16), &[1; 16]);
    // Same offset, other length.
    r.push(T0, &frag_of(&h, 16, true, 24), &[2; 24]);
    assert_eq!(
        (r.stats().overlap, r.stats().duplicates, r.pending()),
        (2, 0, 0)
    );
}

#[test]
fn ping_of_death_is_discarded() {
    let h = header(protocol::ICMP, 6);
    let mut r = reassembler();
    r.push(T0, &frag_of(&h, 0, true, 1480), &[0; 1480]);
    // Ends at 65512 + 8 = 65520 > 65515.
    assert!(r.push(T0, &frag_of(&h, 65512, false, 8), &[0; 8]).is_none());
    assert_eq!((r.stats().too_long, r.pending()), (1, 0));
    // Ending exactly at 65515 is fine.
    let h = header(protocol::ICMP, 7);
    r.push(T0, &frag_of(&h, 65512, false, 3), &[0; 3]);
    assert_eq!((r.stats().too_long, r.pending()), (1, 1));
}

#[test]
fn tiny_first_fragments_are_discarded() {
    let mut r = reassembler();
    for (proto, min) in [(protocol::TCP, 20), (protocol::UDP, 8), (protocol::ICMP, 8)] {
        let h = header(proto, 8);
        let short = min - 8;
        r.push(T0, &frag_of(&h, 0, true, short), &vec![0; short]);
    }
    assert_eq!((r.stats().first_too_short, r.pending()), (3, 0));
    // Other protocols have no minimum; TCP's 24-byte first fragment is fine.
    r.push(T0, &frag_of(&header(47, 8), 0, true, 8), &[0; 8]);
    r.push(
        T0,
        &frag_of(&header(protocol::TCP, 9), 0, true, 24),
        &[0; 24],
    );
    assert_eq!((r.stats().first_too_short, r.pending()), (3, 2));
}

#[test]
fn tcp_fragment_at_offset_8_is_discarded() {
    let mut r = reassembler();
    let h = header(protocol::TCP, 10);
    r.push(T0, &frag_of(&h, 0, true, 24), &[0; 24]);
    r.push(T0, &frag_of(&h, 8, true, 8), &[0; 8]);
    assert_eq!((r.stats().overlap, r.pending()), (1, 0));
    // For UDP, offset 8 is an ordinary fragment.
    let h = header(protocol::UDP, 10);
    r.push(T0, &frag_of(&h, 0, true, 8), &[0; 8]);
    assert!(r.push(T0, &frag_of(&h, 8, false, 8), &[0; 8]).is_some());
}

#[test]
fn non_final_fragment_not_multiple_of_8() {
    let mut r = reassembler();
    let h = header(protocol::UDP, 11);
    r.push(T0, &frag_of(&h, 0, true, 12), &[0; 12]);
    r.push(T0, &frag_of(&h, 16, true, 0), &[]);
    // payload_len disagreeing with the payload.
    r.push(T0, &frag_of(&h, 16, true, 16), &[0; 8]);
    assert_eq!((r.stats().bad_length, r.pending()), (3, 0));
}

#[test]
fn inconsistent_final_lengths_discard() {
    let mut r = reassembler();
    let h = header(protocol::UDP, 12);
    r.push(T0, &frag_of(&h, 16, false, 8), &[0; 8]);
    r.push(T0, &frag_of(&h, 16, false, 16), &[0; 16]);
    assert_eq!((r.stats().bad_length, r.pending()), (1, 0));
    // Data beyond a known final length.
    let h = header(protocol::UDP, 13);
    r.push(T0, &frag_of(&h, 16, false, 8), &[0; 8]);
    r.push(T0, &frag_of(&h, 24, true, 8), &[0; 8]);
    // A final fragment before data already received.
    let h = header(protocol::UDP, 14);
    r.push(T0, &frag_of(&h, 32, true, 8), &[0; 8]);
    r.push(T0, &frag_of(&h, 16, false, 8), &[0; 8]);
    assert_eq!((r.stats().bad_length, r.pending()), (3, 0));
}

#[test]
fn too_many_fragments_discard() {
    let mut r = Reassembler::new(FragConfig {
        max_fragments: 4,
        ..FragConfig::default()
    });
    let h = header(protocol::UDP, 15);
    let frags = split(&h, &bytes(1, 400), 68);
    assert!(frags.len() > 4);
    assert!(push_all(&mut r, T0, &frags).is_none());
    assert_eq!((r.stats().too_many_fragments, r.pending()), (1, 0));
    // A 4-fragment datagram still fits.
    let h = header(protocol::UDP, 16);
    assert!(push_all(&mut r, T0, &split(&h, &bytes(1, 192), 68)).is_some());
}

#[test]
fn not_a_fragment_is_counted() {
    let mut r = reassembler();
    assert!(r
        .push(
            T0,
            &frag_of(&header(protocol::UDP, 1), 0, false, 8),
            &[0; 8]
        )
        .is_none());
    assert_eq!((r.stats().not_fragment, r.pending()), (1, 0));
}

#[test]
fn timeout_via_expire_and_poll_at() {
    let mut r = reassembler();
    let a = header(protocol::UDP, 20);
    let b = header(protocol::UDP, 21);
    r.push(T0, &frag_of(&a, 0, true, 8), &[0; 8]);
    let t1 = T0 + Duration::from_secs(10);
    r.push(t1, &frag_of(&b, 0, true, 8), &[0; 8]);
    // A later fragment does not extend the deadline.
    r.push(t1, &frag_of(&a, 8, true, 8), &[0; 8]);
    let deadline = T0 + Duration::from_secs(30);
    assert_eq!(r.poll_at(), Some(deadline));
    assert_eq!(
        r.expire(Instant::from_micros(deadline.total_micros() - 1)),
        0
    );
    assert_eq!(r.expire(deadline), 1);
    assert_eq!(r.poll_at(), Some(t1 + Duration::from_secs(30)));
    assert_eq!((r.pending(), r.stats().timed_out), (1, 1));
    // `push` expires lazily too: b is gone when this arrives.
    r.push(
        t1 + Duration::from_secs(31),
        &frag_of(&a, 0, true, 8),
        &[0; 8],
    );
    assert_eq!((r.pending(), r.stats().timed_out), (1, 2));
    assert_eq!(r.memory(), r.recount());
}

#[test]
fn budget_evicts_oldest_first() {
    let budget = 16 * 1024;
    let mut r = Reassembler::new(FragConfig {
        budget,
        ..FragConfig::default()
    });
    let payloads: Vec<_> = (0..20).map(|i| bytes(i + 1, 2960)).collect();
    let parts: Vec<_> = (0..20u16)
        .map(|i| {
            split(
                &header(protocol::UDP, 100 + i),
                &payloads[usize::from(i)],
                1500,
            )
        })
        .collect();
    let mut first_evicted_at = None;
    for (i, p) in parts.iter().enumerate() {
        r.push(T0, &p[0].0, &p[0].1);
        assert!(r.memory() <= budget);
        if first_evicted_at.is_none() && r.stats().evicted > 0 {
            first_evicted_at = Some(i);
        }
    }
    let n = first_evicted_at.expect("the budget was hit");
    let evicted = r.stats().evicted as usize;
    assert_eq!(r.pending(), 20 - evicted);
    // The newest complete...
    let last = parts.last().expect("20 datagrams");
    let got = push_all(&mut r, T0, &last[1..]).map(|d| d.1);
    assert!(got.as_ref() == payloads.last(), "newest reassembles");
    // ...and the oldest are gone: their last fragment cannot complete them.
    for p in &parts[..evicted] {
        assert!(push_all(&mut r, T0, &p[1..]).is_none());
    }
    assert!(n > 1 && evicted < 20);
}

#[test]
fn fragment_that_cannot_fit_is_over_budget() {
    let mut r = Reassembler::new(FragConfig {
        budget: 2048,
        ..FragConfig::default()
    });
    let h = header(protocol::UDP, 30);
    r.push(T0, &frag_of(&h, 0, true, 8), &[0; 8]);
    // Alone it could not fit: nothing is evicted for it.
    r.push(
        T0,
        &frag_of(&header(protocol::UDP, 31), 0, true, 2048),
        &[0; 2048],
    );
    assert_eq!(
        (r.stats().over_budget, r.stats().evicted, r.pending()),
        (1, 0, 1)
    );
    // Grows the first datagram beyond the budget: dropped, the datagram kept.
    r.push(T0, &frag_of(&h, 8, true, 1800), &[0; 1800]);
    assert_eq!((r.stats().over_budget, r.pending()), (2, 1));
    assert!(r.memory() <= 2048);
    assert!(r.push(T0, &frag_of(&h, 8, false, 8), &[0; 8]).is_some());
}

#[test]
fn tiny_fragment_at_high_offset_is_cheap() {
    let mut r = reassembler();
    r.push(
        T0,
        &frag_of(&header(protocol::UDP, 40), 64000, true, 8),
        &[0; 8],
    );
    assert!(r.memory() < 1024, "{} bytes", r.memory());
}

#[test]
fn buffers_are_reused_in_steady_state() {
    let mut r = reassembler();
    let payload = bytes(2, 8000);
    let frags = split(&header(protocol::UDP, 50), &payload, 1500);
    push_all(&mut r, T0, &frags).expect("reassembled");
    r.expire(T0);
    let settled = r.memory();
    let data_ptr = r.spare.first().map(|b| b.data.as_ptr());
    for ident in 51..60 {
        let frags = split(&header(protocol::UDP, ident), &payload, 1500);
        push_all(&mut r, T0, &frags).expect("reassembled");
        r.expire(T0);
        assert_eq!(r.memory(), settled);
    }
    assert_eq!(r.spare.first().map(|b| b.data.as_ptr()), data_ptr);
}

#[test]
fn flood_of_tiny_fragments_evicts_and_legit_datagram_still_reassembles() {
    let budget = 64 * 1024;
    let mut r = Reassembler::new(FragConfig {
        budget,
        ..FragConfig::default()
    });
    // 5000 one-fragment datagrams from spoofed sources, each a hole-y 8 bytes.
    for i in 0..5000u32 {
        let src = Ipv4Addr::from(0x0b00_0000 + i);
        let ip = Ipv4Repr {
            src_addr: src,
            ..frag_of(&header(protocol::UDP, 1), 800, true, 8)
        };
        assert!(r.push(T0, &ip, &[0; 8]).is_none());
        assert!(r.memory() <= budget);
    }
    assert!(r.stats().evicted > 0);
    assert_eq!(r.memory(), r.recount());
    let payload = bytes(8, 30_000);
    let frags = split(&header(protocol::UDP, 2), &payload, 1500);
    let (_, got) = push_all(&mut r, T0, &frags).expect("reassembled");
    assert!(got == payload);
}

#[test]
fn fragment_rejects_bad_arguments() {
    let h = header(protocol::UDP, 1);
    let noop = |_: &[u8; 20], _: &[u8]| {};
    assert_eq!(
        fragment(&h, &[0; 100], 67, noop),
        Err(FragError::MtuTooSmall(67))
    );
    let df = Ipv4Repr {
        dont_frag: true,
        ..h
    };
    assert_eq!(
        fragment(&df, &[0; 100], 68, noop),
        Err(FragError::DontFragment)
    );
    assert_eq!(
        fragment(&df, &[0; 48], 68, noop),
        Ok(1),
        "DF is fine when it fits"
    );
    assert_eq!(
        fragment(&h, &vec![0; 65516], 1500, noop),
        Err(FragError::PayloadTooLong(65516))
    );
}

#[test]
fn fragment_output_fits_and_is_valid() {
    let h = header(protocol::TCP, 77);
    for (len, mtu) in [
        (0, 68),
        (48, 68),
        (49, 68),
        (1480, 1500),
        (1481, 1500),
        (65515, 576),
        (65515, 9000),
        (65515, 70000),
    ] {
        let payload = bytes(len as u64 + 3, len);
        let frags = split(&h, &payload, mtu);
        let mut expect = 0;
        for (i, (ip, part)) in frags.iter().enumerate() {
            let last = i + 1 == frags.len();
            assert!(Ipv4Repr::HEADER_LEN + part.len() <= mtu);
            assert_eq!(usize::from(ip.frag_offset), expect);
            assert_eq!(ip.more_frags, !last);
            assert!(last || part.len().is_multiple_of(8));
            assert_eq!(
                (ip.ident, ip.protocol, ip.src_addr, ip.dst_addr),
                (77, protocol::TCP, SRC, DST)
            );
            expect += part.len();
        }
        assert_eq!(expect, len);
        assert_eq!(
            frags.len(),
            if len + 20 <= mtu {
                1
            } else {
                len.div_ceil((mtu.min(65535) - 20) & !7)
            }
        );
        if frags.len() > 1 {
            let mut r = reassembler();
            let (_, got) = push_all(&mut r, T0, &frags).expect("reassembled");
            assert_eq!(got, payload);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_datagram_any_mtu_any_order(
        len in 1usize..=65515,
        mtu in 68usize..=9000,
        seed in any::<u64>(),
        dups in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let h = header(protocol::UDP, 9);
        let payload = bytes(seed, len);
        let mut frags = split(&h, &payload, mtu);
        prop_assume!(frags.len() > 1);
        for d in dups {
            let copy = frags[d % frags.len()].clone();
            frags.push(copy);
        }
        shuffle(&mut frags, seed);
        // At mtu 68 a 65515-byte datagram takes 1365 fragments.
        let mut r = Reassembler::new(FragConfig { max_fragments: 2048, ..FragConfig::default() });
        // Duplicates arriving after completion may start and complete it again.
        let mut completions = 0;
        for (ip, part) in &frags {
            if let Some(d) = r.push(T0, ip, part) {
                prop_assert!(d.payload == &payload[..]);
                completions += 1;
            }
        }
        prop_assert!(completions >= 1);
        prop_assert_eq!(r.memory(), r.recount());
    }

    #[test]
    fn flood_stays_in_budget_and_legit_datagram_survives(
        flood in proptest::collection::vec(
            (0u16..6, 0u16..8192, 0usize..1600, any::<bool>(), 0usize..4, 0u64..40),
            1..400,
        ),
    ) {
        let budget = 64 * 1024;
        let mut r = Reassembler::new(FragConfig { budget, ..FragConfig::default() });
        let protos = [protocol::TCP, protocol::UDP, protocol::ICMP, 47];
        let data = [0xa5u8; 1600];
        let mut now = T0;
        for (ident, units, len, more, proto, dt) in flood {
            now += Duration::from_secs(dt / 8);
            let ip = frag_of(&header(protos[proto], ident), units.wrapping_mul(8), more, len);
            let _ = r.push(now, &ip, &data[..len]);
            prop_assert!(r.memory() <= budget);
            prop_assert_eq!(r.memory(), r.recount());
        }
        let legit = Ipv4Repr { src_addr: Ipv4Addr::new(10, 9, 9, 9), ..header(protocol::UDP, 1) };
        let payload = bytes(77, 20_000);
        let (_, got) = push_all(&mut r, now, &split(&legit, &payload, 1500)).expect("reassembled");
        prop_assert_eq!(got, payload);
    }
}

//! A `Reassembler` fed a structured sequence of fragments of a few
//! datagrams, with time advancing. Invariants: `memory()` within the budget
//! after every call; a returned datagram's length matches its header, it is
//! whole (not a fragment), within 65515 bytes, and its bytes are the ones
//! its fragments carried (every fragment carries the pattern of its
//! datagram at its offset, so the result is fully predictable).
#![no_main]

use core::time::Duration;
use std::net::Ipv4Addr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_ipv4::{FragConfig, Instant, Ipv4Repr, Reassembler};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Budget in 256-byte units (0 .. 16 MiB).
    budget: u16,
    timeout_ms: u16,
    max_fragments: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Fragment {
        /// Which of a few datagrams (source, protocol and ident from it).
        datagram: u8,
        /// In 8-byte units, as on the wire.
        offset: u16,
        len: u16,
        more: bool,
        /// Tell the reassembler a payload length other than the bytes given.
        wrong_len: Option<u8>,
    },
    Advance(u16),
    Expire,
}

fn pattern(datagram: u8, at: usize) -> u8 {
    (at as u8).wrapping_mul(31) ^ (at >> 8) as u8 ^ datagram
}

fuzz_target!(|input: Input| {
    let cfg = FragConfig {
        budget: usize::from(input.budget) * 256,
        timeout: Duration::from_millis(u64::from(input.timeout_ms)),
        max_fragments: usize::from(input.max_fragments),
    };
    let budget = cfg.budget;
    let mut r = Reassembler::new(cfg);
    let mut now = Instant::from_millis(1);
    let mut payload = Vec::new();
    for op in input.ops {
        match op {
            Op::Fragment {
                datagram,
                offset,
                len,
                more,
                wrong_len,
            } => {
                let d = datagram % 8;
                let offset = usize::from(offset & 0x1fff) * 8;
                let len = usize::from(len) % 3000;
                payload.clear();
                payload.extend((offset..offset + len).map(|at| pattern(d, at)));
                let ip = Ipv4Repr {
                    src_addr: Ipv4Addr::new(10, 0, 0, 1 + (d & 1)),
                    dst_addr: Ipv4Addr::new(10, 0, 0, 9),
                    // TCP, ICMP, UDP and an unknown protocol.
                    protocol: [6, 1, 17, 99][usize::from(d >> 1) & 3],
                    payload_len: wrong_len.map_or(len, usize::from),
                    ttl: 64,
                    ident: u16::from(d) * 0x0101,
                    dont_frag: false,
                    more_frags: more,
                    frag_offset: offset as u16,
                    dscp_ecn: 0,
                };
                if let Some(dg) = r.push(now, &ip, &payload) {
                    assert_eq!(
                        dg.repr.payload_len,
                        dg.payload.len(),
                        "length of a reassembled datagram"
                    );
                    assert!(!dg.repr.is_fragment());
                    assert!(dg.payload.len() <= 65515);
                    assert_eq!(
                        (dg.repr.src_addr, dg.repr.ident, dg.repr.protocol),
                        (ip.src_addr, ip.ident, ip.protocol)
                    );
                    for (at, &b) in dg.payload.iter().enumerate() {
                        assert_eq!(b, pattern(d, at), "byte {at} of a reassembled datagram");
                    }
                }
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            Op::Expire => {
                r.expire(now);
            }
        }
        assert!(
            r.memory() <= budget,
            "memory {} over budget {budget}",
            r.memory()
        );
    }
    r.expire(now + Duration::from_secs(3600));
    assert_eq!(r.pending(), 0, "everything expires");
    assert!(r.memory() <= budget);
});

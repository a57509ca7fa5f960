//! The deterministic body of `GET /bytes/N`.
//!
//! Byte `i` is `(i % 251) as u8`. 251 is prime and not a power of two, so the
//! pattern does not line up with segment, page or ring sizes and a misplaced
//! or repeated chunk shows up in a checksum.

const PERIOD: u64 = 251;

/// One full period of the pattern, so filling is a series of `memcpy`s.
const PERIOD_BYTES: [u8; PERIOD as usize] = {
    let mut table = [0u8; PERIOD as usize];
    let mut i = 0;
    while i < table.len() {
        table[i] = i as u8;
        i += 1;
    }
    table
};

/// Byte `i` (counting from 0) of every `/bytes/N` response body.
pub fn body_byte(i: u64) -> u8 {
    (i % PERIOD) as u8
}

/// Fills `out` with body bytes `offset .. offset + out.len()`.
pub fn fill_body(offset: u64, out: &mut [u8]) {
    let mut phase = (offset % PERIOD) as usize;
    let mut rest = out;
    while !rest.is_empty() {
        let src = &PERIOD_BYTES[phase..];
        let n = src.len().min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(&src[..n]);
        rest = tail;
        phase = 0;
    }
}

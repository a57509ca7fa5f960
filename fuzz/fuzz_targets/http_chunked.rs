//! The chunked-body decoder fed arbitrary bytes in arbitrary splits: the
//! result (bytes consumed, chunk-data bytes, end of body, or the error) is
//! the same as when the whole input is fed at once.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_http::fuzzing::ChunkedDecoder;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    limit: u8,
    splits: &'a [u8],
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let limit = usize::from(input.limit) * 4;
    let body = input.body;
    let whole = ChunkedDecoder::new(limit).feed(body);
    if let Ok((consumed, data, done)) = whole {
        assert!(consumed <= body.len() && data <= consumed as u64);
        assert!(
            done || consumed == body.len(),
            "stopped early without ending"
        );
    }

    let mut d = ChunkedDecoder::new(limit);
    let (mut consumed, mut data, mut done) = (0usize, 0u64, false);
    let mut splits = input
        .splits
        .iter()
        .map(|&s| usize::from(s))
        .chain(std::iter::repeat(usize::MAX));
    let split = loop {
        let rest = &body[consumed..];
        let n = splits.next().unwrap_or(usize::MAX).min(rest.len());
        match d.feed(&rest[..n]) {
            Ok((c, dd, fin)) => {
                assert!(c <= n);
                consumed += c;
                data += dd;
                done = fin;
                if fin || consumed == body.len() {
                    break Ok((consumed, data, done));
                }
                assert_eq!(c, n, "consumed only part of its input without ending");
            }
            Err(e) => break Err(e),
        }
    };
    assert_eq!(split, whole, "split feeding disagrees with whole feeding");
    let _ = done;
});

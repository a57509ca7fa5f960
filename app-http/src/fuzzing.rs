//! Entry points for the fuzz targets in `fuzz/` into the crate-private
//! request-head parser and chunked decoder. Not a stable API: hidden from
//! the documentation and free to change with the internals.

use crate::error::HttpError;
use crate::request::{self, Parsed};

/// Runs the request-head parser (httparse and the interpretation of its
/// fields) over `buf` with at most `max_headers` header slots. `Ok(None)`:
/// more bytes are needed; `Ok(Some((len, accepted)))`: a complete head of
/// `len` bytes, `accepted` unless the responder refuses it; `Err`: the
/// bytes cannot start a valid head.
pub fn parse_head(buf: &[u8], max_headers: usize) -> Result<Option<(usize, bool)>, HttpError> {
    match request::parse_head(buf, max_headers) {
        Parsed::Partial => Ok(None),
        Parsed::Complete(len, head) => Ok(Some((len, head.is_ok()))),
        Parsed::Invalid(e) => Err(e),
    }
}

/// The streaming `chunked` decoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder(crate::chunked::ChunkedDecoder);

impl ChunkedDecoder {
    /// A decoder whose size lines and trailer section are bounded by `limit`.
    pub fn new(limit: usize) -> ChunkedDecoder {
        ChunkedDecoder(crate::chunked::ChunkedDecoder::new(limit))
    }

    /// Feeds `input`; returns the bytes consumed, how many of them were
    /// chunk data, and whether the body ended.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, u64, bool), HttpError> {
        self.0.feed(input).map(|p| (p.consumed, p.data, p.done))
    }
}

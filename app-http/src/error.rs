//! Why a request was refused.

use thiserror::Error;

/// A request the responder refused; [`HttpError::status`] is the status code it
/// was answered with. Every variant closes the connection after the response,
/// because the framing of anything that follows cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HttpError {
    /// `httparse` rejected the request line or a header field.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The head did not end within the configured limit.
    #[error("request head longer than {limit} bytes")]
    HeadTooLarge {
        /// `HttpConfig::max_header_bytes`.
        limit: usize,
    },
    /// More header fields than the configured limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The effective `HttpConfig::max_headers`.
        limit: usize,
    },
    /// An HTTP/1.1 request without a `Host` field (RFC 9112 §3.2).
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// More than one `Host` field line in a request (RFC 9112 §3.2).
    #[error("more than one Host field")]
    MultipleHost,
    /// A `Host` value that is not `uri-host [":" port]` (RFC 9112 §3.2,
    /// RFC 9110 §7.2).
    #[error("invalid Host field value")]
    InvalidHost,
    /// A `Content-Length` value that is not a decimal number fitting in 64 bits.
    #[error("Content-Length is not a decimal number of at most 64 bits")]
    InvalidContentLength,
    /// Several `Content-Length` values that disagree (RFC 9112 §6.3 rule 5).
    #[error("conflicting Content-Length values {first} and {other}")]
    ConflictingContentLength {
        /// The first value seen.
        first: u64,
        /// A later, different value.
        other: u64,
    },
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1 allows rejecting it:
    /// such a message is a request-smuggling attempt more often than not).
    #[error("both Content-Length and Transfer-Encoding present")]
    LengthAndTransferEncoding,
    /// `Transfer-Encoding` whose final coding is not `chunked`, or `chunked` applied
    /// twice (RFC 9112 §6.3 rule 4).
    #[error("Transfer-Encoding does not end in exactly one chunked coding")]
    ChunkedNotFinal,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1: 501).
    #[error("unsupported transfer coding (only chunked is implemented)")]
    UnsupportedTransferCoding,
    /// `/bytes/N` with `N` not a decimal number or above the limit.
    #[error("byte count is not a decimal number up to {limit}")]
    InvalidByteCount {
        /// `MAX_BYTES_LEN`.
        limit: u64,
    },
    /// A chunked request body that breaks RFC 9112 §7.1 syntax.
    #[error("malformed chunked body: {0}")]
    Chunked(ChunkError),
    /// The trailer section of a chunked body exceeded the head size limit.
    #[error("chunked trailer section longer than {limit} bytes")]
    TrailersTooLarge {
        /// `HttpConfig::max_header_bytes`.
        limit: usize,
    },
}

/// What was wrong in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// A chunk-size line did not start with a hex digit.
    #[error("chunk size missing")]
    MissingSize,
    /// A chunk size does not fit in 64 bits.
    #[error("chunk size overflows 64 bits")]
    SizeOverflow,
    /// An unexpected byte where CR or LF was required; bare LF is refused.
    #[error("expected CRLF, got byte {0:#04x}")]
    ExpectedCrlf(u8),
    /// A byte not allowed in a chunk-size line.
    #[error("invalid byte {0:#04x} in chunk-size line")]
    InvalidSizeByte(u8),
    /// A chunk-size line (extensions included) longer than allowed.
    #[error("chunk-size line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
}

impl HttpError {
    /// The status code this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::UnsupportedTransferCoding => 501,
            HttpError::Malformed(_)
            | HttpError::MissingHost
            | HttpError::MultipleHost
            | HttpError::InvalidHost
            | HttpError::InvalidContentLength
            | HttpError::ConflictingContentLength { .. }
            | HttpError::LengthAndTransferEncoding
            | HttpError::ChunkedNotFinal
            | HttpError::TransferEncodingInHttp10
            | HttpError::InvalidByteCount { .. }
            | HttpError::Chunked(_)
            | HttpError::TrailersTooLarge { .. } => 400,
        }
    }
}

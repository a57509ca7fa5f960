//! Turning a request head into the few facts the responder acts on.
//!
//! `httparse` does the syntax (RFC 9112 §3, §5); this module reads the
//! resulting method, target and header fields without copying or allocating.

use std::mem::MaybeUninit;

use crate::error::HttpError;
use crate::{MAX_BYTES_LEN, MAX_HEADERS_LIMIT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    /// Any other method token; the responder answers 405 or 404.
    Other,
}

/// The resource a request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Root,
    Bytes(u64),
    Sink,
    NotFound,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: Method,
    pub resource: Resource,
    pub http10: bool,
    /// Whether the connection persists after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    pub framing: Framing,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1 says to
    /// ignore it on HTTP/1.0).
    pub expect_continue: bool,
}

/// A complete head the responder refuses; `head_only` if it was a HEAD request,
/// whose answer must carry no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub error: HttpError,
    pub head_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A head of this many bytes, with what it asks for or why it is refused.
    Complete(usize, Result<RequestHead, Refused>),
    /// The bytes cannot start a valid head.
    Invalid(HttpError),
}

pub(crate) fn parse_head(buf: &[u8], max_headers: usize) -> Parsed {
    let limit = max_headers.min(MAX_HEADERS_LIMIT);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut slots[..limit]) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(len)) => Parsed::Complete(len, interpret(&req)),
        Err(httparse::Error::TooManyHeaders) => {
            Parsed::Invalid(HttpError::TooManyHeaders { limit })
        }
        Err(e) => Parsed::Invalid(HttpError::Malformed(e)),
    }
}

fn interpret(req: &httparse::Request<'_, '_>) -> Result<RequestHead, Refused> {
    // RFC 9110 §9.1: method names are case-sensitive.
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let refuse = |error| Refused {
        error,
        head_only: method == Method::Head,
    };
    // httparse only completes HTTP/1.0 and HTTP/1.1 heads.
    let http10 = req.version == Some(0);

    let mut content_length: Option<u64> = None;
    let mut te = TransferCodings::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0u32;
    for header in req.headers.iter() {
        match Field::of(header.name) {
            Field::ContentLength => {
                let mut elements = 0;
                for element in list_elements(header.value) {
                    elements += 1;
                    let value = parse_decimal(element)
                        .ok_or(HttpError::InvalidContentLength)
                        .map_err(refuse)?;
                    match content_length {
                        Some(first) if first != value => {
                            return Err(refuse(HttpError::ConflictingContentLength {
                                first,
                                other: value,
                            }))
                        }
                        _ => content_length = Some(value),
                    }
                }
                if elements == 0 {
                    return Err(refuse(HttpError::InvalidContentLength));
                }
            }
            Field::TransferEncoding => {
                te.present = true;
                for coding in list_elements(header.value) {
                    te.add(coding);
                }
            }
            Field::Connection => {
                for option in list_elements(header.value) {
                    conn_close |= option.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Field::Expect => {
                expect_continue |= trim_ows(header.value).eq_ignore_ascii_case(b"100-continue");
            }
            Field::Host => {
                hosts += 1;
                if !valid_host(trim_ows(header.value)) {
                    return Err(refuse(HttpError::InvalidHost));
                }
            }
            Field::Other => {}
        }
    }

    // RFC 9112 §3.2: exactly one Host on HTTP/1.1, at most one on HTTP/1.0.
    if hosts > 1 {
        return Err(refuse(HttpError::MultipleHost));
    }
    if hosts == 0 && !http10 {
        return Err(refuse(HttpError::MissingHost));
    }

    // RFC 9112 §6.1 and §6.3 rules 3-6.
    let framing = if te.present {
        if http10 {
            return Err(refuse(HttpError::TransferEncodingInHttp10));
        }
        if content_length.is_some() {
            return Err(refuse(HttpError::LengthAndTransferEncoding));
        }
        if !te.last_is_chunked || te.chunked > 1 {
            return Err(refuse(HttpError::ChunkedNotFinal));
        }
        if te.other {
            return Err(refuse(HttpError::UnsupportedTransferCoding));
        }
        Framing::Chunked
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };

    let resource = route(req.path.unwrap_or("")).map_err(refuse)?;
    // RFC 9112 §9.3: "close" always wins; HTTP/1.0 persists only on request.
    let keep_alive = !conn_close && (!http10 || conn_keep_alive);
    Ok(RequestHead {
        method,
        resource,
        http10,
        keep_alive,
        framing,
        expect_continue: expect_continue && !http10,
    })
}

/// The header fields the responder reads; the rest it passes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Host,
    Other,
}

impl Field {
    /// Field names are case-insensitive (RFC 9110 §5.1). The length picks the
    /// one candidate, so most names a client sends (`User-Agent`, `Accept`)
    /// cost one comparison of lengths.
    fn of(name: &str) -> Field {
        let (field, lower) = match name.len() {
            4 => (Field::Host, "host"),
            6 => (Field::Expect, "expect"),
            10 => (Field::Connection, "connection"),
            14 => (Field::ContentLength, "content-length"),
            17 => (Field::TransferEncoding, "transfer-encoding"),
            _ => return Field::Other,
        };
        // `name` is a token (httparse checked it, RFC 9110 §5.6.2) and
        // `lower` only lowercase letters and '-': among token bytes, only a
        // letter in either case sets to `lower`'s byte with bit 0x20.
        let same = name.bytes().zip(lower.bytes()).all(|(a, b)| a | 0x20 == b);
        if same {
            field
        } else {
            Field::Other
        }
    }
}

#[derive(Default)]
struct TransferCodings {
    present: bool,
    chunked: u32,
    last_is_chunked: bool,
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, coding: &[u8]) {
        let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        if is_chunked {
            self.chunked += 1;
        } else {
            self.other = true;
        }
        self.last_is_chunked = is_chunked;
    }
}

/// Maps a request-target (origin-form or absolute-form, RFC 9112 §3.2) to a
/// resource; the query is ignored.
fn route(target: &str) -> Result<Resource, HttpError> {
    let path = origin_path(target);
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    Ok(match path {
        "/" => Resource::Root,
        "/sink" => Resource::Sink,
        _ => match path.strip_prefix("/bytes/") {
            Some(count) => {
                let invalid = HttpError::InvalidByteCount {
                    limit: MAX_BYTES_LEN,
                };
                let n = parse_decimal(count.as_bytes()).ok_or(invalid)?;
                if n > MAX_BYTES_LEN {
                    return Err(invalid);
                }
                Resource::Bytes(n)
            }
            None => Resource::NotFound,
        },
    })
}

/// The path of an absolute-form target (`http://host/path`), or the target as is.
fn origin_path(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        let matches = target
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme));
        if matches {
            let after = &target[scheme.len()..];
            return match after.find(['/', '?']) {
                Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
                _ => "/",
            };
        }
    }
    target
}

/// Whether a `Host` field value is `uri-host [ ":" port ]` (RFC 9110 §7.2,
/// RFC 3986 §3.2.2): a bracketed IP literal or a run of reg-name / IPv4
/// characters, then optionally a colon and digits. Empty is valid (a target
/// without authority). IP literals are checked by character class only.
fn valid_host(value: &[u8]) -> bool {
    let port = match value {
        [b'[', rest @ ..] => match rest.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &rest[..end];
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b":.".contains(&b) || is_reg_name(b));
                if !ok {
                    return false;
                }
                &rest[end + 1..]
            }
            None => return false,
        },
        // One pass: the host runs to the first byte that is not reg-name,
        // which must be the port's colon (':' is not a reg-name byte).
        _ => match value.iter().position(|&b| !is_reg_name(b)) {
            Some(end) => &value[end..],
            None => return true,
        },
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// `unreserved / pct-encoded / sub-delims` bytes (RFC 3986 §3.2.2); `%` is
/// accepted without checking the two hex digits that follow.
fn is_reg_name(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

/// [`is_reg_name`] as a table: one load per byte of a `Host` value.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~%!$&'()*+,;=";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// A non-empty run of ASCII digits as a `u64`; no sign, no spaces, no overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The non-empty elements of a comma-separated field value (RFC 9110 §5.6.1).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reg_name_table_is_rfc3986s_character_classes() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
            assert_eq!(is_reg_name(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn field_names_match_in_any_case_and_only_whole() {
        assert_eq!(Field::of("Content-Length"), Field::ContentLength);
        assert_eq!(Field::of("TRANSFER-ENCODING"), Field::TransferEncoding);
        assert_eq!(Field::of("connection"), Field::Connection);
        assert_eq!(Field::of("eXpect"), Field::Expect);
        assert_eq!(Field::of("hOST"), Field::Host);
        let others = [
            "Hosts",
            "Hos",
            "User-Agent",
            "Content-Type",
            "Accept",
            "",
            "H0st",
            "Content_Length",
            "Content.Length",
            "Expec~",
            "Connectio^",
        ];
        for other in others {
            assert_eq!(Field::of(other), Field::Other, "{other}");
        }
    }
}

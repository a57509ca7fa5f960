//! Conformance tests for what the responder refuses, one per rule, each named
//! after the RFC section it follows (RFC 9112 message syntax, RFC 6585 §5).
//! Every input is checked fed in one chunk and byte by byte, and every refusal
//! must close the connection before EOF.

use super::*;
use crate::{DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_BYTES};

const BAD: &str = "400 Bad Request";
const TOO_LARGE: &str = "431 Request Header Fields Too Large";
const NOT_IMPLEMENTED: &str = "501 Not Implemented";

/// `input` is answered with `status` only, `Connection: close`, and closed
/// before EOF; the refusal is `error`. A valid request pipelined behind it is
/// not answered.
#[track_caller]
fn refused(input: &str, status: &str, error: HttpError) {
    let want = error_response(status, CLOSE, input.starts_with("HEAD "));
    check(input.as_bytes(), &want, true);
    assert_eq!(serve_err(input.as_bytes()), Some(error), "{input:?}");
    let pipelined = format!("{input}GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (out, close) = serve(pipelined.as_bytes());
    assert_bytes(&out, &want);
    assert!(close);
}

/// Like [`refused`] for a malformed head, whatever `httparse` calls the flaw.
#[track_caller]
fn malformed(input: &str) {
    let want = error_response(BAD, CLOSE, false);
    check(input.as_bytes(), &want, true);
    assert!(
        matches!(serve_err(input.as_bytes()), Some(HttpError::Malformed(_))),
        "{input:?}"
    );
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
/// to any HTTP/1.1 request message that lacks a Host header field".
#[test]
fn rfc9112_3_2_http11_request_without_host_is_400() {
    for input in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
        "HEAD / HTTP/1.1\r\n\r\n",
        "POST /sink HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
        // The absolute-form carries the authority, yet Host is still required.
        "GET http://example.com/ HTTP/1.1\r\n\r\n",
        // A field merely containing "host" in its name is not Host.
        "GET / HTTP/1.1\r\nX-Forwarded-Host: a\r\nHostname: b\r\n\r\n",
    ] {
        refused(input, BAD, HttpError::MissingHost);
    }
}

/// RFC 9112 §3.2 applies to HTTP/1.1; HTTP/1.0 clients need not send Host.
#[test]
fn rfc9112_3_2_http10_request_without_host_is_served() {
    check(b"GET / HTTP/1.0\r\n\r\n", &hello(CLOSE), true);
    let ka = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /bytes/4 HTTP/1.0\r\n\r\n";
    let mut want = hello("Connection: keep-alive\r\n");
    want.extend_from_slice(&bytes_response(4, CLOSE, false));
    check(ka, &want, true);
    check(
        b"POST /sink HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
        &sink_response(2, CLOSE),
        true,
    );
}

/// RFC 9112 §3.2: 400 for "any request message that contains more than one
/// Host header field line", HTTP/1.0 included, even with identical values.
#[test]
fn rfc9112_3_2_more_than_one_host_is_400() {
    for input in [
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nHOST: a\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    ] {
        refused(input, BAD, HttpError::MultipleHost);
    }
}

/// RFC 9112 §3.2: 400 for "a Host header field with an invalid field value";
/// the value is `uri-host [":" port]` (RFC 9110 §7.2).
#[test]
fn rfc9112_3_2_invalid_host_value_is_400() {
    for value in [
        "a b", "a/b", "a@b", "a?b", "a#b", "a:80x", "a:80:90", "[::1", "[]", "[::1]x", "a\"b",
    ] {
        refused(
            &format!("GET / HTTP/1.1\r\nHost: {value}\r\n\r\n"),
            BAD,
            HttpError::InvalidHost,
        );
    }
    for value in [
        "",
        "example.com",
        "example.com:8080",
        "10.0.0.1",
        "10.0.0.1:",
        "[::1]",
        "[::1]:80",
        "[v1.x]",
        "xn--bcher-kva.example",
        "a%20b",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost:  {value} \r\n\r\n");
        check(input.as_bytes(), &hello(""), false);
    }
}

/// RFC 9112 §3: `request-line = method SP request-target SP HTTP-version`, so
/// anything but exactly three parts separated by single SP is a 400.
#[test]
fn rfc9112_3_request_line_is_three_parts_separated_by_single_sp() {
    for line in [
        "GET  / HTTP/1.1",
        "GET /  HTTP/1.1",
        "GET / HTTP/1.1 ",
        " GET / HTTP/1.1",
        "GET\t/ HTTP/1.1",
        "GET /\tHTTP/1.1",
        "GET / HTTP/1.1 extra",
        "GET / x HTTP/1.1",
        "GET /",
        "GET HTTP/1.1",
        "GET",
        "/ HTTP/1.1",
        "GET / HTTP/1.1\rX",
    ] {
        malformed(&format!("{line}\r\nHost: t\r\n\r\n"));
    }
    // The one leniency RFC 9112 §2.2 asks for: empty lines before the request.
    check(
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
        &hello(""),
        false,
    );
}

/// RFC 9112 §5.1: "A server MUST reject, with a response status code of 400
/// (Bad Request), any received request message that contains whitespace
/// between a header field name and colon."
#[test]
fn rfc9112_5_1_whitespace_between_field_name_and_colon_is_400() {
    for field in ["Host : t", "Host\t: t", "X-A : b", "Content-Length : 0"] {
        malformed(&format!("GET / HTTP/1.1\r\n{field}\r\nHost: t\r\n\r\n"));
        malformed(&format!("GET / HTTP/1.1\r\nHost: t\r\n{field}\r\n\r\n"));
    }
    // Whitespace after the colon is optional whitespace, not an error.
    check(b"GET / HTTP/1.1\r\nHost:t\r\n\r\n", &hello(""), false);
    check(b"GET / HTTP/1.1\r\nHost:\t t \t\r\n\r\n", &hello(""), false);
}

/// RFC 9112 §5.2: a server "MUST either reject the message by sending a 400
/// (Bad Request) ... or replace each received obs-fold with one or more SP";
/// we reject.
#[test]
fn rfc9112_5_2_obs_fold_is_400() {
    for input in [
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\tc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n t\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\n \r\n\r\n",
        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789",
    ] {
        malformed(input);
    }
}

/// RFC 9112 §6.3 rule 5: a `Content-Length` list of differing values, in one
/// field or across fields, is unrecoverable: 400 and close. Identical repeats
/// may be (and are) taken as one value.
#[test]
fn rfc9112_6_3_5_differing_content_lengths_are_400() {
    for (values, first, other) in [
        ("Content-Length: 5, 6\r\n", 5, 6),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 5, 6),
        ("Content-Length: 5, 5\r\ncontent-length: 0\r\n", 5, 0),
        ("Content-Length: 0,1\r\n", 0, 1),
    ] {
        refused(
            &format!("POST /sink HTTP/1.1\r\nHost: t\r\n{values}\r\nabcde"),
            BAD,
            HttpError::ConflictingContentLength { first, other },
        );
    }
    for values in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5,5 , 5\r\nContent-length: 5\r\n",
    ] {
        let input = format!("POST /sink HTTP/1.1\r\nHost: t\r\n{values}\r\nabcde");
        check(input.as_bytes(), &sink_response(5, ""), false);
    }
}

/// RFC 9112 §6.3 rule 5: an invalid `Content-Length` (RFC 9110 §8.6:
/// `1*DIGIT`) is unrecoverable: 400 and close. Negative, signed, hex,
/// non-numeric, empty and overflowing values are all invalid.
#[test]
fn rfc9112_6_3_5_invalid_content_length_is_400() {
    for value in [
        "-5",
        "+5",
        "-0",
        "abc",
        "5a",
        "0x5",
        "5 5",
        "5.0",
        "",
        ",",
        "18446744073709551616",
    ] {
        refused(
            &format!("POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nabcde"),
            BAD,
            HttpError::InvalidContentLength,
        );
    }
}

/// RFC 9112 §6.3 rule 3: with both `Transfer-Encoding` and `Content-Length`
/// the server may reject (a smuggling vector) and "MUST close the connection
/// after responding"; we answer 400, in either field order.
#[test]
fn rfc9112_6_3_3_transfer_encoding_with_content_length_is_400() {
    for fields in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
    ] {
        refused(
            &format!("POST /sink HTTP/1.1\r\nHost: t\r\n{fields}\r\n0\r\n\r\n"),
            BAD,
            HttpError::LengthAndTransferEncoding,
        );
    }
}

/// RFC 9112 §6.1: a server receiving a transfer coding it does not understand
/// "SHOULD respond with the 501 (Not Implemented) status code and then close
/// the connection".
#[test]
fn rfc9112_6_1_unknown_transfer_coding_is_501() {
    for codings in ["gzip, chunked", "x-custom, chunked", "deflate,chunked"] {
        refused(
            &format!("POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {codings}\r\n\r\n"),
            NOT_IMPLEMENTED,
            HttpError::UnsupportedTransferCoding,
        );
    }
    // Not ending in chunked leaves the body unframeable (§6.3 rule 4): 400.
    refused(
        "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        BAD,
        HttpError::ChunkedNotFinal,
    );
}

/// RFC 9112 §6.1: `Transfer-Encoding` in an HTTP/1.0 request means "the
/// message framing is assumed to be faulty": 400, then close.
#[test]
fn rfc9112_6_1_transfer_encoding_in_http10_is_400() {
    for input in [
        "POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /sink HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        refused(input, BAD, HttpError::TransferEncodingInHttp10);
    }
}

/// RFC 6585 §5: 431 when the header fields are too large in total; the limit
/// is `HttpConfig::max_header_bytes`, default `DEFAULT_MAX_HEADER_BYTES`.
#[test]
fn rfc6585_5_head_larger_than_the_limit_is_431() {
    assert_eq!(
        HttpConfig::default().max_header_bytes,
        DEFAULT_MAX_HEADER_BYTES
    );
    assert_eq!(DEFAULT_MAX_HEADER_BYTES, 8192);
    let limit = DEFAULT_MAX_HEADER_BYTES;
    let prefix = "GET / HTTP/1.1\r\nHost: t\r\nX: ";
    let at = format!("{prefix}{}\r\n\r\n", "a".repeat(limit - prefix.len() - 4));
    assert_eq!(at.len(), limit);
    check(at.as_bytes(), &hello(""), false);
    let over = format!(
        "{prefix}{}\r\n\r\n",
        "a".repeat(limit + 1 - prefix.len() - 4)
    );
    refused(&over, TOO_LARGE, HttpError::HeadTooLarge { limit });
    // Many small fields add up: the total counts, not any single field.
    let fields: String = (0..20)
        .map(|i| format!("F{i}: {}\r\n", "v".repeat(500)))
        .collect();
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n");
    refused(&many, TOO_LARGE, HttpError::HeadTooLarge { limit });
}

/// RFC 6585 §5: 431 when there are too many header fields; the limit is
/// `HttpConfig::max_headers`, default `DEFAULT_MAX_HEADERS`.
#[test]
fn rfc6585_5_more_fields_than_the_limit_is_431() {
    assert_eq!(HttpConfig::default().max_headers, DEFAULT_MAX_HEADERS);
    assert_eq!(DEFAULT_MAX_HEADERS, 32);
    let fields = |n: usize| -> String { (1..n).map(|i| format!("F{i}: v\r\n")).collect() };
    let at = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", fields(32));
    check(at.as_bytes(), &hello(""), false);
    let over = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", fields(33));
    refused(&over, TOO_LARGE, HttpError::TooManyHeaders { limit: 32 });
}

/// Every refusal closes the connection after its response: a refused head's
/// framing cannot be trusted, so whatever follows is never read as a request
/// (RFC 9112 §6.3 rules 3-5, §9.6: the response carries `Connection: close`).
#[test]
fn rfc9112_every_400_closes_the_connection() {
    for input in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\n",
        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /bytes/x HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let mut rt = Runtime::new();
        rt.recv(input.as_bytes());
        assert!(text(&rt.output).starts_with("HTTP/1.1 400 "), "{input:?}");
        assert!(text(&rt.output).contains(CLOSE), "{input:?}");
        assert!(rt.conn.wants_close(), "{input:?}");
        assert!(!rt.conn.wants_recv());
        let sent = rt.output.len();
        let next = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_eq!(rt.conn.on_recv(next), next.len(), "swallowed, not parsed");
        rt.pump();
        assert_eq!(rt.output.len(), sent, "{input:?}");
    }
}

//! Serialising response heads (RFC 9112 §4, §5) into the connection's output buffer.

/// What the `Connection` response header says, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// No header: the default for the response's version applies.
    Omit,
    /// `Connection: close`: we close after this response.
    Close,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to persist.
    KeepAlive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub content_type: &'static str,
    pub content_length: u64,
    pub allow: Option<&'static str>,
    pub connection: ConnectionHeader,
}

/// The reason phrase sent with `status` (RFC 9110 §15).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "",
    }
}

/// The status line of the statuses sent most, up to the `Server` field's
/// value: one copy where the pieces would take five.
fn status_line(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "HTTP/1.1 200 OK\r\nServer: ",
        404 => "HTTP/1.1 404 Not Found\r\nServer: ",
        _ => return None,
    })
}

pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl ResponseHead {
    /// Appends the status line and header section, ending with the empty line.
    pub(crate) fn write(&self, server: &str, out: &mut Vec<u8>) {
        let ResponseHead {
            status,
            content_type,
            content_length,
            allow,
            connection,
        } = *self;
        match status_line(status) {
            Some(line) => out.extend_from_slice(line.as_bytes()),
            None => {
                out.extend_from_slice(b"HTTP/1.1 ");
                push_decimal(out, u64::from(status));
                out.push(b' ');
                out.extend_from_slice(reason(status).as_bytes());
                out.extend_from_slice(b"\r\nServer: ");
            }
        }
        out.extend_from_slice(server.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, content_length);
        if let Some(allow) = allow {
            out.extend_from_slice(b"\r\nAllow: ");
            out.extend_from_slice(allow.as_bytes());
        }
        match connection {
            ConnectionHeader::Omit => {}
            ConnectionHeader::Close => out.extend_from_slice(b"\r\nConnection: close"),
            ConnectionHeader::KeepAlive => out.extend_from_slice(b"\r\nConnection: keep-alive"),
        }
        out.extend_from_slice(b"\r\n\r\n");
    }
}

/// Appends `n` in decimal without going through `fmt`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Number of decimal digits of `n`.
pub(crate) fn decimal_len(mut n: u64) -> u64 {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prepared status lines say what the pieces would.
    #[test]
    fn prepared_status_lines_match_the_status_and_its_reason() {
        for status in [200, 404] {
            assert_eq!(
                status_line(status),
                Some(format!("HTTP/1.1 {status} {}\r\nServer: ", reason(status)).as_str())
            );
        }
        let mut out = Vec::new();
        let head = ResponseHead {
            status: 405,
            content_type: "text/plain",
            content_length: 19,
            allow: Some("GET, HEAD"),
            connection: ConnectionHeader::Close,
        };
        head.write("ustack", &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 405 Method Not Allowed\r\nServer: ustack\r\nContent-Type: text/plain\r\n\
             Content-Length: 19\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"
        );
    }
}

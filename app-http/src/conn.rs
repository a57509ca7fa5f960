//! The per-connection state machine.

use std::time::Duration;

use crate::chunked::ChunkedDecoder;
use crate::error::HttpError;
use crate::pattern::fill_body;
use crate::request::{parse_head, Framing, Method, Parsed, RequestHead, Resource};
use crate::response::{decimal_len, push_decimal, ConnectionHeader, ResponseHead, CONTINUE};
use crate::{HttpConfig, Stats};

/// Once more than this many response bytes wait in the output buffer, no new
/// request is started: pipelined requests stay in the transport's receive
/// buffer, which is the back-pressure the client sees.
const OUT_HIGH_WATER: usize = 4096;

/// How long an idle keep-alive connection keeps its buffers before giving
/// them back: long enough for a client's next request a few round trips
/// later to find them (a request each round trip then allocates nothing),
/// short enough that idle connections hold no memory for long.
pub const BUFFER_LINGER: Duration = Duration::from_millis(100);

const HELLO: &[u8] = b"Hello World!";
const TEXT: &str = "text/plain";
const OCTETS: &str = "application/octet-stream";
const ALLOW_GET: &str = "GET, HEAD";
const ALLOW_POST: &str = "POST";

/// The HTTP/1.1 server side of one TCP connection, driven by the runtime.
///
/// The runtime hands received bytes to [`on_recv`](Self::on_recv) while
/// [`wants_recv`](Self::wants_recv) holds, reports the peer's FIN with
/// [`on_eof`](Self::on_eof), pulls response bytes with
/// [`poll_send`](Self::poll_send) whenever it has send space, and closes its
/// side once [`wants_close`](Self::wants_close) holds.
#[derive(Debug)]
pub struct HttpConn {
    max_header_bytes: usize,
    max_headers: usize,
    server_name: &'static str,
    /// An incomplete request head, kept across `on_recv` calls.
    head_buf: Vec<u8>,
    input: Input,
    /// Response heads and small bodies not yet returned by `poll_send`.
    out_buf: Vec<u8>,
    out_pos: usize,
    /// A `/bytes/N` body to generate once `out_buf` is drained.
    stream: Option<Stream>,
    stats: Stats,
    last_error: Option<HttpError>,
    /// [`close_after_current`](HttpConn::close_after_current) was called:
    /// the request under way is the last one.
    last_request: bool,
    header_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// The phase the timers last saw, the responses queued by then (a new
    /// one restarts the idle timer), and since when.
    timer: Option<(Phase, u64, Duration)>,
    /// Closed by a header or idle timeout.
    timed_out: bool,
}

/// What the timers watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: the header timeout runs.
    Head,
    /// Keep-alive between requests, nothing buffered: the idle timeout runs.
    Idle,
    /// Reading a body, sending a response, or closing: no timer of ours
    /// (the transport's retransmission and user timeouts apply).
    Busy,
}

#[derive(Debug)]
enum Input {
    /// Between requests or inside a head (see `head_buf`).
    Head,
    /// Reading the body of `request`; `received` data bytes so far.
    Body {
        request: RequestHead,
        reader: BodyReader,
        received: u64,
    },
    /// No more requests on this connection: we close once output is drained.
    Closed,
}

#[derive(Debug)]
enum BodyReader {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    offset: u64,
    len: u64,
}

impl HttpConn {
    /// A connection in its initial state; allocates its buffers once.
    pub fn new(config: &HttpConfig) -> HttpConn {
        let HttpConfig {
            max_header_bytes,
            max_headers,
            server_name,
            header_timeout,
            idle_timeout,
        } = *config;
        HttpConn {
            max_header_bytes,
            max_headers,
            server_name,
            head_buf: Vec::new(),
            input: Input::Head,
            out_buf: Vec::new(),
            out_pos: 0,
            stream: None,
            stats: Stats::default(),
            last_error: None,
            last_request: false,
            header_timeout,
            idle_timeout,
            timer: None,
            timed_out: false,
        }
    }

    /// Tells the connection the time (any fixed origin, the same on every
    /// call): call it after every other call on the connection, and again
    /// by the deadline it returns (`None`: no timer runs). A header or idle
    /// timeout that has run out closes the connection: no response,
    /// [`wants_close`](Self::wants_close) and [`timed_out`](Self::timed_out)
    /// hold. Between requests it also gives the buffers back, once the
    /// connection has been idle for [`BUFFER_LINGER`].
    pub fn poll_timeout(&mut self, now: Duration) -> Option<Duration> {
        let phase = self.phase();
        let responses = self.stats.responses;
        let since = match self.timer {
            Some((p, r, since)) if p == phase && r == responses => since,
            _ => now,
        };
        self.timer = Some((phase, responses, since));
        // Nothing is buffered between requests: what is held is only kept
        // for a next request, and not for long.
        let release = (phase == Phase::Idle && self.buffer_bytes() > 0)
            .then(|| since.saturating_add(BUFFER_LINGER));
        if release.is_some_and(|at| now >= at) {
            self.head_buf = Vec::new();
            self.out_buf = Vec::new();
        }
        let release = release.filter(|&at| now < at);
        let limit = match phase {
            Phase::Head => self.header_timeout,
            Phase::Idle => self.idle_timeout,
            Phase::Busy => None,
        };
        let Some(limit) = limit else {
            return release;
        };
        let deadline = since.saturating_add(limit);
        if now < deadline {
            return Some(release.map_or(deadline, |at| at.min(deadline)));
        }
        match phase {
            Phase::Head => tracing::debug!(?limit, "header timeout: closing"),
            _ => tracing::debug!(?limit, "idle timeout: closing"),
        }
        self.timed_out = true;
        self.head_buf = Vec::new();
        self.input = Input::Closed;
        self.timer = Some((Phase::Busy, responses, now));
        None
    }

    /// Whether a header or idle timeout closed the connection. Its peer has
    /// shown it will not go on, so the runtime should reset it rather than
    /// wait for a graceful close.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    fn phase(&self) -> Phase {
        match self.input {
            Input::Head if self.output_drained() => {
                if self.head_buf.is_empty() && self.stats.responses > 0 {
                    Phase::Idle
                } else {
                    Phase::Head
                }
            }
            _ => Phase::Busy,
        }
    }

    /// Bytes of buffer this connection holds (head and output buffers).
    pub fn buffer_bytes(&self) -> usize {
        self.head_buf.capacity() + self.out_buf.capacity()
    }

    /// Bytes the transport received. Returns how many were consumed; the
    /// rest must be offered again later, once [`wants_recv`](Self::wants_recv)
    /// holds again. An incomplete head is kept internally (up to
    /// `max_header_bytes`; beyond that the answer is `431` and close), so
    /// everything up to the end of `data` is consumed while a head is being read.
    /// After the connection decided to close, input is consumed and discarded.
    pub fn on_recv(&mut self, data: &[u8]) -> usize {
        let mut consumed = 0;
        while consumed < data.len() {
            let rest = &data[consumed..];
            consumed += match self.input {
                Input::Closed => return data.len(),
                Input::Head if !self.can_start_request() => break,
                Input::Head => self.read_head(rest),
                Input::Body { .. } => self.read_body(rest),
            };
        }
        consumed
    }

    /// The peer half-closed (FIN): no more input. Call it once the transport
    /// reports end of stream and every byte before the FIN has been accepted
    /// by [`on_recv`](Self::on_recv). Responses already due are still sent;
    /// an incomplete request is dropped (with a `400` if what arrived of its
    /// head is already invalid).
    pub fn on_eof(&mut self) {
        if matches!(self.input, Input::Head) && !self.head_buf.is_empty() {
            // The head was only re-parsed when it could have ended; settle it now.
            match parse_head(&self.head_buf, self.max_headers) {
                Parsed::Invalid(error) => self.refuse(error, false),
                Parsed::Complete(_, Err(refused)) => self.refuse(refused.error, refused.head_only),
                Parsed::Complete(..) | Parsed::Partial => {}
            }
        }
        self.head_buf.clear();
        self.input = Input::Closed;
    }

    /// Graceful shutdown of this connection: serve no request beyond the
    /// one under way. A response being sent is finished; a request whose
    /// head or body is still arriving is read and answered, with
    /// `Connection: close`. Between requests the connection closes at once:
    /// [`wants_close`](Self::wants_close) holds as soon as the output is
    /// drained. Pipelined requests not yet started are not served.
    pub fn close_after_current(&mut self) {
        self.last_request = true;
        if matches!(self.input, Input::Head) && self.head_buf.is_empty() {
            self.input = Input::Closed;
        }
    }

    /// Fills `out` with response bytes to send and returns how many (0 when
    /// nothing is due). `out` may be a slice of the transport's send ring.
    pub fn poll_send(&mut self, out: &mut [u8]) -> usize {
        let pending = &self.out_buf[self.out_pos..];
        let mut written = pending.len().min(out.len());
        out[..written].copy_from_slice(&pending[..written]);
        self.out_pos += written;
        if self.out_pos == self.out_buf.len() {
            self.out_buf.clear();
            self.out_pos = 0;
            if let Some(stream) = &mut self.stream {
                let room = (out.len() - written) as u64;
                let n = room.min(stream.len - stream.offset) as usize;
                fill_body(stream.offset, &mut out[written..written + n]);
                stream.offset += n as u64;
                written += n;
                if stream.offset == stream.len {
                    self.stream = None;
                }
            }
        }
        self.stats.bytes_sent += written as u64;
        written
    }

    /// Whether [`poll_send`](Self::poll_send) has response bytes to give: a
    /// runtime need not ask for send space while this is false.
    pub fn wants_send(&self) -> bool {
        !self.output_drained()
    }

    /// Whether the transport should close our side once everything returned
    /// by [`poll_send`](Self::poll_send) has been written: after a response
    /// carrying `Connection: close` (HTTP/1.0 without keep-alive, a client's
    /// `Connection: close`, a refused request), or after EOF, in each case
    /// once no response bytes remain to be produced.
    pub fn wants_close(&self) -> bool {
        matches!(self.input, Input::Closed) && self.output_drained()
    }

    /// Whether more input is wanted. False while a response is still being
    /// produced and the next request would have to queue behind it
    /// (back-pressure: the runtime stops reading), and once closing.
    pub fn wants_recv(&self) -> bool {
        match self.input {
            Input::Head => self.can_start_request(),
            Input::Body { .. } => true,
            Input::Closed => false,
        }
    }

    /// What this connection has answered so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the last refused request was refused, if any was.
    pub fn last_error(&self) -> Option<&HttpError> {
        self.last_error.as_ref()
    }

    /// Capacities of the head and output buffers, to check they never grow.
    #[cfg(test)]
    pub(crate) fn buffer_capacities(&self) -> (usize, usize) {
        (self.head_buf.capacity(), self.out_buf.capacity())
    }

    fn output_drained(&self) -> bool {
        self.out_pos == self.out_buf.len() && self.stream.is_none()
    }

    /// RFC 9112 §9.3.2: responses go out in request order, so a new request
    /// waits until a streamed body is done and little output is queued.
    fn can_start_request(&self) -> bool {
        self.stream.is_none() && self.out_buf.len() - self.out_pos <= OUT_HIGH_WATER
    }

    /// Reads (part of) a request head from `rest`, which is not empty.
    fn read_head(&mut self, rest: &[u8]) -> usize {
        let max = self.max_header_bytes;
        if self.head_buf.is_empty() {
            // Fast path: parse in place, copying only an incomplete head.
            let window = &rest[..rest.len().min(max)];
            match parse_head(window, self.max_headers) {
                Parsed::Complete(len, head) => {
                    self.start_request(head);
                    len
                }
                Parsed::Invalid(error) => {
                    self.refuse(error, false);
                    0
                }
                Parsed::Partial if window.len() >= max => {
                    self.refuse(HttpError::HeadTooLarge { limit: max }, false);
                    0
                }
                Parsed::Partial => {
                    self.head_buf.reserve_exact(max);
                    self.head_buf.extend_from_slice(window);
                    window.len()
                }
            }
        } else {
            let prev = self.head_buf.len();
            let take = rest.len().min(max - prev);
            self.head_buf.extend_from_slice(&rest[..take]);
            // A head ends with an empty line, so only re-parse (from the
            // start; httparse keeps no state) when one may have arrived, or
            // when the buffer is full. `on_eof` settles the rest.
            let full = self.head_buf.len() >= max;
            if !full && !has_empty_line(&self.head_buf[prev.saturating_sub(2)..]) {
                return take;
            }
            match parse_head(&self.head_buf, self.max_headers) {
                Parsed::Complete(len, head) => {
                    self.head_buf.clear();
                    self.start_request(head);
                    len.saturating_sub(prev)
                }
                Parsed::Invalid(error) => {
                    self.refuse(error, false);
                    take
                }
                Parsed::Partial if full => {
                    self.refuse(HttpError::HeadTooLarge { limit: max }, false);
                    take
                }
                Parsed::Partial => take,
            }
        }
    }

    fn start_request(&mut self, head: Result<RequestHead, crate::request::Refused>) {
        let request = match head {
            Ok(request) => request,
            Err(refused) => return self.refuse(refused.error, refused.head_only),
        };
        let reader = match request.framing {
            Framing::Length(0) => return self.respond(&request, 0),
            Framing::Length(remaining) => BodyReader::Length { remaining },
            Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::new(self.max_header_bytes)),
        };
        if request.expect_continue {
            // RFC 9110 §10.1.1: we will read the content, so invite it.
            self.compact_output();
            self.out_buf.extend_from_slice(CONTINUE);
            self.stats.informational += 1;
        }
        self.input = Input::Body {
            request,
            reader,
            received: 0,
        };
    }

    /// Reads (part of) a request body from `rest`, which is not empty.
    fn read_body(&mut self, rest: &[u8]) -> usize {
        let Input::Body {
            request,
            reader,
            received,
        } = &mut self.input
        else {
            return 0;
        };
        let (consumed, data, done) = match reader {
            BodyReader::Length { remaining } => {
                let n = (*remaining).min(rest.len() as u64);
                *remaining -= n;
                (n as usize, n, *remaining == 0)
            }
            BodyReader::Chunked(decoder) => match decoder.feed(rest) {
                Ok(p) => (p.consumed, p.data, p.done),
                Err(error) => {
                    let head_only = request.method == Method::Head;
                    self.refuse(error, head_only);
                    return 0;
                }
            },
        };
        *received += data;
        self.stats.body_bytes_received += data;
        if done {
            let (request, received) = (*request, *received);
            self.respond(&request, received);
        }
        consumed
    }

    /// Queues the response to a complete request whose body had `received` bytes.
    fn respond(&mut self, request: &RequestHead, received: u64) {
        let keep_alive = request.keep_alive && !self.last_request;
        let connection = match (keep_alive, request.http10) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::KeepAlive,
            (true, false) => ConnectionHeader::Omit,
        };
        let head_only = request.method == Method::Head;
        let mut head = ResponseHead {
            status: 200,
            content_type: TEXT,
            content_length: 0,
            allow: None,
            connection,
        };
        let mut stream_len = 0;
        let body: &[u8] = match (request.resource, request.method) {
            (Resource::Root, Method::Get | Method::Head) => HELLO,
            (Resource::Bytes(n), Method::Get | Method::Head) => {
                head.content_type = OCTETS;
                head.content_length = n;
                stream_len = n;
                b""
            }
            (Resource::Sink, Method::Post) => {
                head.content_length = decimal_len(received) + 1;
                b""
            }
            (Resource::NotFound, _) => {
                head.status = 404;
                b"Not Found\n"
            }
            (Resource::Root | Resource::Bytes(_), _) => {
                head.status = 405;
                head.allow = Some(ALLOW_GET);
                b"Method Not Allowed\n"
            }
            (Resource::Sink, _) => {
                head.status = 405;
                head.allow = Some(ALLOW_POST);
                b"Method Not Allowed\n"
            }
        };
        if !body.is_empty() {
            head.content_length = body.len() as u64;
        }
        self.compact_output();
        head.write(self.server_name, &mut self.out_buf);
        if !head_only {
            if request.resource == Resource::Sink && request.method == Method::Post {
                push_decimal(&mut self.out_buf, received);
                self.out_buf.push(b'\n');
            } else {
                self.out_buf.extend_from_slice(body);
            }
            if stream_len > 0 {
                self.stream = Some(Stream {
                    offset: 0,
                    len: stream_len,
                });
            }
        }
        self.count_response(head.status);
        self.input = if keep_alive {
            Input::Head
        } else {
            Input::Closed
        };
    }

    /// Answers a request we cannot or will not serve, then closes.
    fn refuse(&mut self, error: HttpError, head_only: bool) {
        tracing::debug!(%error, "refusing request");
        let status = error.status();
        let body = crate::response::reason(status).as_bytes();
        let head = ResponseHead {
            status,
            content_type: TEXT,
            content_length: body.len() as u64 + 1,
            allow: None,
            connection: ConnectionHeader::Close,
        };
        self.compact_output();
        head.write(self.server_name, &mut self.out_buf);
        if !head_only {
            self.out_buf.extend_from_slice(body);
            self.out_buf.push(b'\n');
        }
        self.count_response(status);
        self.last_error = Some(error);
        self.head_buf.clear();
        self.input = Input::Closed;
    }

    fn count_response(&mut self, status: u16) {
        self.stats.responses += 1;
        match status / 100 {
            2 => self.stats.success += 1,
            4 => self.stats.client_error += 1,
            5 => self.stats.server_error += 1,
            _ => {}
        }
    }

    /// Drops already-sent bytes from the front of `out_buf` so that appending
    /// reuses its allocation instead of growing it.
    fn compact_output(&mut self) {
        if self.out_buf.capacity() == 0 {
            self.out_buf.reserve_exact(2 * OUT_HIGH_WATER);
        }
        if self.out_pos > 0 {
            self.out_buf.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }
}

/// Whether `bytes` contains the end of a head: LF followed by CRLF or LF.
fn has_empty_line(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

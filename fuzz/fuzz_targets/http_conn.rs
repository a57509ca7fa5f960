//! A whole `HttpConn` fed an arbitrary byte stream split arbitrarily,
//! interleaved with `poll_send` drains of arbitrary sizes and an optional
//! `on_eof`. No panic; `on_recv` and `poll_send` stay within their buffers;
//! and the bytes sent are the same as when the stream arrives in one piece
//! and is drained in large steps (responses depend on the bytes, never on
//! how they were split).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ustack_http::{HttpConfig, HttpConn};

/// Output compared per run; `/bytes/N` can stream far more.
const OUTPUT_CAP: usize = 256 * 1024;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    max_header_bytes: u16,
    max_headers: u8,
    eof: bool,
    steps: Vec<Step>,
    stream: &'a [u8],
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    Recv(u16),
    Send(u16),
}

struct Run {
    conn: HttpConn,
    pos: usize,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Run {
    fn recv(&mut self, stream: &[u8], n: usize) {
        let rest = &stream[self.pos..];
        let chunk = &rest[..n.min(rest.len())];
        let used = self.conn.on_recv(chunk);
        assert!(used <= chunk.len());
        self.pos += used;
    }

    fn send(&mut self, n: usize) -> usize {
        let n = n.min(OUTPUT_CAP + 1 - self.out.len().min(OUTPUT_CAP));
        self.buf.resize(n, 0);
        let w = self.conn.poll_send(&mut self.buf[..n]);
        assert!(w <= n);
        self.out.extend_from_slice(&self.buf[..w]);
        w
    }

    fn capped(&self) -> bool {
        self.out.len() > OUTPUT_CAP
    }

    /// Everything left: the rest of the stream, the EOF, every response byte.
    fn finish(&mut self, stream: &[u8], eof: bool) {
        while !self.capped() {
            let before = (self.pos, self.out.len());
            if self.pos < stream.len() {
                self.recv(stream, usize::MAX);
            }
            self.send(64 * 1024);
            if (self.pos, self.out.len()) == before {
                // Nothing to send and input refused would be a deadlock.
                assert_eq!(
                    self.pos,
                    stream.len(),
                    "stuck: input refused, nothing to send"
                );
                break;
            }
        }
        if eof && !self.capped() {
            self.conn.on_eof();
            while !self.capped() && self.send(64 * 1024) > 0 {}
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let cfg = HttpConfig {
        max_header_bytes: usize::from(input.max_header_bytes % 4096),
        max_headers: usize::from(input.max_headers),
        server_name: "fuzz",
        ..HttpConfig::default()
    };
    let stream = input.stream;
    let new_run = || Run {
        conn: HttpConn::new(&cfg),
        pos: 0,
        out: Vec::new(),
        buf: Vec::new(),
    };

    let mut fuzzed = new_run();
    for step in &input.steps {
        match *step {
            Step::Recv(n) => fuzzed.recv(stream, usize::from(n)),
            Step::Send(n) => {
                fuzzed.send(usize::from(n));
            }
        }
        let _ = (
            fuzzed.conn.wants_recv(),
            fuzzed.conn.wants_close(),
            fuzzed.conn.stats(),
        );
    }
    fuzzed.finish(stream, input.eof);

    let mut reference = new_run();
    reference.finish(stream, input.eof);

    let n = fuzzed.out.len().min(reference.out.len()).min(OUTPUT_CAP);
    assert!(
        fuzzed.out[..n] == reference.out[..n],
        "responses differ within the first {n} bytes"
    );
    if !fuzzed.capped() && !reference.capped() {
        // An incomplete head that is already invalid is settled only when
        // it could have ended, when the head buffer is full, or at EOF: a
        // split stream without EOF may still be waiting, never ahead.
        assert!(
            fuzzed.out.len() <= reference.out.len(),
            "split stream answered more"
        );
        if !input.eof {
            return;
        }
        assert_eq!(
            fuzzed.out.len(),
            reference.out.len(),
            "response lengths differ"
        );
        assert_eq!(fuzzed.conn.wants_close(), reference.conn.wants_close());
        assert_eq!(fuzzed.conn.stats(), reference.conn.stats());
    }
});

//! Property tests: valid pipelines under any chunking give exact responses;
//! arbitrary bytes never panic, never depend on chunking and never grow buffers.

use proptest::prelude::*;

use super::*;

/// A request the model knows the exact answer to.
#[derive(Debug, Clone)]
enum Req {
    Root { head: bool },
    Bytes { n: u64, head: bool },
    SinkLength { body: Vec<u8>, expect: bool },
    SinkChunked { chunks: Vec<usize>, expect: bool },
    NotFound,
    WrongMethod,
    GetWithBody { len: usize },
}

fn req_strategy() -> impl Strategy<Value = Req> {
    prop_oneof![
        any::<bool>().prop_map(|head| Req::Root { head }),
        (0u64..3000, any::<bool>()).prop_map(|(n, head)| Req::Bytes { n, head }),
        (
            proptest::collection::vec(any::<u8>(), 0..3000),
            any::<bool>()
        )
            .prop_map(|(body, expect)| Req::SinkLength { body, expect }),
        (proptest::collection::vec(1usize..700, 0..6), any::<bool>())
            .prop_map(|(chunks, expect)| Req::SinkChunked { chunks, expect }),
        Just(Req::NotFound),
        Just(Req::WrongMethod),
        (0usize..500).prop_map(|len| Req::GetWithBody { len }),
    ]
}

impl Req {
    fn encode(&self) -> Vec<u8> {
        let expect = |e: bool| if e { "Expect: 100-continue\r\n" } else { "" };
        match self {
            Req::Root { head } => {
                let m = if *head { "HEAD" } else { "GET" };
                format!("{m} / HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
            }
            Req::Bytes { n, head } => {
                let m = if *head { "HEAD" } else { "GET" };
                format!("{m} /bytes/{n} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
            }
            Req::SinkLength { body, expect: e } => {
                let mut r = format!(
                    "POST /sink HTTP/1.1\r\nHost: t\r\n{}Content-Length: {}\r\n\r\n",
                    expect(*e),
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            }
            Req::SinkChunked { chunks, expect: e } => {
                let mut r = format!(
                    "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{}\r\n",
                    expect(*e)
                )
                .into_bytes();
                for (k, size) in chunks.iter().enumerate() {
                    let ext = if k % 2 == 1 { ";x=y" } else { "" };
                    r.extend_from_slice(format!("{size:X}{ext}\r\n").as_bytes());
                    r.extend_from_slice(&vec![b'\n'; *size]);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            }
            Req::NotFound => b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            Req::WrongMethod => b"OPTIONS / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            Req::GetWithBody { len } => {
                let mut r = format!("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                    .into_bytes();
                r.extend_from_slice(&vec![b'G'; *len]);
                r
            }
        }
    }

    fn expected(&self) -> Vec<u8> {
        let cont = |e: bool, len: usize| {
            if e && len > 0 {
                b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()
            } else {
                Vec::new()
            }
        };
        match self {
            Req::Root { head: false } | Req::GetWithBody { .. } => hello(""),
            Req::Root { head: true } => response("200 OK", "text/plain", 12, "", b""),
            Req::Bytes { n, head } => bytes_response(*n, "", *head),
            Req::SinkLength { body, expect } => {
                let mut r = cont(*expect, body.len());
                r.extend_from_slice(&sink_response(body.len() as u64, ""));
                r
            }
            Req::SinkChunked { chunks, expect } => {
                let total: usize = chunks.iter().sum();
                let mut r = cont(*expect, 1);
                r.extend_from_slice(&sink_response(total as u64, ""));
                r
            }
            Req::NotFound => error_response("404 Not Found", "", false),
            Req::WrongMethod => {
                error_response("405 Method Not Allowed", "Allow: GET, HEAD\r\n", false)
            }
        }
    }
}

/// Splits `input` at cut sizes taken cyclically from `cuts`.
fn chunked<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut k = 0;
    while !rest.is_empty() {
        let n = cuts[k % cuts.len()].min(rest.len());
        k += 1;
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn cuts_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        proptest::collection::vec(1usize..8, 1..20),
        proptest::collection::vec(1usize..5000, 1..20),
    ]
}

fn out_sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        proptest::collection::vec(1usize..=16, 1..10),
        proptest::collection::vec(1usize..=65536, 1..10),
    ]
}

/// Valid requests, random content, plus fragments of them, for fuzzing.
fn noise_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        req_strategy().prop_map(|r| r.encode()),
        (
            req_strategy(),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(r, a, b)| {
                let e = r.encode();
                let (i, j) = (a.index(e.len() + 1), b.index(e.len() + 1));
                e[i.min(j)..i.max(j)].to_vec()
            }),
        prop::sample::select(vec![
            &b"\r\n"[..],
            b"\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Content-Length: 5\r\n",
            b"Expect: 100-continue\r\n",
            b"Connection: close\r\n",
            b"HTTP/1.0\r\n",
            b"0\r\n\r\n",
            b"ffffffffffffffff\r\n",
        ])
        .prop_map(|s| s.to_vec()),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn serve_with(input: &[u8], cuts: &[usize], out_sizes: Vec<usize>) -> (Vec<u8>, bool) {
    let mut rt = Runtime::with(HttpConfig::default(), out_sizes);
    for chunk in chunked(input, cuts) {
        rt.recv(chunk);
    }
    rt.eof();
    (rt.output, rt.conn.wants_close())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_pipelines_give_exact_responses_under_any_chunking(
        reqs in proptest::collection::vec(req_strategy(), 1..6),
        cuts in cuts_strategy(),
        out_sizes in out_sizes_strategy(),
    ) {
        let input: Vec<u8> = reqs.iter().flat_map(|r| r.encode()).collect();
        let want: Vec<u8> = reqs.iter().flat_map(|r| r.expected()).collect();
        let (out, close) = serve_with(&input, &cuts, out_sizes);
        prop_assert_eq!(text(&out), text(&want));
        prop_assert!(close);
    }

    #[test]
    fn arbitrary_input_never_panics_and_chunking_does_not_matter(
        input in noise_strategy(),
        cuts in cuts_strategy(),
        out_sizes in out_sizes_strategy(),
    ) {
        let (whole, close) = serve(&input);
        prop_assert!(close);
        let mut rt = Runtime::with(HttpConfig::default(), out_sizes);
        let config = HttpConfig::default();
        let mut most = (0, 0);
        for chunk in chunked(&input, &cuts) {
            rt.recv(chunk);
            let (h, o) = rt.conn.buffer_capacities();
            most = (most.0.max(h), most.1.max(o));
        }
        rt.eof();
        prop_assert!(rt.conn.wants_close());
        prop_assert_eq!(text(&rt.output), text(&whole));
        // The buffers are taken at their one size and never grow.
        prop_assert!(most.0 == 0 || most.0 == config.max_header_bytes, "{most:?}");
        prop_assert!(most.1 == 0 || most.1 == 8192, "{most:?}");
    }

    #[test]
    fn runtime_ignoring_wants_recv_cannot_cause_panics(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in cuts_strategy(),
        out_sizes in proptest::collection::vec(0usize..=4096, 1..10),
    ) {
        let mut conn = HttpConn::new(&HttpConfig::default());
        let mut out = vec![0u8; 4096];
        for (k, chunk) in chunked(&input, &cuts).into_iter().enumerate() {
            let n = conn.on_recv(chunk);
            prop_assert!(n <= chunk.len());
            let size = out_sizes[k % out_sizes.len()];
            prop_assert!(conn.poll_send(&mut out[..size]) <= size);
            let _ = (conn.wants_recv(), conn.wants_close());
        }
        conn.on_eof();
        conn.on_eof();
        let _ = conn.on_recv(&input);
        while conn.poll_send(&mut out) > 0 {}
        prop_assert!(conn.wants_close());
    }

    #[test]
    fn fill_body_matches_body_byte(offset in 0u64..(1 << 41), len in 0usize..2000) {
        let mut buf = vec![0u8; len];
        fill_body(offset, &mut buf);
        for (k, b) in buf.iter().enumerate() {
            prop_assert_eq!(*b, body_byte(offset + k as u64));
        }
    }
}

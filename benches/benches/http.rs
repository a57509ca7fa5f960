//! HTTP/1.1 responder cost per request: a typical `curl` `GET /` on a
//! keep-alive connection, parsed and answered (`Hello World!`) by one
//! reused `HttpConn`, with the whole response drained through `poll_send`.
//! smoltcp has no HTTP; the reference is `httparse` parsing the same request
//! (parse only, no response), the parser most Rust HTTP servers use.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ustack_http::{HttpConfig, HttpConn};

const CURL_GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// Feeds one request and drains its response into `out`; returns the
/// response length.
fn serve(conn: &mut HttpConn, out: &mut [u8]) -> usize {
    let consumed = conn.on_recv(CURL_GET);
    debug_assert_eq!(consumed, CURL_GET.len());
    let mut len = 0;
    loop {
        let n = conn.poll_send(&mut out[len..]);
        if n == 0 {
            return len;
        }
        len += n;
    }
}

fn bench_http(c: &mut Criterion) {
    let mut conn = HttpConn::new(&HttpConfig::default());
    let mut out = vec![0u8; 4096];
    // The measured path must be a complete 200 answer, and the connection
    // must stay open for the next request.
    let len = serve(&mut conn, &mut out);
    let response = &out[..len];
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(response)
    );
    assert!(
        response.ends_with(b"Hello World!"),
        "{}",
        String::from_utf8_lossy(response)
    );
    assert!(conn.wants_recv() && !conn.wants_close());

    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));
    group.bench_function("curl_get_root/ustack_parse_respond", |b| {
        b.iter(|| serve(black_box(&mut conn), &mut out))
    });
    group.bench_function("curl_get_root/httparse_parse_only", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(black_box(CURL_GET)) {
                Ok(httparse::Status::Complete(n)) => n,
                _ => 0,
            }
        })
    });
    group.finish();
    assert_eq!(conn.stats().responses, conn.stats().success);
}

criterion_group!(benches, bench_http);
criterion_main!(benches);

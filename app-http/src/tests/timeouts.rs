//! Header and idle timeouts, with the clock given explicitly.

use std::time::Duration;

use super::{text, Runtime};
use crate::{HttpConfig, BUFFER_LINGER, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let mut rt = Runtime::new();
    assert_eq!(rt.conn.poll_timeout(s(0.0)), Some(DEFAULT_HEADER_TIMEOUT));
    assert_eq!(rt.conn.poll_timeout(s(59.9)), Some(s(60.0)));
    assert!(!rt.conn.wants_close());
    assert_eq!(rt.conn.poll_timeout(s(60.0)), None);
    assert!(rt.conn.wants_close() && rt.conn.timed_out());
    assert!(rt.output.is_empty(), "closed without a response");
    assert!(!rt.conn.wants_recv());
}

#[test]
fn trickling_a_head_does_not_extend_the_header_timeout() {
    let mut rt = Runtime::new();
    rt.conn.poll_timeout(s(0.0));
    let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-a: ";
    for (i, byte) in head.iter().enumerate() {
        let now = s(i as f64 * 1.5);
        rt.recv(&[*byte]);
        if now < s(60.0) {
            assert_eq!(rt.conn.poll_timeout(now), Some(s(60.0)), "byte {i}");
        }
    }
    assert_eq!(rt.conn.poll_timeout(s(60.0)), None);
    assert!(rt.conn.timed_out());
    // What arrives after the close is discarded, not answered.
    rt.recv(b"b\r\n\r\n");
    assert!(rt.output.is_empty());
}

#[test]
fn keep_alive_connection_idles_for_the_idle_timeout_holding_no_buffer() {
    let mut rt = Runtime::new();
    rt.conn.poll_timeout(s(0.0));
    rt.recv(GET);
    assert!(text(&rt.output).starts_with("HTTP/1.1 200 "));
    assert!(rt.conn.buffer_bytes() > 0, "the response took a buffer");
    let idle_until = s(5.0) + DEFAULT_IDLE_TIMEOUT;
    let release = s(5.0) + BUFFER_LINGER;
    assert_eq!(rt.conn.poll_timeout(s(5.0)), Some(release));
    assert!(rt.conn.buffer_bytes() > 0, "kept for a next request");
    assert_eq!(rt.conn.poll_timeout(release), Some(idle_until));
    assert_eq!(rt.conn.buffer_bytes(), 0, "idle: no buffer held");
    assert_eq!(rt.conn.poll_timeout(s(79.9)), Some(idle_until));
    assert!(!rt.conn.wants_close());
    assert_eq!(rt.conn.poll_timeout(idle_until), None);
    assert!(rt.conn.wants_close() && rt.conn.timed_out());
}

#[test]
fn each_request_restarts_the_idle_timer_and_a_new_head_gets_the_header_timer() {
    let mut rt = Runtime::new();
    rt.conn.poll_timeout(s(0.0));
    rt.recv(GET);
    rt.conn.poll_timeout(s(1.0));
    rt.recv(GET);
    let release = s(50.0) + BUFFER_LINGER;
    assert_eq!(rt.conn.poll_timeout(s(50.0)), Some(release));
    assert_eq!(rt.conn.poll_timeout(release), Some(s(125.0)));
    rt.recv(b"GET / HT");
    assert_eq!(
        rt.conn.poll_timeout(s(70.0)),
        Some(s(130.0)),
        "header timer from the first byte"
    );
    rt.recv(b"TP/1.1\r\nHost: t\r\n\r\n");
    let release = s(129.0) + BUFFER_LINGER;
    assert_eq!(rt.conn.poll_timeout(s(129.0)), Some(release));
    assert_eq!(rt.conn.poll_timeout(release), Some(s(204.0)));
    assert_eq!(rt.conn.stats().success, 3);
    assert!(!rt.conn.timed_out());
}

#[test]
fn no_timeout_while_a_response_is_being_sent() {
    let mut rt = Runtime::with(HttpConfig::default(), vec![0]);
    rt.conn.poll_timeout(s(0.0));
    rt.recv(b"GET /bytes/1000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(rt.conn.poll_timeout(s(1.0)), None);
    assert_eq!(rt.conn.poll_timeout(s(1000.0)), None);
    assert!(!rt.conn.wants_close() && !rt.conn.timed_out());
}

#[test]
fn timeouts_are_configurable_and_can_be_turned_off() {
    let config = HttpConfig {
        header_timeout: Some(s(3.0)),
        idle_timeout: None,
        ..HttpConfig::default()
    };
    let mut rt = Runtime::with(config.clone(), vec![64 * 1024]);
    rt.conn.poll_timeout(s(0.0));
    rt.recv(b"GET / ");
    assert_eq!(rt.conn.poll_timeout(s(3.0)), None);
    assert!(rt.conn.timed_out());
    let mut rt = Runtime::with(config, vec![64 * 1024]);
    rt.conn.poll_timeout(s(0.0));
    rt.recv(GET);
    let release = s(1.0) + BUFFER_LINGER;
    assert_eq!(rt.conn.poll_timeout(s(1.0)), Some(release), "buffers only");
    assert_eq!(rt.conn.poll_timeout(release), None, "no idle timer");
    assert_eq!(rt.conn.buffer_bytes(), 0);
    assert_eq!(rt.conn.poll_timeout(s(100_000.0)), None);
    assert!(!rt.conn.wants_close());
}

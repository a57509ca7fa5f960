//! The tokio sockets (`ustack::socket::tokio`) against the kernel's TCP over
//! a TUN device in a namespace of the test's own: the echo and hyper
//! examples serving kernel clients (curl, std::net), a client on the stack
//! talking to a kernel server, backpressure both ways, what dropping a
//! stream tells the peer, `split` and `copy_bidirectional`; and the README's
//! library snippets, which must be the examples' code.

mod common;

#[path = "../examples/echo_blocking.rs"]
mod echo_blocking;
#[path = "../examples/echo_tokio.rs"]
mod echo_tokio;
#[path = "../examples/http_client.rs"]
mod http_client;
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

use std::future::poll_fn;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::NetNs;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ustack::socket::tokio::{TcpListener, TcpStream};
use ustack::socket::NetStack;
use ustack_tcp::TcpLayerConfig;

/// Enters `ns` and starts a stack at 10.0.0.2 on tun0 (host side
/// 10.0.0.1/24) there, as the examples do.
fn stack_in(ns: &NetNs) -> NetStack {
    common::tun_stack_in(ns, TcpLayerConfig::default())
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Runs an example's `main` (which serves for ever) on a thread inside `ns`.
fn run_example(ns: &NetNs, main: fn() -> Result<(), Box<dyn std::error::Error>>) {
    ns.enter_current_thread().expect("enter namespace");
    std::thread::spawn(move || {
        if let Err(e) = main() {
            panic!("example failed: {e}");
        }
    });
}

/// Connects a kernel client to `addr`, retrying (bounded) while the
/// example is still bringing its device and listener up.
fn kernel_connect(addr: &str) -> std::net::TcpStream {
    let started = Instant::now();
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot connect to {addr} within 10 s: {e}"),
        }
    }
}

/// A kernel client sends `n` bytes to an echo server at `addr` while it
/// reads the echo, half-closes, and checks that all came back intact.
fn check_echo(addr: &str, n: usize) {
    let data = pattern(n);
    let mut client = kernel_connect(addr);
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let writer = {
        let mut c = client.try_clone().expect("clone");
        let data = data.clone();
        std::thread::spawn(move || {
            c.write_all(&data).expect("write");
            c.shutdown(Shutdown::Write).expect("half-close");
        })
    };
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("read echo");
    writer.join().expect("writer");
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
}

#[test]
fn tokio_echo_example_serves_a_kernel_client() {
    let Some(ns) = common::netns("async-echo") else {
        return;
    };
    run_example(&ns, echo_tokio::main);
    check_echo("10.0.0.2:7", 2_000_000);
    // A second client on the same server: the listener keeps accepting.
    check_echo("10.0.0.2:7", 1000);
}

#[test]
fn blocking_echo_example_serves_a_kernel_client() {
    let Some(ns) = common::netns("async-becho") else {
        return;
    };
    run_example(&ns, echo_blocking::main);
    check_echo("10.0.0.2:7", 2_000_000);
}

/// The client example fetches a page from python's http.server on the TUN
/// device's host side.
#[test]
fn http_client_example_fetches_from_a_kernel_server() {
    let Some(ns) = common::netns("async-client") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ustack-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("page.txt"), b"served by the kernel\n").unwrap();
    // Bound to every address: 10.0.0.1 appears once the example makes tun0.
    let _server = common::Proc(
        ns.command("python3")
            .args(["-m", "http.server", "8000", "--bind", "0.0.0.0"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    ns.enter_current_thread().expect("enter namespace");
    // Wait (bounded) until python listens, over the namespace's loopback.
    drop(kernel_connect("127.0.0.1:8000"));
    let response = http_client::fetch("10.0.0.1:8000".parse().unwrap(), "/page.txt")
        .unwrap_or_else(|e| panic!("the client example failed: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.ends_with("served by the kernel\n"), "{text}");
}

#[test]
fn hyper_example_serves_curl() {
    let Some(ns) = common::netns("async-hyper") else {
        return;
    };
    run_example(&ns, hyper_server::main);
    drop(kernel_connect("10.0.0.2:80"));
    let out = common::curl(&ns, &["http://10.0.0.2/hello"]);
    assert!(out.status.success(), "curl: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello from hyper on ustack: /hello\n"
    );
    // A 3 MB upload, and two requests on one keep-alive connection.
    let body = std::env::temp_dir().join(format!("ustack-hyper-{}", std::process::id()));
    std::fs::write(&body, pattern(3_000_000)).unwrap();
    let at = format!("@{}", body.display());
    let out = common::curl(
        &ns,
        &[
            "--data-binary",
            &at,
            "http://10.0.0.2/up",
            "--next",
            "http://10.0.0.2/again",
        ],
    );
    let _ = std::fs::remove_file(&body);
    assert!(out.status.success(), "curl: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "3000000\nHello from hyper on ustack: /again\n"
    );
}

#[test]
fn readme_shows_the_examples_code() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Using ustack as a library")
        .nth(1)
        .expect("README has a library section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let blocks: Vec<&str> = section
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(b))
        .collect();
    for (name, file) in [
        (
            "echo_blocking",
            include_str!("../examples/echo_blocking.rs"),
        ),
        ("echo_tokio", include_str!("../examples/echo_tokio.rs")),
    ] {
        let body = main_body(file);
        assert!(
            blocks.contains(&body.as_str()),
            "the README's library section has no block equal to the body of \
             {name}'s main:\n{body}"
        );
    }
}

/// The lines between `fn main` and its closing brace, one indent removed.
fn main_body(file: &str) -> String {
    let lines: Vec<&str> = file.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("fn main()"))
        .expect("fn main");
    let end = start + lines[start..].iter().position(|l| *l == "}").unwrap();
    lines[start + 1..end]
        .iter()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn client_on_the_stack_talks_to_a_kernel_server_and_sees_refusal() {
    let Some(ns) = common::netns("async-client") else {
        return;
    };
    let net = stack_in(&ns);
    let kernel = std::net::TcpListener::bind("10.0.0.1:9000").expect("kernel listen");
    let server = std::thread::spawn(move || {
        let (mut s, _) = kernel.accept().expect("kernel accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        s.write_all(&buf).expect("write");
    });
    let addr: SocketAddr = "10.0.0.1:9000".parse().unwrap();
    let mut s = TcpStream::connect(&net, addr).await.expect("connect");
    assert_eq!(s.peer_addr().unwrap(), addr);
    assert_eq!(s.local_addr().unwrap().ip(), Ipv4Addr::new(10, 0, 0, 2));
    s.set_nodelay(true).unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    server.join().unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).await.unwrap(), 0, "EOF");

    // A closed port: the kernel answers with a RST.
    let err = TcpStream::connect(&net, "10.0.0.1:9001".parse().unwrap())
        .await
        .err()
        .expect("a closed port refuses");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// Writes all of `data`, counting the polls that found no send space.
async fn write_counting_pending(s: &mut TcpStream, data: &[u8]) -> usize {
    let (mut done, mut pending) = (0, 0);
    while done < data.len() {
        done += poll_fn(|cx| match Pin::new(&mut *s).poll_write(cx, &data[done..]) {
            Poll::Pending => {
                pending += 1;
                Poll::Pending
            }
            ready => ready,
        })
        .await
        .expect("write");
    }
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_both_ways_keeps_8_mb_intact() {
    let Some(ns) = common::netns("async-bp") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7000).unwrap();
    let data = pattern(8 << 20);
    let expect = sha(&data);

    // The stack sends to a kernel reader that waits 300 ms before reading:
    // the writer must find the send buffer full and wait.
    let reader = std::thread::spawn(move || {
        let mut c = kernel_connect("10.0.0.2:7000");
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("kernel read");
        sha(&got)
    });
    let (mut s, _) = listener.accept().await.unwrap();
    let pending = write_counting_pending(&mut s, &data).await;
    drop(s);
    assert_eq!(reader.join().unwrap(), expect, "data arrived intact");
    assert!(pending > 0, "the writer never waited for send space");

    // A kernel writer with a small send buffer sends to a stack reader that
    // reads nothing for 300 ms: the window closes and the writer stalls.
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (sent, data) = (Arc::clone(&sent), data.clone());
        std::thread::spawn(move || {
            let c = kernel_connect("10.0.0.2:7000");
            let c = socket2::Socket::from(c);
            c.set_send_buffer_size(64 * 1024).unwrap();
            let mut c = std::net::TcpStream::from(c);
            for chunk in data.chunks(16 * 1024) {
                c.write_all(chunk).expect("kernel write");
                sent.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        })
    };
    let (mut s, _) = listener.accept().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled_at = sent.load(Ordering::Relaxed);
    let window = TcpLayerConfig::default().tcp.recv_buffer;
    assert!(
        stalled_at <= window + (1 << 20),
        "the kernel wrote {stalled_at} bytes into a {window}-byte window nobody read"
    );
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha(&got), expect, "data arrived intact");
}

/// The same upload through posted buffers from a tokio task, eight in
/// flight, taken back with `take_recv` and posted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_receive_buffers_take_a_kernel_upload_from_tokio() {
    let Some(ns) = common::netns("async-posted") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7001).unwrap();
    let data = pattern(8 << 20);
    let expect = sha(&data);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut c = kernel_connect("10.0.0.2:7001");
            c.write_all(&data).expect("kernel write");
        })
    };
    let (s, _) = listener.accept().await.unwrap();
    for _ in 0..ustack_tcp::MAX_POSTED {
        s.post_recv(vec![0; 16 * 1024].into_boxed_slice())
            .expect("post");
    }
    let mut got = Vec::with_capacity(data.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "upload not done in 60 s");
        let f = tokio::time::timeout(Duration::from_secs(30), s.take_recv())
            .await
            .expect("data within 30 s")
            .expect("take_recv");
        if f.len == 0 && f.buf.is_empty() {
            break;
        }
        got.extend_from_slice(f.data());
        if f.len > 0 {
            // Refused once the stream has ended: dropped then.
            let _ = s.post_recv(f.buf);
        }
    }
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha(&got), expect, "data arrived intact and in order");
    assert!(s.unpost_recv().unwrap().is_none(), "nothing left posted");
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_stream_sends_fin_or_rst_when_data_was_left_unread() {
    let Some(ns) = common::netns("async-drop") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7100).unwrap();

    // Nothing unread: the kernel reads what was written, then EOF.
    let peer = std::thread::spawn(|| {
        let mut c = kernel_connect("10.0.0.2:7100");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).map(|_| got)
    });
    let (mut s, _) = listener.accept().await.unwrap();
    s.write_all(b"bye").await.unwrap();
    drop(s);
    assert_eq!(peer.join().unwrap().expect("EOF, not an error"), b"bye");

    // Data left unread: the kernel sees a reset.
    let peer = std::thread::spawn(|| {
        let mut c = kernel_connect("10.0.0.2:7100");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"never read").unwrap();
        c.read(&mut [0u8; 16])
    });
    let (s, _) = listener.accept().await.unwrap();
    // Until the bytes are in the stack's receive buffer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let err = peer.join().unwrap().expect_err("a reset, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_work_at_once_and_copy_bidirectional_relays() {
    let Some(ns) = common::netns("async-split") else {
        return;
    };
    let net = stack_in(&ns);
    let listener = TcpListener::bind(&net, 7200).unwrap();

    // Both halves busy at once, in two tasks: 4 MB each way.
    let (up, down) = (pattern(4 << 20), pattern(3 << 20));
    let client = {
        let (up, down) = (up.clone(), down.clone());
        std::thread::spawn(move || {
            let mut c = kernel_connect("10.0.0.2:7200");
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut w = c.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(&up).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            writer.join().unwrap();
            assert!(got == down, "download differs ({} bytes)", got.len());
        })
    };
    let (s, _) = listener.accept().await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    let sender = tokio::spawn(async move {
        w.write_all(&down).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert!(got == up, "upload differs ({} bytes)", got.len());
    let w = sender.await.unwrap();
    drop(r.unsplit(w));
    client.join().unwrap();

    // A relay: kernel client -> stack :7200 -> stack connects to a kernel
    // echo server -> back.
    common::kernel_echo_server_at(&ns, "10.0.0.1:9200");
    let relay_client = std::thread::spawn(|| check_echo("10.0.0.2:7200", 1_500_000));
    let (mut inbound, _) = listener.accept().await.unwrap();
    let mut outbound = TcpStream::connect(&net, "10.0.0.1:9200".parse().unwrap())
        .await
        .unwrap();
    let (a, b) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
        .await
        .unwrap();
    assert_eq!((a, b), (1_500_000, 1_500_000));
    drop((inbound, outbound));
    relay_client.join().unwrap();
}

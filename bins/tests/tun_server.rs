//! tun-server against the Linux kernel's TCP: real curl and ping, each test in
//! a network namespace of its own (root needed; see common::netns).

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{curl, netns, output_within, start_tun_server};

#[test]
fn curl_gets_hello_world_and_ping_is_answered() {
    let Some(ns) = netns("curl") else { return };
    let _server = start_tun_server(&ns, &[]);
    let out = curl(&ns, &["http://10.0.0.2/"]);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");

    let mut ping = ns.command("ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"]);
    let out = output_within(ping, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 packets transmitted, 3 received"),
        "ping: {text}"
    );
}

#[test]
fn two_hundred_sequential_and_fifty_concurrent_curls_succeed() {
    let Some(ns) = netns("many") else { return };
    let _server = start_tun_server(&ns, &[]);
    for i in 0..200 {
        let out = curl(&ns, &["http://10.0.0.2/"]);
        assert!(
            out.status.success() && out.stdout == b"Hello World!",
            "sequential curl #{i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let children: Vec<_> = (0..50)
        .map(|_| {
            ns.command("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "30",
                    "http://10.0.0.2/",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn curl")
        })
        .map(common::Proc)
        .collect();
    for (i, mut p) in children.into_iter().enumerate() {
        let mut body = String::new();
        p.0.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut body)
            .expect("read");
        let status = p.0.wait().expect("wait");
        assert!(
            status.success() && body == "Hello World!",
            "concurrent curl #{i}: {status} {body:?}"
        );
    }
}

#[test]
fn hundred_megabyte_download_arrives_with_the_right_sha256() {
    const N: u64 = 100_000_000;
    let Some(ns) = netns("bulk") else { return };
    let _server = start_tun_server(&ns, &[]);

    let (total, got, elapsed, _) =
        common::curl_sha256_within(&ns, "http://10.0.0.2/bytes/100000000", 120);
    common::report_goodput("100 MB over TUN", total, elapsed);
    assert_eq!(total, N);
    assert_eq!(got, common::body_sha256(N), "download corrupted");
}

#[test]
fn ten_megabyte_upload_is_counted_exactly() {
    let Some(ns) = netns("upload") else { return };
    let _server = start_tun_server(&ns, &[]);
    let path = std::env::temp_dir().join(format!("ustack-upload-{}.bin", std::process::id()));
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).expect("write upload file");
    let arg = format!("@{}", path.display());
    let out = curl(&ns, &["--data-binary", &arg, "http://10.0.0.2/sink"]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10485760\n");
}

#[test]
fn sigterm_removes_the_device_and_a_busy_name_is_a_clear_error() {
    let Some(ns) = netns("lifecycle") else { return };
    let mut server = start_tun_server(&ns, &["--tun", "ustk0"]);
    assert!(
        ns.ip(&["link", "show", "ustk0"]).is_ok(),
        "device exists while serving"
    );

    // A second server on the same device name fails with a readable error.
    let mut second = ns.command(env!("CARGO_BIN_EXE_tun-server"));
    second.args([
        "--tun",
        "ustk0",
        "--addr",
        "10.0.1.2",
        "--host-addr",
        "10.0.1.1",
    ]);
    let out = output_within(second, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ustk0") && err.contains("busy"),
        "error was: {err}"
    );

    // SAFETY: kill(2) on the pid of a child we spawned and still own.
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "tun-server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        ns.ip(&["link", "show", "ustk0"]).is_err(),
        "device removed on exit"
    );
}

/// A counter of `dev` as the kernel in `ns` sees it (sysfs statistics).
fn dev_counter(ns: &common::NetNs, dev: &str, name: &str) -> u64 {
    let mut cat = ns.command("cat");
    cat.arg(format!("/sys/class/net/{dev}/statistics/{name}"));
    let out = output_within(cat, Duration::from_secs(10));
    assert!(out.status.success(), "cannot read {dev} {name}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{dev} {name}: {text:?}"))
}

/// Average packet size in each direction of tun0, from the kernel's side:
/// (what ustack wrote, what the kernel handed ustack).
fn tun0_average_packets(ns: &common::NetNs) -> (u64, u64) {
    let avg = |bytes: &str, packets: &str| {
        dev_counter(ns, "tun0", bytes) / dev_counter(ns, "tun0", packets).max(1)
    };
    (avg("rx_bytes", "rx_packets"), avg("tx_bytes", "tx_packets"))
}

/// POSTs `n` pseudo-random bytes to /sink and checks the count the server
/// read.
fn upload_is_counted(ns: &common::NetNs, n: usize) {
    let path = std::env::temp_dir().join(format!(
        "ustack-upload-{}-{}.bin",
        ns.name(),
        std::process::id()
    ));
    let data: Vec<u8> = (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).expect("write upload file");
    let arg = format!("@{}", path.display());
    let out = curl(ns, &["--data-binary", &arg, "http://10.0.0.2/sink"]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{n}\n"));
}

#[test]
fn offloads_move_super_frames_both_ways_and_bytes_stay_exact() {
    const N: u64 = 50_000_000;
    let Some(ns) = netns("tso") else { return };
    let _server = start_tun_server(&ns, &[]);
    let (total, got, elapsed, _) =
        common::curl_sha256_within(&ns, &format!("http://10.0.0.2/bytes/{N}"), 60);
    common::report_goodput("50 MB over TUN with offloads", total, elapsed);
    assert_eq!(total, N);
    assert_eq!(got, common::body_sha256(N), "download corrupted");
    upload_is_counted(&ns, 20 << 20);
    // tun0 counts a super-frame as one packet: far above the 1500-byte MTU
    // on average means segmentation happened after ustack (TSO) and before
    // it (the kernel's GSO/GRO hands ustack whole super-frames).
    let (written, read) = tun0_average_packets(&ns);
    assert!(
        written > 8_000,
        "ustack wrote {written}-byte packets on average"
    );
    assert!(read > 4_000, "ustack read {read}-byte packets on average");
}

#[test]
fn without_offloads_no_packet_exceeds_the_mtu() {
    const N: u64 = 20_000_000;
    let Some(ns) = netns("notso") else { return };
    let _server = start_tun_server(&ns, &["--no-offload"]);
    let (total, got, _, _) =
        common::curl_sha256_within(&ns, &format!("http://10.0.0.2/bytes/{N}"), 60);
    assert_eq!(total, N);
    assert_eq!(got, common::body_sha256(N), "download corrupted");
    upload_is_counted(&ns, 5 << 20);
    let (written, read) = tun0_average_packets(&ns);
    assert!(written <= 1500 && read <= 1500, "{written} / {read}");
}

/// Connection churn where the server closes first (`Connection: close`):
/// each connection leaves tun-server in TIME-WAIT. Those are records outside
/// the connection table, so more than ten thousand of them — far past the
/// table's 4,096 slots — never lock a new client out.
#[test]
fn ten_thousand_server_closed_connections_never_lock_clients_out() {
    use std::io::Write;
    use std::net::TcpStream;
    let Some(ns) = netns("churn") else { return };
    let stats = common::stats_path("churn");
    let stats_arg = stats.to_string_lossy().into_owned();
    let _server = start_tun_server(&ns, &["--stats", &stats_arg]);
    const N: usize = 10_500;
    let started = Instant::now();
    let handle = ustack::netns::NetNsHandle::named(ns.name());
    let worker = std::thread::spawn(move || -> Result<usize, String> {
        handle.enter_current_thread().map_err(|e| e.to_string())?;
        let req = b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\nConnection: close\r\n\r\n";
        for i in 0..N {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("only {i} connections in a minute"));
            }
            let mut s =
                TcpStream::connect_timeout(&"10.0.0.2:80".parse().unwrap(), Duration::from_secs(2))
                    .map_err(|e| format!("connection #{i}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            s.write_all(req).map_err(|e| format!("request #{i}: {e}"))?;
            let mut body = Vec::new();
            s.read_to_end(&mut body)
                .map_err(|e| format!("response #{i}: {e}"))?;
            if !body.ends_with(b"Hello World!") {
                return Err(format!(
                    "response #{i}: {:?}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
        Ok(N)
    });
    let done = worker.join().expect("client thread");
    assert_eq!(done, Ok(N));
    // A fresh client straight after the churn is answered at once.
    let (out, took) = common::curl_within(&ns, &["http://10.0.0.2/"], 5);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");
    assert!(took < Duration::from_secs(1), "fresh curl took {took:?}");
    // The server holds the 4-tuples as TIME-WAIT records (stats file column
    // `time_wait`, rewritten every second), not as connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    let col = common::stats_column;
    let (conns, tw) = loop {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        if col(&text, "conns_opened").is_some_and(|n| n as usize > N) {
            break (
                col(&text, "connections").unwrap_or(u64::MAX),
                col(&text, "time_wait").unwrap_or(0),
            );
        }
        assert!(
            Instant::now() < deadline,
            "stats file never caught up: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = std::fs::remove_file(&stats);
    // (Fewer records than connections: the kernel client reuses some ports,
    // and their newer SYNs reopen the 4-tuple, RFC 6191.) More records than
    // the table has slots shows they never took one.
    assert!(
        tw > 4096,
        "{tw} TIME-WAIT records for {N} server-closed connections"
    );
    assert!(conns < 16, "{conns} connections still in the table");
}

/// A stalled tun-server (SIGSTOP) loses what overflows the TUN device's
/// queue; the `--stats` file counts it in `link_rx_dropped` (the kernel's
/// TX drops of tun0, read in the server's namespace) and the server serves
/// again.
#[test]
fn packets_the_kernel_drops_while_the_server_stalls_show_in_the_stats_file() {
    const SENT: u64 = 5_000;
    let Some(ns) = netns("tundrop") else { return };
    let stats = common::stats_path("tundrop");
    let stats_arg = stats.to_string_lossy().into_owned();
    let server = start_tun_server(&ns, &["--stats", &stats_arg]);
    common::flood_while_stopped(&server, &ns, "10.0.0.1:0", "10.0.0.2:9", SENT);
    let (read, dropped) = common::wait_link_rx_dropped(&stats);
    let _ = std::fs::remove_file(&stats);
    // The device queue (txqueuelen 500) holds a tenth of the flood.
    assert!(
        dropped > SENT / 2 && dropped <= SENT,
        "{dropped} of {SENT} counted dropped ({read} packets read in all)"
    );
    let (out, _) = common::curl_within(&ns, &["http://10.0.0.2/"], 5);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");
}

/// A keep-alive response a little over one segment must not wait for the
/// client's delayed ACK (Linux: 40 ms) before its last piece leaves: Nagle
/// holds a short segment only behind another short one.
#[test]
fn keep_alive_responses_of_one_and_a_half_segments_do_not_wait_for_delayed_acks() {
    const REQUESTS: usize = 60;
    let Some(ns) = netns("nagle") else { return };
    let _server = start_tun_server(&ns, &[]);
    let url = "http://10.0.0.2/bytes/2000";
    let mut args = vec!["-w", "%{time_total} %{num_connects}\n"];
    for _ in 0..REQUESTS {
        args.extend(["-o", "/dev/null", url]);
    }
    let (out, elapsed) = common::curl_within(&ns, &args, 60);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), REQUESTS, "curl output: {text}");
    let connects: usize = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        .sum();
    assert_eq!(connects, 1, "all requests on one connection: {text}");
    // 60 stalls of 40 ms would take 2.4 s; a request here takes well under
    // a millisecond.
    let slow: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(|t| t > 0.030)
        })
        .collect();
    assert!(
        slow.len() < 5,
        "{} of {REQUESTS} requests took over 30 ms (total {elapsed:?}): {slow:?}",
        slow.len()
    );
}

/// A client that writes a request's header and body in two writes, each
/// on a new connection (Python's http.client does so for file bodies):
/// Linux's Nagle sends the body only once the header is ACKed, so a
/// delayed ACK would hold every request 40 ms. A connection's first
/// segments are ACKed at once, as Linux's quick-ACK mode does.
#[test]
fn requests_written_in_two_pieces_on_new_connections_are_not_held() {
    const CLIENT: &str = r#"
import socket, sys, time
slow = 0
for i in range(20):
    t0 = time.perf_counter()
    s = socket.create_connection(("10.0.0.2", 80), timeout=5)
    s.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
    s.send(b"body")
    reply = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        reply += d
    s.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\n4\n"), reply
    if time.perf_counter() - t0 > 0.030:
        slow += 1
print(slow)
"#;
    let Some(ns) = netns("wwr") else { return };
    let _server = start_tun_server(&ns, &[]);
    let mut py = ns.command("python3");
    py.args(["-c", CLIENT]);
    let out = output_within(py, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slow: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count");
    assert!(slow < 4, "{slow} of 20 requests took over 30 ms");
}

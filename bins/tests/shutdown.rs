//! A clean shutdown: on SIGTERM/SIGINT tun-server and raw-client tell their
//! peers (the response finishes within the grace period, or a RST) instead
//! of vanishing. Each test in a network namespace of its own (root needed;
//! see common::netns).

mod common;

use std::io::{Read, Write};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{netns, output_within, start_tun_server, terminate, NetNs, Proc};

/// How a paced download ended, as the reader saw it.
#[derive(Debug)]
struct Download {
    /// Body bytes received.
    bytes: u64,
    /// SHA-256 of those bytes, hex.
    sha256: String,
    /// `complete` (all of Content-Length), `eof` (closed before that),
    /// `reset` (ECONNRESET), `timeout` or `error:...`.
    how: String,
}

/// A kernel-TCP client in `ns` (python3) that GETs `path` from tun-server
/// and reads the body at no more than `rate` bytes/s: a fixed pause after
/// each read of at most 4 KiB, so a reader held up by a busy machine never
/// catches up in a burst (curl's `--limit-rate` averages, and after a stall
/// it reads megabytes at once and then sleeps for seconds, blind to a RST).
/// Its receive buffer is small, so little data is buffered ahead of it and
/// a RST reaches it within a few reads. Returns the process and a receiver
/// of its one-line report.
fn spawn_paced_reader(ns: &NetNs, path: &str, rate: u32) -> (Proc, mpsc::Receiver<Download>) {
    const SCRIPT: &str = r#"
import hashlib, socket, sys, time
path, rate = sys.argv[1], int(sys.argv[2])
chunk = 4096
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.settimeout(30)
s.connect(("10.0.0.2", 80))
s.sendall(("GET %s HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n" % path).encode())
head, h, total, length, how = b"", hashlib.sha256(), 0, None, "eof"
try:
    while length is None or total < length:
        data = s.recv(chunk)
        if not data:
            break
        if length is None:
            head += data
            if b"\r\n\r\n" not in head:
                continue
            head, data = head.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
        h.update(data)
        total += len(data)
        time.sleep(chunk / rate)
    if length is not None and total >= length:
        how = "complete"
except ConnectionResetError:
    how = "reset"
except socket.timeout:
    how = "timeout"
except OSError as e:
    how = "error:" + str(e).replace(" ", "_")
print(total, h.hexdigest(), how, flush=True)
"#;
    let mut child = ns
        .command("python3")
        .args(["-c", SCRIPT, path, &rate.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_to_string(&mut line);
        let mut words = line.split_whitespace();
        let report = Download {
            bytes: words.next().and_then(|w| w.parse().ok()).unwrap_or(0),
            sha256: words.next().unwrap_or_default().to_string(),
            how: words.next().unwrap_or("no report").to_string(),
        };
        let _ = tx.send(report);
    });
    (Proc(child), rx)
}

/// Waits until `child` exits, failing the test if it takes beyond `deadline`.
fn exited_by(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still running past its deadline: hung"
        );
        sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

fn tun0_gone(ns: &NetNs) -> bool {
    ns.ip(&["link", "show", "tun0"]).is_err()
}

#[test]
fn sigterm_resets_a_long_download_after_the_grace_period_and_removes_tun0() {
    let Some(ns) = netns("shut-reset") else {
        return;
    };
    let mut server = start_tun_server(&ns, &["--grace", "2"]);
    let (mut reader, report) = spawn_paced_reader(&ns, "/bytes/100000000", 200_000);
    sleep(Duration::from_millis(1500));
    assert!(
        reader.0.try_wait().expect("try_wait").is_none(),
        "the download should still be running"
    );
    let signalled = Instant::now();
    // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };

    // During the grace period the listener is gone: new SYNs get a RST.
    sleep(Duration::from_millis(300));
    let mut late = ns.command("curl");
    late.args(["--silent", "--max-time", "5", "http://10.0.0.2/"]);
    let out = output_within(late, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(7),
        "a new connection during the grace period is refused (curl: couldn't connect)"
    );

    exited_by(
        &mut reader.0,
        signalled + Duration::from_secs(3),
        "the reader (grace 2 s + 1 s)",
    );
    let waited = signalled.elapsed();
    let got = report
        .recv_timeout(Duration::from_secs(5))
        .expect("the reader's report");
    assert_eq!(
        got.how,
        "reset",
        "the reader should see the connection reset: {got:?} {}",
        stderr_of(&mut reader.0)
    );
    assert!(
        waited >= Duration::from_millis(1800),
        "the reset came before the grace period was over ({waited:?})"
    );
    assert!(
        got.bytes > 0 && got.bytes < 100_000_000,
        "got {} bytes",
        got.bytes
    );

    let status = terminate(&mut server, Duration::from_secs(5));
    assert!(status.success(), "tun-server exit status: {status}");
    assert!(tun0_gone(&ns), "tun0 is removed once tun-server exits");
}

#[test]
fn a_download_finishing_within_the_grace_period_completes() {
    const N: u64 = 5_000_000;
    let Some(ns) = netns("shut-grace") else {
        return;
    };
    // Nominally 1.7 s; a busy machine slows the reader, never speeds it up.
    let mut server = start_tun_server(&ns, &["--grace", "20"]);
    let path = format!("/bytes/{N}");
    let (mut reader, report) = spawn_paced_reader(&ns, &path, 3_000_000);
    sleep(Duration::from_millis(700));
    if let Some(status) = reader.0.try_wait().expect("try_wait") {
        panic!(
            "the download should still be running when the signal comes: {status} {} {:?}",
            stderr_of(&mut reader.0),
            report.recv_timeout(Duration::from_secs(5))
        );
    }
    let signalled = Instant::now();
    let status = terminate(&mut server, Duration::from_secs(25));
    let server_took = signalled.elapsed();
    assert!(status.success(), "tun-server exit status: {status}");
    assert!(
        server_took < Duration::from_secs(15),
        "tun-server should leave once the download is done, not wait out the \
         grace period ({server_took:?})"
    );
    exited_by(
        &mut reader.0,
        Instant::now() + Duration::from_secs(5),
        "the reader",
    );
    let got = report
        .recv_timeout(Duration::from_secs(5))
        .expect("the reader's report");
    assert_eq!(got.how, "complete", "{got:?} {}", stderr_of(&mut reader.0));
    assert_eq!(got.bytes, N);
    let want: String = common::body_sha256(N)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got.sha256, want, "body differs from the pattern");
    assert!(tun0_gone(&ns), "tun0 is removed once tun-server exits");
}

/// The outcome of the kernel server's read once raw-client is gone.
#[derive(Debug, PartialEq, Eq)]
enum PeerSaw {
    Eof,
    Reset,
    Other(String),
}

/// A kernel server on 127.0.0.1:6666 in `ns` for one connection: echoes what
/// arrives, and reports how that connection ended (bounded: a hang is a
/// read timeout, reported as `Other`).
fn one_shot_echo_server(ns: &NetNs) -> mpsc::Receiver<PeerSaw> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let name = ns.name().to_string();
    std::thread::spawn(move || {
        let ns = ustack::netns::NetNsHandle::named(&name);
        ns.enter_current_thread().expect("enter namespace");
        let listener = std::net::TcpListener::bind("127.0.0.1:6666").expect("bind");
        ready_tx.send(()).expect("signal ready");
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        let saw = loop {
            match conn.read(&mut buf) {
                Ok(0) => break PeerSaw::Eof,
                Ok(n) => {
                    if let Err(e) = conn.write_all(&buf[..n]) {
                        break PeerSaw::Other(format!("write: {e}"));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break PeerSaw::Reset,
                Err(e) => break PeerSaw::Other(format!("read: {e}")),
            }
        };
        let _ = tx.send(saw);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("echo server did not start");
    rx
}

#[test]
fn sigint_makes_raw_client_reset_its_connection_and_remove_its_rule() {
    let Some(ns) = netns("shut-raw") else { return };
    let peer = one_shot_echo_server(&ns);
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_raw-client"))
        .args(["127.0.0.1", "6666"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn raw-client");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut client = Proc(child);
    stdin.write_all(b"ping\n").expect("write stdin");
    // Connected once the echo comes back (bounded by a reader thread).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = [0u8; 5];
        let r = stdout.read_exact(&mut got).map(|()| got);
        let _ = tx.send(r);
    });
    let echoed = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no echo within 20 s")
        .expect("read echo");
    assert_eq!(&echoed, b"ping\n");

    // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
    unsafe { libc::kill(client.0.id() as i32, libc::SIGINT) };
    let status = exited_by(
        &mut client.0,
        Instant::now() + Duration::from_secs(5),
        "raw-client after SIGINT",
    );
    let err = stderr_of(&mut client.0);
    assert!(!status.success(), "interrupted is a failure: {status}");
    assert!(err.contains("interrupted"), "stderr: {err}");
    let saw = peer
        .recv_timeout(Duration::from_secs(20))
        .expect("the kernel server never saw the connection end");
    assert!(
        matches!(saw, PeerSaw::Reset | PeerSaw::Eof),
        "the kernel's socket should see a reset or EOF, not hang: {saw:?}"
    );
    drop(stdin);

    let mut c = ns.command("nft");
    c.args(["list", "ruleset"]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "nft list ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ruleset = String::from_utf8_lossy(&out.stdout);
    assert!(
        !ruleset.contains(ustack::rst_guard::TABLE_PREFIX),
        "RST guard left behind: {ruleset}"
    );
}

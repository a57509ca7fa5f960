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

/// Starts `curl ARGS` in `ns`, its body counted (and hashed) on a thread:
/// returns the process and a receiver of (bytes, SHA-256).
fn spawn_curl(ns: &NetNs, args: &[&str]) -> (Proc, mpsc::Receiver<(u64, Vec<u8>)>) {
    use sha2::{Digest, Sha256};
    let mut child = ns
        .command("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut h = Sha256::new();
        let mut total = 0u64;
        let mut chunk = vec![0u8; 1 << 16];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            h.update(&chunk[..n]);
            total += n as u64;
        }
        let _ = tx.send((total, h.finalize().to_vec()));
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

/// Caps the kernel's TCP receive buffers in `ns` at 128 KiB. With the
/// default autotuning (up to 6 MB) the kernel takes megabytes ahead of a
/// rate-limited curl: the transfer would be over long before curl is (so
/// the download would not be "in flight" when the signal comes), and after
/// a reset curl first reads what is buffered. Small buffers make curl's
/// pace the connection's.
fn small_receive_buffers(ns: &NetNs) {
    let mut c = ns.command("sysctl");
    c.args(["-q", "-w", "net.ipv4.tcp_rmem=4096 65536 131072"]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "sysctl tcp_rmem: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tun0_gone(ns: &NetNs) -> bool {
    ns.ip(&["link", "show", "tun0"]).is_err()
}

#[test]
fn sigterm_resets_a_long_download_after_the_grace_period_and_removes_tun0() {
    let Some(ns) = netns("shut-reset") else {
        return;
    };
    small_receive_buffers(&ns);
    let mut server = start_tun_server(&ns, &["--grace", "2"]);
    let (mut curl, body) = spawn_curl(
        &ns,
        &["--limit-rate", "200k", "http://10.0.0.2/bytes/100000000"],
    );
    sleep(Duration::from_millis(1500));
    assert!(
        curl.0.try_wait().expect("try_wait").is_none(),
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

    let status = exited_by(
        &mut curl.0,
        signalled + Duration::from_secs(3),
        "curl (grace 2 s + 1 s)",
    );
    let waited = signalled.elapsed();
    let err = stderr_of(&mut curl.0);
    assert!(
        !status.success(),
        "curl cannot have the whole 100 MB: {status}"
    );
    assert!(
        matches!(status.code(), Some(56 | 18)),
        "curl should see the connection reset (56) or cut short (18): {status}, {err}"
    );
    assert!(
        waited >= Duration::from_millis(1800),
        "the reset came before the grace period was over ({waited:?})"
    );
    let (bytes, _) = body
        .recv_timeout(Duration::from_secs(5))
        .expect("curl output");
    assert!(bytes > 0 && bytes < 100_000_000, "got {bytes} bytes");

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
    small_receive_buffers(&ns);
    let mut server = start_tun_server(&ns, &["--grace", "10"]);
    let url = format!("http://10.0.0.2/bytes/{N}");
    let (mut curl, body) = spawn_curl(&ns, &["--limit-rate", "2M", &url]);
    sleep(Duration::from_millis(700));
    if let Some(status) = curl.0.try_wait().expect("try_wait") {
        panic!(
            "the download should still be running when the signal comes: {status} {} {:?}",
            stderr_of(&mut curl.0),
            body.recv_timeout(Duration::from_secs(5)).map(|(n, _)| n)
        );
    }
    let signalled = Instant::now();
    let status = terminate(&mut server, Duration::from_secs(12));
    let server_took = signalled.elapsed();
    assert!(status.success(), "tun-server exit status: {status}");
    assert!(
        server_took < Duration::from_secs(8),
        "tun-server should leave once the download is done, not wait out the \
         grace period ({server_took:?})"
    );
    let status = exited_by(&mut curl.0, Instant::now() + Duration::from_secs(5), "curl");
    let err = stderr_of(&mut curl.0);
    assert!(status.success(), "curl failed: {status} {err}");
    let (bytes, sha) = body
        .recv_timeout(Duration::from_secs(5))
        .expect("curl output");
    assert_eq!(bytes, N);
    assert!(
        sha == common::body_sha256(N),
        "body differs from the pattern"
    );
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

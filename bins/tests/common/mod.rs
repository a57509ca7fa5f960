//! Shared pieces of the privileged end-to-end tests: a namespace per test,
//! child processes that die with the test, bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use ustack::netns::NetNs;

/// A fresh namespace for one test. Fails the test loudly when it cannot be
/// made, unless a person set `USTACK_SKIP_PRIVILEGED=1` (then returns None).
pub fn netns(tag: &str) -> Option<NetNs> {
    if ustack::netns::skip_requested() {
        println!("SKIPPED (USTACK_SKIP_PRIVILEGED=1): needs root for a network namespace");
        return None;
    }
    match NetNs::create(tag) {
        Ok(ns) => Some(ns),
        Err(e) => panic!("cannot set up the test's network namespace: {e}"),
    }
}

/// A child process killed (and reaped) when the test ends on any path.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts tun-server in `ns` with `args` and waits (bounded) for its ready line.
pub fn start_tun_server(ns: &NetNs, args: &[&str]) -> Proc {
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_tun-server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tun-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let proc = Proc(child);
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tun-server printed no ready line within 20 s");
    assert!(
        line.contains("curl http://"),
        "unexpected first line: {line:?}"
    );
    proc
}

/// Runs a command to completion with a time limit; returns its output.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on a pid we spawned; at worst it no longer exists.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("command did not finish within {limit:?}: {cmd:?}");
        }
    }
}

/// `curl` inside the namespace with bounded time; returns (stdout, success).
pub fn curl(ns: &NetNs, args: &[&str]) -> Output {
    let mut c = ns.command("curl");
    c.args(["--silent", "--show-error", "--max-time", "60"])
        .args(args);
    output_within(c, Duration::from_secs(90))
}

/// Two namespaces joined by a veth pair: `veth-a` in `a`, up with no IPv4
/// address (the stack brings its own over AF_PACKET), and `veth-b` in `b`
/// with 10.1.0.1/24, where the kernel peers live.
pub struct VethPair {
    pub a: NetNs,
    pub b: NetNs,
}

/// Builds a [`VethPair`] for one test; None when privileged tests are skipped.
pub fn veth_pair(tag: &str) -> Option<VethPair> {
    let a = netns(&format!("{tag}-a"))?;
    let b = netns(&format!("{tag}-b"))?;
    let setup = || -> Result<(), ustack::netns::NetNsError> {
        a.ip(&[
            "link",
            "add",
            "veth-a",
            "type",
            "veth",
            "peer",
            "name",
            "veth-b",
            "netns",
            b.name(),
        ])?;
        a.ip(&["link", "set", "veth-a", "up"])?;
        b.ip(&["addr", "add", "10.1.0.1/24", "dev", "veth-b"])?;
        b.ip(&["link", "set", "veth-b", "up"])?;
        Ok(())
    };
    if let Err(e) = setup() {
        panic!("cannot set up the veth pair: {e}");
    }
    Some(VethPair { a, b })
}

/// Asks a child to stop with SIGTERM and waits (bounded) for it to exit.
pub fn terminate(proc: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
    unsafe { libc::kill(proc.0.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = proc.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not exit within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A kernel echo server (std::net) on `addr` inside `ns`: echoes each
/// connection until EOF, then closes it. Runs on a thread that entered the
/// namespace and ends with the test process.
pub fn kernel_echo_server_at(ns: &NetNs, addr: &str) {
    use std::io::{Read, Write};
    let (tx, rx) = mpsc::channel();
    let name = ns.name().to_string();
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let ns = ustack::netns::NetNsHandle::named(&name);
        ns.enter_current_thread().expect("enter namespace");
        let listener = std::net::TcpListener::bind(&addr).expect("bind echo server");
        tx.send(()).expect("signal ready");
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("echo server did not start");
}

/// The SHA-256 of the first `n` bytes `GET /bytes/N` serves.
pub fn body_sha256(n: u64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < n {
        let len = chunk.len().min((n - off) as usize);
        ustack_http::fill_body(off, &mut chunk[..len]);
        h.update(&chunk[..len]);
        off += len as u64;
    }
    h.finalize().to_vec()
}

/// Streams `curl URL` in `ns` and returns (bytes, SHA-256 of them).
pub fn curl_sha256(ns: &NetNs, url: &str) -> (u64, Vec<u8>) {
    let (total, sha, _, _) = curl_sha256_within(ns, url, 120);
    (total, sha)
}

/// Loads an nftables script (`nft -f -`) inside `ns`; panics on failure.
pub fn nft_apply(ns: &NetNs, script: &str) {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write nft script");
    let out = child.wait_with_output().expect("wait nft");
    assert!(
        out.status.success(),
        "nft refused {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The (packets, bytes) of every `counter` in `table` (family inet) in `ns`,
/// in ruleset order.
pub fn nft_counters(ns: &NetNs, table: &str) -> Vec<(u64, u64)> {
    let mut c = ns.command("nft");
    c.args(["list", "table", "inet", table]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "nft list table {table}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split("counter packets ").nth(1)?.split_whitespace();
            let packets = words.next()?.parse().ok()?;
            let bytes = match (words.next(), words.next()) {
                (Some("bytes"), Some(b)) => b.parse().ok()?,
                _ => return None,
            };
            Some((packets, bytes))
        })
        .collect()
}

/// Table `ustack_loss`: drops a random `percent` % of the packets entering
/// (prerouting) and of those leaving (postrouting) `iface`. Each packet
/// crosses one of the two hooks on a TUN or veth device, so each direction
/// loses `percent` %. In each chain a first rule counts every packet and the
/// second counts its drops: [`nft_counters`] gives (seen, dropped) pairs for
/// `pre` then `post`. Call [`one_segment_per_packet`] on `iface` too, or
/// the kernel's GSO batches are what gets dropped.
pub fn loss_rules(iface: &str, percent: u32) -> String {
    format!(
        "table inet ustack_loss {{\n  \
         chain pre {{ type filter hook prerouting priority 0; \
         iifname \"{iface}\" counter; \
         iifname \"{iface}\" numgen random mod 100 < {percent} counter drop; }}\n  \
         chain post {{ type filter hook postrouting priority 0; \
         oifname \"{iface}\" counter; \
         oifname \"{iface}\" numgen random mod 100 < {percent} counter drop; }}\n}}\n"
    )
}

/// Makes the kernel hand `iface` one TCP segment per packet
/// (`gso_max_segs 1`). Netfilter sees a GSO packet (up to 64 KB, cut into
/// MTU-sized segments only later, at the device) as one packet, so without
/// this a random-drop rule loses whole bursts of segments at a rate far below
/// the intended per-packet loss.
pub fn one_segment_per_packet(ns: &NetNs, iface: &str) {
    if let Err(e) = ns.ip(&["link", "set", "dev", iface, "gso_max_segs", "1"]) {
        panic!("cannot limit GSO on {iface}: {e}");
    }
}

/// `curl` in `ns` with `--max-time max_secs` (the wait is bounded a little
/// beyond it); returns its output and the wall time it took.
pub fn curl_within(ns: &NetNs, args: &[&str], max_secs: u64) -> (Output, Duration) {
    let mut c = ns.command("curl");
    c.args([
        "--silent",
        "--show-error",
        "--max-time",
        &max_secs.to_string(),
    ])
    .args(args);
    let started = std::time::Instant::now();
    let out = output_within(c, Duration::from_secs(max_secs + 30));
    (out, started.elapsed())
}

/// Streams `curl --max-time max_secs URL` in `ns`; returns (bytes, SHA-256
/// of them, wall time, whether curl exited successfully).
pub fn curl_sha256_within(ns: &NetNs, url: &str, max_secs: u64) -> (u64, Vec<u8>, Duration, bool) {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child = ns
        .command("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            &max_secs.to_string(),
            url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut child = Proc(child);
    let mut h = Sha256::new();
    let mut total = 0u64;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        // curl's own --max-time ends the stream; the read returns 0 then.
        let n = stdout.read(&mut chunk).expect("read curl output");
        if n == 0 {
            break;
        }
        h.update(&chunk[..n]);
        total += n as u64;
    }
    let ok = child.0.wait().map(|s| s.success()).unwrap_or(false);
    (total, h.finalize().to_vec(), started.elapsed(), ok)
}

/// Runs raw-client in `ns` with `args`, feeding it `input` on stdin; kills it
/// and fails the test if it has not finished within `limit`.
pub fn raw_client_within(ns: &NetNs, args: &[&str], input: &[u8], limit: Duration) -> Output {
    use std::io::Write;
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_raw-client"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn raw-client");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait raw-client"),
        Err(_) => {
            // SAFETY: kill(2) on a pid we spawned; at worst it no longer exists.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("raw-client did not finish within {limit:?}");
        }
    };
    let _ = writer.join();
    out
}

/// Prints "what: N bytes in S s = X MB/s (Y Mbit/s)" for `--nocapture` runs.
pub fn report_goodput(what: &str, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{what}: {bytes} bytes in {secs:.2} s = {:.3} MB/s ({:.2} Mbit/s)",
        bytes as f64 / secs / 1e6,
        bytes as f64 * 8.0 / secs / 1e6
    );
}

/// Enters `ns` on this thread and starts a stack at 10.0.0.2 on a new tun0
/// there (host side 10.0.0.1/24, offloads on), configured by `cfg`.
pub fn tun_stack_in(ns: &NetNs, cfg: ustack_tcp::TcpLayerConfig) -> ustack::socket::NetStack {
    use std::net::Ipv4Addr;
    ns.enter_current_thread().expect("enter namespace");
    let link = ustack_link::TunLink::create(&ustack_link::TunConfig {
        name: "tun0".into(),
        host_addr: Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        offload: true,
    })
    .expect("tun0");
    let subnet = ustack_ipv4::Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 2), 24).expect("subnet");
    ustack::socket::NetStack::spawn(link, subnet, cfg).expect("spawn")
}

/// Where a test's tun-server writes its `--stats` file: one per test and process.
pub fn stats_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ustack-{tag}-{}.csv", std::process::id()))
}

/// The named column of a `--stats` file's text (None before it exists).
pub fn stats_column(text: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    let i = lines.next()?.split(',').position(|c| c == name)?;
    lines.next()?.split(',').nth(i)?.parse().ok()
}

/// Stalls `server` (SIGSTOP) while `n` UDP datagrams of 1000 bytes go from
/// `from` in `ns` to `to`, then lets it run again (SIGCONT, on every path).
pub fn flood_while_stopped(server: &Proc, ns: &NetNs, from: &str, to: &str, n: u64) {
    let pid = server.0.id() as i32;
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let handle = ustack::netns::NetNsHandle::named(ns.name());
    let (from, to) = (from.to_string(), to.to_string());
    let flood = std::thread::spawn(move || -> Result<(), String> {
        handle.enter_current_thread().map_err(|e| e.to_string())?;
        let sock = std::net::UdpSocket::bind(&from).map_err(|e| e.to_string())?;
        for i in 0..n {
            sock.send_to(&[0x5a; 1000], &to)
                .map_err(|e| format!("datagram {i}: {e}"))?;
        }
        Ok(())
    })
    .join();
    // SAFETY: as above; the server resumes whatever the flood did.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(flood.expect("flood thread"), Ok(()));
}

/// Waits (bounded) until the `--stats` file at `path` counts kernel drops;
/// returns (`link_rx_packets`, `link_rx_dropped`).
pub fn wait_link_rx_dropped(path: &std::path::Path) -> (u64, u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let dropped = stats_column(&text, "link_rx_dropped").unwrap_or(0);
        if dropped > 0 {
            return (stats_column(&text, "link_rx_packets").unwrap_or(0), dropped);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no kernel drop in the stats file: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! tun-proxy end to end. Each test makes a client namespace (tun-proxy,
//! curl, std::net clients) and a server namespace (kernel servers) joined
//! by a veth pair: client 10.77.0.1/24, server 10.77.0.2/24. The proxy
//! routes 10.77.0.2/32 into its TUN device, so the client's connections to
//! the server go through ustack and the proxy's marked sockets, while the
//! server is also directly reachable for the proxy itself. After SIGTERM,
//! every rule, route and device of the proxy must be gone.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use common::{NetNs, Proc};
use sha2::{Digest, Sha256};
use ustack::netns::NetNsHandle;

const SERVER: &str = "10.77.0.2";
/// The source address of relayed connections, as clients see it.
const PROXY_HOST_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

struct Net {
    c: NetNs,
    s: NetNs,
    /// `ip rule` and `ip route show table all` in the client namespace
    /// before any proxy ran.
    baseline: (String, String),
}

fn nets(tag: &str) -> Option<Net> {
    let c = common::netns(&format!("{tag}-c"))?;
    let s = common::netns(&format!("{tag}-s"))?;
    let setup = || -> Result<(), ustack::netns::NetNsError> {
        c.ip(&[
            "link",
            "add",
            "veth-c",
            "type",
            "veth",
            "peer",
            "name",
            "veth-s",
            "netns",
            s.name(),
        ])?;
        c.ip(&["addr", "add", "10.77.0.1/24", "dev", "veth-c"])?;
        c.ip(&["link", "set", "veth-c", "up"])?;
        s.ip(&["addr", "add", "10.77.0.2/24", "dev", "veth-s"])?;
        s.ip(&["link", "set", "veth-s", "up"])?;
        Ok(())
    };
    setup().unwrap_or_else(|e| panic!("cannot set up the namespaces: {e}"));
    let baseline = routing_state(&c);
    Some(Net { c, s, baseline })
}

fn routing_state(ns: &NetNs) -> (String, String) {
    let rules = ns.ip(&["-4", "rule", "show"]).expect("ip rule");
    let routes = ns
        .ip(&["-4", "route", "show", "table", "all"])
        .expect("ip route");
    (
        String::from_utf8_lossy(&rules.stdout).into_owned(),
        String::from_utf8_lossy(&routes.stdout).into_owned(),
    )
}

/// Starts tun-proxy in the client namespace, routing the server's address,
/// and waits (bounded) for its ready line.
fn start_proxy(net: &Net, extra: &[&str]) -> Proc {
    let mut child = net
        .c
        .command(env!("CARGO_BIN_EXE_tun-proxy"))
        .args(["--route", "10.77.0.2/32", "--connect-timeout", "5"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tun-proxy");
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
        .expect("tun-proxy printed no ready line within 20 s");
    assert!(
        line.contains("relaying TCP to 10.77.0.2/32") && line.contains("UDP is not relayed"),
        "unexpected first line: {line:?}"
    );
    proc
}

/// SIGTERM, a clean exit, and nothing of the proxy left behind.
fn stop_proxy(net: &Net, mut proxy: Proc) {
    let status = common::terminate(&mut proxy, Duration::from_secs(10));
    assert!(status.success(), "tun-proxy exited with {status}");
    assert_eq!(
        routing_state(&net.c),
        net.baseline,
        "rules or routes left after tun-proxy exited"
    );
    let links = net.c.ip(&["link", "show"]).expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("tunproxy0"), "device left: {links}");
}

/// Runs `f` on a thread inside `ns` and returns its result (bounded wait).
fn in_ns<T: Send + 'static>(
    ns: &NetNs,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let ns = NetNsHandle::named(ns.name());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        ns.enter_current_thread().expect("enter namespace");
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("client did not finish within {limit:?}"))
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let addr: SocketAddr = addr.parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(10))
}

/// Waits (bounded) until something listens on `addr` in `ns`.
fn wait_listening(ns: &NetNs, addr: &'static str) {
    in_ns(ns, Duration::from_secs(20), move || {
        let end = Instant::now() + Duration::from_secs(15);
        while connect(addr).is_err() {
            assert!(Instant::now() < end, "nothing listens on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// Byte `i` of the test payloads.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let i = offset + i as u64;
        *b = (i % 253) as u8 ^ (i >> 20) as u8;
    }
}

/// A directory with `index.html` and a `len`-byte `big.bin`; returns its
/// path and the big file's SHA-256.
fn web_root(tag: &str, len: u64) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("ustack-proxy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("index.html"), "hello through the proxy\n").expect("index");
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("big.bin")).expect("big"));
    let mut h = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < len {
        let n = chunk.len().min((len - off) as usize);
        pattern(off, &mut chunk[..n]);
        h.update(&chunk[..n]);
        f.write_all(&chunk[..n]).expect("write big");
        off += n as u64;
    }
    f.flush().expect("flush");
    (dir, h.finalize().to_vec())
}

/// A kernel server on `addr` in `ns` that reads each connection to its
/// end and answers with "LEN SHA256-HEX", then closes.
fn sink_server(ns: &NetNs, addr: &'static str) {
    let ns = NetNsHandle::named(ns.name());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        ns.enter_current_thread().expect("enter namespace");
        let l = std::net::TcpListener::bind(addr).expect("bind sink");
        tx.send(()).expect("ready");
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            h.update(&buf[..n]);
                            total += n as u64;
                        }
                        Err(_) => return,
                    }
                }
                let _ = write!(conn, "{total} {}", hex(&h.finalize()));
            });
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("sink server did not start");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn http_server(ns: &NetNs, root: &std::path::Path) -> Proc {
    let child = ns
        .command("python3")
        .args(["-m", "http.server", "8000", "--bind", SERVER, "--directory"])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let p = Proc(child);
    wait_listening(ns, "10.77.0.2:8000");
    p
}

#[test]
fn curl_and_100_mb_each_way_through_the_proxy() {
    let Some(net) = nets("pxy-bulk") else {
        return;
    };
    const BIG: u64 = 100_000_000;
    let (root, big_sha) = web_root("bulk", BIG);
    let _web = http_server(&net.s, &root);
    sink_server(&net.s, "10.77.0.2:9000");
    let proxy = start_proxy(&net, &[]);

    let page = common::curl(&net.c, &["http://10.77.0.2:8000/index.html"]);
    assert!(
        page.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&page.stderr)
    );
    assert_eq!(page.stdout, b"hello through the proxy\n");

    let (len, sha) = common::curl_sha256(&net.c, "http://10.77.0.2:8000/big.bin");
    assert_eq!(len, BIG, "download length");
    assert!(sha == big_sha, "download differs");

    let reply = in_ns(&net.c, Duration::from_secs(120), || {
        let mut s = connect("10.77.0.2:9000").expect("connect to the sink");
        assert_eq!(
            s.local_addr().unwrap().ip(),
            PROXY_HOST_SIDE,
            "not through the proxy"
        );
        let mut h = Sha256::new();
        let mut chunk = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < BIG {
            let n = chunk.len().min((BIG - off) as usize);
            pattern(off, &mut chunk[..n]);
            h.update(&chunk[..n]);
            s.write_all(&chunk[..n]).expect("upload");
            off += n as u64;
        }
        s.shutdown(Shutdown::Write).expect("half-close");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reply");
        (reply, hex(&h.finalize()))
    });
    assert_eq!(reply.0, format!("{BIG} {}", reply.1), "upload differs");
    stop_proxy(&net, proxy);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn half_close_refusal_and_200_concurrent_connections() {
    let Some(net) = nets("pxy-conc") else {
        return;
    };
    common::kernel_echo_server_at(&net.s, "10.77.0.2:7");
    let proxy = start_proxy(&net, &[]);

    // nc -N style: send, shut down writing, still read the whole reply.
    let echoed = in_ns(&net.c, Duration::from_secs(60), || {
        let mut s = connect("10.77.0.2:7").expect("connect");
        let mut data = vec![0u8; 1_000_000];
        pattern(0, &mut data);
        s.write_all(&data).expect("send");
        s.shutdown(Shutdown::Write).expect("half-close");
        let mut back = Vec::new();
        s.read_to_end(&mut back).expect("read after half-close");
        back == data
    });
    assert!(echoed, "echo after half-close differs");

    // Nobody listens on port 9 of the server: the client hears "refused".
    let refused = in_ns(&net.c, Duration::from_secs(30), || {
        connect("10.77.0.2:9").map(|_| ()).unwrap_err().kind()
    });
    assert_eq!(refused, ErrorKind::ConnectionRefused);

    const N: usize = 200;
    let barrier = Arc::new(Barrier::new(N));
    let (tx, rx) = mpsc::channel();
    for i in 0..N {
        let (barrier, tx) = (Arc::clone(&barrier), tx.clone());
        let ns = NetNsHandle::named(net.c.name());
        std::thread::spawn(move || {
            ns.enter_current_thread().expect("enter namespace");
            let conn = connect("10.77.0.2:7");
            // Every connection is open before any finishes.
            barrier.wait();
            let result = conn.and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                let mut data = vec![0u8; 20_000];
                pattern(i as u64 * 7919, &mut data);
                s.write_all(&data)?;
                s.shutdown(Shutdown::Write)?;
                let mut back = Vec::new();
                s.read_to_end(&mut back)?;
                Ok(back == data)
            });
            let _ = tx.send(result.map_err(|e| e.to_string()));
        });
    }
    let mut ok = 0;
    for _ in 0..N {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(Ok(true)) => ok += 1,
            Ok(Ok(false)) => panic!("an echo differed"),
            Ok(Err(e)) => panic!("a connection failed: {e}"),
            Err(_) => panic!("only {ok} of {N} connections finished within the time limit"),
        }
    }
    assert_eq!(ok, N);
    stop_proxy(&net, proxy);
}

#[test]
fn socks5_without_and_with_a_password() {
    let Some(net) = nets("pxy-socks") else {
        return;
    };
    let (root, _) = web_root("socks", 1);
    let _web = http_server(&net.s, &root);
    let spawn_socks = |args: &[&str]| {
        let child = net
            .s
            .command("microsocks")
            .args(["-i", SERVER])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("microsocks (apt-get install microsocks)");
        Proc(child)
    };
    let _open = spawn_socks(&["-p", "1080"]);
    let _locked = spawn_socks(&["-p", "1081", "-u", "alice", "-P", "s3cret"]);
    wait_listening(&net.s, "10.77.0.2:1080");
    wait_listening(&net.s, "10.77.0.2:1081");

    let get = || common::curl(&net.c, &["http://10.77.0.2:8000/index.html"]);
    for args in [
        &["--socks5", "10.77.0.2:1080"][..],
        &[
            "--socks5",
            "10.77.0.2:1081",
            "--socks5-user",
            "alice",
            "--socks5-pass",
            "s3cret",
        ][..],
    ] {
        let proxy = start_proxy(&net, args);
        let page = get();
        assert!(
            page.status.success(),
            "curl via {args:?}: {}",
            String::from_utf8_lossy(&page.stderr)
        );
        assert_eq!(page.stdout, b"hello through the proxy\n");
        stop_proxy(&net, proxy);
    }
    // Without the password the SOCKS server turns the proxy away, so the
    // relay did go through it: the client is refused.
    let proxy = start_proxy(&net, &["--socks5", "10.77.0.2:1081"]);
    let page = get();
    // curl's exit status 7: "Failed to connect" (the connection was refused).
    let err = String::from_utf8_lossy(&page.stderr);
    assert_eq!(
        page.status.code(),
        Some(7),
        "curl without the password: {err}"
    );
    stop_proxy(&net, proxy);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn bad_arguments_and_failed_setup_leave_nothing_behind() {
    let Some(net) = nets("pxy-args") else {
        return;
    };
    let run = |args: &[&str]| {
        let mut cmd = net.c.command(env!("CARGO_BIN_EXE_tun-proxy"));
        cmd.args(args);
        common::output_within(cmd, Duration::from_secs(20))
    };
    for args in [
        &["--route", "10.77.0.2/32", "--route", "10.77.0.2/32"][..],
        &["--route", "198.18.0.0/16"][..],
        &[
            "--route",
            "10.77.0.2/32",
            "--socks5",
            "10.77.0.2:1080",
            "--socks5-pass",
            "p",
        ][..],
        &["--route", "10.77.0.2/32", "--mark", "0"][..],
        &["--route", "10.77.0.2/32", "--link", "raw"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?} was accepted");
    }
    // The routing table is someone else's: refused before anything is made.
    net.c
        .ip(&[
            "route",
            "add",
            "192.0.2.0/24",
            "dev",
            "veth-c",
            "table",
            "7573",
        ])
        .expect("foreign route");
    let out = run(&["--route", "10.77.0.2/32"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table 7573 is in use"), "{err}");
    net.c
        .ip(&[
            "route",
            "del",
            "192.0.2.0/24",
            "dev",
            "veth-c",
            "table",
            "7573",
        ])
        .expect("remove foreign route");
    assert_eq!(routing_state(&net.c), net.baseline);
    let links = net.c.ip(&["link", "show"]).expect("ip link");
    assert!(!String::from_utf8_lossy(&links.stdout).contains("tunproxy0"));

    // Routing that fails half-way (the second route cannot be added)
    // removes the first again.
    let plan = ustack::proxy::routing::RoutingPlan {
        device: "veth-c".into(),
        src: Ipv4Addr::new(10, 77, 0, 1),
        routes: vec![
            ustack_ipv4::Ipv4Subnet::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap(),
            ustack_ipv4::Ipv4Subnet::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap(),
        ],
        mark: 0x7573,
        table: 7573,
        priority: 7573,
    };
    let failed = in_ns(&net.c, Duration::from_secs(20), move || {
        ustack::proxy::routing::PolicyRouting::install(&plan)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(failed.unwrap_err().contains("File exists"));
    assert_eq!(routing_state(&net.c), net.baseline);
}

/// A kernel server on `addr` in `ns` that answers each byte it reads with
/// two one-byte writes 2 ms apart, as a server that sends a reply's header
/// and its body separately does.
fn two_part_reply_server(ns: &NetNs, addr: &'static str) {
    let ns = NetNsHandle::named(ns.name());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        ns.enter_current_thread().expect("enter namespace");
        let l = std::net::TcpListener::bind(addr).expect("bind");
        tx.send(()).expect("ready");
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            let mut b = [0u8; 1];
            while let Ok(1) = conn.read(&mut b) {
                let part = conn.write_all(b"h").and_then(|()| {
                    std::thread::sleep(Duration::from_millis(2));
                    conn.write_all(b"b")
                });
                if part.is_err() {
                    break;
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server did not start");
}

/// The relay hands on what it reads as it reads it: Nagle on the client's
/// side would hold a reply's second small piece until the client
/// acknowledged the first, and a Linux client in an exchange delays that
/// ACK by up to 40 ms.
#[test]
fn small_replies_in_two_parts_are_not_held_for_the_clients_delayed_ack() {
    const ROUNDS: usize = 40;
    let Some(net) = nets("pxy-nagle") else {
        return;
    };
    two_part_reply_server(&net.s, "10.77.0.2:7100");
    let proxy = start_proxy(&net, &[]);
    let rounds = in_ns(&net.c, Duration::from_secs(60), || {
        let mut s = connect("10.77.0.2:7100").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            s.write_all(b"q").expect("ask");
            let mut reply = [0u8; 2];
            s.read_exact(&mut reply).expect("both parts");
            assert_eq!(&reply, b"hb");
            times.push(started.elapsed());
        }
        times
    });
    let slow: Vec<_> = rounds
        .iter()
        .filter(|t| **t > Duration::from_millis(25))
        .collect();
    assert!(
        slow.len() < 4,
        "{} of {ROUNDS} exchanges took over 25 ms (each needs about 2 ms): {slow:?}",
        slow.len()
    );
    stop_proxy(&net, proxy);
}

//! Speed over a real TUN device, with the kernel as peer: ustack's
//! `tun-server` twice — plain (`--no-offload`: one packet per read and
//! write, like smoltcp) and with the TUN device's offloads (virtio-net
//! header, 64 KB TSO/GRO super-frames) — a smoltcp 0.14 HTTP server built
//! here (same `HttpConn`, same 256 KiB socket buffers, MTU 1500), and — as
//! the ceiling — the kernel serving the same HTTP to itself over a veth pair
//! (with its own offloads). All in one run:
//!
//! ```sh
//! cargo build --release -p ustack --bin tun-server
//! cargo bench -p ustack-benches --bench tun        # as root
//! ```
//!
//! Everything happens in two network namespaces this bench creates and
//! deletes on every exit path (normal end, error, panic, Ctrl-C/SIGTERM):
//! `ustack-tunb-PID` holds the clients (curl and the bench itself), the three
//! TUN devices (`tun-u`: plain ustack at 10.0.1.2, `tun-o`: ustack with
//! offloads at 10.0.4.2, `tun-s`: smoltcp at 10.0.2.2)
//! and one end of a veth pair whose other end, in `ustack-tunk-PID`, has the
//! kernel server (10.0.3.2). The servers are child processes: tun-server, and
//! this binary re-executed with `USTACK_TUN_BENCH_ROLE` set.
//!
//! Environment: `USTACK_TUN_BENCH_SECS` (default 5) is the length of each
//! request-loop measurement; `USTACK_TUN_BENCH_CHURN_SECS` (default 60, 0
//! skips it) the length of the server-closes churn per server;
//! `USTACK_TUN_SERVER` overrides the path of the tun-server binary.

#[path = "tun/churn.rs"]
mod churn;
#[path = "tun/client.rs"]
mod client;
#[path = "tun/kernel_server.rs"]
mod kernel_server;
#[path = "tun/smol_server.rs"]
mod smol_server;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Bulk, Load};
use ustack::netns::NetNs;

/// Set (to `smoltcp` or `kernel`) in the re-executed server processes.
pub const ROLE_ENV: &str = "USTACK_TUN_BENCH_ROLE";
const PORT: u16 = 80;
const CONNS: usize = 32;
const DOWNLOAD_BYTES: u64 = 1_000_000_000;
const UPLOAD_BYTES: u64 = 256 << 20;
/// Cap on each curl transfer; the rate is taken from what moved by then.
const BULK_MAX_SECS: u64 = 8;
/// Rounds of bulk transfers (the best of each is reported).
const BULK_ROUNDS: usize = 3;

const USTACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const OFFLOAD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 2);
const SMOL_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
const SMOL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const VETH_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);

fn main() -> ExitCode {
    let result = match std::env::var(ROLE_ENV).as_deref() {
        Ok("smoltcp") => smol_server::serve("tun-s", SMOL_HOST, SMOL_ADDR, 24),
        Ok("kernel") => kernel_server::serve(SocketAddr::from((KERNEL_ADDR, PORT))),
        Ok("load") => load_once(),
        Ok(other) => Err(format!("unknown {ROLE_ENV}={other}")),
        Err(_) => orchestrate(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `USTACK_TUN_BENCH_ROLE=load tun ADDR:PORT CONNS SECS keep-alive|new|server-closes`:
/// one request loop against any server, to dig into a figure by hand.
fn load_once() -> Result<(), String> {
    let usage =
        "usage: USTACK_TUN_BENCH_ROLE=load tun ADDR:PORT CONNS SECS keep-alive|new|server-closes";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, conns, secs, mode] = args.as_slice() else {
        return Err(usage.into());
    };
    let addr: SocketAddr = addr.parse().map_err(|_| usage)?;
    let conns: usize = conns.parse().map_err(|_| usage)?;
    let secs: u64 = secs.parse().map_err(|_| usage)?;
    let mode = match mode.as_str() {
        "keep-alive" => client::Mode::KeepAlive,
        "new" => client::Mode::ClientCloses,
        "server-closes" => client::Mode::ServerCloses,
        _ => return Err(usage.into()),
    };
    let stop = AtomicBool::new(false);
    let l = client::load(addr, conns, Duration::from_secs(secs.min(120)), mode, &stop);
    println!(
        "{:.0} requests/s, p50 {:.0} µs, p99 {:.0} µs, {} errors; per {} s window: {:?}",
        l.per_sec(),
        l.percentile_us(50),
        l.percentile_us(99),
        l.errors,
        client::WINDOW.as_secs(),
        l.windows
    );
    Ok(())
}

/// All figures for one server.
#[derive(Debug, Default)]
struct Figures {
    download: Bulk,
    upload: Bulk,
    keep_alive: Load,
    new_conns: Load,
    /// Server process CPU time (ns) spent during each request loop.
    keep_alive_cpu_ns: u64,
    new_conns_cpu_ns: u64,
}

impl Figures {
    /// Requests served per second of server CPU: what a server achieves
    /// when the client, not the server, limits requests/s.
    fn per_cpu_sec(load: &Load, cpu_ns: u64) -> f64 {
        load.requests as f64 / (cpu_ns.max(1) as f64 / 1e9)
    }
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
}

fn orchestrate() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        if ustack::netns::skip_requested() {
            eprintln!("tun bench: SKIPPED (needs root for namespaces and TUN devices)");
            return Ok(());
        }
        return Err("needs root (network namespaces, TUN devices); \
                    or set USTACK_SKIP_PRIVILEGED=1 to skip"
            .into());
    }
    for tool in ["ip", "curl"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let secs: u64 = std::env::var("USTACK_TUN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .clamp(1, 30);
    let churn_secs: u64 = std::env::var("USTACK_TUN_BENCH_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .min(600);
    let tun_server = tun_server_path()?;
    remove_stale_namespaces();
    let started = Instant::now();

    // Dropped in reverse order: servers stop, the file goes, then the
    // namespaces (which takes the TUN and veth devices with them).
    let client_ns = NetNs::create("tunb").map_err(|e| e.to_string())?;
    let kernel_ns = NetNs::create("tunk").map_err(|e| e.to_string())?;
    let cns = client_ns.name().to_string();
    client_ns
        .ip(&[
            "link",
            "add",
            "veth-c",
            "type",
            "veth",
            "peer",
            "name",
            "veth-k",
            "netns",
            kernel_ns.name(),
        ])
        .map_err(|e| e.to_string())?;
    let c_cidr = format!("{VETH_CLIENT}/24");
    let k_cidr = format!("{KERNEL_ADDR}/24");
    for (ns, args) in [
        (&client_ns, vec!["addr", "add", &c_cidr, "dev", "veth-c"]),
        (&client_ns, vec!["link", "set", "veth-c", "up"]),
        (&kernel_ns, vec!["addr", "add", &k_cidr, "dev", "veth-k"]),
        (&kernel_ns, vec!["link", "set", "veth-k", "up"]),
    ] {
        ns.ip(&args).map_err(|e| e.to_string())?;
    }
    // The new-connections test opens ~100k connections in seconds, closing
    // each from the client: let the client reuse its TIME-WAIT ports.
    for kv in [
        "net.ipv4.tcp_tw_reuse=1",
        "net.ipv4.ip_local_port_range=1024 65535",
    ] {
        run_checked(Command::new("ip").args(["netns", "exec", &cns, "sysctl", "-qw", kv]))?;
    }
    // tcp_tw_reuse takes a TIME-WAIT port again only after its last
    // timestamp is tcp_tw_reuse_delay old (1 s by default, Linux 6.13+), and
    // connect() uses the even ports only: about 32,000 connections/s per
    // server address, whatever the server. 1 ms lifts that ceiling.
    if Path::new("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists() {
        run_checked(Command::new("ip").args([
            "netns",
            "exec",
            &cns,
            "sysctl",
            "-qw",
            "net.ipv4.tcp_tw_reuse_delay=1",
        ]))?;
    } else {
        eprintln!(
            "tun bench: this kernel has no tcp_tw_reuse_delay; new connections/s \
             will stop near 32,000/s for every server (client port reuse)"
        );
    }
    let upload_file = TempFile::create(UPLOAD_BYTES)?;

    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.to_str().ok_or("non-UTF-8 executable path")?;
    let tun_server = tun_server.to_str().ok_or("non-UTF-8 tun-server path")?;
    let stats = |tag: &str| format!("/tmp/ustack-tunb-{tag}-{}.csv", std::process::id());
    let (stats_u, stats_o) = (stats("u"), stats("o"));
    let ustack_srv = Server::spawn(
        "ustack tun-server",
        client_ns
            .command(tun_server)
            .args(["--tun", "tun-u", "--host-addr", "10.0.1.1", "--no-offload"])
            .args(["--stats", &stats_u])
            .arg("--addr")
            .arg(USTACK_ADDR.to_string())
            .env("RUST_LOG", "warn"),
    )?;
    let offload_srv = Server::spawn(
        "ustack tun-server (offloads)",
        client_ns
            .command(tun_server)
            .args([
                "--tun",
                "tun-o",
                "--host-addr",
                "10.0.4.1",
                "--stats",
                &stats_o,
            ])
            .arg("--addr")
            .arg(OFFLOAD_ADDR.to_string())
            .env("RUST_LOG", "warn"),
    )?;
    let smol_srv = Server::spawn(
        "smoltcp server",
        client_ns.command(me).env(ROLE_ENV, "smoltcp"),
    )?;
    let kernel_srv = Server::spawn(
        "kernel server",
        kernel_ns.command(me).env(ROLE_ENV, "kernel"),
    )?;
    // The request loops run on this thread: in the client namespace.
    client_ns
        .enter_current_thread()
        .map_err(|e| e.to_string())?;

    let targets = [
        Target {
            name: "ustack",
            addr: SocketAddr::from((USTACK_ADDR, PORT)),
        },
        Target {
            name: "ustack, TUN offloads",
            addr: SocketAddr::from((OFFLOAD_ADDR, PORT)),
        },
        Target {
            name: "smoltcp",
            addr: SocketAddr::from((SMOL_ADDR, PORT)),
        },
        Target {
            name: "kernel veth",
            addr: SocketAddr::from((KERNEL_ADDR, PORT)),
        },
    ];
    let servers = [&ustack_srv, &offload_srv, &smol_srv, &kernel_srv];
    for (t, s) in targets.iter().zip(servers) {
        wait_ready(t, s, &stop)?;
    }
    eprintln!("tun bench: servers up; ~{} s to go", 8 * secs + 40);

    let mut figures: Vec<Figures> = (0..targets.len()).map(|_| Figures::default()).collect();
    let check = |t: &Target, what: &str| -> Result<(), String> {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        eprintln!("tun bench: {} {what}", t.name);
        Ok(())
    };
    // Bulk transfers are short and the machine may be shared: interleave the
    // servers and keep each one's best of BULK_ROUNDS.
    let best = |a: Bulk, b: Bulk| {
        if a.bytes == 0 || b.gbit_per_s() > a.gbit_per_s() {
            b
        } else {
            a
        }
    };
    for round in 1..=BULK_ROUNDS {
        for (t, f) in targets.iter().zip(&mut figures) {
            check(t, &format!("download, round {round}"))?;
            let d = client::download(&cns, t.addr, DOWNLOAD_BYTES, BULK_MAX_SECS)
                .map_err(|e| format!("{}: {e}", t.name))?;
            check(t, &format!("upload, round {round}"))?;
            let u = client::upload(&cns, t.addr, upload_file.path(), BULK_MAX_SECS)
                .map_err(|e| format!("{}: {e}", t.name))?;
            f.download = best(f.download, d);
            f.upload = best(f.upload, u);
        }
    }
    let dur = Duration::from_secs(secs);
    for ((t, f), srv) in targets.iter().zip(&mut figures).zip(servers) {
        check(t, "keep-alive requests")?;
        let cpu = srv.cpu_ns()?;
        f.keep_alive = client::load(t.addr, CONNS, dur, client::Mode::KeepAlive, &stop);
        f.keep_alive_cpu_ns = srv.cpu_ns()? - cpu;
        check(t, "new connections")?;
        let cpu = srv.cpu_ns()?;
        f.new_conns = client::load(t.addr, CONNS, dur, client::Mode::ClientCloses, &stop);
        f.new_conns_cpu_ns = srv.cpu_ns()? - cpu;
    }
    let mut churned = Vec::new();
    if churn_secs > 0 {
        for (t, srv) in targets.iter().zip(servers) {
            check(t, &format!("churn, server closes, {churn_secs} s"))?;
            let mut c = churn::run(&cns, t.addr, CONNS, Duration::from_secs(churn_secs), &stop);
            // Let the stats files catch up (rewritten once a second).
            std::thread::sleep(Duration::from_millis(1100));
            c.time_wait = match t.name {
                "ustack" => churn::stats_time_wait(&stats_u),
                "ustack, TUN offloads" => churn::stats_time_wait(&stats_o),
                "kernel veth" => churn::kernel_time_wait(kernel_ns.name()),
                _ => None,
            };
            c.rss_kib = srv.rss_kib();
            churned.push(c);
        }
    }
    for s in servers {
        s.check_alive()?;
    }
    print_table(&figures, secs, started.elapsed());
    if churn_secs > 0 {
        let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
        churn::print_table(&names, &churned, churn_secs);
    }
    for f in [&stats_u, &stats_o] {
        let _ = std::fs::remove_file(f);
    }
    drop((ustack_srv, offload_srv, smol_srv, kernel_srv, upload_file));
    drop((client_ns, kernel_ns));
    Ok(())
}

/// `target/release/tun-server` next to this bench's `deps/` directory, built
/// first if it is missing.
fn tun_server_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("USTACK_TUN_SERVER") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let path = release.join("tun-server");
    if !path.exists() {
        eprintln!(
            "tun bench: {} is missing; building it: \
             cargo build --release -p ustack --bin tun-server",
            path.display()
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace")?;
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "ustack", "--bin", "tun-server"])
            .current_dir(workspace)
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() || !path.exists() {
            return Err(
                "could not build tun-server; run `cargo build --release -p ustack --bin tun-server` \
                 and try again (or set USTACK_TUN_SERVER=/path/to/tun-server)"
                    .into(),
            );
        }
    }
    Ok(path)
}

/// Deletes namespaces left by earlier runs that were killed outright.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("ustack-tunb-")
            .or_else(|| name.strip_prefix("ustack-tunk-"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("tun bench: removing stale namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A server child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    name: &'static str,
    child: std::cell::RefCell<Child>,
}

impl Server {
    fn spawn(name: &'static str, cmd: &mut Command) -> Result<Server, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Server {
            name,
            child: child.into(),
        })
    }

    /// CPU time the server process has used, all threads, user and
    /// system (kernel work done inside its syscalls included).
    fn cpu_ns(&self) -> Result<u64, String> {
        let pid = self.child.borrow().id();
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // Fields after the command name (which may hold spaces) in
        // parentheses; utime and stime are fields 14 and 15, in clock ticks.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("{path}: cannot read field {}", i + 3))
        };
        // Field 14 is index 11 after the state field (field 3).
        let total = ticks(11)? + ticks(12)?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(total * 1_000_000_000 / hz)
    }

    /// Resident memory of the server process, KiB.
    fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.borrow().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn check_alive(&self) -> Result<(), String> {
        match self.child.borrow_mut().try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..30 {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Waits (at most 10 s) until `GET /` through `target` answers.
fn wait_ready(target: &Target, server: &Server, stop: &AtomicBool) -> Result<(), String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        server.check_alive()?;
        if let Ok(mut s) = TcpStream::connect_timeout(&target.addr, Duration::from_millis(300)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 512];
            if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                let mut got = Vec::new();
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
                if got.ends_with(b"Hello World!") {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} at {} did not answer GET / within 10 s",
        server.name, target.addr
    ))
}

/// A file of `len` zero bytes in /dev/shm (tmpfs), removed when dropped.
struct TempFile(String);

impl TempFile {
    fn create(len: u64) -> Result<TempFile, String> {
        let dir = if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        };
        let path = format!("{dir}/ustack-tunbench-{}.bin", std::process::id());
        let f = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        let file = TempFile(path);
        // Zero-filled; tmpfs allocates the pages as curl reads them.
        f.set_len(len).map_err(|e| format!("{}: {e}", file.0))?;
        Ok(file)
    }

    fn path(&self) -> &str {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn print_table(f: &[Figures], secs: u64, elapsed: Duration) {
    let (u, o, s, k) = (&f[0], &f[1], &f[2], &f[3]);
    let ratio = |a: f64, b: f64| format!("{:.2}x", a / b);
    let row = |name: &str, vals: [f64; 4], unit: &str, prec: usize, target: &str| {
        let [a, b, c, d] = vals;
        println!(
            "| {name} | {a:.prec$} {unit} | {c:.prec$} {unit} | {} | {b:.prec$} {unit} | {} | {d:.prec$} {unit} | {target} |",
            ratio(a, c),
            ratio(b, c),
        );
    };
    println!();
    println!(
        "Speed over TUN (MTU 1500, kernel as peer; request loops: 1 client thread, \
         {CONNS} connections, {secs} s each; whole run {:.0} s)",
        elapsed.as_secs_f64()
    );
    println!();
    println!(
        "| measure | ustack | smoltcp | ustack / smoltcp | ustack, TUN offloads | offloads / smoltcp | kernel over veth | target |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let g = |b: &Bulk| b.gbit_per_s();
    let all = |get: &dyn Fn(&Figures) -> f64| [get(u), get(o), get(s), get(k)];
    row(
        "bulk download (curl /bytes/1e9, best of 3)",
        all(&|x| g(&x.download)),
        "Gbit/s",
        2,
        "≥ 2.0x",
    );
    row(
        "bulk upload (curl POST 256 MiB, best of 3)",
        all(&|x| g(&x.upload)),
        "Gbit/s",
        2,
        "≥ 2.0x",
    );
    let (ka, nc) = (
        |x: &Figures| x.keep_alive.clone(),
        |x: &Figures| x.new_conns.clone(),
    );
    let (ka_cpu, nc_cpu) = (
        |x: &Figures| Figures::per_cpu_sec(&x.keep_alive, x.keep_alive_cpu_ns),
        |x: &Figures| Figures::per_cpu_sec(&x.new_conns, x.new_conns_cpu_ns),
    );
    for (label, get, per_cpu, target) in [
        (
            "keep-alive requests",
            &ka as &dyn Fn(&Figures) -> Load,
            &ka_cpu as &dyn Fn(&Figures) -> f64,
            "≥ 1.3x",
        ),
        ("new connections", &nc, &nc_cpu, "≥ 20,000/s and ≥ 3x"),
    ] {
        row(
            &format!("{label}/s (-c32)"),
            all(&|x| get(x).per_sec()),
            "/s",
            0,
            target,
        );
        row(
            &format!("{label} per server CPU-second"),
            all(per_cpu),
            "",
            0,
            target,
        );
        let short = label.split(' ').next().unwrap_or(label);
        for p in [50, 99] {
            row(
                &format!("{short} latency p{p} (lower is better)"),
                all(&|x| get(x).percentile_us(p)),
                "µs",
                0,
                "",
            );
        }
        println!(
            "| {short} failed requests/connections | {} | {} | — | {} | — | {} | 0 |",
            get(u).errors,
            get(s).errors,
            get(o).errors,
            get(k).errors
        );
    }
    println!();
    println!(
        "Single flow with TUN offloads against the kernel over veth (target: ≥ 10 Gbit/s and ≥ 0.5x): \
         download {:.2} Gbit/s = {}, upload {:.2} Gbit/s = {}",
        g(&o.download),
        ratio(g(&o.download), g(&k.download)),
        g(&o.upload),
        ratio(g(&o.upload), g(&k.upload)),
    );
}

//! Speed over a real TUN device and over AF_PACKET, with the kernel as
//! peer, all in one run:
//!
//! ```sh
//! cargo build --release -p ustack --bin tun-server
//! cargo bench -p ustack-benches --bench tun        # as root
//! ```
//!
//! **TUN section.** ustack's `tun-server` twice — plain (`--no-offload`:
//! one packet per read and write, like smoltcp) and with the TUN device's
//! offloads (virtio-net header, 64 KB TSO/GRO super-frames) — a smoltcp
//! 0.14 HTTP server built here (same `HttpConn`, same 256 KiB socket
//! buffers, MTU 1500), and — as the ceiling — the kernel serving the same
//! HTTP to itself over a veth pair (with its own offloads).
//!
//! **AF_PACKET section** ([`afpacket`]): ustack's `tun-server --link
//! afpacket` and smoltcp's `RawSocket` server, each on the far end of its
//! own veth pair, against the same kernel veth baseline.
//!
//! Each server gets bulk transfers ([`bulk`]: three rounds each way, each
//! sized to last ≥ 3 s, every round printed with its median and
//! slowest/fastest ratio), keep-alive requests with the server's user and
//! system CPU per request (the bench's own client, and `wrk -t2 -c50` when
//! installed), new connections per second (TUN) and a churn in which the
//! server closes (TUN, [`churn`]).
//!
//! Everything happens in network namespaces this bench creates and deletes
//! on every exit path (normal end, error, panic, Ctrl-C/SIGTERM):
//! `ustack-tunb-PID` holds the clients (curl, wrk and the bench itself), the
//! three TUN devices (`tun-u`: plain ustack at 10.0.1.2, `tun-o`: ustack with
//! offloads at 10.0.4.2, `tun-s`: smoltcp at 10.0.2.2) and the client ends
//! of the veth pairs; `ustack-tunk-PID` has the kernel server (10.0.3.2);
//! `ustack-tuna-PID` the AF_PACKET servers. The servers are child processes:
//! tun-server, and this binary re-executed with `USTACK_TUN_BENCH_ROLE` set.
//!
//! Environment: `USTACK_TUN_BENCH_SECS` (default 5) is the length of each
//! request-loop measurement; `USTACK_TUN_BENCH_CHURN_SECS` (default 60, 0
//! skips it) the length of the server-closes churn per server;
//! `USTACK_TUN_BENCH_ONLY` a comma-separated list of the sections to run
//! (`bulk`, `requests`, `churn`, `afpacket`; default all);
//! `USTACK_TUN_BENCH_PIN=1` pins every server to CPU 1 and every client to
//! CPU 0 (`taskset`), to see whether CPU placement drives the spread;
//! `USTACK_TUN_SERVER` overrides the path of the tun-server binary.

#[path = "tun/afpacket.rs"]
mod afpacket;
#[path = "tun/bulk.rs"]
mod bulk;
#[path = "tun/churn.rs"]
mod churn;
#[path = "tun/client.rs"]
mod client;
#[path = "tun/kernel_server.rs"]
mod kernel_server;
#[path = "tun/report.rs"]
mod report;
#[path = "tun/server.rs"]
mod server;
#[path = "tun/smol_server.rs"]
mod smol_server;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulk::{BulkFigures, BulkTarget};
use report::{Requests, Table, CONNS};
use server::{ns_command, run_checked, Server, SERVER_CPU};
use ustack::netns::NetNs;

/// Set (to `smoltcp`, `smoltcp-afpacket`, `kernel` or `load`) in the
/// re-executed processes.
pub const ROLE_ENV: &str = "USTACK_TUN_BENCH_ROLE";
const PORT: u16 = 80;

const USTACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const OFFLOAD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 2);
const SMOL_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
const SMOL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const VETH_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);

fn main() -> ExitCode {
    let result = match std::env::var(ROLE_ENV).as_deref() {
        Ok("smoltcp") => smol_server::serve_tun("tun-s", SMOL_HOST, SMOL_ADDR, 24),
        Ok("smoltcp-afpacket") => {
            smol_server::serve_afpacket(afpacket::SMOL_IFACE, afpacket::SMOL_ADDR, 24)
        }
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

/// Which parts of the bench run (`USTACK_TUN_BENCH_ONLY`).
#[derive(Debug, Clone, Copy)]
struct Sections {
    bulk: bool,
    requests: bool,
    churn: bool,
    afpacket: bool,
}

impl Sections {
    const NAMES: &'static str = "bulk, requests, churn, afpacket";

    fn from_env() -> Result<Sections, String> {
        let Ok(list) = std::env::var("USTACK_TUN_BENCH_ONLY") else {
            return Ok(Sections {
                bulk: true,
                requests: true,
                churn: true,
                afpacket: true,
            });
        };
        let mut s = Sections {
            bulk: false,
            requests: false,
            churn: false,
            afpacket: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "bulk" => s.bulk = true,
                "requests" => s.requests = true,
                "churn" => s.churn = true,
                "afpacket" => s.afpacket = true,
                other => {
                    return Err(format!(
                        "USTACK_TUN_BENCH_ONLY: unknown section {other:?}; give a comma-separated \
                         list of {}",
                        Self::NAMES
                    ))
                }
            }
        }
        Ok(s)
    }

    /// Whether the TUN servers are needed.
    fn tun(&self) -> bool {
        self.bulk || self.requests || self.churn
    }
}

/// The run's settings, from the environment.
struct Settings {
    secs: u64,
    churn_secs: u64,
    sections: Sections,
}

fn settings() -> Result<Settings, String> {
    let num = |var: &str, default: u64| -> Result<u64, String> {
        match std::env::var(var) {
            Err(_) => Ok(default),
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{var}={v:?}: give a whole number of seconds")),
        }
    };
    let mut sections = Sections::from_env()?;
    let churn_secs = num("USTACK_TUN_BENCH_CHURN_SECS", 60)?.min(600);
    sections.churn &= churn_secs > 0;
    Ok(Settings {
        secs: num("USTACK_TUN_BENCH_SECS", 5)?.clamp(1, 30),
        churn_secs,
        sections,
    })
}

/// One server the clients reach.
struct Target<'a> {
    name: &'static str,
    addr: SocketAddr,
    server: &'a Server,
    /// Its devices (namespace, name), for the drop counters.
    links: Vec<(String, String)>,
    /// The namespace of its `AF_PACKET` socket, if it has one.
    packet_ns: Option<String>,
}

impl Target<'_> {
    fn bulk(&self) -> BulkTarget<'_> {
        BulkTarget {
            name: self.name,
            addr: self.addr,
            server: self.server,
            links: self.links.clone(),
            packet_ns: self.packet_ns.clone(),
        }
    }
}

/// What the kernel baseline measured, kept for the AF_PACKET table when
/// the TUN section already ran it.
#[derive(Default)]
struct KernelFigures {
    bulk: Option<BulkFigures>,
    requests: Option<Requests>,
}

/// Whether the bench can run: root (or a skip requested: `Ok(false)`),
/// and the tools it needs.
fn preflight() -> Result<bool, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        if ustack::netns::skip_requested() {
            eprintln!("tun bench: SKIPPED (needs root for namespaces and TUN devices)");
            return Ok(false);
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
    Ok(true)
}

fn orchestrate() -> Result<(), String> {
    if !preflight()? {
        return Ok(());
    }
    let set = settings()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let tun_server = tun_server_path()?;
    let tun_server = tun_server.to_str().ok_or("non-UTF-8 tun-server path")?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.to_str().ok_or("non-UTF-8 executable path")?;
    remove_stale_namespaces();
    let started = Instant::now();
    let load_at_start = server::load_average();

    // Dropped in reverse order: servers stop, then the namespaces (which
    // take the TUN and veth devices with them).
    let (client_ns, kernel_ns) = client_and_kernel_namespaces()?;
    let kernel_srv = Server::spawn(
        "kernel server",
        ns_command(kernel_ns.name(), me, SERVER_CPU).env(ROLE_ENV, "kernel"),
    )?;
    let kernel = Target {
        name: "kernel over veth",
        addr: SocketAddr::from((KERNEL_ADDR, PORT)),
        server: &kernel_srv,
        links: vec![
            (client_ns.name().to_string(), "veth-c".to_string()),
            (kernel_ns.name().to_string(), "veth-k".to_string()),
        ],
        packet_ns: None,
    };
    let mut kernel_figs = KernelFigures::default();
    if set.sections.tun() {
        tun_section(
            &set,
            &client_ns,
            &kernel_ns,
            &kernel,
            tun_server,
            me,
            &stop,
            &mut kernel_figs,
        )?;
    }
    if set.sections.afpacket {
        afpacket_section(
            &set,
            &client_ns,
            &kernel,
            tun_server,
            me,
            &stop,
            &mut kernel_figs,
        )?;
    }
    kernel_srv.check_alive()?;
    println!();
    println!(
        "Whole run {:.0} s; machine load average (1 min) {load_at_start:.1} at the start, \
         {:.1} at the end{}",
        started.elapsed().as_secs_f64(),
        server::load_average(),
        if server::pinned() {
            format!(
                "; servers pinned to CPU {SERVER_CPU}, clients to CPU {}",
                server::CLIENT_CPU
            )
        } else {
            String::new()
        }
    );
    drop(kernel);
    drop(kernel_srv);
    drop((client_ns, kernel_ns));
    Ok(())
}

/// The client namespace (sysctls for fast port reuse) and the kernel
/// server's, joined by the `veth-c`/`veth-k` pair.
fn client_and_kernel_namespaces() -> Result<(NetNs, NetNs), String> {
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
    let mut sysctls = vec![
        "net.ipv4.tcp_tw_reuse=1",
        "net.ipv4.ip_local_port_range=1024 65535",
    ];
    // tcp_tw_reuse takes a TIME-WAIT port again only after its last
    // timestamp is tcp_tw_reuse_delay old (1 s by default, Linux 6.13+), and
    // connect() uses the even ports only: about 32,000 connections/s per
    // server address, whatever the server. 1 ms lifts that ceiling.
    if Path::new("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists() {
        sysctls.push("net.ipv4.tcp_tw_reuse_delay=1");
    } else {
        eprintln!(
            "tun bench: this kernel has no tcp_tw_reuse_delay; new connections/s \
             will stop near 32,000/s for every server (client port reuse)"
        );
    }
    for kv in sysctls {
        run_checked(Command::new("ip").args(["netns", "exec", &cns, "sysctl", "-qw", kv]))?;
    }
    Ok((client_ns, kernel_ns))
}

/// The TUN servers, tun-server's stats files removed when dropped.
struct TunServers {
    ustack: Server,
    offload: Server,
    smoltcp: Server,
    stats: [String; 2],
}

impl Drop for TunServers {
    fn drop(&mut self) {
        for f in &self.stats {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn spawn_tun_servers(cns: &str, tun_server: &str, me: &str) -> Result<TunServers, String> {
    let stats = |tag: &str| format!("/tmp/ustack-tunb-{tag}-{}.csv", std::process::id());
    let stats = [stats("u"), stats("o")];
    let ustack = Server::spawn(
        "ustack tun-server",
        ns_command(cns, tun_server, SERVER_CPU)
            .args(["--tun", "tun-u", "--host-addr", "10.0.1.1", "--no-offload"])
            .args(["--stats", &stats[0]])
            .arg("--addr")
            .arg(USTACK_ADDR.to_string())
            .env("RUST_LOG", "warn"),
    )?;
    let offload = Server::spawn(
        "ustack tun-server (offloads)",
        ns_command(cns, tun_server, SERVER_CPU)
            .args(["--tun", "tun-o", "--host-addr", "10.0.4.1"])
            .args(["--stats", &stats[1]])
            .arg("--addr")
            .arg(OFFLOAD_ADDR.to_string())
            .env("RUST_LOG", "warn"),
    )?;
    let smoltcp = Server::spawn(
        "smoltcp server",
        ns_command(cns, me, SERVER_CPU).env(ROLE_ENV, "smoltcp"),
    )?;
    Ok(TunServers {
        ustack,
        offload,
        smoltcp,
        stats,
    })
}

#[allow(clippy::too_many_arguments)]
fn tun_section(
    set: &Settings,
    client_ns: &NetNs,
    kernel_ns: &NetNs,
    kernel: &Target,
    tun_server: &str,
    me: &str,
    stop: &AtomicBool,
    kernel_figs: &mut KernelFigures,
) -> Result<(), String> {
    let cns = client_ns.name();
    let srv = spawn_tun_servers(cns, tun_server, me)?;
    // The request loops run on this thread: in the client namespace.
    client_ns
        .enter_current_thread()
        .map_err(|e| e.to_string())?;
    server::pin_current_thread()?;
    let targets = tun_targets(cns, &srv, kernel);
    for t in &targets {
        t.server.wait_ready(t.addr, stop)?;
    }
    eprintln!("tun bench: TUN servers up");
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    let bulk = if set.sections.bulk {
        let b: Vec<BulkTarget> = targets.iter().map(Target::bulk).collect();
        Some(bulk::run(cns, &b, stop)?)
    } else {
        None
    };
    let mut reqs = Vec::new();
    if set.sections.requests {
        for t in &targets {
            eprintln!("tun bench: {} requests", t.name);
            reqs.push(report::requests(
                cns, t.addr, t.server, set.secs, true, stop,
            )?);
        }
    }
    let churned = if set.sections.churn {
        run_churn(set, cns, kernel_ns, &targets, &srv, stop)?
    } else {
        Vec::new()
    };
    for t in &targets {
        t.server.check_alive()?;
    }
    print_tun(set, &names, bulk.as_deref(), &reqs);
    if let Some(b) = &bulk {
        kernel_figs.bulk = Some(b[3].clone());
    }
    if let Some(r) = reqs.get(3) {
        kernel_figs.requests = Some(r.clone());
    }
    if set.sections.churn {
        churn::print_table(&names, &churned, set.churn_secs);
    }
    Ok(())
}

/// The TUN section's servers, in table order; `cns` holds their devices.
fn tun_targets<'a>(cns: &str, srv: &'a TunServers, kernel: &Target<'a>) -> [Target<'a>; 4] {
    let link = |dev: &str| vec![(cns.to_string(), dev.to_string())];
    [
        Target {
            name: "ustack",
            addr: SocketAddr::from((USTACK_ADDR, PORT)),
            server: &srv.ustack,
            links: link("tun-u"),
            packet_ns: None,
        },
        Target {
            name: "ustack, TUN offloads",
            addr: SocketAddr::from((OFFLOAD_ADDR, PORT)),
            server: &srv.offload,
            links: link("tun-o"),
            packet_ns: None,
        },
        Target {
            name: "smoltcp",
            addr: SocketAddr::from((SMOL_ADDR, PORT)),
            server: &srv.smoltcp,
            links: link("tun-s"),
            packet_ns: None,
        },
        Target {
            name: kernel.name,
            addr: kernel.addr,
            server: kernel.server,
            links: kernel.links.clone(),
            packet_ns: None,
        },
    ]
}

/// The TUN table (ustack, ustack offloads, smoltcp as the baseline, the
/// kernel) and its bulk rounds.
fn print_tun(set: &Settings, names: &[&str], bulk: Option<&[BulkFigures]>, reqs: &[Requests]) {
    let table = Table {
        names,
        base: 2,
        ratio: &[true, true, false, false],
    };
    println!();
    println!(
        "Speed over TUN (MTU 1500, kernel as peer; request loops {} s each)",
        set.secs
    );
    println!();
    table.header();
    if let Some(b) = bulk {
        table.bulk_rows(
            b,
            "bulk download (curl)",
            "bulk upload (curl POST)",
            "≥ 2.0x",
        );
    }
    if !reqs.is_empty() {
        table.request_rows(reqs);
    }
    if let Some(b) = bulk {
        let (o, k) = (&b[1], &b[3]);
        println!();
        println!(
            "Single flow with TUN offloads against the kernel over veth (target: ≥ 10 Gbit/s \
             and ≥ 0.5x), medians: download {:.2} Gbit/s = {:.2}x, upload {:.2} Gbit/s = {:.2}x",
            o.download.median(),
            o.download.median() / k.download.median(),
            o.upload.median(),
            o.upload.median() / k.upload.median(),
        );
        bulk::print_rounds("TUN bulk", names, b);
    }
}

fn run_churn(
    set: &Settings,
    cns: &str,
    kernel_ns: &NetNs,
    targets: &[Target],
    srv: &TunServers,
    stop: &AtomicBool,
) -> Result<Vec<churn::Churn>, String> {
    let mut churned = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        eprintln!(
            "tun bench: {} churn, server closes, {} s",
            t.name, set.churn_secs
        );
        let dur = Duration::from_secs(set.churn_secs);
        let mut c = churn::run(cns, t.addr, CONNS, dur, stop);
        // Let the stats files catch up (rewritten once a second).
        std::thread::sleep(Duration::from_millis(1100));
        c.time_wait = match i {
            0 | 1 => churn::stats_time_wait(&srv.stats[i]),
            3 => churn::kernel_time_wait(kernel_ns.name()),
            _ => None,
        };
        c.rss_kib = t.server.rss_kib();
        churned.push(c);
    }
    Ok(churned)
}

fn afpacket_section(
    set: &Settings,
    client_ns: &NetNs,
    kernel: &Target,
    tun_server: &str,
    me: &str,
    stop: &AtomicBool,
    kernel_figs: &mut KernelFigures,
) -> Result<(), String> {
    let cns = client_ns.name();
    let af = afpacket::setup(client_ns, tun_server, me)?;
    client_ns
        .enter_current_thread()
        .map_err(|e| e.to_string())?;
    server::pin_current_thread()?;
    let links = |c: &str, s: &str| {
        vec![
            (cns.to_string(), c.to_string()),
            (af.ns.name().to_string(), s.to_string()),
        ]
    };
    let targets = [
        Target {
            name: "ustack AF_PACKET",
            addr: SocketAddr::from((afpacket::USTACK_ADDR, PORT)),
            server: &af.ustack,
            links: links("veth-cu", "veth-au"),
            packet_ns: Some(af.ns.name().to_string()),
        },
        Target {
            name: "smoltcp RawSocket",
            addr: SocketAddr::from((afpacket::SMOL_ADDR, PORT)),
            server: &af.smoltcp,
            links: links("veth-cs", afpacket::SMOL_IFACE),
            packet_ns: Some(af.ns.name().to_string()),
        },
        Target {
            name: kernel.name,
            addr: kernel.addr,
            server: kernel.server,
            links: kernel.links.clone(),
            packet_ns: None,
        },
    ];
    for t in &targets {
        t.server.wait_ready(t.addr, stop)?;
    }
    eprintln!("tun bench: AF_PACKET servers up");
    // The kernel's figures from the TUN section, when it ran them.
    let measured = if kernel_figs.bulk.is_some() { 2 } else { 3 };
    let b: Vec<BulkTarget> = targets[..measured].iter().map(Target::bulk).collect();
    let mut bulk = bulk::run(cns, &b, stop)?;
    bulk.extend(kernel_figs.bulk.take());
    let mut reqs = Vec::new();
    for t in &targets {
        if t.name == kernel.name {
            if let Some(r) = kernel_figs.requests.take() {
                reqs.push(r);
                continue;
            }
        }
        eprintln!("tun bench: {} requests", t.name);
        reqs.push(report::requests(
            cns, t.addr, t.server, set.secs, false, stop,
        )?);
    }
    for t in &targets {
        t.server.check_alive()?;
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    print_afpacket(set, &names, &bulk, &reqs);
    Ok(())
}

/// The AF_PACKET table (ustack, smoltcp as the baseline, the kernel) and
/// its bulk rounds.
fn print_afpacket(set: &Settings, names: &[&str], bulk: &[BulkFigures], reqs: &[Requests]) {
    let table = Table {
        names,
        base: 1,
        ratio: &[true, false, false],
    };
    println!();
    println!(
        "Speed over AF_PACKET on a veth pair (MTU 1500, kernel client in another namespace; \
         `ethtool -K veth-cs {}` on smoltcp's pair; request loops {} s each)",
        afpacket::SMOL_OFFLOADS_OFF.join(" "),
        set.secs
    );
    println!();
    table.header();
    table.bulk_rows(
        bulk,
        "bulk download (curl)",
        "bulk upload (curl POST)",
        "≥ 3.0x",
    );
    table.request_rows(reqs);
    bulk::print_rounds("AF_PACKET bulk", names, bulk);
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
            .or_else(|| name.strip_prefix("ustack-tuna-"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("tun bench: removing stale namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

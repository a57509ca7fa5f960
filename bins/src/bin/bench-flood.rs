//! bench-flood: tun-server under a flood of spoofed SYNs while real clients
//! keep connecting (a benchmark, not a test; needs root).
//!
//! For each `--syn-cookies` mode asked for (default `auto`, then `never` as
//! the baseline without cookies), in a namespace of its own: tun-server on
//! a TUN device (host side 10.0.0.1/24, stack 10.0.0.2); a raw socket
//! (`IP_HDRINCL`) sends SYNs from 10.0.0.99, an address on the subnet that
//! nobody has, so every SYN-ACK goes unanswered; `--clients` threads each
//! make one fresh `GET /` connection after another (std::net, 3 s limit per
//! step). Figures per mode: SYNs sent, the fraction of real requests
//! started during the flood that succeeded (goal ≥ 99 %), how long after
//! the flood the first fresh request took to be answered (goal ≤ 1 s), and
//! tun-server's RSS growth (goal ≤ 16 MB).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{self, spawn_server, Proc};
use ustack::flood::{hello, SynFlooder};
use ustack::netns::{NetNs, NetNsHandle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "tun-server under a spoofed SYN flood while real clients connect: success rate, recovery time, RSS (root)"
)]
struct Args {
    /// Seconds of flood.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    secs: u64,
    /// Spoofed SYNs per second.
    #[arg(long, default_value_t = 90_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate: u64,
    /// Client threads making requests during the flood.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Modes to measure, in order (`auto`, `always`, `never`).
    #[arg(long, value_delimiter = ',', default_value = "auto,never")]
    modes: Vec<String>,
    /// Longest wait for the server to answer after the flood, in seconds.
    #[arg(long, default_value_t = 60)]
    recovery_cap: u64,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
}

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
const SPOOFED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(bad) = args
        .modes
        .iter()
        .find(|m| !["auto", "always", "never"].contains(&m.as_str()))
    {
        eprintln!("bench-flood: unknown mode {bad:?} (auto, always or never)");
        return ExitCode::FAILURE;
    }
    let mut rows = Vec::new();
    for mode in &args.modes {
        match measure(&args, mode) {
            Ok(r) => rows.push(r),
            Err(e) => {
                eprintln!("bench-flood: {mode}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!();
    println!(
        "| mode | SYNs sent | real requests ok during flood | first answer after flood | RSS before → peak (growth) |"
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.line());
    }
    ExitCode::SUCCESS
}

struct Row {
    mode: String,
    syns: u64,
    ok: u64,
    total: u64,
    recovery: Option<Duration>,
    rss_before: u64,
    rss_peak: u64,
}

impl Row {
    fn line(&self) -> String {
        let pct = 100.0 * self.ok as f64 / self.total.max(1) as f64;
        let rec = self
            .recovery
            .map_or("none within the cap".to_string(), |d| {
                format!("{:.2} s", d.as_secs_f64())
            });
        format!(
            "| {} | {} | {}/{} ({pct:.1} %) | {rec} | {:.1} → {:.1} MB ({:+.1} MB) |",
            self.mode,
            self.syns,
            self.ok,
            self.total,
            self.rss_before as f64 / 1024.0,
            self.rss_peak as f64 / 1024.0,
            (self.rss_peak as f64 - self.rss_before as f64) / 1024.0
        )
    }
}

fn rss_kib(pid: u32) -> u64 {
    child::rss_kib(pid).unwrap_or(0)
}

fn start_server(ns: &NetNs, args: &Args, mode: &str) -> Result<Proc, BoxError> {
    let bin = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tun-server"),
    };
    let mut cmd = ns.command(&bin.to_string_lossy());
    cmd.args(["--syn-cookies", mode]).env("RUST_LOG", "warn");
    Ok(spawn_server(&mut cmd, Duration::from_secs(20), None)?.0)
}

fn measure(args: &Args, mode: &str) -> Result<Row, BoxError> {
    let ns = NetNs::create("flood")?;
    let server = start_server(&ns, args, mode)?;
    let pid = server.0.id();
    let name = ns.name().to_string();
    let timeout = Duration::from_secs(3);
    // Warm up: a few requests, then the baseline.
    let warm = {
        let name = name.clone();
        std::thread::spawn(move || -> Result<(), String> {
            NetNsHandle::named(&name)
                .enter_current_thread()
                .map_err(|e| e.to_string())?;
            for _ in 0..20 {
                hello(SERVER, timeout).map_err(|e| format!("warm-up request: {e}"))?;
            }
            Ok(())
        })
    };
    warm.join().map_err(|_| "warm-up thread panicked")??;
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(pid);

    let flooding = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, total) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (name, flooding, stop) = (name.clone(), flooding.clone(), stop.clone());
        let (ok, total) = (ok.clone(), total.clone());
        clients.push(std::thread::spawn(move || {
            if NetNsHandle::named(&name).enter_current_thread().is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                let during = flooding.load(Ordering::Relaxed);
                let r = hello(SERVER, timeout);
                if during {
                    total.fetch_add(1, Ordering::Relaxed);
                    if r.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    let flooder = {
        let (name, stop) = (name.clone(), stop.clone());
        let (rate, secs) = (args.rate, args.secs);
        std::thread::spawn(move || -> Result<u64, String> {
            NetNsHandle::named(&name)
                .enter_current_thread()
                .map_err(|e| e.to_string())?;
            let mut f = SynFlooder::new(SPOOFED, SERVER, 0x5eed).map_err(|e| e.to_string())?;
            f.run(rate, Duration::from_secs(secs), &stop)
                .map_err(|e| format!("raw socket: {e}"))
        })
    };
    let peak = Arc::new(Mutex::new(rss_before));
    let started = Instant::now();
    while !flooder.is_finished() && started.elapsed() < Duration::from_secs(args.secs + 30) {
        let r = rss_kib(pid);
        if let Ok(mut p) = peak.lock() {
            *p = (*p).max(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let syns = flooder.join().map_err(|_| "flooder panicked")??;
    flooding.store(false, Ordering::Relaxed);
    let ended = Instant::now();

    // The first fresh request after the flood that is answered.
    let cap = Duration::from_secs(args.recovery_cap);
    let recovery = {
        let name = name.clone();
        std::thread::spawn(move || -> Option<Duration> {
            NetNsHandle::named(&name).enter_current_thread().ok()?;
            while ended.elapsed() < cap {
                if hello(SERVER, Duration::from_millis(500)).is_ok() {
                    return Some(ended.elapsed());
                }
            }
            None
        })
        .join()
        .map_err(|_| "recovery probe panicked")?
    };
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let rss_peak = peak.lock().map_or(rss_before, |p| (*p).max(rss_kib(pid)));
    let row = Row {
        mode: mode.to_string(),
        syns,
        ok: ok.load(Ordering::Relaxed),
        total: total.load(Ordering::Relaxed),
        recovery,
        rss_before,
        rss_peak,
    };
    println!("{}", row.line());
    drop(server);
    Ok(row)
}

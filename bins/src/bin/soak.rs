//! soak: tun-server under mixed load for a long time, every byte checked
//! (a benchmark binary, not a unit test; needs root).
//!
//! tun-server runs over TUN in a namespace of its own with the fault
//! injector dropping, duplicating and reordering packets. Kernel clients in
//! that namespace keep four kinds of load going at once: keep-alive
//! `GET /`, one `GET /` per new connection, downloads of `/bytes/N` and
//! uploads to `/sink` of random sizes, each body checked byte for byte.
//! Every `--sample` seconds it records the server's RSS (from /proc), its
//! connections and ring memory (from tun-server's `--stats` file), and the
//! requests and errors so far; it writes them as CSV and as an SVG plot.
//!
//! Pass: no error, no wrong byte, every sample after the warm-up holding the
//! RSS outside the ring buffers within ±10 % of the first one after it, and,
//! once the load stops, no connection and no ring storage outside the pool.
//! The exit code says which (0 pass, 1 fail).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{self, spawn_server, Proc};
use ustack::netns::{NetNs, NetNsHandle};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Soak tun-server under mixed, lossy load with byte-exact checks; samples RSS, connections and buffers (root)"
)]
struct Args {
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample: u64,
    /// Seconds of warm-up before the RSS reference sample.
    #[arg(long, default_value_t = 30)]
    warmup: u64,
    /// Client threads of each kind (keep-alive, new connections, downloads, uploads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Largest download or upload, in bytes.
    #[arg(long, default_value_t = 4_000_000)]
    max_bytes: u64,
    /// Fault injector: drop, duplicate and reorder probabilities per packet.
    #[arg(long, default_value_t = 0.002)]
    drop: f64,
    #[arg(long, default_value_t = 0.002)]
    dup: f64,
    #[arg(long, default_value_t = 0.002)]
    reorder: f64,
    /// Write the samples as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write an SVG plot of the samples to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVER: &str = "10.0.0.2:80";

/// What all clients did so far.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    wrong_bytes: AtomicU64,
    bytes: AtomicU64,
}

/// One sample row.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    connections: u64,
    buffer_bytes: u64,
    pooled_bytes: u64,
    time_wait: u64,
    opened: u64,
    requests: u64,
    errors: u64,
}

impl Sample {
    /// KiB of RSS outside the ring buffers: the pool's storage is resident
    /// from allocation, so this is everything else the server holds.
    fn other_kib(&self) -> u64 {
        self.rss_kib.saturating_sub(self.buffer_bytes / 1024)
    }

    /// Bytes of ring storage held by connections (not pooled).
    fn in_rings(&self) -> u64 {
        self.buffer_bytes.saturating_sub(self.pooled_bytes)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    ustack::init_tracing("warn");
    match soak(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn soak(args: &Args) -> Result<bool, BoxError> {
    if !(0.0..=1.0).contains(&args.drop) || !(0.0..=1.0).contains(&args.dup) {
        return Err("probabilities are between 0 and 1".into());
    }
    let tun_server = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tun-server"),
    };
    let ns = NetNs::create("soak")?;
    // The clients close first, so their TIME-WAITs sit in this namespace's
    // kernel: hundreds of new connections a second would exhaust the
    // default 28k ports within a minute. Reuse them, as the TUN bench does.
    let status = ns
        .command("sysctl")
        .args(["-qw", "net.ipv4.tcp_tw_reuse=1"])
        .args(["-w", "net.ipv4.ip_local_port_range=1024 65535"])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("sysctl in the soak namespace failed".into());
    }
    let stats_path = std::env::temp_dir().join(format!("ustack-soak-{}.csv", std::process::id()));
    let server = start_server(&ns, &tun_server, &stats_path, args)?;
    let pid = server.0.id();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    prewarm(ns.name(), 16 * args.workers as usize, &counters);
    let workers = spawn_workers(ns.name(), args, &counters, &stop);

    let started = Instant::now();
    let mut samples = Vec::new();
    let end = started + Duration::from_secs(args.duration);
    while Instant::now() < end {
        let next = (Instant::now() + Duration::from_secs(args.sample)).min(end);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let s = sample(started, pid, &stats_path, &counters);
        println!(
            "t={:>5.0}s rss={} KiB connections={} opened={} time-wait={} buffers={} KiB requests={} errors={}",
            s.secs,
            s.rss_kib,
            s.connections,
            s.opened,
            s.time_wait,
            s.buffer_bytes / 1024,
            s.requests,
            s.errors
        );
        samples.push(s);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    // Connections close once the clients have hung up (the client closes
    // first, so the server keeps no TIME-WAIT); allow retransmissions.
    let drained = Instant::now() + Duration::from_secs(60);
    let mut last = sample(started, pid, &stats_path, &counters);
    while last.connections > 0 && Instant::now() < drained {
        std::thread::sleep(Duration::from_millis(500));
        last = sample(started, pid, &stats_path, &counters);
    }
    samples.push(last);
    drop(server);
    let _ = std::fs::remove_file(&stats_path);

    if let Some(p) = &args.csv {
        std::fs::write(p, csv(&samples))?;
    }
    if let Some(p) = &args.svg {
        std::fs::write(p, svg(&samples, args.warmup as f64))?;
    }
    Ok(verdict(&samples, &counters, args))
}

/// Checks the pass criteria and prints a summary; true when all hold.
fn verdict(samples: &[Sample], c: &Counters, args: &Args) -> bool {
    let errors = c.errors.load(Ordering::Relaxed);
    let wrong = c.wrong_bytes.load(Ordering::Relaxed);
    let requests = c.requests.load(Ordering::Relaxed);
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.secs >= args.warmup as f64)
        .collect();
    let (load, last) = after.split_at(after.len().saturating_sub(1));
    // Ring storage may step up after the warm-up (a download whose cwnd
    // grows further takes a larger send ring), bounded by the budget and
    // given back at the end; a leak is memory outside the rings that grows,
    // or ring storage that connections still hold once they are gone.
    let reference = load.first().map_or(0, |s| s.other_kib());
    let rss_ok = load.iter().all(|s| {
        let r = s.other_kib() as f64;
        reference > 0 && (r - reference as f64).abs() <= 0.10 * reference as f64
    });
    let end = last.first();
    let drained = end.is_some_and(|s| s.connections == 0 && s.in_rings() == 0);
    let (lo, hi) = load.iter().fold((u64::MAX, 0), |(lo, hi), s| {
        (lo.min(s.other_kib()), hi.max(s.other_kib()))
    });
    let peak = load.iter().map(|s| s.buffer_bytes).max().unwrap_or(0);
    println!(
        "soak: {}s, {requests} requests, {} MB moved, {errors} errors, {wrong} wrong bytes; \
         RSS outside ring buffers after warm-up {lo}–{hi} KiB (reference {reference} KiB, \
         ±10 % {}), ring buffers at most {} KiB; after the load: {} connections, {} KiB in \
         rings ({})",
        args.duration,
        c.bytes.load(Ordering::Relaxed) / 1_000_000,
        if rss_ok { "held" } else { "EXCEEDED" },
        peak / 1024,
        end.map_or(0, |s| s.connections),
        end.map_or(0, |s| s.in_rings() / 1024),
        if drained { "drained" } else { "NOT drained" }
    );
    let pass = errors == 0 && wrong == 0 && requests > 0 && rss_ok && drained && !load.is_empty();
    println!("soak: {}", if pass { "PASS" } else { "FAIL" });
    pass
}

fn start_server(ns: &NetNs, bin: &Path, stats: &Path, args: &Args) -> Result<Proc, BoxError> {
    let mut cmd = ns.command(&bin.to_string_lossy());
    cmd.args(["--stats", &stats.to_string_lossy()])
        .args(["--drop", &args.drop.to_string()])
        .args(["--dup", &args.dup.to_string()])
        .args(["--reorder", &args.reorder.to_string()])
        .args(["--max-connections", "65536"])
        .env("RUST_LOG", "warn");
    Ok(spawn_server(&mut cmd, Duration::from_secs(20), None)?.0)
}

fn sample(started: Instant, pid: u32, stats: &Path, c: &Counters) -> Sample {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let mut lines = text.lines();
    let (header, values) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let field = |name: &str| {
        let i = header.split(',').position(|h| h == name)?;
        values.split(',').nth(i)?.parse::<u64>().ok()
    };
    Sample {
        secs: started.elapsed().as_secs_f64(),
        // The server's own reading, taken with its buffer gauges: /proc now
        // would count a ring allocated since the line was written.
        rss_kib: field("rss_kib").unwrap_or_else(|| child::rss_kib(pid).unwrap_or(0)),
        connections: field("connections").unwrap_or(u64::MAX),
        buffer_bytes: field("buffer_bytes").unwrap_or(0),
        pooled_bytes: field("buffer_pooled_bytes").unwrap_or(0),
        time_wait: field("time_wait").unwrap_or(0),
        opened: field("conns_opened").unwrap_or(0),
        requests: c.requests.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    KeepAlive,
    NewConnection,
    Download,
    Upload,
}

fn spawn_workers(
    ns: &str,
    args: &Args,
    c: &Arc<Counters>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let kinds = [
        Kind::KeepAlive,
        Kind::NewConnection,
        Kind::Download,
        Kind::Upload,
    ];
    let mut handles = Vec::new();
    for (i, kind) in kinds
        .iter()
        .cycle()
        .take(4 * args.workers as usize)
        .enumerate()
    {
        let (ns, c, stop, kind) = (NetNsHandle::named(ns), c.clone(), stop.clone(), *kind);
        let max = args.max_bytes;
        handles.push(std::thread::spawn(move || {
            if let Err(e) = ns.enter_current_thread() {
                eprintln!("soak: worker cannot enter the namespace: {e}");
                c.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x2545_f491));
            worker(kind, &c, &stop, max, &mut rng);
        }));
    }
    handles
}

/// Brings the server's pool of ring buffers to its steady state before the
/// load: `n` connections at once (four for each of the load's), each moving
/// more than a ring's worth both ways, so every pooled ring has been
/// written end to end. Without it, RSS keeps stepping up for minutes as the
/// load's peak concurrency creeps higher, which the RSS check would read as
/// growth.
fn prewarm(ns: &str, n: usize, c: &Arc<Counters>) {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (ns, c, barrier) = (NetNsHandle::named(ns), c.clone(), barrier.clone());
            std::thread::spawn(move || {
                let run = || -> std::io::Result<()> {
                    ns.enter_current_thread().map_err(std::io::Error::other)?;
                    let mut s = connect()?;
                    barrier.wait();
                    upload_on(&mut s, 300_000)?;
                    get_bytes_on(&mut s, 300_000)?;
                    barrier.wait();
                    Ok(())
                };
                if let Err(e) = run() {
                    eprintln!("soak: warm-up: {e}");
                    c.errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// xorshift64: sizes for the transfers, reproducible per worker.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn worker(kind: Kind, c: &Counters, stop: &AtomicBool, max: u64, rng: &mut Rng) {
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let result = match kind {
            Kind::KeepAlive => keep_alive(&mut conn),
            Kind::NewConnection => connect().and_then(|mut s| get(&mut s, "/", b"Hello World!")),
            Kind::Download => download(rng.below(max + 1), c),
            Kind::Upload => upload(rng.below(max + 1), c),
        };
        c.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                eprintln!("soak: {kind:?}: {e}");
                c.wrong_bytes.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
            Err(e) => {
                eprintln!("soak: {kind:?}: {e}");
                c.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

fn connect() -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SERVER.parse().expect("address"), Duration::from_secs(30))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

fn keep_alive(conn: &mut Option<TcpStream>) -> std::io::Result<()> {
    if conn.is_none() {
        *conn = Some(connect()?);
    }
    match conn {
        Some(s) => get(s, "/", b"Hello World!"),
        None => Ok(()),
    }
}

/// Sends `GET path` and checks the body is exactly `expect`.
fn get(s: &mut TcpStream, path: &str, expect: &[u8]) -> std::io::Result<()> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n")?;
    let len = read_head(s)?;
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    if body != expect {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "wrong body",
        ));
    }
    Ok(())
}

fn download(n: u64, c: &Counters) -> std::io::Result<()> {
    get_bytes_on(&mut connect()?, n)?;
    c.bytes.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// `GET /bytes/n` on `s`, every byte checked.
fn get_bytes_on(s: &mut TcpStream, n: u64) -> std::io::Result<()> {
    write!(s, "GET /bytes/{n} HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n")?;
    let len = read_head(s)?;
    if len != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "wrong length",
        ));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < n {
        let want = (n - at).min(buf.len() as u64) as usize;
        let got = s.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(i) = (0..got).find(|&i| buf[i] != ustack_http::body_byte(at + i as u64)) {
            let at = at + i as u64;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("byte {at} of {n} wrong"),
            ));
        }
        at += got as u64;
    }
    Ok(())
}

fn upload(n: u64, c: &Counters) -> std::io::Result<()> {
    upload_on(&mut connect()?, n)?;
    c.bytes.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// `POST /sink` of `n` bytes on `s`; the count in the answer is checked.
fn upload_on(s: &mut TcpStream, n: u64) -> std::io::Result<()> {
    write!(
        s,
        "POST /sink HTTP/1.1\r\nHost: 10.0.0.2\r\nContent-Length: {n}\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < n {
        let k = (n - at).min(buf.len() as u64) as usize;
        ustack_http::fill_body(at, &mut buf[..k]);
        s.write_all(&buf[..k])?;
        at += k as u64;
    }
    let len = read_head(s)?;
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    if body != format!("{n}\n").as_bytes() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "wrong count",
        ));
    }
    Ok(())
}

/// Reads a response head up to the blank line; returns its Content-Length
/// (the status must be 200).
fn read_head(s: &mut TcpStream) -> std::io::Result<u64> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 8192 {
            return Err(std::io::Error::other("response head too long"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "status: {}",
            text.lines().next().unwrap_or("")
        )));
    }
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| std::io::Error::other("no Content-Length"))
}

fn csv(samples: &[Sample]) -> String {
    let mut s = String::from("secs,rss_kib,connections,buffer_bytes,requests,errors\n");
    for x in samples {
        let _ = writeln!(
            s,
            "{:.1},{},{},{},{},{}",
            x.secs, x.rss_kib, x.connections, x.buffer_bytes, x.requests, x.errors
        );
    }
    s
}

/// RSS and ring memory (MiB, left axis) and connections (right axis) over time.
fn svg(samples: &[Sample], warmup: f64) -> String {
    const W: f64 = 720.0;
    const H: f64 = 360.0;
    const L: f64 = 60.0;
    const R: f64 = 60.0;
    const T: f64 = 30.0;
    const B: f64 = 40.0;
    let t_max = samples.iter().map(|s| s.secs).fold(1.0, f64::max);
    let mib = |b: f64| b / 1024.0 / 1024.0;
    let m_max = samples
        .iter()
        .map(|s| mib(s.rss_kib as f64 * 1024.0).max(mib(s.buffer_bytes as f64)))
        .fold(1.0, f64::max)
        * 1.15;
    let c_max = samples
        .iter()
        .map(|s| s.connections as f64)
        .fold(1.0, f64::max)
        * 1.15;
    let x = |t: f64| L + t / t_max * (W - L - R);
    let y = |v: f64, max: f64| H - B - v / max * (H - T - B);
    let line = |f: &dyn Fn(&Sample) -> f64, max: f64| -> String {
        samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.secs), y(f(s), max)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{L}\" y=\"18\">tun-server soak: memory and connections over time</text>\n"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{b}\" stroke=\"black\"/>\
         <line x1=\"{r}\" y1=\"{T}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>",
        b = H - B,
        r = W - R
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{:.0} s</text>\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{:.0} MiB</text>\
             <text x=\"{:.0}\" y=\"{:.0}\">{:.0}</text>",
            x(f * t_max),
            H - B + 16.0,
            f * t_max,
            L - 4.0,
            y(f * m_max, m_max) + 4.0,
            f * m_max,
            W - R + 4.0,
            y(f * c_max, c_max) + 4.0,
            f * c_max
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{x0:.1}\" y1=\"{T}\" x2=\"{x0:.1}\" y2=\"{b}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\
         <text x=\"{x0:.1}\" y=\"{ty}\" fill=\"#666\"> warm-up</text>",
        x0 = x(warmup.min(t_max)),
        b = H - B,
        ty = T + 12.0
    );
    for (f, max, color, label, row) in [
        (
            &(|s: &Sample| mib(s.rss_kib as f64 * 1024.0)) as &dyn Fn(&Sample) -> f64,
            m_max,
            "#1f77b4",
            "RSS (MiB)",
            0,
        ),
        (
            &|s: &Sample| mib(s.buffer_bytes as f64),
            m_max,
            "#2ca02c",
            "ring buffers (MiB)",
            1,
        ),
        (
            &|s: &Sample| s.connections as f64,
            c_max,
            "#d62728",
            "connections (right axis)",
            2,
        ),
    ] {
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" fill=\"{color}\">{label}</text>",
            line(f, max),
            L + 10.0 + 170.0 * row as f64,
            H - 8.0
        );
    }
    s.push_str("</svg>\n");
    s
}

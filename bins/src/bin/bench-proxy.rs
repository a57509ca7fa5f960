//! bench-proxy: download and upload throughput through tun-proxy beside the
//! kernel's own direct path, in one run (a benchmark, not a test; needs root).
//!
//! Two namespaces joined by a veth pair: the client side 10.77.0.1/24 runs
//! tun-proxy (the binary next to this one) and the clients; the server side
//! has 10.77.0.2 and 10.77.0.3 on its veth, with a kernel source (writes as
//! fast as it can) and sink (reads and discards) on each. tun-proxy routes
//! only 10.77.0.3/32 into its TUN device, so 10.77.0.2 is the direct path
//! and 10.77.0.3 the proxied one: same link, same servers, same run. Each
//! transfer lasts `--seconds`; the figures are payload Gbit/s as the client
//! counts them. Namespaces and the proxy die on every exit path (Drop
//! guards).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::netns::{NetNs, NetNsHandle};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Throughput through tun-proxy against the kernel's direct path over the same veth, in one run (root)"
)]
struct Args {
    /// Seconds per transfer (at least 3).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(3..=600))]
    seconds: u64,
    /// The tun-proxy binary [default: next to this executable].
    #[arg(long)]
    tun_proxy: Option<PathBuf>,
    /// Extra arguments for tun-proxy (e.g. "--no-offload"), space-separated.
    #[arg(long, default_value = "")]
    proxy_args: String,
}

const DIRECT: &str = "10.77.0.2";
const PROXIED: &str = "10.77.0.3";
const SOURCE_PORT: u16 = 5001;
const SINK_PORT: u16 = 5002;
const CHUNK: usize = 1 << 20;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

/// A child process killed (SIGTERM, then bounded wait, then SIGKILL) on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let proxy_bin = match &args.tun_proxy {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory of the executable")?
            .join("tun-proxy"),
    };
    if !proxy_bin.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p ustack --bin tun-proxy) or pass --tun-proxy",
            proxy_bin.display()
        )
        .into());
    }
    let c = NetNs::create("bpx-c")?;
    let s = NetNs::create("bpx-s")?;
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
    for a in ["10.77.0.2/24", "10.77.0.3/24"] {
        s.ip(&["addr", "add", a, "dev", "veth-s"])?;
    }
    s.ip(&["link", "set", "veth-s", "up"])?;
    start_servers(&s)?;

    let mut child = c
        .command(proxy_bin.to_str().ok_or("tun-proxy path is not UTF-8")?)
        .args(["--route", &format!("{PROXIED}/32")])
        .args(args.proxy_args.split_whitespace())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let _proxy = Guarded(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20))?;
    if !line.contains("relaying TCP") {
        return Err(format!("tun-proxy: unexpected first line {line:?}").into());
    }

    let secs = Duration::from_secs(args.seconds);
    let extra = if args.proxy_args.is_empty() {
        "(default options)"
    } else {
        &args.proxy_args
    };
    println!(
        "bench-proxy: {} s per transfer, client ns -> server ns over veth; tun-proxy {extra}",
        args.seconds
    );
    println!(
        "{:<10} {:>14} {:>14} {:>8}",
        "", "direct Gbit/s", "proxy Gbit/s", "ratio"
    );
    for (name, port) in [("download", SOURCE_PORT), ("upload", SINK_PORT)] {
        let direct = measure(&c, DIRECT, port, secs)?;
        let proxied = measure(&c, PROXIED, port, secs)?;
        println!(
            "{name:<10} {direct:>14.2} {proxied:>14.2} {:>8.2}",
            proxied / direct
        );
    }
    Ok(())
}

/// On both server addresses: a source (writes until the client goes) and
/// a sink (reads until EOF).
fn start_servers(s: &NetNs) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel();
    for addr in [DIRECT, PROXIED] {
        for port in [SOURCE_PORT, SINK_PORT] {
            let ns = NetNsHandle::named(s.name());
            let tx = tx.clone();
            let at: SocketAddr = format!("{addr}:{port}").parse()?;
            std::thread::spawn(move || {
                let listener = ns
                    .enter_current_thread()
                    .map_err(|e| e.to_string())
                    .and_then(|()| TcpListener::bind(at).map_err(|e| e.to_string()));
                let listener = match listener {
                    Ok(l) => {
                        let _ = tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for conn in listener.incoming().flatten() {
                    std::thread::spawn(move || serve(conn, port == SOURCE_PORT));
                }
            });
        }
    }
    for _ in 0..4 {
        rx.recv_timeout(Duration::from_secs(10))??;
    }
    Ok(())
}

fn serve(mut conn: TcpStream, source: bool) {
    let mut buf = vec![0u8; CHUNK];
    if source {
        while conn.write_all(&buf).is_ok() {}
    } else {
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// One transfer of `secs` from the client namespace; returns Gbit/s.
fn measure(c: &NetNs, addr: &str, port: u16, secs: Duration) -> Result<f64, Error> {
    let ns = NetNsHandle::named(c.name());
    let at: SocketAddr = format!("{addr}:{port}").parse()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = ns
            .enter_current_thread()
            .map_err(|e| e.to_string())
            .and_then(|()| transfer(at, port == SOURCE_PORT, secs).map_err(|e| e.to_string()));
        let _ = tx.send(r);
    });
    let bits_per_s = rx.recv_timeout(secs + Duration::from_secs(30))??;
    Ok(bits_per_s / 1e9)
}

fn transfer(at: SocketAddr, download: bool, secs: Duration) -> std::io::Result<f64> {
    let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut total = 0u64;
    while start.elapsed() < secs {
        let n = if download {
            s.read(&mut buf)?
        } else {
            s.write(&buf)?
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{at} closed early"),
            ));
        }
        total += n as u64;
    }
    Ok(total as f64 * 8.0 / start.elapsed().as_secs_f64())
}

//! bench-async: bulk transfer through the tokio streams
//! (`ustack::socket::tokio`) against the raw `Stack` API, on the same link
//! in the same run (a benchmark, not a test; needs root).
//!
//! In a namespace of its own, a TUN device (host side 10.0.0.1/24, stack at
//! 10.0.0.2) carries two transfers from a kernel client (std::net): an
//! upload of `--secs` seconds that the server reads and discards (port
//! 5001), and a download of `--secs` seconds that the server writes (port
//! 5002). The server is either
//!
//! - raw: `ustack::run`'s single-threaded event loop with an [`App`] that
//!   reads with `Tcp::recv` into a 64 KiB buffer and writes with `Tcp::send`
//!   from one, on the loop's thread; or
//! - async: a [`NetStack`] (driver thread) and a current-thread tokio
//!   runtime whose tasks do the same through `AsyncReadExt::read` and
//!   `AsyncWriteExt::write` on a
//!   [`TcpStream`](ustack::socket::tokio::TcpStream), with the same buffers.
//!
//! Both copy every byte once between TCP's ring and the application's
//! buffer. Rounds alternate raw and async; the table shows medians and the
//! ratio async / raw (the target: at least 0.8x). The namespace and
//! device go on every exit path, Ctrl-C included (it ends the run early).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::netns::NetNs;
use ustack::socket::tokio::TcpListener;
use ustack::socket::NetStack;
use ustack::{App, Clock, Control, RuntimeError};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{TunConfig, TunLink};
use ustack_tcp::{ConnId, Instant as TcpInstant, ListenerId, Tcp, TcpError, TcpLayerConfig};

const SINK_PORT: u16 = 5001;
const SOURCE_PORT: u16 = 5002;
/// The application's buffer on both servers and on the client.
const BUF: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Bulk transfer over TUN through ustack's tokio streams vs its raw Stack API, in one run (root)"
)]
struct Args {
    /// Seconds of each transfer (upload, download) per round.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    secs: u64,
    /// Rounds per server kind; the table shows the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// No TUN offloads: one packet of at most the MTU per read and write.
    #[arg(long)]
    no_offload: bool,
    /// Send and receive buffer of every connection, in KiB, on both
    /// servers [default: TCP's default].
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=65536))]
    buffer_kib: Option<u32>,
    /// Run only this server (for profiling one of them).
    #[arg(long, value_enum)]
    only: Option<Kind>,
}

impl Args {
    fn tcp_config(&self) -> TcpLayerConfig {
        let mut cfg = TcpLayerConfig::default();
        if let Some(kib) = self.buffer_kib {
            cfg.tcp.send_buffer = kib as usize * 1024;
            cfg.tcp.recv_buffer = kib as usize * 1024;
        }
        cfg
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Raw,
    Async,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("bench-async: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let ns = match NetNs::create("bench-async") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("bench-async: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = ns.enter_current_thread() {
        eprintln!("bench-async: {e}");
        return ExitCode::FAILURE;
    }
    let mut results: Vec<(Kind, f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        for kind in [Kind::Raw, Kind::Async] {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if args.only.is_some_and(|k| k != kind) {
                continue;
            }
            match one_round(kind, &args, &stop) {
                Ok((up, down)) => {
                    println!(
                        "round {round} {kind:?}: upload {:.2} Gbit/s, download {:.2} Gbit/s",
                        up, down
                    );
                    results.push((kind, up, down));
                }
                Err(e) => {
                    eprintln!("bench-async: round {round} {kind:?}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    report(&results);
    ExitCode::SUCCESS
}

fn report(results: &[(Kind, f64, f64)]) {
    let med = |kind: Kind, pick: fn(&(Kind, f64, f64)) -> f64| {
        let mut v: Vec<f64> = results.iter().filter(|r| r.0 == kind).map(pick).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!();
    println!("| transfer (median) | raw Stack API | tokio streams | async / raw | target |");
    println!("|---|---|---|---|---|");
    for (name, pick) in [
        (
            "upload (kernel sends)",
            (|r: &(Kind, f64, f64)| r.1) as fn(&_) -> f64,
        ),
        ("download (kernel receives)", |r: &(Kind, f64, f64)| r.2),
    ] {
        let (raw, tokio) = (med(Kind::Raw, pick), med(Kind::Async, pick));
        println!(
            "| {name} | {raw:.2} Gbit/s | {tokio:.2} Gbit/s | {:.2}x | >= 0.8x |",
            tokio / raw
        );
    }
}

/// One server of `kind` on a fresh device; the kernel client's upload and
/// download goodput in Gbit/s.
fn one_round(kind: Kind, args: &Args, stop: &AtomicBool) -> Result<(f64, f64), String> {
    let tun = TunConfig {
        name: "tun0".into(),
        host_addr: std::net::Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        offload: !args.no_offload,
    };
    let link = TunLink::create(&tun).map_err(|e| e.to_string())?;
    let subnet = Ipv4Subnet::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 24).ok_or("subnet")?;
    let dur = Duration::from_secs(args.secs);
    match kind {
        Kind::Raw => {
            let server_stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&server_stop);
            let cfg = args.tcp_config();
            let server = std::thread::spawn(move || raw_server(link, subnet, cfg, &flag));
            let r = client(dur, stop);
            server_stop.store(true, Ordering::Relaxed);
            server
                .join()
                .map_err(|_| "raw server panicked")?
                .map_err(|e| e.to_string())?;
            r
        }
        Kind::Async => {
            let net =
                NetStack::spawn(link, subnet, args.tcp_config()).map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            let server = std::thread::spawn({
                let net = net.clone();
                move || rt.block_on(async_server(&net))
            });
            let r = client(dur, stop);
            net.stop();
            drop(net);
            let _ = server.join();
            r
        }
    }
}

/// The kernel side: uploads for `dur`, then downloads for `dur`.
fn client(dur: Duration, stop: &AtomicBool) -> Result<(f64, f64), String> {
    use std::io::{Read, Write};
    let connect = |port: u16| {
        let started = Instant::now();
        loop {
            match std::net::TcpStream::connect(("10.0.0.2", port)) {
                Ok(s) => return Ok(s),
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("connect to port {port}: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    };
    let buf = vec![0x5au8; BUF];
    let mut up = connect(SINK_PORT)?;
    let (started, mut sent) = (Instant::now(), 0u64);
    while started.elapsed() < dur && !stop.load(Ordering::Relaxed) {
        up.write_all(&buf).map_err(|e| format!("upload: {e}"))?;
        sent += BUF as u64;
    }
    let up_gbps = sent as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e9;
    drop(up);

    let mut down = connect(SOURCE_PORT)?;
    down.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; BUF];
    let (started, mut got) = (Instant::now(), 0u64);
    while started.elapsed() < dur && !stop.load(Ordering::Relaxed) {
        match down.read(&mut buf) {
            Ok(0) => return Err("download: the server closed early".into()),
            Ok(n) => got += n as u64,
            Err(e) => return Err(format!("download: {e}")),
        }
    }
    let down_gbps = got as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e9;
    Ok((up_gbps, down_gbps))
}

/// The tokio server: one task per connection, reading (sink) or writing
/// (source) until the peer goes or the stack stops.
async fn async_server(net: &NetStack) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (Ok(sink), Ok(source)) = (
        TcpListener::bind(net, SINK_PORT),
        TcpListener::bind(net, SOURCE_PORT),
    ) else {
        eprintln!("bench-async: cannot listen");
        return;
    };
    let sinker = tokio::spawn(async move {
        let Ok((mut s, _)) = sink.accept().await else {
            return;
        };
        let mut buf = vec![0u8; BUF];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let Ok((mut s, _)) = source.accept().await else {
        return;
    };
    let buf = vec![0x5au8; BUF];
    while s.write(&buf).await.is_ok_and(|n| n > 0) {}
    let _ = sinker.await;
}

/// The raw server: `ustack::run` with [`RawApp`] until `stop`.
fn raw_server(
    mut link: TunLink,
    subnet: Ipv4Subnet,
    cfg: TcpLayerConfig,
    stop: &AtomicBool,
) -> Result<(), RuntimeError> {
    let mut stack = ustack::new_stack(subnet, ustack_link::Link::caps(&link), cfg);
    let sink = stack
        .listen(SINK_PORT, 16)
        .map_err(|e| RuntimeError::App(e.to_string()))?;
    let source = stack
        .listen(SOURCE_PORT, 16)
        .map_err(|e| RuntimeError::App(e.to_string()))?;
    let mut app = RawApp {
        sink,
        source,
        conns: Vec::new(),
        rbuf: vec![0u8; BUF],
        wbuf: vec![0x5au8; BUF],
    };
    ustack::run(&mut link, &mut stack, &mut app, &Clock::new(), stop)?;
    Ok(())
}

/// Reads what comes on `sink`'s connections, writes to `source`'s as fast
/// as the window allows.
struct RawApp {
    sink: ListenerId,
    source: ListenerId,
    conns: Vec<(ConnId, bool)>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl App for RawApp {
    fn on_turn(&mut self, tcp: &mut Tcp, now: TcpInstant) -> Result<Control, RuntimeError> {
        while let Some(id) = tcp.accept(self.sink) {
            self.conns.push((id, false));
        }
        while let Some(id) = tcp.accept(self.source) {
            self.conns.push((id, true));
        }
        let (rbuf, wbuf) = (&mut self.rbuf, &self.wbuf);
        self.conns.retain(|&(id, writes)| {
            let done = loop {
                let r = if writes {
                    tcp.send(id, wbuf)
                } else {
                    tcp.recv(id, rbuf)
                };
                match r {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(TcpError::WouldBlock) => break false,
                    Err(_) => break true,
                }
            };
            if done {
                let _ = tcp.close(id, now);
            }
            !done
        });
        Ok(Control::Continue)
    }
}

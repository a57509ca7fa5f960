//! bench-idle: what an idle keep-alive connection costs tun-server (a
//! benchmark, not a test; needs root and python3).
//!
//! tun-server runs in a namespace of its own; client processes (python3,
//! each from its own source address on the TUN host side, each with its
//! descriptor limit raised) open connections, send one `GET /`, read the
//! `Hello World!` and keep the connection open. With all of them held,
//! the server's RSS growth over the count is the cost per connection, and
//! a fresh curl's time to `Hello World!` shows the server still serves.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{self, Proc};
use ustack::netns::NetNs;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "RSS per idle keep-alive connection of tun-server (root)"
)]
struct Args {
    /// Idle connections to hold.
    #[arg(long, default_value_t = 20_000)]
    connections: u32,
    /// Client processes (each from its own source address, at most 25,000
    /// connections each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=200))]
    clients: u32,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

/// One client process: opens `n` connections from `src`, one request each,
/// prints "ready N", then holds them until stdin closes.
const CLIENT: &str = r#"
import resource, socket, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
held = []
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
for i in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(10)
    s.connect((dst, 80))
    s.sendall(req)
    got = b""
    while b"Hello World!" not in got:
        d = s.recv(4096)
        if not d:
            sys.exit("connection %d closed before the response" % i)
        got += d
    held.append(s)
print("ready", len(held), flush=True)
sys.stdin.read()
"#;

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-idle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    child::rss_kib(pid).ok_or_else(|| format!("no VmRSS for process {pid}").into())
}

fn bench(args: &Args) -> Result<(), BoxError> {
    let bin = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("executable has no directory")?
            .join("tun-server"),
    };
    let per_client = args.connections.div_ceil(args.clients);
    if per_client > 25_000 {
        return Err(format!("{per_client} connections per client: use more --clients").into());
    }
    let ns = NetNs::create("bench-idle")?;
    let mut server = Proc(
        ns.command(&bin.to_string_lossy())
            .args(["--max-connections", &(args.connections + 1024).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let pid = server.0.id();
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    if !line.contains("curl http://10.0.0.2/") {
        return Err(format!("tun-server: unexpected first line {line:?}").into());
    }
    ns.ip(&["link", "set", "lo", "up"])?;
    for i in 0..args.clients {
        ns.ip(&[
            "addr",
            "add",
            &format!("10.0.0.{}/24", 10 + i),
            "dev",
            "tun0",
        ])?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid)?;
    let start = Instant::now();
    let mut clients: Vec<(Proc, ChildStdin, BufReader<ChildStdout>)> = Vec::new();
    for i in 0..args.clients {
        let mut c = ns
            .command("python3")
            .args(["-c", CLIENT, &format!("10.0.0.{}", 10 + i), "10.0.0.2"])
            .arg(
                per_client
                    .min(args.connections - i * per_client)
                    .to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = c.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(c.stdout.take().ok_or("no stdout")?);
        clients.push((Proc(c), stdin, stdout));
    }
    let mut held = 0u64;
    for (_, _, out) in &mut clients {
        let mut l = String::new();
        out.read_line(&mut l)?;
        held += l
            .strip_prefix("ready ")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("client: {l:?}"))?;
    }
    let opened = start.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(pid)?;
    // curl's own clock: connect to last byte, without process start-up.
    let out = ns
        .command("curl")
        .args([
            "--silent",
            "--max-time",
            "5",
            "--write-out",
            "\n%{time_total}",
            "http://10.0.0.2/",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, secs) = text.rsplit_once('\n').unwrap_or((&text, "nan"));
    let curl_ms = secs.trim().parse::<f64>().unwrap_or(f64::NAN) * 1e3;
    println!(
        "{held} idle connections opened in {:.1} s; tun-server RSS {before} KiB -> {after} KiB: \
         {:.0} bytes per connection; fresh curl: {:?} in {curl_ms:.1} ms",
        opened.as_secs_f64(),
        (after.saturating_sub(before)) as f64 * 1024.0 / held.max(1) as f64,
        body.trim()
    );
    for (_, stdin, _) in &mut clients {
        let _ = stdin.flush();
    }
    drop(clients);
    drop(server);
    Ok(())
}

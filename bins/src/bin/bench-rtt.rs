//! bench-rtt: one download and one upload over TUN against the kernel's
//! TCP at several round-trip times (a benchmark, not a test; needs root).
//!
//! For every RTT, `tun-server --delay RTT/2` (the fault injector delays each
//! direction) runs in a namespace of its own whose `tcp_rmem`/`tcp_wmem`
//! maxima are raised to 32 MiB so the kernel client is not the limit; curl
//! in that namespace fetches `/bytes/N` and POSTs a body to `/sink`. With
//! `--baseline BIN` another tun-server (e.g. main's) is measured the same
//! way in the same run. Prints a table; `--svg` writes a plot.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{spawn_server, Proc};
use ustack::netns::NetNs;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Download and upload goodput over TUN vs round-trip time (root)"
)]
struct Args {
    /// Round-trip times to measure, in ms (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,10,50,100")]
    rtt: Vec<u64>,
    /// Bytes per download.
    #[arg(long, default_value_t = 2_000_000_000)]
    bytes: u64,
    /// Bytes per upload.
    #[arg(long, default_value_t = 1_000_000_000)]
    upload_bytes: u64,
    /// curl --max-time per transfer, in seconds; a transfer cut short counts
    /// what arrived over the time taken (marked `*`).
    #[arg(long, default_value_t = 15)]
    max_time: u64,
    /// Transfers per stack, RTT and direction; the table shows the best.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
    /// A second tun-server to measure the same way (e.g. main's build).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Also write an SVG plot to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

/// Both directions' best goodput at one RTT, in Mbit/s, and whether cut short.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    down: f64,
    down_cut: bool,
    up: f64,
    up_cut: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("bench-rtt: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match bench(&args, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-rtt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args, stop: &AtomicBool) -> Result<(), BoxError> {
    let ours = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("executable has no directory")?
            .join("tun-server"),
    };
    for bin in std::iter::once(&ours).chain(args.baseline.as_ref()) {
        if !bin.exists() {
            return Err(format!(
                "{} not found (cargo build --release -p ustack)",
                bin.display()
            )
            .into());
        }
    }
    if args.rtt.iter().any(|&r| r % 2 == 1 || r > 2_000) {
        return Err(
            "--rtt values must be even and at most 2000 ms (the delay is RTT/2 each way)".into(),
        );
    }
    // A sparse file: reading it costs no disk.
    let body = std::env::temp_dir().join(format!("bench-rtt-{}.body", std::process::id()));
    std::fs::File::create(&body)?.set_len(args.upload_bytes)?;
    let _cleanup = RemoveOnDrop(body.clone());
    let mut rows = Vec::new();
    for &rtt in &args.rtt {
        let new = measure(&ours, rtt, args, &body, stop)?;
        let base = match &args.baseline {
            Some(b) => Some(measure(b, rtt, args, &body, stop)?),
            None => None,
        };
        eprintln!("{rtt} ms: {new:?} baseline {base:?}");
        rows.push((rtt, new, base));
    }
    print!("{}", table(&rows));
    if let Some(p) = &args.svg {
        std::fs::write(p, svg(&rows))?;
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Best download and upload of `bin` at `rtt` ms, each in a fresh server.
fn measure(
    bin: &Path,
    rtt: u64,
    args: &Args,
    body: &Path,
    stop: &AtomicBool,
) -> Result<Point, BoxError> {
    let ns = NetNs::create("bench-rtt")?;
    for (key, value) in [
        ("net.ipv4.tcp_rmem", "4096 131072 33554432"),
        ("net.ipv4.tcp_wmem", "4096 16384 33554432"),
    ] {
        let out = ns
            .command("sysctl")
            .args(["-qw", &format!("{key}={value}")])
            .output()?;
        if !out.status.success() {
            return Err(format!("sysctl {key}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    let server = start(&ns, bin, rtt / 2, stop)?;
    let mut p = Point::default();
    for _ in 0..args.repeat {
        let url = format!("{}bytes/{}", server.url, args.bytes);
        let (mbit, cut) = curl(&ns, &url, None, args.max_time, stop)?;
        if mbit > p.down {
            (p.down, p.down_cut) = (mbit, cut);
        }
        let url = format!("{}sink", server.url);
        let (mbit, cut) = curl(&ns, &url, Some(body), args.max_time, stop)?;
        if mbit > p.up {
            (p.up, p.up_cut) = (mbit, cut);
        }
    }
    drop(server);
    Ok(p)
}

struct Server {
    _proc: Proc,
    url: String,
}

fn start(ns: &NetNs, bin: &Path, delay_ms: u64, stop: &AtomicBool) -> Result<Server, BoxError> {
    let mut cmd = ns.command(&bin.to_string_lossy());
    if delay_ms > 0 {
        cmd.args(["--delay", &delay_ms.to_string()]);
    }
    cmd.env("RUST_LOG", "warn");
    let (proc, url) = spawn_server(&mut cmd, Duration::from_secs(20), Some(stop))?;
    Ok(Server { _proc: proc, url })
}

/// One transfer: a download, or with `upload` a POST of that file.
/// Returns Mbit/s and whether --max-time cut it short.
fn curl(
    ns: &NetNs,
    url: &str,
    upload: Option<&Path>,
    cap: u64,
    stop: &AtomicBool,
) -> Result<(f64, bool), BoxError> {
    let mut cmd = ns.command("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--output",
        "/dev/null",
        "--max-time",
        &cap.to_string(),
    ]);
    match upload {
        Some(file) => cmd.args([
            "--data-binary",
            &format!("@{}", file.display()),
            "--write-out",
            "%{size_upload} %{time_total} %{http_code}",
        ]),
        None => cmd.args(["--write-out", "%{size_download} %{time_total} %{http_code}"]),
    };
    let mut child = Proc(
        cmd.arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(cap + 15);
    let status = loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if let Some(s) = child.0.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            return Err(format!("curl {url} did not stop within {cap} s + 15 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut s) = child.0.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let mut f = out.split_whitespace();
    let (Some(bytes), Some(secs), Some(code)) = (f.next(), f.next(), f.next()) else {
        return Err(format!("curl {url}: no --write-out ({status})").into());
    };
    let cut = status.code() == Some(28);
    if !cut && (!status.success() || code != "200") {
        return Err(format!("curl {url}: {status}, HTTP {code}").into());
    }
    let (bytes, secs): (f64, f64) = (bytes.parse()?, secs.parse()?);
    Ok((bytes * 8.0 / secs.max(1e-6) / 1e6, cut))
}

fn cell(v: f64, cut: bool) -> String {
    format!("{v:.0}{}", if cut { "*" } else { "" })
}

fn table(rows: &[(u64, Point, Option<Point>)]) -> String {
    let base = rows.iter().any(|r| r.2.is_some());
    let mut s = String::from("| RTT (ms) | download (Mbit/s) | upload (Mbit/s) |");
    if base {
        s.push_str(" baseline download | baseline upload |");
    }
    s.push('\n');
    s.push_str(if base {
        "|---:|---:|---:|---:|---:|\n"
    } else {
        "|---:|---:|---:|\n"
    });
    for (rtt, p, b) in rows {
        let _ = write!(
            s,
            "| {rtt} | {} | {} |",
            cell(p.down, p.down_cut),
            cell(p.up, p.up_cut)
        );
        if let Some(b) = b {
            let _ = write!(
                s,
                " {} | {} |",
                cell(b.down, b.down_cut),
                cell(b.up, b.up_cut)
            );
        }
        s.push('\n');
    }
    s.push_str("(* cut short by --max-time: what arrived over the time taken)\n");
    s
}

/// A plotted line: name, colour, (RTT, Mbit/s) points.
type Series = (&'static str, &'static str, Vec<(u64, f64)>);

/// Goodput (log scale) against RTT, one line per stack and direction.
fn svg(rows: &[(u64, Point, Option<Point>)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 400.0;
    const L: f64 = 70.0;
    const R: f64 = 150.0;
    const T: f64 = 40.0;
    const B: f64 = 55.0;
    let series: Vec<Series> = {
        let mut v = vec![
            (
                "download",
                "#1f77b4",
                rows.iter().map(|r| (r.0, r.1.down)).collect(),
            ),
            (
                "upload",
                "#2ca02c",
                rows.iter().map(|r| (r.0, r.1.up)).collect(),
            ),
        ];
        if rows.iter().all(|r| r.2.is_some()) {
            let b = |f: fn(&Point) -> f64| {
                rows.iter()
                    .map(|r| (r.0, r.2.as_ref().map_or(0.0, f)))
                    .collect()
            };
            v.push(("baseline download", "#ff7f0e", b(|p| p.down)));
            v.push(("baseline upload", "#d62728", b(|p| p.up)));
        }
        v
    };
    let max_rtt = rows.iter().map(|r| r.0).max().unwrap_or(1).max(1) as f64;
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = vals
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = vals
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .log10()
        .ceil();
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi.max(lo + 1.0))
    } else {
        (0.0, 5.0)
    };
    let x = |rtt: f64| L + (W - L - R) * rtt / max_rtt;
    let y = |v: f64| T + (H - T - B) * (hi - v.max(1e-3).log10()) / (hi - lo);
    let mut s = String::new();
    let _ = writeln!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">");
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Goodput over TUN vs round-trip time (one flow, kernel client)</text>", (W - R + L) / 2.0);
    let mut d = lo;
    while d <= hi {
        let yy = y(10f64.powf(d));
        let _ = writeln!(s, "<line x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", W - R, L - 6.0, yy + 4.0, 10f64.powf(d));
        d += 1.0;
    }
    for r in rows {
        let xx = x(r.0 as f64);
        let _ = writeln!(
            s,
            "<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - B + 18.0,
            r.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">RTT (ms)</text>",
        (W - R + L) / 2.0,
        H - 12.0
    );
    let _ = writeln!(s, "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">Mbit/s (log)</text>", H / 2.0, H / 2.0);
    for (i, (name, color, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|(r, v)| format!("{:.1},{:.1}", x(*r as f64), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (r, v) in pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                x(*r as f64),
                y(*v)
            );
        }
        let ly = T + 20.0 * i as f64;
        let _ = writeln!(s, "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>", W - R + 10.0, W - R + 30.0, W - R + 35.0, ly + 4.0);
    }
    s.push_str("</svg>\n");
    s
}

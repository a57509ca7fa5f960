//! bench-loss: download goodput under random packet loss, ustack against the
//! kernel's own TCP, in one run (a benchmark, not a test; needs root).
//!
//! - ustack: `tun-server` (the binary next to this one) over a TUN device in
//!   a namespace of its own; curl in that namespace fetches `/bytes/N`.
//! - kernel: two namespaces joined by a veth pair (10.77.0.1/24 serves,
//!   10.77.0.2/24 runs curl); a std::net HTTP/1.1 server thread in the
//!   serving namespace answers `/bytes/N` with the same body pattern
//!   (`ustack_http::fill_body`) and a Content-Length.
//!
//! On both, nftables in curl's namespace drops a random P % of the packets
//! in each direction on the interface (`numgen random mod 100 < P drop`, in
//! prerouting and postrouting), and the kernel hands the interface one TCP
//! segment per packet (`gso_max_segs 1`), and tun-server runs with
//! `--no-offload`, so a drop is one wire packet, not a 64 KB GSO batch. Namespaces, the device and the server die on every exit
//! path (Drop guards; Ctrl-C and SIGTERM stop between and during transfers).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{spawn_server, Proc};
use ustack::netns::{NetNs, NetNsHandle};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Download goodput vs random packet loss: ustack over TUN against the kernel's TCP over veth, in one run (root)"
)]
struct Args {
    /// Loss rates to measure, in percent per direction (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,1,5,10")]
    loss: Vec<f64>,
    /// Bytes per download at 0 % loss. At P % loss a download is
    /// BYTES / (1 + 8 P) (same for both stacks) unless --no-scale.
    #[arg(long, default_value_t = 200_000_000)]
    bytes: u64,
    /// Use --bytes at every loss rate.
    #[arg(long)]
    no_scale: bool,
    /// Downloads per stack and loss rate; the table shows the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    repeat: u32,
    /// curl --max-time per download, in seconds. A download cut short by it
    /// still counts (bytes received so far over the time taken) and is
    /// marked `*` in the table.
    #[arg(long, visible_alias = "max-time", default_value_t = 20)]
    duration_cap: u64,
    /// Also write the results as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write an SVG plot of goodput vs loss to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
    /// Leave segmentation offloads on, on both sides: the kernel's TSO/GSO
    /// and ustack's TUN offload (the loss rule then drops whole super-frames
    /// of up to 64 KB, far fewer wire packets than P %).
    #[arg(long)]
    keep_offloads: bool,
}

type BoxError = Box<dyn std::error::Error>;

/// nftables table holding the loss rules (in curl's namespace).
const LOSS_TABLE: &str = "ustack_loss";

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("bench-loss: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Everything with a Drop guard lives inside `bench`, so it is all torn
    // down before we return, whatever the path.
    match bench(&args, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-loss: {e}");
            if stop.load(Ordering::Relaxed) {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// One download's outcome.
#[derive(Clone, Copy, Debug)]
struct Sample {
    bytes: u64,
    secs: f64,
    /// Stopped by --duration-cap before the whole body arrived.
    cut: bool,
}

impl Sample {
    fn mbit_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }
}

/// Median goodput of some samples, and whether any was cut short.
#[derive(Clone, Copy, Debug)]
struct Summary {
    mbit_s: f64,
    cut: bool,
}

fn summarize(samples: &[Sample]) -> Summary {
    let mut v: Vec<f64> = samples.iter().map(Sample::mbit_s).collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let mbit_s = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Summary {
        mbit_s,
        cut: samples.iter().any(|s| s.cut),
    }
}

struct Row {
    loss: f64,
    bytes: u64,
    ustack: Summary,
    kernel: Summary,
}

fn bench(args: &Args, stop: &AtomicBool) -> Result<(), BoxError> {
    for &p in &args.loss {
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("--loss {p}: must be 0..=100").into());
        }
    }
    let tun_server = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory around the executable")?
            .join("tun-server"),
    };
    if !tun_server.is_file() {
        return Err(format!(
            "{} not found: build both binaries first (cargo build --release -p ustack) or pass --tun-server",
            tun_server.display()
        )
        .into());
    }

    eprintln!("setting up namespaces ...");
    let ustack_side = UstackSide::start(&tun_server, args.keep_offloads, stop)?;
    let kernel_side = KernelSide::start(args.keep_offloads)?;

    let mut rows = Vec::new();
    for &loss in &args.loss {
        let bytes = if args.no_scale {
            args.bytes
        } else {
            ((args.bytes as f64 / (1.0 + 8.0 * loss)) as u64).max(1)
        };
        set_loss(&ustack_side.ns, "tun0", loss)?;
        set_loss(&kernel_side.client, "veth-c", loss)?;
        let mut u = Vec::new();
        let mut k = Vec::new();
        // Alternate the stacks so slow drifts of the machine hit both alike.
        for run in 1..=args.repeat {
            let s = download(
                &ustack_side.ns,
                &format!("http://10.0.0.2/bytes/{bytes}"),
                bytes,
                args.duration_cap,
                stop,
            )?;
            eprintln!(
                "loss {loss} % run {run}: ustack {:.1} Mbit/s ({} B in {:.2} s{})",
                s.mbit_s(),
                s.bytes,
                s.secs,
                if s.cut { ", cut" } else { "" }
            );
            u.push(s);
            let s = download(
                &kernel_side.client,
                &format!("http://10.77.0.1/bytes/{bytes}"),
                bytes,
                args.duration_cap,
                stop,
            )?;
            eprintln!(
                "loss {loss} % run {run}: kernel {:.1} Mbit/s ({} B in {:.2} s{})",
                s.mbit_s(),
                s.bytes,
                s.secs,
                if s.cut { ", cut" } else { "" }
            );
            k.push(s);
        }
        rows.push(Row {
            loss,
            bytes,
            ustack: summarize(&u),
            kernel: summarize(&k),
        });
    }

    print!("{}", table(&rows, args));
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&rows))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&rows))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// tun-server over TUN in a namespace; curl runs in the same namespace.
struct UstackSide {
    // Field order is drop order: the server goes before its namespace.
    _server: Proc,
    ns: NetNs,
}

impl UstackSide {
    fn start(tun_server: &Path, keep_offloads: bool, stop: &AtomicBool) -> Result<Self, BoxError> {
        let ns = NetNs::create("bench-tun")?;
        let mut cmd = ns.command(&tun_server.to_string_lossy());
        if !keep_offloads {
            // One wire segment per write, as the kernel side gets below.
            cmd.arg("--no-offload");
        }
        cmd.env("RUST_LOG", "warn");
        let (server, _) = spawn_server(&mut cmd, Duration::from_secs(20), Some(stop))?;
        if !keep_offloads {
            ns.ip(&["link", "set", "dev", "tun0", "gso_max_segs", "1"])?;
        }
        Ok(UstackSide {
            _server: server,
            ns,
        })
    }
}

/// The kernel's TCP on both ends of a veth pair: `server` (10.77.0.1, a
/// std::net HTTP thread) and `client` (10.77.0.2, where curl runs).
/// Dropping it deletes both namespaces (and so the veth pair); the server
/// thread keeps its namespace alive only until the process exits.
struct KernelSide {
    _server: NetNs,
    client: NetNs,
}

impl KernelSide {
    fn start(keep_offloads: bool) -> Result<Self, BoxError> {
        let server = NetNs::create("bench-ksrv")?;
        let client = NetNs::create("bench-kcli")?;
        client.ip(&[
            "link",
            "add",
            "veth-c",
            "type",
            "veth",
            "peer",
            "name",
            "veth-s",
            "netns",
            server.name(),
        ])?;
        client.ip(&["addr", "add", "10.77.0.2/24", "dev", "veth-c"])?;
        server.ip(&["addr", "add", "10.77.0.1/24", "dev", "veth-s"])?;
        for (ns, dev) in [(&client, "veth-c"), (&server, "veth-s")] {
            if !keep_offloads {
                ns.ip(&["link", "set", "dev", dev, "gso_max_segs", "1"])?;
            }
            ns.ip(&["link", "set", "dev", dev, "up"])?;
        }
        spawn_kernel_http_server(server.name(), "10.77.0.1:80")?;
        Ok(KernelSide {
            _server: server,
            client,
        })
    }
}

/// The kernel-side web server: `GET /bytes/N` answers N bytes of the
/// `fill_body` pattern with a Content-Length, one connection per thread.
fn spawn_kernel_http_server(ns_name: &str, addr: &str) -> Result<(), BoxError> {
    let (tx, rx) = mpsc::channel();
    let name = ns_name.to_string();
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let bound = NetNsHandle::named(&name)
            .enter_current_thread()
            .map_err(|e| e.to_string())
            .and_then(|()| TcpListener::bind(&addr).map_err(|e| e.to_string()));
        let listener = match bound {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        // Threads inherit the namespace of the thread that creates them.
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve_bytes(conn);
            });
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("kernel HTTP server: {e}").into()),
        Err(_) => Err("kernel HTTP server did not start within 10 s".into()),
    }
}

fn serve_bytes(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 || req.len() > 16 * 1024 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let path = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
    )?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    while off < n {
        let len = chunk.len().min((n - off) as usize);
        ustack_http::fill_body(off, &mut chunk[..len]);
        conn.write_all(&chunk[..len])?;
        off += len as u64;
    }
    conn.shutdown(std::net::Shutdown::Write)
}

/// Replaces the loss rules in `ns`: drop a random `percent` % of the packets
/// entering and of those leaving `iface`.
fn set_loss(ns: &NetNs, iface: &str, percent: f64) -> Result<(), BoxError> {
    // Whole percents as in the issue (`mod 100 < P`); finer rates in basis points.
    let (modulus, below) = if percent.fract() == 0.0 {
        (100, percent as u32)
    } else {
        (10_000, (percent * 100.0).round() as u32)
    };
    let script = format!(
        "table inet {LOSS_TABLE} {{}}\ndelete table inet {LOSS_TABLE}\n\
         table inet {LOSS_TABLE} {{\n  \
         chain pre {{ type filter hook prerouting priority 0; \
         iifname \"{iface}\" numgen random mod {modulus} < {below} drop; }}\n  \
         chain post {{ type filter hook postrouting priority 0; \
         oifname \"{iface}\" numgen random mod {modulus} < {below} drop; }}\n}}\n"
    );
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (apt-get install nftables): {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "nft in {}: {}",
            ns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// One curl download of `url` in `ns` to /dev/null, timed by curl itself.
fn download(
    ns: &NetNs,
    url: &str,
    expect: u64,
    cap_secs: u64,
    stop: &AtomicBool,
) -> Result<Sample, BoxError> {
    let mut child = Proc(
        ns.command("curl")
            .args([
                "--silent",
                "--show-error",
                "--output",
                "/dev/null",
                "--max-time",
                &cap_secs.to_string(),
                "--write-out",
                "%{size_download} %{time_total} %{http_code}",
                url,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run curl: {e}"))?,
    );
    // curl's --max-time bounds it; this is the backstop.
    let deadline = Instant::now() + Duration::from_secs(cap_secs + 15);
    let status = loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err(format!("curl {url} did not stop within {cap_secs} s + 15 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.0.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if let Some(mut s) = child.0.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    let mut f = out.split_whitespace();
    let (Some(bytes), Some(secs), Some(code)) = (f.next(), f.next(), f.next()) else {
        return Err(format!("curl {url}: no --write-out ({status}): {}", err.trim()).into());
    };
    let bytes: u64 = bytes.parse()?;
    let secs: f64 = secs.parse()?;
    // 28: operation timed out, i.e. --max-time cut the download short.
    let cut = status.code() == Some(28);
    if !(status.success() || cut) || code != "200" {
        return Err(format!("curl {url}: {status}, HTTP {code}: {}", err.trim()).into());
    }
    if !cut && bytes != expect {
        return Err(format!("curl {url}: got {bytes} bytes, expected {expect}").into());
    }
    Ok(Sample { bytes, secs, cut })
}

fn mark(s: &Summary) -> &'static str {
    if s.cut {
        "*"
    } else {
        " "
    }
}

fn table(rows: &[Row], args: &Args) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nDownload goodput, random loss each way, median of {} run(s):\n",
        args.repeat
    );
    let _ = writeln!(
        t,
        "| loss (each way) | bytes per download | ustack over TUN (Mbit/s) | kernel over veth (Mbit/s) | ustack / kernel |"
    );
    let _ = writeln!(t, "|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} % | {} | {:.1}{} | {:.1}{} | {:.3} |",
            r.loss,
            r.bytes,
            r.ustack.mbit_s,
            mark(&r.ustack),
            r.kernel.mbit_s,
            mark(&r.kernel),
            r.ustack.mbit_s / r.kernel.mbit_s.max(1e-9)
        );
    }
    if rows.iter().any(|r| r.ustack.cut || r.kernel.cut) {
        let _ = writeln!(
            t,
            "\n`*`: cut short by --duration-cap {} s; goodput of the bytes received by then.",
            args.duration_cap
        );
    }
    t
}

fn csv(rows: &[Row]) -> String {
    let mut t = String::from(
        "loss_percent,bytes,ustack_mbit_s,kernel_mbit_s,ratio,ustack_cut,kernel_cut\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{},{},{:.3},{:.3},{:.5},{},{}",
            r.loss,
            r.bytes,
            r.ustack.mbit_s,
            r.kernel.mbit_s,
            r.ustack.mbit_s / r.kernel.mbit_s.max(1e-9),
            r.ustack.cut,
            r.kernel.cut
        );
    }
    t
}

/// A line chart of goodput (log scale) against loss, one line per stack.
fn svg(rows: &[Row]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 400.0;
    const L: f64 = 70.0; // left margin (y labels)
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 55.0;
    let max_loss = rows.iter().map(|r| r.loss).fold(0.0, f64::max).max(1.0);
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.ustack.mbit_s, r.kernel.mbit_s])
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .log10()
        .ceil();
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi.max(lo + 1.0))
    } else {
        (0.0, 4.0)
    };
    let x = |loss: f64| L + (W - L - R) * loss / max_loss;
    let y = |v: f64| T + (H - T - B) * (hi - v.log10()) / (hi - lo);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Download goodput vs random loss (each way)</text>",
        W / 2.0
    );
    // Decade grid lines and labels.
    let mut d = lo;
    while d <= hi {
        let yy = y(10f64.powf(d));
        let label = if d >= 0.0 {
            format!("{}", 10f64.powf(d) as u64)
        } else {
            format!("{}", 10f64.powf(d))
        };
        let _ = writeln!(
            s,
            "<line x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            W - R,
            L - 6.0,
            yy + 4.0
        );
        d += 1.0;
    }
    for r in rows {
        let xx = x(r.loss);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{T}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - B,
            H - B + 18.0,
            r.loss
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{L}\" y=\"{T}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#333\"/>",
        W - L - R,
        H - T - B
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">loss per direction (%)</text>",
        L + (W - L - R) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">goodput (Mbit/s, log scale)</text>",
        T + (H - T - B) / 2.0
    );
    type Series = (&'static str, &'static str, fn(&Row) -> f64);
    let series: [Series; 2] = [
        ("ustack over TUN", "#d62728", |r| r.ustack.mbit_s),
        ("kernel TCP over veth", "#1f77b4", |r| r.kernel.mbit_s),
    ];
    for (i, (name, color, get)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| get(r) > 0.0 && get(r).is_finite())
            .map(|r| (x(r.loss), y(get(r))))
            .collect();
        let list: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            list.join(" ")
        );
        for (a, b) in &pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"3.5\" fill=\"{color}\"/>"
            );
        }
        let ly = T + 16.0 + 18.0 * i as f64;
        let lx = W - R - 170.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

//! bench-afpacket: download and upload over a veth pair with `tun-server
//! --link afpacket` against curl in the other namespace: the memory-mapped
//! transmit ring (`--tx-ring-kib 1024`, slots of one frame) against no
//! rings (the default, `--no-rings`: one `sendmsg` per frame or per
//! super-frame, which the kernel segments, GSO; one `recvmsg` per frame),
//! in the same run (a benchmark, not a test; needs root).
//!
//! Each transfer runs for `--seconds` (curl's `--max-time` cuts an endless
//! body), so every round lasts as long whatever the speed; the server is
//! fresh for every round, and rounds alternate between the modes. The last
//! round also pings the server (what a lone packet waits). With
//! `--syscalls`, one more transfer each way runs
//! under `perf stat` attached to the server, and the system calls it made
//! per megabyte moved are printed.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use ustack::child::{spawn_server, Proc};
use ustack::netns::NetNs;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "AF_PACKET over veth: rings vs one system call per frame (root)"
)]
struct Args {
    /// Seconds per transfer (at least 3).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(3..=60))]
    seconds: u64,
    /// Transfers per mode and direction; the table shows each and the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Also count the server's system calls per MB with `perf stat`.
    #[arg(long)]
    syscalls: bool,
    /// Extra tun-server options for the rings mode, e.g. "--rx-ring-kib 4096".
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    rings_args: String,
    /// The tun-server binary [default: next to this executable].
    #[arg(long)]
    tun_server: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

/// The system calls counted with `--syscalls`.
const EVENTS: &[&str] = &[
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_sendto",
    "syscalls:sys_enter_sendmsg",
    "syscalls:sys_enter_recvmsg",
    "syscalls:sys_enter_poll",
];

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-afpacket: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One mode's figures: Mbit/s per round each way, and with `--syscalls`
/// the counts per MB of [`EVENTS`] each way.
#[derive(Debug, Default)]
struct Figures {
    down: Vec<f64>,
    up: Vec<f64>,
    down_calls: Vec<f64>,
    up_calls: Vec<f64>,
    ping_ms: f64,
}

fn bench(args: &Args) -> Result<(), BoxError> {
    let bin = match &args.tun_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("executable has no directory")?
            .join("tun-server"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found (cargo build --release -p ustack)",
            bin.display()
        )
        .into());
    }
    // A sparse file: reading it costs no disk; larger than any transfer.
    let body = std::env::temp_dir().join(format!("bench-afpacket-{}.body", std::process::id()));
    std::fs::File::create(&body)?.set_len(1 << 40)?;
    let _cleanup = RemoveOnDrop(body.clone());
    let (a, b) = veth_pair()?;
    let mut rings: Vec<&str> = vec!["--tx-ring-kib", "1024"];
    rings.extend(args.rings_args.split_whitespace());
    let mut modes = [
        ("rings", &rings[..], Figures::default()),
        ("no-rings", &["--no-rings"][..], Figures::default()),
    ];
    // Rounds alternate between the modes, so that whatever else loads the
    // machine weighs on both alike.
    for round in 0..args.rounds {
        for (name, extra, f) in &mut modes {
            measure(
                &bin,
                &a,
                &b,
                extra,
                args,
                &body,
                f,
                round + 1 == args.rounds,
            )?;
            eprintln!("round {}: {name}: {f:?}", round + 1);
        }
    }
    let modes: Vec<(&str, Figures)> = modes.into_iter().map(|(n, _, f)| (n, f)).collect();
    print!("{}", table(&modes, args));
    Ok(())
}

fn veth_pair() -> Result<(NetNs, NetNs), BoxError> {
    let a = NetNs::create("bench-afp-a")?;
    let b = NetNs::create("bench-afp-b")?;
    a.ip(&[
        "link",
        "add",
        "veth-a",
        "type",
        "veth",
        "peer",
        "name",
        "veth-b",
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", "veth-a", "up"])?;
    b.ip(&["addr", "add", "10.1.0.1/24", "dev", "veth-b"])?;
    b.ip(&["link", "set", "veth-b", "up"])?;
    for (key, value) in [
        ("net.ipv4.tcp_rmem", "4096 131072 33554432"),
        ("net.ipv4.tcp_wmem", "4096 16384 33554432"),
    ] {
        let out = b
            .command("sysctl")
            .args(["-qw", &format!("{key}={value}")])
            .output()?;
        if !out.status.success() {
            return Err(format!("sysctl {key}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    Ok((a, b))
}

/// One round of one mode in a fresh server: a download and an upload,
/// then (on the `last` round with `--syscalls`) one counted transfer each
/// way and a ping.
#[allow(clippy::too_many_arguments)]
fn measure(
    bin: &Path,
    a: &NetNs,
    b: &NetNs,
    extra: &[&str],
    args: &Args,
    body: &Path,
    f: &mut Figures,
    last: bool,
) -> Result<(), BoxError> {
    let server = start(a, bin, extra)?;
    let down_url = "http://10.1.0.2/bytes/1000000000000";
    let up_url = "http://10.1.0.2/sink";
    f.down.push(curl(b, down_url, None, args.seconds)?.0);
    f.up.push(curl(b, up_url, Some(body), args.seconds)?.0);
    if last {
        f.ping_ms = ping(b)?;
    }
    if last && args.syscalls {
        f.down_calls = counted(&server, || curl(b, down_url, None, args.seconds))?;
        f.up_calls = counted(&server, || curl(b, up_url, Some(body), args.seconds))?;
    }
    Ok(())
}

/// The average round-trip time of 50 pings 10 ms apart, in ms: how long a
/// lone packet waits on its way in.
fn ping(ns: &NetNs) -> Result<f64, BoxError> {
    let out = ns
        .command("ping")
        .args(["-q", "-c", "50", "-i", "0.01", "-W", "2", "10.1.0.2"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rtt min/avg/max/mdev = 0.041/0.060/0.120/0.010 ms"
    text.lines()
        .find_map(|l| l.split(" = ").nth(1)?.split('/').nth(1)?.parse().ok())
        .ok_or_else(|| format!("ping: no summary in {text:?}").into())
}

/// Runs `transfer` with `perf stat` attached to the server; returns the
/// counts of [`EVENTS`] per MB the transfer moved.
fn counted(
    server: &Proc,
    transfer: impl FnOnce() -> Result<(f64, f64), BoxError>,
) -> Result<Vec<f64>, BoxError> {
    let out = std::env::temp_dir().join(format!("bench-afpacket-{}.perf", std::process::id()));
    let _cleanup = RemoveOnDrop(out.clone());
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x", ",", "-o"]).arg(&out);
    for e in EVENTS {
        cmd.args(["-e", e]);
    }
    let perf = Proc(
        cmd.args(["-p", &server.0.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, mb) = transfer()?;
    // SAFETY: kill(2) on a child we spawned and have not reaped; SIGINT
    // makes perf write its counts and exit.
    unsafe { libc::kill(perf.0.id() as i32, libc::SIGINT) };
    let mut perf = perf;
    let deadline = Instant::now() + Duration::from_secs(10);
    while perf.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            return Err("perf stat did not exit within 10 s of SIGINT".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out)?;
    let count = |event: &str| -> f64 {
        text.lines()
            .find(|l| l.split(',').nth(2) == Some(event))
            .and_then(|l| l.split(',').next()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(EVENTS.iter().map(|e| count(e) / mb.max(1e-9)).collect())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn start(ns: &NetNs, bin: &Path, extra: &[&str]) -> Result<Proc, BoxError> {
    let mut cmd = ns.command(&bin.to_string_lossy());
    cmd.args([
        "--link", "afpacket", "--iface", "veth-a", "--addr", "10.1.0.2", "--prefix", "24",
    ]);
    cmd.args(extra).env("RUST_LOG", "warn");
    Ok(spawn_server(&mut cmd, Duration::from_secs(20), None)?.0)
}

/// One transfer of `secs` seconds: a download, or with `upload` a POST of
/// that file. Returns Mbit/s and the megabytes moved.
fn curl(ns: &NetNs, url: &str, upload: Option<&Path>, secs: u64) -> Result<(f64, f64), BoxError> {
    let mut cmd = ns.command("curl");
    cmd.args([
        "--silent",
        "--output",
        "/dev/null",
        "--max-time",
        &secs.to_string(),
    ]);
    match upload {
        // Streamed from the file (--data-binary would read it whole first).
        Some(file) => cmd.args([
            "--request",
            "POST",
            "--header",
            "Expect:",
            "--upload-file",
            &file.display().to_string(),
            "--write-out",
            "%{size_upload} %{time_total}",
        ]),
        None => cmd.args(["--write-out", "%{size_download} %{time_total}"]),
    };
    let mut child = Proc(
        cmd.arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(secs + 15);
    let status = loop {
        if let Some(s) = child.0.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            return Err(format!("curl {url} did not stop within {secs} s + 15 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut s) = child.0.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let mut f = out.split_whitespace();
    let (Some(bytes), Some(time)) = (f.next(), f.next()) else {
        return Err(format!("curl {url}: no --write-out ({status})").into());
    };
    // 28: cut by --max-time, which is how every transfer here ends.
    if status.code() != Some(28) && !status.success() {
        return Err(format!("curl {url}: {status}").into());
    }
    let (bytes, time): (f64, f64) = (bytes.parse()?, time.parse()?);
    Ok((bytes * 8.0 / time.max(1e-6) / 1e6, bytes / 1e6))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn table(modes: &[(&str, Figures)], args: &Args) -> String {
    let mut s = format!(
        "AF_PACKET over veth, tun-server against curl, {} s per transfer, Mbit/s\n\n",
        args.seconds
    );
    s.push_str("| mode | download rounds | median | upload rounds | median | ping avg (ms) |\n");
    s.push_str("|---|---|---:|---|---:|---:|\n");
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, f) in modes {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.0} | {} | {:.0} | {:.3} |",
            list(&f.down),
            median(&f.down),
            list(&f.up),
            median(&f.up),
            f.ping_ms
        );
    }
    if let [(_, r), (_, n)] = modes {
        let _ = writeln!(
            s,
            "\nrings / no-rings (medians): download {:.2}x, upload {:.2}x",
            median(&r.down) / median(&n.down),
            median(&r.up) / median(&n.up)
        );
    }
    if args.syscalls {
        s.push_str("\nServer system calls per MB moved (perf stat -p, one transfer each way)\n\n");
        let _ = writeln!(s, "| mode | direction | {} |", EVENTS.join(" | "));
        let _ = writeln!(s, "|---|---|{}", "---:|".repeat(EVENTS.len()));
        for (name, f) in modes {
            for (dir, v) in [("download", &f.down_calls), ("upload", &f.up_calls)] {
                let cells: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
                let _ = writeln!(s, "| {name} | {dir} | {} |", cells.join(" | "));
            }
        }
    }
    s
}

//! Connection churn where the server hangs up first (`Connection: close`):
//! each target's side of every connection goes through TIME-WAIT, so this
//! is where a server that keeps TIME-WAIT in its connection table locks
//! clients out within a minute. Long enough (60 s by default) for the first
//! records to expire while new ones arrive; a fresh `curl` probes the
//! latency a new client sees while the churn goes on.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::{self, Load, Mode, WINDOW};

/// What one target did under churn.
#[derive(Debug, Default)]
pub struct Churn {
    pub load: Load,
    /// Slowest of the fresh curls during the run, in seconds (`NaN`: none ran).
    pub probe_max_s: f64,
    /// Curls that failed during the run.
    pub probe_failures: u32,
    /// TIME-WAIT 4-tuples the server held at the end, when it says.
    pub time_wait: Option<u64>,
    /// Server RSS at the end, KiB.
    pub rss_kib: Option<u64>,
}

impl Churn {
    /// The slowest 10-second window's rate over the first one's (the last,
    /// partial window left out).
    pub fn worst_window_ratio(&self) -> f64 {
        let w = &self.load.windows;
        let full = if w.len() > 1 {
            &w[..w.len() - 1]
        } else {
            &w[..]
        };
        match full.first() {
            Some(&first) if first > 0 => {
                full.iter().copied().min().unwrap_or(0) as f64 / first as f64
            }
            _ => f64::NAN,
        }
    }
}

/// Runs the churn against `addr` for `dur` with `conns` connections while a
/// second thread curls `addr` from namespace `ns` every two seconds.
pub fn run(ns: &str, addr: SocketAddr, conns: usize, dur: Duration, stop: &AtomicBool) -> Churn {
    let done = AtomicBool::new(false);
    let (load, (probe_max_s, probe_failures)) = std::thread::scope(|s| {
        let probe = s.spawn(|| probe(ns, addr, &done, stop));
        let load = client::load(addr, conns, dur, Mode::ServerCloses, stop);
        done.store(true, Ordering::Relaxed);
        (load, probe.join().unwrap_or((f64::NAN, 0)))
    });
    Churn {
        load,
        probe_max_s,
        probe_failures,
        ..Churn::default()
    }
}

fn probe(ns: &str, addr: SocketAddr, done: &AtomicBool, stop: &AtomicBool) -> (f64, u32) {
    let url = format!("http://{addr}/");
    let (mut worst, mut failures) = (f64::NAN, 0);
    // Let the churn reach its pace first.
    std::thread::sleep(Duration::from_secs(1));
    while !done.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "5"])
            .args(["-w", "\n%{time_total}", &url])
            .output();
        let secs = out.ok().filter(|o| o.status.success()).and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let (body, t) = text.rsplit_once('\n')?;
            (body == "Hello World!").then(|| t.trim().parse::<f64>().ok())?
        });
        match secs {
            Some(t) => worst = if worst.is_nan() { t } else { worst.max(t) },
            None => failures += 1,
        }
        let next = Instant::now() + Duration::from_secs(2);
        while Instant::now() < next && !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (worst, failures)
}

/// The `time_wait` column of a tun-server `--stats` file.
pub fn stats_time_wait(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = header.iter().position(|h| *h == "time_wait")?;
    lines.next()?.split(',').nth(col)?.parse().ok()
}

/// Sockets in TIME-WAIT in namespace `ns` (the kernel server's side).
pub fn kernel_time_wait(ns: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-Htan", "state", "time-wait"])
        .output()
        .ok()?;
    Some(
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64,
    )
}

/// Prints the churn table: one row per target.
pub fn print_table(names: &[&str], figures: &[Churn], secs: u64) {
    println!();
    println!(
        "Connection churn, server closes first (Connection: close), {secs} s, \
         1 client thread; rate per {} s window",
        WINDOW.as_secs()
    );
    println!();
    println!(
        "| server | connections/s | failed | slowest window / first | fresh curl, slowest | curl failures | TIME-WAIT at end | server RSS at end |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |v: Option<u64>, unit: &str| v.map_or("—".to_string(), |v| format!("{v}{unit}"));
    for (name, c) in names.iter().zip(figures) {
        println!(
            "| {name} | {:.0} | {} | {:.2} | {:.1} ms | {} | {} | {} |",
            c.load.per_sec(),
            c.load.errors,
            c.worst_window_ratio(),
            c.probe_max_s * 1e3,
            c.probe_failures,
            opt(c.time_wait, ""),
            opt(c.rss_kib.map(|k| k / 1024), " MiB"),
        );
    }
}

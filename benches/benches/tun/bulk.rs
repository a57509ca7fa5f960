//! Bulk transfers long enough to tell noise from a stall: per server and
//! direction, a 1.5 s probe sizes the transfer to last about
//! [`ROUND_TARGET_SECS`], then [`ROUNDS`] rounds run, interleaved across the
//! servers (so a busy spell of a shared machine hits them all). A round
//! shorter than [`MIN_ROUND_SECS`] is resized from its own rate and run
//! again. Every round records the kernel's device drops on the server's
//! links and the client's TCP retransmissions and out-of-order arrivals,
//! so a slow round shows whether a queue overflowed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::client::{self, Bulk};
use crate::server::{device_drops, packet_socket_drops, Server, TcpCounters, TempFile};

/// Rounds per server and direction.
pub const ROUNDS: usize = 3;
/// A round must last this long to count.
pub const MIN_ROUND_SECS: f64 = 3.0;
/// What the transfers are sized for.
const ROUND_TARGET_SECS: f64 = 4.5;
/// Length of the sizing probe (a time-capped transfer).
const PROBE_SECS: f64 = 1.5;
/// Cap on one round: a round this slow moved less than a sixth of the probe's rate.
const ROUND_MAX_SECS: f64 = 30.0;
/// Attempts at one round when it comes out short.
const ATTEMPTS: usize = 3;
/// Bounds of a transfer's size: 1 TiB is the most `/bytes/N` serves.
const MIN_BYTES: u64 = 256 << 20;
const MAX_BYTES: u64 = 1 << 39;

/// One server to move bytes to and from.
pub struct BulkTarget<'a> {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub server: &'a Server,
    /// Devices (namespace, name) whose drop counters belong to this path.
    pub links: Vec<(String, String)>,
    /// The namespace of the server's `AF_PACKET` socket, if it has one.
    pub packet_ns: Option<String>,
}

impl BulkTarget<'_> {
    fn socket_drops(&self) -> Option<u64> {
        let ns = self.packet_ns.as_deref()?;
        packet_socket_drops(ns, self.server.pid())
    }
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Download,
    Upload,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Download => "download",
            Dir::Upload => "upload",
        }
    }
}

/// One transfer and what the kernel counted meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub bulk: Bulk,
    /// Packets dropped on the target's devices during the round.
    pub drops: u64,
    /// Frames dropped at the server's full `AF_PACKET` socket queue.
    pub socket_drops: Option<u64>,
    /// The client namespace's TCP counters over the round.
    pub tcp: TcpCounters,
    /// The server's CPU time (user + system) over the round's length.
    pub server_cpu_share: f64,
    /// Times the server was preempted during the round.
    pub preempted: u64,
    /// Rates (Gbit/s) of earlier attempts at this round that were shorter
    /// than [`MIN_ROUND_SECS`] and so did not count.
    pub short: Vec<f64>,
    /// An earlier attempt at this round that failed, and how.
    pub failed: Option<String>,
}

/// The rounds of one server in one direction.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub rounds: Vec<Round>,
    /// Bytes the next transfer asks for.
    size: u64,
}

impl Series {
    fn rates(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.rounds.iter().map(|r| r.bulk.gbit_per_s()).collect();
        r.sort_by(f64::total_cmp);
        r
    }

    /// Median rate, Gbit/s.
    pub fn median(&self) -> f64 {
        let r = self.rates();
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Slowest round's rate over the fastest's.
    pub fn spread(&self) -> f64 {
        let r = self.rates();
        match (r.first(), r.last()) {
            (Some(lo), Some(hi)) if *hi > 0.0 => lo / hi,
            _ => f64::NAN,
        }
    }
}

/// Both directions of one server.
#[derive(Debug, Clone, Default)]
pub struct BulkFigures {
    pub download: Series,
    pub upload: Series,
}

impl BulkFigures {
    fn series(&mut self, dir: Dir) -> &mut Series {
        match dir {
            Dir::Download => &mut self.download,
            Dir::Upload => &mut self.upload,
        }
    }
}

/// Runs the probes and [`ROUNDS`] rounds each way against every target,
/// from namespace `ns`.
pub fn run(
    ns: &str,
    targets: &[BulkTarget],
    stop: &AtomicBool,
) -> Result<Vec<BulkFigures>, String> {
    let mut figs: Vec<BulkFigures> = targets.iter().map(|_| BulkFigures::default()).collect();
    for (t, f) in targets.iter().zip(&mut figs) {
        for dir in [Dir::Download, Dir::Upload] {
            check(stop)?;
            let probe = transfer(ns, t.addr, dir, MAX_BYTES, PROBE_SECS)
                .map_err(|e| format!("{} {} probe: {e}", t.name, dir.name()))?;
            f.series(dir).size = size_for(&probe);
            eprintln!(
                "tun bench: {} {} probe {:.2} Gbit/s: rounds of {} MB",
                t.name,
                dir.name(),
                probe.gbit_per_s(),
                f.series(dir).size / 1_000_000
            );
        }
    }
    for round in 1..=ROUNDS {
        for (t, f) in targets.iter().zip(&mut figs) {
            for dir in [Dir::Download, Dir::Upload] {
                let r = one_round(ns, t, f.series(dir), dir, stop)?;
                eprintln!(
                    "tun bench: {} {} round {round}: {:.2} Gbit/s in {:.1} s",
                    t.name,
                    dir.name(),
                    r.bulk.gbit_per_s(),
                    r.bulk.secs
                );
                f.series(dir).rounds.push(r);
            }
        }
    }
    Ok(figs)
}

fn check(stop: &AtomicBool) -> Result<(), String> {
    if stop.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Bytes that take [`ROUND_TARGET_SECS`] at `b`'s rate.
fn size_for(b: &Bulk) -> u64 {
    let per_sec = b.bytes as f64 / b.secs.max(1e-3);
    ((per_sec * ROUND_TARGET_SECS) as u64).clamp(MIN_BYTES, MAX_BYTES)
}

/// One round, run again (resized) while it comes out shorter than
/// [`MIN_ROUND_SECS`], at most [`ATTEMPTS`] times.
fn one_round(
    ns: &str,
    t: &BulkTarget,
    series: &mut Series,
    dir: Dir,
    stop: &AtomicBool,
) -> Result<Round, String> {
    let mut short = Vec::new();
    let mut failed = None;
    loop {
        check(stop)?;
        let (drops, tcp) = (device_drops(&t.links), TcpCounters::read(ns));
        let socket_drops = t.socket_drops();
        let (cpu, preempted) = (t.server.cpu()?, t.server.involuntary_switches());
        let bulk = match transfer(ns, t.addr, dir, series.size, ROUND_MAX_SECS) {
            Ok(b) => b,
            // One failed transfer is shown and run again; a second fails the bench.
            Err(e) if failed.is_none() => {
                eprintln!("tun bench: {} {}: {e}; once more", t.name, dir.name());
                failed = Some(e);
                continue;
            }
            Err(e) => return Err(format!("{} {}: {e}", t.name, dir.name())),
        };
        let cpu = t.server.cpu()?.since(cpu);
        if bulk.secs < MIN_ROUND_SECS && short.len() + 1 < ATTEMPTS {
            short.push(bulk.gbit_per_s());
            series.size = size_for(&bulk).max(series.size * 2).min(MAX_BYTES);
            continue;
        }
        return Ok(Round {
            bulk,
            drops: device_drops(&t.links).saturating_sub(drops),
            socket_drops: t
                .socket_drops()
                .zip(socket_drops)
                .map(|(b, a)| b.saturating_sub(a)),
            tcp: TcpCounters::read(ns).since(tcp),
            server_cpu_share: cpu.total_ns() as f64 / 1e9 / bulk.secs.max(1e-3),
            preempted: t.server.involuntary_switches().saturating_sub(preempted),
            short,
            failed,
        });
    }
}

/// One curl transfer of `bytes` (at most `max_secs`).
fn transfer(
    ns: &str,
    addr: SocketAddr,
    dir: Dir,
    bytes: u64,
    max_secs: f64,
) -> Result<Bulk, String> {
    match dir {
        Dir::Download => client::download(ns, addr, bytes, max_secs),
        Dir::Upload => {
            let file = TempFile::create("upload", bytes)?;
            client::upload(ns, addr, file.path(), max_secs)
        }
    }
}

/// Prints every round of every target, then each series' median and spread.
pub fn print_rounds(title: &str, names: &[&str], figs: &[BulkFigures]) {
    println!();
    println!(
        "{title}: every round (transfers sized from a {PROBE_SECS} s probe to last \
         ~{ROUND_TARGET_SECS} s; server CPU: user + system over the round; preempted: the \
         server's involuntary context switches; drops: the server's devices, and its \
         AF_PACKET socket's full receive queue; retrans/out-of-order: the client's kernel; \
         segments in/out per MB: what the client's kernel received and sent, so on upload \
         \"in\" is the server's ACKs)"
    );
    println!();
    println!(
        "| server | direction | round | GB | seconds | Gbit/s | server CPU | preempted | \
         device drops | socket drops | client retrans | client out-of-order | \
         client segments in / MB | client segments out / MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, f) in names.iter().zip(figs) {
        for (dir, s) in [(Dir::Download, &f.download), (Dir::Upload, &f.upload)] {
            for (i, r) in s.rounds.iter().enumerate() {
                let mut note = String::new();
                if r.bulk.capped {
                    note.push_str(" (time cap)");
                }
                if r.failed.is_some() {
                    note.push_str(" (after a failed attempt)");
                }
                for g in &r.short {
                    note.push_str(&format!(" (after a short one at {g:.2} Gbit/s)"));
                }
                let per_mb = |n: u64| n as f64 / (r.bulk.bytes as f64 / 1e6).max(1e-9);
                println!(
                    "| {name} | {} | {}{note} | {:.2} | {:.2} | {:.2} | {:.0} % | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
                    dir.name(),
                    i + 1,
                    r.bulk.bytes as f64 / 1e9,
                    r.bulk.secs,
                    r.bulk.gbit_per_s(),
                    r.server_cpu_share * 100.0,
                    r.preempted,
                    r.drops,
                    r.socket_drops.map_or("—".to_string(), |d| d.to_string()),
                    r.tcp.retrans_segs,
                    r.tcp.ofo_queued,
                    per_mb(r.tcp.in_segs),
                    per_mb(r.tcp.out_segs),
                );
            }
        }
    }
    for (name, f) in names.iter().zip(figs) {
        for (dir, s) in [(Dir::Download, &f.download), (Dir::Upload, &f.upload)] {
            for (i, r) in s.rounds.iter().enumerate() {
                if let Some(e) = &r.failed {
                    println!(
                        "- {name} {} round {}, failed attempt: {e}",
                        dir.name(),
                        i + 1
                    );
                }
            }
        }
    }
}

//! The request loops every section runs against a server (keep-alive with
//! the server's CPU per request, new connections, `wrk`), and the tables
//! the bench prints: one row per measure, one column per server, with a
//! ratio against the baseline (smoltcp) after each ustack column.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::bulk::{BulkFigures, Series};
use crate::client::{self, Load, Mode};
use crate::server::{Cpu, Server};

/// Connections of the bench's own request loops.
pub const CONNS: usize = 32;

/// `wrk -t2 -c50` against one server.
#[derive(Debug, Clone, Copy)]
pub struct Wrk {
    pub per_sec: f64,
    pub requests: u64,
    /// The server's CPU time during the run.
    pub cpu: Cpu,
}

/// Request-loop figures of one server.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    pub keep_alive: Load,
    pub keep_alive_cpu: Cpu,
    pub new_conns: Option<(Load, Cpu)>,
    pub wrk: Option<Wrk>,
}

/// Runs keep-alive (the bench's client, then `wrk` when installed) and,
/// if `new_conns`, new-connection loops of `secs` each against `addr`,
/// reading `server`'s CPU time around each.
pub fn requests(
    ns: &str,
    addr: SocketAddr,
    server: &Server,
    secs: u64,
    new_conns: bool,
    stop: &AtomicBool,
) -> Result<Requests, String> {
    let dur = Duration::from_secs(secs);
    let mut out = Requests::default();
    let cpu = server.cpu()?;
    out.keep_alive = client::load(addr, CONNS, dur, Mode::KeepAlive, stop);
    out.keep_alive_cpu = server.cpu()?.since(cpu);
    let cpu = server.cpu()?;
    if let Some(w) = client::wrk(ns, addr, secs) {
        let (per_sec, requests) = w.map_err(|e| format!("{}: {e}", server.name))?;
        out.wrk = Some(Wrk {
            per_sec,
            requests,
            cpu: server.cpu()?.since(cpu),
        });
    }
    if new_conns {
        let cpu = server.cpu()?;
        let load = client::load(addr, CONNS, dur, Mode::ClientCloses, stop);
        out.new_conns = Some((load, server.cpu()?.since(cpu)));
    }
    Ok(out)
}

/// Microseconds of `ns` per request.
fn us_per(ns: u64, requests: u64) -> f64 {
    if requests == 0 {
        f64::NAN
    } else {
        ns as f64 / 1e3 / requests as f64
    }
}

/// The columns of one table.
pub struct Table<'a> {
    /// Column names, in the order the values come.
    pub names: &'a [&'a str],
    /// Index of the baseline column the ratios divide by.
    pub base: usize,
    /// Which columns get a "/ baseline" ratio column after them.
    pub ratio: &'a [bool],
}

impl Table<'_> {
    /// Prints the header and separator lines.
    pub fn header(&self) {
        let mut h = String::from("| measure |");
        let mut sep = String::from("|---|");
        for (i, n) in self.names.iter().enumerate() {
            h.push_str(&format!(" {n} |"));
            sep.push_str("---:|");
            if self.ratio[i] {
                h.push_str(&format!(" {n} / {} |", self.names[self.base]));
                sep.push_str("---:|");
            }
        }
        println!("{h} target |");
        println!("{sep}---|");
    }

    /// One row: `vals` in column order (`NaN` prints as "—").
    pub fn row(&self, label: &str, vals: &[f64], unit: &str, prec: usize, target: &str) {
        self.row_with(label, vals, unit, prec, target, true);
    }

    /// A row whose ratio columns stay empty (a ratio of ratios says nothing).
    fn row_without_ratios(&self, label: &str, vals: &[f64], target: &str) {
        self.row_with(label, vals, "", 2, target, false);
    }

    fn row_with(
        &self,
        label: &str,
        vals: &[f64],
        unit: &str,
        prec: usize,
        target: &str,
        ratios: bool,
    ) {
        let fmt = |v: f64| {
            if v.is_nan() {
                "—".to_string()
            } else if unit.is_empty() {
                format!("{v:.prec$}")
            } else {
                format!("{v:.prec$} {unit}")
            }
        };
        let mut line = format!("| {label} |");
        let base = vals[self.base];
        for (i, &v) in vals.iter().enumerate() {
            line.push_str(&format!(" {} |", fmt(v)));
            if self.ratio[i] {
                let r = v / base;
                if ratios && r.is_finite() {
                    line.push_str(&format!(" {r:.2}x |"));
                } else {
                    line.push_str(" — |");
                }
            }
        }
        println!("{line} {target} |");
    }

    /// Median, slowest/fastest and round count of each direction.
    pub fn bulk_rows(&self, figs: &[BulkFigures], what_down: &str, what_up: &str, target: &str) {
        fn down(f: &BulkFigures) -> &Series {
            &f.download
        }
        fn up(f: &BulkFigures) -> &Series {
            &f.upload
        }
        for (label, get) in [
            (what_down, down as fn(&BulkFigures) -> &Series),
            (what_up, up),
        ] {
            let med: Vec<f64> = figs.iter().map(|f| get(f).median()).collect();
            let spread: Vec<f64> = figs.iter().map(|f| get(f).spread()).collect();
            self.row(
                &format!("{label}, median of {}", crate::bulk::ROUNDS),
                &med,
                "Gbit/s",
                2,
                target,
            );
            self.row_without_ratios(
                &format!("{label}, slowest / fastest round"),
                &spread,
                "≥ 0.75",
            );
        }
    }

    /// Keep-alive, CPU per request, wrk and (when measured) new connections.
    pub fn request_rows(&self, reqs: &[Requests]) {
        let v = |get: &dyn Fn(&Requests) -> f64| -> Vec<f64> { reqs.iter().map(get).collect() };
        let ka = |r: &Requests| r.keep_alive.requests;
        self.row(
            &format!("keep-alive requests/s (bench client, -c{CONNS})"),
            &v(&|r| r.keep_alive.per_sec()),
            "/s",
            0,
            "",
        );
        self.row(
            "keep-alive server user CPU per request (bench client)",
            &v(&|r| us_per(r.keep_alive_cpu.user_ns, ka(r))),
            "µs",
            3,
            "≤ 0.5x",
        );
        self.row(
            "keep-alive server system CPU per request (bench client)",
            &v(&|r| us_per(r.keep_alive_cpu.system_ns, ka(r))),
            "µs",
            3,
            "",
        );
        for p in [50, 99] {
            self.row(
                &format!("keep-alive latency p{p} (lower is better)"),
                &v(&|r| r.keep_alive.percentile_us(p)),
                "µs",
                0,
                "",
            );
        }
        self.row(
            "keep-alive failed requests",
            &v(&|r| r.keep_alive.errors as f64),
            "",
            0,
            "0",
        );
        if reqs.iter().all(|r| r.wrk.is_some()) {
            let w = |r: &Requests| r.wrk.expect("checked");
            self.row(
                "keep-alive requests/s (wrk -t2 -c50)",
                &v(&|r| w(r).per_sec),
                "/s",
                0,
                "",
            );
            self.row(
                "keep-alive server user CPU per request (wrk)",
                &v(&|r| us_per(w(r).cpu.user_ns, w(r).requests)),
                "µs",
                3,
                "≤ 0.5x",
            );
            self.row(
                "keep-alive server system CPU per request (wrk)",
                &v(&|r| us_per(w(r).cpu.system_ns, w(r).requests)),
                "µs",
                3,
                "",
            );
        }
        if reqs.iter().all(|r| r.new_conns.is_some()) {
            self.new_conn_rows(reqs);
        }
    }

    fn new_conn_rows(&self, reqs: &[Requests]) {
        let nc = |r: &Requests| r.new_conns.clone().expect("checked");
        let v = |get: &dyn Fn(&Requests) -> f64| -> Vec<f64> { reqs.iter().map(get).collect() };
        self.row(
            &format!("new connections/s (-c{CONNS})"),
            &v(&|r| nc(r).0.per_sec()),
            "/s",
            0,
            "≥ 20,000/s and ≥ 3x",
        );
        self.row(
            "new connections per server CPU-second",
            &v(&|r| {
                let (l, cpu) = nc(r);
                l.requests as f64 / (cpu.total_ns().max(1) as f64 / 1e9)
            }),
            "",
            0,
            "",
        );
        for p in [50, 99] {
            self.row(
                &format!("new connection latency p{p} (lower is better)"),
                &v(&|r| nc(r).0.percentile_us(p)),
                "µs",
                0,
                "",
            );
        }
        self.row(
            "new connections failed",
            &v(&|r| nc(r).0.errors as f64),
            "",
            0,
            "0",
        );
    }
}

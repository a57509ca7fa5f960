//! `plot-benches OUT.svg [--criterion DIR] [--statistic mean|median|slope]`:
//! one SVG bar chart of the per-layer benches, ustack beside its baseline on
//! each measurement.
//!
//! Reads criterion's results, `<DIR>/<group>/<function>/<parameter>/new/`
//! (`estimates.json` for the time per iteration, by default the mean's point
//! estimate; `slope` is the figure criterion prints on the console;
//! `benchmark.json` for the throughput an iteration stands for), of the
//! `checksum` (with the
//! `memcpy` reference), `ipv4`, `tcp_wire`, `tcp_engine`, `http` and
//! `end_to_end` benches. `DIR` defaults to `$CARGO_TARGET_DIR/criterion`,
//! else the workspace's `target/criterion`. Run the benches first:
//!
//! ```sh
//! cargo bench -p ustack-benches --bench checksum --bench ipv4 --bench tcp_wire \
//!     --bench tcp_engine --bench http --bench end_to_end -- --warm-up-time 1 --measurement-time 2
//! cargo run -p ustack-benches --bin plot-benches -- docs/bench-layers.svg
//! ```
//!
//! Every bar is a throughput (bytes/s or operations/s: longer is faster),
//! scaled within its measurement, since units differ between them, and
//! labelled with the throughput and the mean time per operation. Beside each
//! baseline's bar: ustack's throughput divided by the baseline's, so above 1
//! means ustack is faster. A missing result is an error naming the file and
//! the bench that writes it; nothing is drawn from partial data. The SVG is
//! written by hand: no plotting dependency; criterion's JSON is read with
//! serde_json.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// One implementation's bar in a measurement.
struct Bar {
    /// Who: `ustack`, `smoltcp`, `memcpy`, `httparse`.
    who: &'static str,
    /// The benchmark's directory under the criterion directory.
    dir: String,
}

/// One measurement: ustack first, then its baselines, on the same input.
struct Measurement {
    /// The bench (`cargo bench --bench NAME`) that produces it.
    bench: &'static str,
    label: String,
    /// A second, smaller line under the label.
    detail: &'static str,
    /// Whether the baselines do the same work as ustack (not so for HTTP).
    same_work: bool,
    /// What one element is, for `Throughput::Elements` benches.
    noun: &'static str,
    bars: Vec<Bar>,
}

/// What the chart shows, in order.
fn measurements() -> Vec<Measurement> {
    let mut out = Vec::new();
    let bar = |who, dir: String| Bar { who, dir };
    for (size, what, detail) in [
        ("20", "20 B", "an IPv4 header"),
        ("64", "64 B", "TCP headers, pure ACKs"),
        ("128", "128 B", "ustack's short path ends here"),
        ("1500", "1500 B", "a full packet"),
        ("64KiB", "64 KiB", "a big buffer"),
    ] {
        out.push(Measurement {
            bench: "checksum",
            label: format!("checksum {what}"),
            detail,
            same_work: true,
            noun: "",
            bars: ["ustack", "smoltcp", "memcpy"]
                .into_iter()
                .map(|who| bar(who, format!("checksum/{who}/{size}")))
                .collect(),
        });
    }
    let pairs = [
        (
            "ipv4",
            "parse_1500",
            "IPv4 parse",
            "header of a 1500-byte packet, checksum verified",
            "packets",
        ),
        (
            "ipv4",
            "emit_1500",
            "IPv4 emit",
            "header with checksum",
            "packets",
        ),
        (
            "tcp_wire",
            "parse_1460_ts_sack",
            "TCP parse + verify",
            "1460 B + timestamps + 2 SACK blocks",
            "segments",
        ),
        (
            "tcp_wire",
            "emit_1460_ts_sack",
            "TCP emit + checksum",
            "1460 B + timestamps + 2 SACK blocks",
            "segments",
        ),
        (
            "tcp_engine",
            "rx_data_segment",
            "TCP engine, receive",
            "in-order 1448 B segment, one packet in",
            "segments",
        ),
        (
            "tcp_engine",
            "ack",
            "TCP engine, ACK",
            "pure ACK of two segments, one packet in",
            "ACKs",
        ),
        (
            "end_to_end",
            "bulk_16MiB",
            "end to end, MTU 1500",
            "16 MiB bulk, two stacks, one core",
            "",
        ),
        (
            "end_to_end",
            "bulk_16MiB_mtu65535",
            "end to end, MTU 65535",
            "16 MiB bulk, two stacks, one core",
            "",
        ),
    ];
    for (bench, function, label, detail, noun) in pairs {
        out.push(Measurement {
            bench,
            label: label.to_string(),
            detail,
            same_work: true,
            noun,
            bars: ["ustack", "smoltcp"]
                .into_iter()
                .map(|who| bar(who, format!("{bench}/{function}/{who}")))
                .collect(),
        });
    }
    // smoltcp has no HTTP: the baseline is httparse, which only parses.
    // Criterion turns the `/` of these function names into `_`.
    let http = Measurement {
        bench: "http",
        label: "HTTP GET /".to_string(),
        detail: "ustack parses + answers, httparse parses",
        same_work: false,
        noun: "requests",
        bars: vec![
            bar("ustack", "http/curl_get_root_ustack_parse_respond".into()),
            bar("httparse", "http/curl_get_root_httparse_parse_only".into()),
        ],
    };
    // Keep the order of the README's table: HTTP before end to end.
    let at = out.len() - 2;
    out.insert(at, http);
    out
}

/// What criterion says about one benchmark.
struct Estimate {
    /// Time per iteration (the chosen statistic), in nanoseconds.
    ns: f64,
    /// Bytes or elements one iteration stands for.
    throughput: Throughput,
    /// When `estimates.json` was written.
    written: SystemTime,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Throughput {
    Bytes(f64),
    Elements(f64),
    /// No throughput declared: one operation per iteration.
    None,
}

/// Reads `<root>/<dir>/new/{estimates,benchmark}.json`; `statistic` is the
/// estimate used (`mean`, `median` or `slope`).
fn read_estimate(root: &Path, dir: &str, statistic: &str) -> Result<Estimate, String> {
    let new = root.join(dir).join("new");
    let est_path = new.join("estimates.json");
    let text =
        std::fs::read_to_string(&est_path).map_err(|e| format!("{}: {e}", est_path.display()))?;
    let est = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("{}: {e}", est_path.display()))?;
    let ns = est
        .get(statistic)
        .and_then(|m| m.get("point_estimate"))
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("{}: no {statistic}.point_estimate", est_path.display()))?;
    let written = std::fs::metadata(&est_path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH);
    let bench_path = new.join("benchmark.json");
    let throughput = match std::fs::read_to_string(&bench_path) {
        Ok(text) => {
            let b = serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("{}: {e}", bench_path.display()))?;
            let t = b.get("throughput");
            if let Some(n) = t
                .and_then(|t| t.get("Bytes"))
                .and_then(serde_json::Value::as_f64)
            {
                Throughput::Bytes(n)
            } else if let Some(n) = t
                .and_then(|t| t.get("Elements"))
                .and_then(serde_json::Value::as_f64)
            {
                Throughput::Elements(n)
            } else {
                Throughput::None
            }
        }
        Err(_) => Throughput::None,
    };
    Ok(Estimate {
        ns,
        throughput,
        written,
    })
}

/// Work per second: bytes/s, or elements (operations) per second.
fn per_second(e: &Estimate) -> f64 {
    let work = match e.throughput {
        Throughput::Bytes(n) | Throughput::Elements(n) => n,
        Throughput::None => 1.0,
    };
    work * 1e9 / e.ns
}

fn format_rate(e: &Estimate, noun: &str) -> String {
    let r = per_second(e);
    match e.throughput {
        Throughput::Bytes(_) => {
            let gib = r / (1u64 << 30) as f64;
            if gib >= 1.0 {
                format!("{} GiB/s", sig3(gib))
            } else {
                format!("{} MiB/s", sig3(r / (1u64 << 20) as f64))
            }
        }
        _ => {
            let noun = if noun.is_empty() { "ops" } else { noun };
            if r >= 1e6 {
                format!("{} M {noun}/s", sig3(r / 1e6))
            } else {
                format!("{} k {noun}/s", sig3(r / 1e3))
            }
        }
    }
}

fn format_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{} ns", sig3(ns))
    } else if ns < 1e6 {
        format!("{} µs", sig3(ns / 1e3))
    } else {
        format!("{} ms", sig3(ns / 1e6))
    }
}

/// Three significant digits (at least one decimal below 100).
fn sig3(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(who: &str) -> &'static str {
    match who {
        "ustack" => "#1f77b4",
        "smoltcp" => "#ff7f0e",
        "memcpy" => "#8c8c8c",
        _ => "#2ca02c",
    }
}

/// `YYYY-MM-DD HH:MM` UTC of a file time.
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A measurement with its estimates, in the order of its bars.
type Loaded<'a> = (&'a Measurement, Vec<Estimate>);

/// Loads every estimate, or lists every missing one with the benches to run.
fn load<'a>(
    root: &Path,
    ms: &'a [Measurement],
    statistic: &str,
) -> Result<Vec<Loaded<'a>>, String> {
    let mut loaded = Vec::new();
    let mut missing = Vec::new();
    let mut benches: Vec<&str> = Vec::new();
    for m in ms {
        let mut ests = Vec::new();
        for b in &m.bars {
            match read_estimate(root, &b.dir, statistic) {
                Ok(e) => ests.push(e),
                Err(e) => {
                    missing.push(e);
                    if !benches.contains(&m.bench) {
                        benches.push(m.bench);
                    }
                }
            }
        }
        loaded.push((m, ests));
    }
    if missing.is_empty() {
        return Ok(loaded);
    }
    let mut msg = format!(
        "plot-benches: {} criterion result(s) missing or unreadable under {}:\n",
        missing.len(),
        root.display()
    );
    for e in &missing {
        let _ = writeln!(msg, "  {e}");
    }
    let flags: Vec<String> = benches.iter().map(|b| format!("--bench {b}")).collect();
    let _ = write!(
        msg,
        "run them first:\n  cargo bench -p ustack-benches {} -- --warm-up-time 1 --measurement-time 2",
        flags.join(" ")
    );
    Err(msg)
}

const WIDTH: f64 = 1020.0;
const LABEL_X: f64 = 16.0;
const BAR_X: f64 = 300.0;
const BAR_MAX: f64 = 360.0;
const RATIO_X: f64 = 845.0;
const BAR_H: f64 = 13.0;
const BAR_GAP: f64 = 3.0;
const GROUP_GAP: f64 = 12.0;

/// The whole chart.
fn render(loaded: &[Loaded<'_>], statistic: &str) -> String {
    let rows: usize = loaded.iter().map(|(m, _)| m.bars.len()).sum();
    let top = 78.0;
    let height =
        top + rows as f64 * (BAR_H + BAR_GAP) + loaded.len() as f64 * GROUP_GAP + 5.0 * 16.0 + 16.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">ustack per layer, against smoltcp 0.14 on the same input</text>"#,
        WIDTH / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#444">criterion {statistic} per operation; bars are throughput, scaled per measurement (longer = faster); ratio = ustack throughput / baseline's (&gt; 1: ustack faster)</text>"##,
        WIDTH / 2.0
    );
    // Legend.
    let mut lx = BAR_X;
    for who in ["ustack", "smoltcp", "memcpy", "httparse"] {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="52" width="12" height="12" fill="{}"/><text x="{}" y="62">{who}</text>"#,
            color(who),
            lx + 16.0
        );
        lx += 90.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{RATIO_X}" y="62" font-weight="bold">ustack / baseline</text>"#
    );

    let mut y = top;
    let mut first = SystemTime::now();
    let mut last = UNIX_EPOCH;
    for (m, ests) in loaded {
        let best = ests.iter().map(per_second).fold(0.0, f64::max);
        let ustack = &ests[0];
        let group_top = y;
        for (b, e) in m.bars.iter().zip(ests) {
            first = first.min(e.written);
            last = last.max(e.written);
            let w = (per_second(e) / best * BAR_MAX).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{BAR_X}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{}"/>"#,
                color(b.who)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{} · {}</text>"#,
                BAR_X + w + 5.0,
                y + BAR_H - 2.5,
                xml_escape(&format_rate(e, m.noun)),
                format_time(e.ns)
            );
            if b.who != "ustack" {
                let ratio = e.ns / ustack.ns;
                let verdict = match (m.same_work, ratio >= 1.0) {
                    (false, _) => "other work",
                    (true, true) => "faster",
                    (true, false) => "slower",
                };
                let fill = match (m.same_work, ratio >= 1.0) {
                    (false, _) => "#555",
                    (true, true) => "#1a7f37",
                    (true, false) => "#c62828",
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{RATIO_X}" y="{:.1}" fill="{fill}">{:.2}x {} ({verdict})</text>"#,
                    y + BAR_H - 2.5,
                    ratio,
                    b.who
                );
            }
            y += BAR_H + BAR_GAP;
        }
        let _ = writeln!(
            s,
            r#"<text x="{LABEL_X}" y="{:.1}" font-weight="bold">{}</text>"#,
            group_top + BAR_H - 2.5,
            xml_escape(&m.label)
        );
        let _ = writeln!(
            s,
            r##"<text x="{LABEL_X}" y="{:.1}" fill="#555">{}</text>"##,
            group_top + 2.0 * BAR_H + BAR_GAP - 2.5,
            xml_escape(m.detail)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{LABEL_X}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
            y + GROUP_GAP / 2.0 - BAR_GAP,
            WIDTH - LABEL_X,
            y + GROUP_GAP / 2.0 - BAR_GAP
        );
        y += GROUP_GAP;
    }
    let notes = [
        "checksum: RFC 1071 over the same buffer; memcpy copies it once, the memory-bandwidth reference.".to_string(),
        "ipv4, tcp_wire: header parse/emit with checksums. tcp_engine: one packet into an established connection (ustack Stack::handle_packet,".to_string(),
        "smoltcp Interface::poll_ingress_single), timed inside a bulk transfer; smoltcp is built without a congestion controller.".to_string(),
        "http: ustack parses and answers, httparse only parses (smoltcp has no HTTP). end_to_end: two stacks over in-memory links, one core.".to_string(),
        format!(
            "Results written {} to {} UTC; compare within one run (the machine's load moves all figures).",
            utc(first),
            utc(last)
        ),
    ];
    y += 6.0;
    for n in notes {
        let _ = writeln!(
            s,
            r##"<text x="{LABEL_X}" y="{y:.1}" fill="#555">{}</text>"##,
            xml_escape(&n)
        );
        y += 16.0;
    }
    s.push_str("</svg>\n");
    s
}

fn default_criterion_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("criterion"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("criterion"),
    }
}

fn run() -> Result<(), String> {
    let usage = "usage: plot-benches OUT.svg [--criterion DIR] [--statistic mean|median|slope]";
    let mut out = None;
    let mut root = None;
    let mut statistic = "mean".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--criterion" => {
                root = Some(PathBuf::from(
                    args.next().ok_or("--criterion needs a directory")?,
                ))
            }
            "--statistic" => match args.next() {
                Some(s) if ["mean", "median", "slope"].contains(&s.as_str()) => statistic = s,
                _ => return Err(format!("--statistic takes mean, median or slope\n{usage}")),
            },
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}\n{usage}")),
        }
    }
    let out = out.ok_or(usage)?;
    let root = root.unwrap_or_else(default_criterion_dir);
    let ms = measurements();
    let loaded = load(&root, &ms, &statistic)?;
    let svg = render(&loaded, &statistic);
    std::fs::write(&out, svg).map_err(|e| format!("{}: {e}", out.display()))?;
    for (m, ests) in &loaded {
        let u = &ests[0];
        let others: Vec<String> = m
            .bars
            .iter()
            .zip(ests)
            .skip(1)
            .map(|(b, e)| format!("{} {:.2}x", b.who, e.ns / u.ns))
            .collect();
        println!(
            "{:<58} ustack {:>10}  ({})",
            m.label,
            format_time(u.ns),
            others.join(", ")
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_results_name_file_and_bench() {
        let root = std::env::temp_dir().join(format!("plot-benches-test-{}", std::process::id()));
        let dir = root.join("ipv4/parse_1500/ustack/new");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("estimates.json"),
            r#"{"mean":{"point_estimate":9.5}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("benchmark.json"),
            r#"{"throughput":{"Elements":1}}"#,
        )
        .unwrap();
        let ms: Vec<Measurement> = measurements()
            .into_iter()
            .filter(|m| m.label.starts_with("IPv4 parse"))
            .collect();
        let err = load(&root, &ms, "mean").err().unwrap();
        assert!(
            err.contains("ipv4/parse_1500/smoltcp/new/estimates.json"),
            "{err}"
        );
        assert!(err.contains("--bench ipv4"), "{err}");
        assert!(!err.contains("ustack/new"), "{err}");

        let dir = root.join("ipv4/parse_1500/smoltcp/new");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("estimates.json"),
            r#"{"mean":{"point_estimate":19.0}}"#,
        )
        .unwrap();
        let loaded = load(&root, &ms, "mean").unwrap();
        let svg = render(&loaded, "mean");
        assert!(svg.contains("2.00x smoltcp (faster)"), "{svg}");
        assert!(svg.contains("105 M packets/s"), "{svg}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn every_measurement_has_ustack_first_and_a_baseline() {
        for m in measurements() {
            assert_eq!(m.bars[0].who, "ustack", "{}", m.label);
            assert!(m.bars.len() >= 2, "{}", m.label);
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_200 + 3_723);
        assert_eq!(utc(t), "2024-03-01 01:02");
    }
}

//! The kernel-side load generators: curl for bulk transfers, one thread
//! driving 32 non-blocking connections with `poll(2)` (like `wrk -t1 -c32`)
//! for requests per second, new connections per second and latency, and
//! `wrk` itself when it is installed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// A request the client waits longer than this for is counted as an error
/// and its connection replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const REQUEST_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
/// Length of each window of [`Load::windows`].
pub const WINDOW: Duration = Duration::from_secs(10);

/// How connections carry requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Requests back to back on each connection.
    KeepAlive,
    /// One request per connection; the client closes it once the answer is
    /// in, so TIME-WAIT stays on the kernel client side.
    ClientCloses,
    /// One request per connection with `Connection: close`: the server hangs
    /// up first and holds the TIME-WAIT.
    ServerCloses,
}

impl Mode {
    fn request(self) -> &'static [u8] {
        match self {
            Mode::ServerCloses => REQUEST_CLOSE,
            _ => REQUEST,
        }
    }
}

/// Bulk transfer outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bulk {
    pub bytes: u64,
    pub secs: f64,
    /// Stopped by the time cap before the whole body moved.
    pub capped: bool,
}

impl Bulk {
    pub fn gbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// Request-loop outcome.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    /// Per-request latency in nanoseconds, sorted.
    pub latency_ns: Vec<u32>,
    /// Requests completed in each [`WINDOW`] of the run, in order.
    pub windows: Vec<u64>,
}

impl Load {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    /// The `p`th percentile latency in microseconds.
    pub fn percentile_us(&self, p: usize) -> f64 {
        if self.latency_ns.is_empty() {
            return f64::NAN;
        }
        let i = (self.latency_ns.len() * p / 100).min(self.latency_ns.len() - 1);
        f64::from(self.latency_ns[i]) / 1e3
    }
}

/// What one curl run moved.
struct CurlOut {
    /// Response body (stdout before the `-w` line).
    body: String,
    /// The `-w` line's three numbers.
    fields: [f64; 3],
    /// curl stopped at `--max-time` (exit 28); the figures are partial.
    capped: bool,
}

/// `curl` in the namespace `ns` (on the client CPU when pinned).
fn curl(ns: &str, args: &[&str], max_secs: f64) -> Result<CurlOut, String> {
    let max = format!("{max_secs:.1}");
    let out = crate::server::ns_command(ns, "curl", crate::server::CLIENT_CPU)
        .args(["-sS", "--max-time", &max])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let fields: Vec<f64> = last
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // Exit 28: --max-time hit; the partial figures are still a rate.
    let code = out.status.code().unwrap_or(-1);
    match (code, fields.as_slice()) {
        (0 | 28, &[a, b, c]) => Ok(CurlOut {
            body: body.to_string(),
            fields: [a, b, c],
            capped: code == 28,
        }),
        _ => Err(format!(
            "curl {} exited {code}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            last
        )),
    }
}

/// Downloads `/bytes/len` (for at most `max_secs`) and reports what arrived.
pub fn download(ns: &str, addr: SocketAddr, len: u64, max_secs: f64) -> Result<Bulk, String> {
    let url = format!("http://{addr}/bytes/{len}");
    let out = curl(
        ns,
        &[
            "-o",
            "/dev/null",
            "-w",
            "\n%{size_download} %{time_total} %{http_code}",
            &url,
        ],
        max_secs,
    )?;
    let [bytes, secs, status] = out.fields;
    if status != 200.0 {
        return Err(format!("GET {url}: status {status}"));
    }
    Ok(Bulk {
        bytes: bytes as u64,
        secs,
        capped: out.capped,
    })
}

/// POSTs `file` to `/sink` and checks the server counted every byte, unless
/// `max_secs` cut the upload short (then the rate is of what was sent).
pub fn upload(ns: &str, addr: SocketAddr, file: &str, max_secs: f64) -> Result<Bulk, String> {
    let url = format!("http://{addr}/sink");
    let out = curl(
        ns,
        &[
            "-X",
            "POST",
            "-T",
            file,
            "-w",
            "\n%{size_upload} %{time_total} %{http_code}",
            &url,
        ],
        max_secs,
    )?;
    let [bytes, secs, status] = out.fields;
    let expected = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if !out.capped && (status != 200.0 || out.body.trim() != expected.to_string()) {
        return Err(format!(
            "POST {url}: status {status}, server counted {:?} of {expected} bytes \
             (sent {bytes} in {secs:.1} s)",
            out.body.trim(),
        ));
    }
    Ok(Bulk {
        bytes: bytes as u64,
        secs,
        capped: out.capped,
    })
}

/// `wrk -t2 -c50 -dSECS http://ADDR/` in namespace `ns`, as users measure
/// keep-alive: its requests per second and request count. `None` when wrk
/// is not installed.
pub fn wrk(ns: &str, addr: SocketAddr, secs: u64) -> Option<Result<(f64, u64), String>> {
    Command::new("wrk").arg("--version").output().ok()?;
    let url = format!("http://{addr}/");
    let dur = format!("{secs}s");
    let out = crate::server::ns_command(ns, "wrk", crate::server::CLIENT_CPU)
        .args(["-t2", "-c50", "-d", &dur, &url])
        .stdin(Stdio::null())
        .output();
    Some(out.map_err(|e| format!("wrk: {e}")).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout);
        let rate = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok());
        // "  1234567 requests in 5.00s, 123.45MB read"
        let count = text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok());
        match (o.status.success(), rate, count) {
            (true, Some(r), Some(n)) => Ok((r, n)),
            _ => Err(format!(
                "wrk against {url} failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
        }
    }))
}

/// One connection's progress through a response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    len: usize,
    /// When the current request (keep-alive) or connection (new-conn) began.
    started: Instant,
    /// New-conn mode: the non-blocking connect has not completed yet.
    connecting: bool,
    /// Server-closes mode: the answer is in, the server's FIN is awaited.
    answered: bool,
}

enum Parse {
    Incomplete,
    Done,
    Bad,
}

/// Whether `buf` holds one whole `200` response with a `Content-Length` body.
fn parse_response(buf: &[u8]) -> Parse {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Parse::Incomplete;
    };
    let head = &buf[..head_end];
    if !head.starts_with(b"HTTP/1.1 200 ") {
        return Parse::Bad;
    }
    let mut content_len = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            content_len = std::str::from_utf8(&line[15..])
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        }
    }
    match content_len {
        None => Parse::Bad,
        Some(n) if buf.len() >= head_end + 4 + n => Parse::Done,
        Some(_) => Parse::Incomplete,
    }
}

/// Opens a non-blocking connection; `connecting` until writable.
fn start_connect(addr: SocketAddr) -> std::io::Result<Conn> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?;
    let started = Instant::now();
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(Conn {
        stream: s.into(),
        buf: vec![0; 4096],
        len: 0,
        started,
        connecting: true,
        answered: false,
    })
}

/// Requests `GET /` over `conns` concurrent connections for `duration`, as
/// `mode` says. Latency is per request with keep-alive, from connect to the
/// answer otherwise.
pub fn load(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    mode: Mode,
    stop: &AtomicBool,
) -> Load {
    let mut out = Load::default();
    let mut slots: Vec<Option<Conn>> = (0..conns).map(|_| None).collect();
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(conns);
    let begin = Instant::now();
    let end = begin + duration;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        // (Re)open missing connections.
        for slot in slots.iter_mut().filter(|s| s.is_none()) {
            match start_connect(addr) {
                Ok(c) => *slot = Some(c),
                Err(_) => out.errors += 1,
            }
        }
        pfds.clear();
        for c in slots.iter().flatten() {
            pfds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if c.connecting {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            });
        }
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs that
        // lives, unaliased, for the duration of the call.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
        if rc < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            out.errors += 1;
            break;
        }
        let now = Instant::now();
        let window = (now.duration_since(begin).as_secs_f64() / WINDOW.as_secs_f64()) as usize;
        if out.windows.len() <= window {
            out.windows.resize(window + 1, 0);
        }
        let before = out.requests;
        for (slot, pfd) in slots.iter_mut().filter(|s| s.is_some()).zip(&pfds) {
            let c = slot.as_mut().expect("filtered");
            let ok = if pfd.revents != 0 {
                step(c, mode, &mut out, now)
            } else {
                Step::Wait
            };
            let timed_out = now.duration_since(c.started) > REQUEST_TIMEOUT;
            match ok {
                Step::Wait if !timed_out => {}
                Step::Wait | Step::Failed => {
                    out.errors += 1;
                    *slot = None;
                }
                Step::Finished => *slot = None,
            }
        }
        out.windows[window] += out.requests - before;
    }
    out.secs = begin.elapsed().as_secs_f64();
    out.latency_ns.sort_unstable();
    out
}

enum Step {
    Wait,
    /// New-conn mode: the response is in; close and open another.
    Finished,
    Failed,
}

fn step(c: &mut Conn, mode: Mode, out: &mut Load, now: Instant) -> Step {
    let keep_alive = mode == Mode::KeepAlive;
    let request = mode.request();
    if c.connecting {
        if !matches!(c.stream.take_error(), Ok(None)) {
            return Step::Failed;
        }
        c.connecting = false;
        if keep_alive {
            // Latency counts from each request, not from the handshake.
            c.started = now;
        }
        return match c.stream.write(request) {
            Ok(n) if n == request.len() => Step::Wait,
            _ => Step::Failed,
        };
    }
    loop {
        if c.answered {
            // Server-closes mode: only the server's FIN is still to come.
            let mut rest = [0u8; 64];
            return match c.stream.read(&mut rest) {
                Ok(0) => Step::Finished,
                Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Wait,
                _ => Step::Failed,
            };
        }
        if c.len == c.buf.len() {
            return Step::Failed; // responses to GET / are far smaller
        }
        match c.stream.read(&mut c.buf[c.len..]) {
            Ok(0) => return Step::Failed,
            Ok(n) => c.len += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Failed,
        }
        match parse_response(&c.buf[..c.len]) {
            Parse::Incomplete => {}
            Parse::Bad => return Step::Failed,
            Parse::Done => {
                let done = Instant::now();
                out.requests += 1;
                let ns = done.duration_since(c.started).as_nanos();
                out.latency_ns.push(ns.min(u128::from(u32::MAX)) as u32);
                if mode == Mode::ServerCloses {
                    c.answered = true;
                    continue;
                }
                if !keep_alive {
                    return Step::Finished;
                }
                c.len = 0;
                c.started = done;
                return match c.stream.write(REQUEST) {
                    Ok(n) if n == REQUEST.len() => Step::Wait,
                    _ => Step::Failed,
                };
            }
        }
    }
}

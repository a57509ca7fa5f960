//! The bench's server child processes (their CPU time and memory), the
//! readiness probe, CPU placement, scratch upload files and the kernel's
//! per-namespace counters that explain a slow round (device drops, TCP
//! retransmissions).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// CPU the servers run on when [`pinned`]; the clients get [`CLIENT_CPU`].
pub const SERVER_CPU: usize = 1;
/// CPU of the clients (this process's load thread, curl, wrk) when [`pinned`].
pub const CLIENT_CPU: usize = 0;

static PINNED: OnceLock<bool> = OnceLock::new();

/// Whether `USTACK_TUN_BENCH_PIN=1` asked for servers and clients on
/// different cores ([`SERVER_CPU`], [`CLIENT_CPU`]).
pub fn pinned() -> bool {
    *PINNED.get_or_init(|| std::env::var("USTACK_TUN_BENCH_PIN").as_deref() == Ok("1"))
}

/// `ip netns exec NS [taskset -c CPU] program`: the CPU only when [`pinned`].
pub fn ns_command(ns: &str, program: &str, cpu: usize) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if pinned() {
        c.args(["taskset", "-c", &cpu.to_string()]);
    }
    c.arg(program);
    c
}

/// Pins the calling thread to [`CLIENT_CPU`] when [`pinned`].
pub fn pin_current_thread() -> Result<(), String> {
    if !pinned() {
        return Ok(());
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it;
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(CLIENT_CPU, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(format!(
            "pinning the client thread to CPU {CLIENT_CPU}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// CPU time of a process, split the way `/proc/PID/stat` splits it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// User-space time (the stack itself, HTTP, libc), ns.
    pub user_ns: u64,
    /// Kernel time inside the process's system calls, ns.
    pub system_ns: u64,
}

impl Cpu {
    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            system_ns: self.system_ns.saturating_sub(earlier.system_ns),
        }
    }

    /// User and system together, ns.
    pub fn total_ns(self) -> u64 {
        self.user_ns + self.system_ns
    }
}

/// A server child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub name: &'static str,
    child: RefCell<Child>,
}

impl Server {
    /// Starts `cmd` (an `ip netns exec … program`, which execs the program,
    /// so the child's pid is the server's).
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Result<Server, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Server {
            name,
            child: child.into(),
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// CPU time the server process has used, all threads.
    pub fn cpu(&self) -> Result<Cpu, String> {
        let pid = self.child.borrow().id();
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // Fields after the command name (which may hold spaces) in
        // parentheses; utime and stime are fields 14 and 15, in clock ticks.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("{path}: cannot read field {}", i + 3))
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        // Field 14 is index 11 after the state field (field 3).
        Ok(Cpu {
            user_ns: ticks(11)? * 1_000_000_000 / hz,
            system_ns: ticks(12)? * 1_000_000_000 / hz,
        })
    }

    /// Resident memory of the server process, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.borrow().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Times the scheduler took a CPU away from the server while it could
    /// still run (preempted by another task), all threads.
    pub fn involuntary_switches(&self) -> u64 {
        let pid = self.child.borrow().id();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .filter_map(|status| {
                let line = status
                    .lines()
                    .find(|l| l.starts_with("nonvoluntary_ctxt_switches:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&self) -> Result<(), String> {
        match self.child.borrow_mut().try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Waits (at most 10 s) until `GET /` at `addr` answers.
    pub fn wait_ready(&self, addr: SocketAddr, stop: &AtomicBool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            self.check_alive()?;
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 512];
                if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                    let mut got = Vec::new();
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        got.extend_from_slice(&buf[..n]);
                    }
                    if got.ends_with(b"Hello World!") {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} at {addr} did not answer GET / within 10 s",
            self.name
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..30 {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// The machine's 1-minute load average (`NaN` if unreadable).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Runs `cmd`, failing with its stderr if it fails.
pub fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A sparse file of `len` zero bytes in /dev/shm (tmpfs), removed when
/// dropped. Reading its holes costs no memory, so a multi-gigabyte upload
/// body is free to make.
pub struct TempFile(String);

impl TempFile {
    /// Creates the file; `tag` keeps concurrent files apart.
    pub fn create(tag: &str, len: u64) -> Result<TempFile, String> {
        let dir = if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        };
        let path = format!("{dir}/ustack-tunbench-{}-{tag}.bin", std::process::id());
        let f = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        let file = TempFile(path);
        f.set_len(len).map_err(|e| format!("{}: {e}", file.0))?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Packets the kernel dropped on some devices, both directions summed.
pub fn device_drops(links: &[(String, String)]) -> u64 {
    let mut by_ns: HashMap<&str, String> = HashMap::new();
    let mut total = 0;
    for (ns, dev) in links {
        let text = by_ns
            .entry(ns)
            .or_insert_with(|| ns_cat(ns, &["/proc/net/dev"]));
        total += dev_drops(text, dev);
    }
    total
}

/// `rx drop + tx drop` of `dev` in a `/proc/net/dev` text.
fn dev_drops(text: &str, dev: &str) -> u64 {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != dev {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // Receive: bytes packets errs drop ...; transmit starts at 8.
        return f.get(3).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    }
    0
}

/// Frames the kernel dropped because they found a full receive queue on
/// the `AF_PACKET` sockets of process `pid` in namespace `ns` (`ss`'s
/// `skmem` `d` field, the socket's `sk_drops`); `None` if `ss` fails.
pub fn packet_socket_drops(ns: &str, pid: u32) -> Option<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-0", "-a", "-m", "-p", "-H"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let owner = format!("pid={pid},");
    let drops = text
        .lines()
        .filter(|l| l.contains(&owner))
        .filter_map(|l| {
            let skmem = l.split("skmem:(").nth(1)?;
            let d = skmem.split([',', ')']).find_map(|f| f.strip_prefix('d'))?;
            d.parse::<u64>().ok()
        })
        .sum();
    Some(drops)
}

/// The TCP counters of namespace `ns` that tell a clean transfer from a
/// lossy one: segments it retransmitted, and segments it received out of
/// order (the peer lost and resent them).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpCounters {
    pub retrans_segs: u64,
    pub ofo_queued: u64,
    /// Segments the client's kernel received (`Tcp: InSegs`): on upload,
    /// the server's ACKs.
    pub in_segs: u64,
    /// Segments it sent (`Tcp: OutSegs`, counted after segmentation).
    pub out_segs: u64,
}

impl TcpCounters {
    /// Reads them from `/proc/net/snmp` and `/proc/net/netstat` in `ns`.
    pub fn read(ns: &str) -> TcpCounters {
        let text = ns_cat(ns, &["/proc/net/snmp", "/proc/net/netstat"]);
        TcpCounters {
            retrans_segs: snmp_field(&text, "Tcp:", "RetransSegs").unwrap_or(0),
            ofo_queued: snmp_field(&text, "TcpExt:", "TCPOFOQueue").unwrap_or(0),
            in_segs: snmp_field(&text, "Tcp:", "InSegs").unwrap_or(0),
            out_segs: snmp_field(&text, "Tcp:", "OutSegs").unwrap_or(0),
        }
    }

    /// What changed between `earlier` and `self`.
    pub fn since(self, earlier: TcpCounters) -> TcpCounters {
        TcpCounters {
            retrans_segs: self.retrans_segs.saturating_sub(earlier.retrans_segs),
            ofo_queued: self.ofo_queued.saturating_sub(earlier.ofo_queued),
            in_segs: self.in_segs.saturating_sub(earlier.in_segs),
            out_segs: self.out_segs.saturating_sub(earlier.out_segs),
        }
    }
}

/// `field` of the `prefix` table: a header line of names followed by a
/// line of values, both starting with `prefix`.
fn snmp_field(text: &str, prefix: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if let Some(i) = names.split_whitespace().position(|n| n == field) {
            return values.split_whitespace().nth(i)?.parse().ok();
        }
    }
    None
}

/// The files' contents as seen from namespace `ns` (empty on failure).
fn ns_cat(ns: &str, files: &[&str]) -> String {
    Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .args(files)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

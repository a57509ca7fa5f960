//! Child processes for the benchmark binaries: a process killed and reaped
//! when dropped, a server started and waited for until it prints its ready
//! line, and a process's resident memory.

use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    /// The process ID.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (its stdout piped, stderr inherited) and waits at most
/// `limit` for its first line, which must contain `http://` (tun-server
/// prints the `curl` line that reaches it when it is ready). Returns the
/// process and the URL in that line. `stop`, when set, ends the wait early
/// (a Ctrl-C handler sets it).
pub fn spawn_server(
    cmd: &mut Command,
    limit: Duration,
    stop: Option<&AtomicBool>,
) -> io::Result<(Proc, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + limit;
    let line = loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => break line,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the server printed no ready line within {} s",
                        limit.as_secs()
                    ),
                ))
            }
        }
    };
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| io::Error::other(format!("the server's first line is {line:?}")))?
        .to_string();
    Ok((proc, url))
}

/// The resident set size of process `pid` in KiB (VmRSS), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

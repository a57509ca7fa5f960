//! Shared pieces of the privileged end-to-end tests: a namespace per test,
//! child processes that die with the test, bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use ustack::netns::NetNs;

/// A fresh namespace for one test. Fails the test loudly when it cannot be
/// made, unless a person set `USTACK_SKIP_PRIVILEGED=1` (then returns None).
pub fn netns(tag: &str) -> Option<NetNs> {
    if ustack::netns::skip_requested() {
        println!("SKIPPED (USTACK_SKIP_PRIVILEGED=1): needs root for a network namespace");
        return None;
    }
    match NetNs::create(tag) {
        Ok(ns) => Some(ns),
        Err(e) => panic!("cannot set up the test's network namespace: {e}"),
    }
}

/// A child process killed (and reaped) when the test ends on any path.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts tun-server in `ns` with `args` and waits (bounded) for its ready line.
pub fn start_tun_server(ns: &NetNs, args: &[&str]) -> Proc {
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_tun-server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tun-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let proc = Proc(child);
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tun-server printed no ready line within 20 s");
    assert!(
        line.contains("curl http://"),
        "unexpected first line: {line:?}"
    );
    proc
}

/// Runs a command to completion with a time limit; returns its output.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on a pid we spawned; at worst it no longer exists.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("command did not finish within {limit:?}: {cmd:?}");
        }
    }
}

/// `curl` inside the namespace with bounded time; returns (stdout, success).
pub fn curl(ns: &NetNs, args: &[&str]) -> Output {
    let mut c = ns.command("curl");
    c.args(["--silent", "--show-error", "--max-time", "60"])
        .args(args);
    output_within(c, Duration::from_secs(90))
}

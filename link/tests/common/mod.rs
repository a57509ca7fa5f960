//! Helpers for tests that need root: a throw-away network namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Whether a privileged test should run. Without root it fails loudly,
/// unless `USTACK_SKIP_PRIVILEGED=1`, in which case it says so and skips.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    skip_or_fail(
        test,
        "it needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN)",
    )
}

fn skip_or_fail(test: &str, why: &str) -> bool {
    if std::env::var("USTACK_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        println!("SKIPPED {test}: {why} (USTACK_SKIP_PRIVILEGED=1)");
        false
    } else {
        panic!(
            "{test} cannot run: {why}. Run as root, or set USTACK_SKIP_PRIVILEGED=1 to skip it."
        );
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A named network namespace, deleted when dropped (on every path,
/// including a panicking test).
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Creates `ustack-linktest-<pid>-<tag>` with loopback up. Returns None
    /// if the test should be skipped (see [`privileged`]); panics otherwise
    /// on failure.
    pub fn create(test: &str, tag: &str) -> Option<NetNs> {
        if !privileged(test) {
            return None;
        }
        let name = format!("ustack-linktest-{}-{tag}", std::process::id());
        if let Err(e) = ip(&["netns", "add", &name]) {
            skip_or_fail(test, &format!("cannot create a network namespace: {e}"));
            return None;
        }
        let ns = NetNs { name };
        if let Err(e) = ip(&["-n", &ns.name, "link", "set", "lo", "up"]) {
            panic!("{test}: {e}");
        }
        Some(ns)
    }

    /// Whether interface `dev` exists in the namespace.
    pub fn has_link(&self, dev: &str) -> bool {
        link_exists(&self.name, dev)
    }

    /// Runs `f` on a new thread that has entered the namespace (a network
    /// namespace is a per-thread attribute), and returns its result. A panic
    /// in `f` is re-raised here, after the thread is gone.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `ns` is an open namespace file for the duration of the
            // call; setns only changes this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!("setns({path}): {}", std::io::Error::last_os_error());
            }
            f()
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete network namespace: {e}");
        }
    }
}

/// Whether interface `dev` exists in namespace `ns`.
pub fn link_exists(ns: &str, dev: &str) -> bool {
    ip(&["-n", ns, "link", "show", dev]).is_ok()
}

/// Waits up to `timeout_ms` for `fd` to become readable.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd array of length 1 for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// Reads what `link` holds, up to `max` packets, without waiting; returns
/// how many it read.
pub fn drain(link: &mut impl ustack_link::Link, max: u64) -> u64 {
    let mut buf = vec![0u8; ustack_link::MAX_PACKET_LEN];
    let mut read = 0;
    while read < max && link.recv(&mut buf).expect("recv").is_some() {
        read += 1;
    }
    read
}

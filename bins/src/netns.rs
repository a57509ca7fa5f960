//! Throw-away network namespaces for privileged tests and benchmarks, so that
//! nothing ever touches the host's interfaces and tests can run in parallel.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// Whether privileged work may be skipped: only when a person set
/// `USTACK_SKIP_PRIVILEGED=1`. Otherwise a missing privilege is an error.
pub fn skip_requested() -> bool {
    std::env::var("USTACK_SKIP_PRIVILEGED").as_deref() == Ok("1")
}

/// Why a namespace could not be created, configured or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// Not running as root; nothing was attempted.
    #[error("network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run as root, or set USTACK_SKIP_PRIVILEGED=1 to skip privileged tests")]
    NotRoot,
    /// A command (`ip netns …`) or system call (`setns`) failed.
    #[error("`{cmd}` failed: {msg}")]
    Command {
        /// The command line, or the call, that failed.
        cmd: String,
        /// Its error output, or the OS error.
        msg: String,
    },
}

/// A named network namespace with loopback up, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `ustack-<tag>-<pid>`.
    pub fn create(tag: &str) -> Result<NetNs, NetNsError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(NetNsError::NotRoot);
        }
        let name = format!("ustack-{tag}-{}", std::process::id());
        // A namespace left by a crashed earlier run of the same pid: remove it.
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` and `ip -n` know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NS ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetNsError> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Moves the calling thread into the namespace (namespaces are per thread).
    pub fn enter_current_thread(&self) -> Result<(), NetNsError> {
        enter(&self.name)
    }
}

/// A namespace referred to by name only ([`NetNsHandle::named`]): it is not removed on drop.
#[derive(Debug, Clone)]
pub struct NetNsHandle {
    name: String,
}

impl NetNsHandle {
    /// Refers to an existing namespace by name without owning it (dropping
    /// the handle deletes nothing), e.g. to enter it from another thread.
    pub fn named(name: &str) -> NetNsHandle {
        NetNsHandle {
            name: name.to_string(),
        }
    }

    /// Moves the calling thread into the namespace (namespaces are per thread).
    pub fn enter_current_thread(&self) -> Result<(), NetNsError> {
        enter(&self.name)
    }
}

fn enter(name: &str) -> Result<(), NetNsError> {
    {
        let path = format!("/var/run/netns/{name}");
        let f = File::open(&path).map_err(|e| NetNsError::Command {
            cmd: format!("open {path}"),
            msg: e.to_string(),
        })?;
        // SAFETY: `f` is an open namespace file for the duration of the call;
        // setns only changes the calling thread's network namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NetNsError::Command {
                cmd: format!("setns {path}"),
                msg: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<Output, NetNsError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetNsError::Command {
            cmd: cmd.clone(),
            msg: e.to_string(),
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetNsError::Command {
            cmd,
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

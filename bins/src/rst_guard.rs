//! Keeps the host kernel from resetting a flow that ustack runs over a raw socket.
//!
//! The kernel sees the peer's SYN-ACK for a port it has no socket on and
//! answers with a RST (RFC 9293 §3.10.7.1), killing our handshake. The guard
//! installs an nftables table of its own with one rule that drops outgoing
//! RSTs of exactly this connection's 4-tuple — except ours, which carry the
//! raw link's firewall mark — and deletes the table when dropped, so every
//! exit path (normal, error, signal, panic) leaves the ruleset as it was.

use std::io::Write;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};

use tracing::{debug, warn};

/// Prefix of every table a guard creates; tests look for leftovers by it.
pub const TABLE_PREFIX: &str = "ustack_rst_guard_";

/// Why the guard's rule could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The `nft` program could not be started (not installed, or not on `PATH`).
    #[error("cannot run nft ({0}): install nftables (apt-get install nftables), or pass --no-rst-guard and drop the kernel's RSTs yourself")]
    NftMissing(std::io::Error),
    /// `nft` ran and failed; carries its error output.
    #[error("nft refused the RST-guard rule: {0} (needs CAP_NET_ADMIN: run as root)")]
    NftFailed(String),
}

/// An installed rule; removing it is tied to this value's lifetime.
#[derive(Debug)]
pub struct RstGuard {
    table: String,
}

impl RstGuard {
    /// Installs the rule for `local` -> `remote`. `mark` is the firewall mark
    /// our own packets carry (they pass).
    pub fn install(
        local: SocketAddrV4,
        remote: SocketAddrV4,
        mark: u32,
    ) -> Result<RstGuard, GuardError> {
        let table = format!("{TABLE_PREFIX}{}_{}", local.port(), std::process::id());
        let script = format!(
            "table ip {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    \
             ip saddr {} ip daddr {} tcp sport {} tcp dport {} tcp flags & rst == rst meta mark != {mark:#x} drop\n  }}\n}}\n",
            local.ip(),
            remote.ip(),
            local.port(),
            remote.port(),
        );
        nft(&["-f", "-"], Some(&script))?;
        debug!(%table, %local, %remote, "rst guard installed");
        Ok(RstGuard { table })
    }

    /// Name of the nftables table (in family `ip`) that holds the rule.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for RstGuard {
    fn drop(&mut self) {
        match nft(&["delete", "table", "ip", &self.table], None) {
            Ok(()) => debug!(table = %self.table, "rst guard removed"),
            Err(e) => warn!(table = %self.table, %e, "could not remove rst guard"),
        }
    }
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<(), GuardError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GuardError::NftMissing)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| GuardError::NftFailed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| GuardError::NftFailed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(GuardError::NftFailed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

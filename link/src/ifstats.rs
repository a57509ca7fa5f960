//! The kernel's own counters of a network interface, for a link whose
//! kernel side counts what the link's socket options cannot tell (TUN).
//!
//! Read from `/proc/thread-self/net/dev`, which lists the interfaces of the
//! calling thread's network namespace; a link opened in one namespace and
//! read from a thread in another would find a stranger's interface of the
//! same name there, so [`IfCounters`] remembers the namespace it was made in
//! and reads nothing elsewhere.

use std::os::unix::fs::MetadataExt;

const NETNS: &str = "/proc/thread-self/ns/net";
const NET_DEV: &str = "/proc/thread-self/net/dev";

/// One interface's kernel counters, read on demand.
#[derive(Debug)]
pub(crate) struct IfCounters {
    name: String,
    /// The inode of the namespace the interface lives in; None if unknown.
    netns: Option<u64>,
}

impl IfCounters {
    /// Counters of `name` in the calling thread's namespace.
    pub(crate) fn new(name: &str) -> IfCounters {
        IfCounters {
            name: name.to_owned(),
            netns: current_netns(),
        }
    }

    /// Packets the kernel dropped on their way from the interface to its
    /// reader (its transmit side, `tx_dropped`); None when it cannot tell:
    /// no `/proc`, another namespace, or no such interface there.
    pub(crate) fn tx_dropped(&self) -> Option<u64> {
        if self.netns.is_none() || current_netns() != self.netns {
            return None;
        }
        let text = std::fs::read_to_string(NET_DEV).ok()?;
        tx_dropped_in(&text, &self.name)
    }
}

fn current_netns() -> Option<u64> {
    std::fs::metadata(NETNS).ok().map(|m| m.ino())
}

/// `tx_dropped` of `name` in the text of `/proc/net/dev`: after `name:`, 8
/// receive counters, then transmit bytes, packets, errors, drops.
fn tx_dropped_in(text: &str, name: &str) -> Option<u64> {
    const TX_DROP: usize = 11;
    text.lines().find_map(|line| {
        let (iface, counters) = line.split_once(':')?;
        (iface.trim() == name).then_some(())?;
        counters.split_whitespace().nth(TX_DROP)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     560       8    0    0    0     0          0         0      560       8    0    0    0     0       0          0
  tun0: 1049000    1000    0    0    0     0          0         0 21040000   20000    0 16359    0     0       0          0
";

    #[test]
    fn tx_drops_are_read_by_interface_name() {
        assert_eq!(tx_dropped_in(SAMPLE, "tun0"), Some(16359));
        assert_eq!(tx_dropped_in(SAMPLE, "lo"), Some(0));
        assert_eq!(tx_dropped_in(SAMPLE, "tun"), None);
        assert_eq!(tx_dropped_in(SAMPLE, "eth0"), None);
        assert_eq!(tx_dropped_in("tun0: 1 2 3", "tun0"), None);
    }
}

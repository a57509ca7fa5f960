//! A server's counters in a file, for monitors and soak tests: an [`App`]
//! wrapper that rewrites one CSV line at most once per interval. It
//! forwards every `App` method, `on_stop` included, to the app it wraps.
//! The `link_*` columns are the device's [`LinkStats`]: `link_rx_dropped`
//! counts what the kernel dropped because the stack did not read in time.
//! `rss_kib` is the process's resident memory read at the same moment as
//! the buffer gauges, so a monitor can subtract one from the other.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;
use ustack_link::LinkStats;
use ustack_tcp::{Instant, Tcp};

use crate::event_loop::{App, Control, RuntimeError};

/// The header of the line [`StatsFile`] writes.
pub const STATS_HEADER: &str = "elapsed_ms,connections,buffer_bytes,conns_opened,conns_closed,\
                                syncookies_sent,syncookies_ok,syncookies_failed,evicted,time_wait,\
                                buffer_pooled_bytes,link_rx_packets,link_tx_packets,link_tx_dropped,\
                                link_rx_dropped,rss_kib";

/// Wraps an [`App`] and, when a path is given, replaces the file's content
/// with [`STATS_HEADER`] and one line of current figures every `interval`
/// (written to a temporary file and renamed, so a reader never sees half a
/// line). Without a path it only forwards.
pub struct StatsFile<A> {
    inner: A,
    path: Option<PathBuf>,
    interval: Duration,
    next_at: Option<Instant>,
    started: Option<Instant>,
    /// The link's counters, fetched by the loop just before each write.
    link: LinkStats,
}

impl<A: App> StatsFile<A> {
    /// `inner`, reporting to `path` every `interval` when `path` is set.
    pub fn new(inner: A, path: Option<PathBuf>, interval: Duration) -> StatsFile<A> {
        StatsFile {
            inner,
            path,
            interval,
            next_at: None,
            started: None,
            link: LinkStats::default(),
        }
    }

    /// The wrapped application.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn due(&self, now: Instant) -> bool {
        self.path.is_some() && self.next_at.is_none_or(|t| now >= t)
    }

    fn write(&self, tcp: &Tcp, elapsed: Duration) {
        let Some(path) = &self.path else { return };
        let (s, l) = (tcp.stats(), &self.link);
        let line = format!(
            "{STATS_HEADER}\n{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            elapsed.as_millis(),
            tcp.connection_count(),
            tcp.buffer_memory(),
            s.tcp_conns_opened,
            s.tcp_conns_closed,
            s.tcp_syncookies_sent,
            s.tcp_syncookies_ok,
            s.tcp_syncookies_failed,
            s.tcp_evicted,
            tcp.time_wait_count(),
            tcp.pooled_buffer_memory(),
            l.rx_packets,
            l.tx_packets,
            l.tx_dropped,
            l.rx_dropped,
            crate::child::rss_kib(std::process::id()).unwrap_or(0)
        );
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, path)) {
            warn!(path = %path.display(), %e, "cannot write the stats file");
        }
    }
}

impl<A: App> App for StatsFile<A> {
    fn on_turn(&mut self, tcp: &mut Tcp, now: Instant) -> Result<Control, RuntimeError> {
        let control = self.inner.on_turn(tcp, now)?;
        if self.due(now) {
            let started = *self.started.get_or_insert(now);
            self.write(tcp, now.saturating_duration_since(started));
            self.next_at = Some(now + self.interval);
        }
        Ok(control)
    }

    fn on_stop(&mut self, tcp: &mut Tcp, now: Instant) -> Duration {
        self.inner.on_stop(tcp, now)
    }

    fn wait_fds(&self, out: &mut Vec<(RawFd, i16)>) {
        self.inner.wait_fds(out);
    }

    fn on_fd_ready(&mut self, fd: RawFd, revents: i16) {
        self.inner.on_fd_ready(fd, revents);
    }

    fn wants_link_stats(&self, now: Instant) -> bool {
        self.due(now) || self.inner.wants_link_stats(now)
    }

    fn on_link_stats(&mut self, stats: LinkStats) {
        self.link = stats;
        self.inner.on_link_stats(stats);
    }

    fn poll_at(&self) -> Option<Instant> {
        let own = self.path.as_ref().and(self.next_at);
        match (self.inner.poll_at(), own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

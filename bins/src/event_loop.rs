//! The single-threaded event loop: packets in, application, packets out, sleep.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};
use ustack_ipv4::{TxPacket, MAX_PACKET_LEN};
use ustack_link::{Link, LinkError, LinkStats};
use ustack_tcp::{Instant, Tcp};

use crate::Stack;

/// Packets read from the link per wake-up before the stack gets to send:
/// bounds latency under load and lets ACKs coalesce.
const RX_BATCH: usize = 64;

/// Converts the OS monotonic clock into the engine's [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }
    /// Time since the clock was made.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What the application wants from the loop after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Leave the loop with success.
    Exit,
}

/// An application on top of the stack.
pub trait App {
    /// Called every turn after received packets were processed: accept,
    /// read and write on TCP's sockets.
    fn on_turn(&mut self, tcp: &mut Tcp, now: Instant) -> Result<Control, RuntimeError>;

    /// Extra file descriptors to wait on (e.g. stdin) and the events wanted.
    fn wait_fds(&self, _out: &mut Vec<(RawFd, i16)>) {}

    /// An extra descriptor reported ready; the next `on_turn` follows at once.
    fn on_fd_ready(&mut self, _fd: RawFd, _revents: i16) {}

    /// A deadline of the application's own (e.g. a connect timeout).
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// A stop was requested (Ctrl-C, SIGTERM): stop taking new work (close
    /// listeners, start no new requests, close idle connections) and return
    /// the grace period for work in flight to finish; `on_turn` keeps being
    /// called meanwhile. Whatever remains after it is reset (see [`run`]).
    /// The default, [`Duration::ZERO`], resets every connection at once.
    fn on_stop(&mut self, _tcp: &mut Tcp, _now: Instant) -> Duration {
        Duration::ZERO
    }

    /// Whether the app wants the link's counters before this turn. Reading
    /// them may cost a system call (a socket's kernel drop counters), so an
    /// app asks only when it reports, not every turn.
    fn wants_link_stats(&self, _now: Instant) -> bool {
        false
    }

    /// The link's counters, called just before `on_turn` when
    /// [`App::wants_link_stats`] said so.
    fn on_link_stats(&mut self, _stats: LinkStats) {}
}

/// Why [`run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The device failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Waiting for the device failed.
    #[error("poll(2) failed: {0}")]
    Poll(std::io::Error),
    /// The application gave up, saying why.
    #[error("{0}")]
    App(String),
}

/// How [`run`] ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The app returned [`Control::Exit`] before any stop was requested.
    Exited,
    /// A stop was requested and the shutdown ran to its end.
    Stopped(Shutdown),
}

/// What a shutdown did, for the caller's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Connections with something left to finish when the stop came.
    pub active: usize,
    /// The grace period the app asked for in [`App::on_stop`].
    pub grace: Duration,
    /// Connections reset at its end (a RST sent to each peer); those that
    /// owed nothing (TIME-WAIT) are dropped silently.
    pub reset: usize,
    /// A second stop request cut the grace period short.
    pub cut_short: bool,
}

/// After the final reset, how long the loop still answers the peers: a RST
/// that a peer finds out of its window draws a challenge ACK (RFC 5961
/// §3.2), which must meet a RST for a connection that no longer exists.
const LINGER: Duration = Duration::from_millis(100);
/// The linger waits for a link's delayed packets (a fault-injecting
/// middleware), but never longer than this.
const LINGER_MAX: Duration = Duration::from_secs(2);

/// Runs the stack and the app until the app says [`Control::Exit`], the
/// link fails, or a stop request (`stop`, set by a signal handler) has been
/// carried out:
///
/// 1. On the first request, `run` clears `stop` and calls
///    [`App::on_stop`], which stops taking new work (closes its listeners,
///    so new SYNs get a RST) and returns a grace period. The loop keeps
///    running so work in flight can finish.
/// 2. The grace period ends when it has elapsed, when no connection has
///    anything left to finish ([`Tcp::active_connection_count`] is 0), when
///    the app returns [`Control::Exit`], or at once when `stop` is set
///    again (a second Ctrl-C).
/// 3. Every connection left is reset ([`Tcp::abort_all`]) and the stack is
///    polled, so the RSTs leave through the link before `run` returns;
///    for a short linger the loop still answers what peers send back.
///
/// Only then does `run` return [`Outcome::Stopped`]: the caller may drop
/// the link (removing a TUN device, a firewall rule) knowing that no peer
/// is left waiting. Two requests arriving before `run` notices the first
/// count as one (`stop` is a flag, not a counter).
pub fn run<L: Link, A: App + ?Sized>(
    link: &mut L,
    stack: &mut Stack,
    app: &mut A,
    clock: &Clock,
    stop: &AtomicBool,
) -> Result<Outcome, RuntimeError> {
    // Not the MTU: Linux loopback hands raw sockets unsegmented GSO packets
    // of up to 64 KiB whatever the MSS, so take any legal IPv4 packet.
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    let mut fds: Vec<(RawFd, i16)> = Vec::with_capacity(4);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
    let mut send_errors: u64 = 0;
    // Set once a stop was requested: the report so far and the grace deadline.
    let mut draining: Option<(Shutdown, Instant)> = None;
    loop {
        let now = clock.now();
        if stop.swap(false, Ordering::Relaxed) {
            if let Some((report, _)) = &mut draining {
                info!("second stop request: not waiting for the grace period");
                report.cut_short = true;
                let report = *report;
                return finish(link, stack, clock, &mut buf, &mut send_errors, report);
            }
            let active = stack.active_connection_count();
            let grace = app.on_stop(stack.transport_mut(), now);
            info!(
                "shutting down: {active} connections, grace {} s",
                grace.as_secs_f64()
            );
            let report = Shutdown {
                active,
                grace,
                reset: 0,
                cut_short: false,
            };
            // What on_stop queued (FINs, RSTs) leaves with this turn's poll.
            draining = Some((report, now + grace));
        }
        if let Some((report, until)) = draining {
            if now >= until || stack.active_connection_count() == 0 {
                return finish(link, stack, clock, &mut buf, &mut send_errors, report);
            }
        }
        let received = receive(link, stack, now, &mut buf, &mut send_errors)?;
        if app.wants_link_stats(now) {
            app.on_link_stats(link.stats());
        }
        let exit = app.on_turn(stack.transport_mut(), now)? == Control::Exit;
        stack.poll(now, &mut |p| transmit(link, p, &mut send_errors));
        if exit {
            return match draining {
                Some((report, _)) => finish(link, stack, clock, &mut buf, &mut send_errors, report),
                None => Ok(Outcome::Exited),
            };
        }
        // The app may have work again (data acked, space freed by the poll).
        if received == RX_BATCH {
            continue;
        }

        let now = clock.now();
        let grace_end = draining.map(|(_, until)| until);
        let deadline = [stack.poll_at(), app.poll_at(), grace_end]
            .into_iter()
            .flatten()
            .min();
        let wait = deadline.map(|t| t.saturating_duration_since(now));
        fds.clear();
        if let Some(fd) = link.poll_fd() {
            fds.push((fd, libc::POLLIN));
        }
        app.wait_fds(&mut fds);
        wait_ready(link, wait, &fds, &mut pfds)?;
        for p in &pfds {
            if p.revents != 0 && Some(p.fd) != link.poll_fd() {
                app.on_fd_ready(p.fd, p.revents);
            }
        }
    }
}

/// Step 3 of a shutdown (see [`run`]): resets what is left, sends the RSTs,
/// and lingers briefly answering the peers.
fn finish<L: Link>(
    link: &mut L,
    stack: &mut Stack,
    clock: &Clock,
    buf: &mut [u8],
    send_errors: &mut u64,
    mut report: Shutdown,
) -> Result<Outcome, RuntimeError> {
    report.reset = stack.transport_mut().abort_all();
    info!("reset {} connections", report.reset);
    let started = std::time::Instant::now();
    let mut fds: Vec<(RawFd, i16)> = Vec::with_capacity(1);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(1);
    loop {
        let now = clock.now();
        receive(link, stack, now, buf, send_errors)?;
        // The first pass sends the RSTs; later ones answer stray segments.
        stack.poll(now, &mut |p| transmit(link, p, send_errors));
        let elapsed = started.elapsed();
        // A link holding delayed packets (fault injection) is waited for,
        // up to LINGER_MAX.
        let link_due = link.poll_at();
        let linger_left = LINGER.saturating_sub(elapsed);
        if (linger_left.is_zero() && link_due.is_none()) || elapsed >= LINGER_MAX {
            return Ok(Outcome::Stopped(report));
        }
        let link_wait = link_due.map(|t| t.saturating_duration_since(std::time::Instant::now()));
        let wait = match link_wait {
            Some(w) if linger_left.is_zero() => w,
            Some(w) => w.min(linger_left),
            None => linger_left,
        };
        let wait = wait.min(LINGER_MAX.saturating_sub(elapsed));
        fds.clear();
        if let Some(fd) = link.poll_fd() {
            fds.push((fd, libc::POLLIN));
        }
        wait_ready(link, Some(wait), &fds, &mut pfds)?;
    }
}

/// Sleeps in poll(2) on `fds` (results left in `pfds`) for at most `wait`
/// (None: until an fd is ready) or until the link's own deadline.
fn wait_ready<L: Link>(
    link: &L,
    wait: Option<Duration>,
    fds: &[(RawFd, i16)],
    pfds: &mut Vec<libc::pollfd>,
) -> Result<(), RuntimeError> {
    // A link may need a turn of its own (e.g. a delayed packet is due).
    let link_wait = link
        .poll_at()
        .map(|t| t.saturating_duration_since(std::time::Instant::now()));
    let wait = [wait, link_wait].into_iter().flatten().min();
    let timeout_ms: i32 = match wait {
        None => -1,
        // Round up so we never wake just before the deadline and spin.
        Some(d) => d.as_micros().div_ceil(1000).min(60_000) as i32,
    };
    pfds.clear();
    pfds.extend(fds.iter().map(|&(fd, events)| libc::pollfd {
        fd,
        events,
        revents: 0,
    }));
    if pfds.is_empty() {
        // In-memory links have nothing to wait on.
        std::thread::sleep(Duration::from_millis(timeout_ms.clamp(0, 1) as u64));
        return Ok(());
    }
    // SAFETY: `pfds` is a valid, initialised array of `pfds.len()` pollfd
    // structs that stays alive and unaliased for the duration of the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::Interrupted {
            // A signal (perhaps the stop request): the caller looks again.
            pfds.iter_mut().for_each(|p| p.revents = 0);
            return Ok(());
        }
        return Err(RuntimeError::Poll(err));
    }
    Ok(())
}

/// Up to [`RX_BATCH`] packets from the link into the stack, each handled
/// where the link keeps it; returns how many.
fn receive<L: Link>(
    link: &mut L,
    stack: &mut Stack,
    now: Instant,
    buf: &mut [u8],
    send_errors: &mut u64,
) -> Result<usize, RuntimeError> {
    let mut received = 0;
    while received < RX_BATCH {
        let got = link.recv_with(buf, &mut |pkt, info, link_tx| {
            let tx = &mut |p: &TxPacket<'_>| count_send_error(link_tx(p), send_errors);
            stack.handle_packet(now, pkt, info, tx);
        })?;
        if !got {
            break;
        }
        received += 1;
    }
    Ok(received)
}

/// Sends one packet (a TSO super-frame when `packet.segment` is set); a
/// failure is counted and logged, never fatal (TCP retransmits).
fn transmit<L: Link>(link: &mut L, packet: &TxPacket<'_>, errors: &mut u64) {
    count_send_error(link.send(packet), errors);
}

fn count_send_error(sent: Result<(), LinkError>, errors: &mut u64) {
    if let Err(e) = sent {
        *errors += 1;
        // One line per power of two: loud enough to notice, never a flood.
        if errors.is_power_of_two() {
            warn!(%e, count = *errors, "link send failed");
        }
    }
}

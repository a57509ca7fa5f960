//! The single-threaded event loop: packets in, application, packets out, sleep.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::warn;
use ustack_ipv4::{TxPacket, MAX_PACKET_LEN};
use ustack_link::{Link, LinkError};
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
    pub fn new() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }
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
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("poll(2) failed: {0}")]
    Poll(std::io::Error),
    #[error("{0}")]
    App(String),
}

/// Runs until the app says [`Control::Exit`], `stop` becomes true (a signal
/// handler sets it) or the link fails.
pub fn run<L: Link, A: App + ?Sized>(
    link: &mut L,
    stack: &mut Stack,
    app: &mut A,
    clock: &Clock,
    stop: &AtomicBool,
) -> Result<(), RuntimeError> {
    // Not the MTU: Linux loopback hands raw sockets unsegmented GSO packets
    // of up to 64 KiB whatever the MSS, so take any legal IPv4 packet.
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    let mut fds: Vec<(RawFd, i16)> = Vec::with_capacity(4);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
    let mut send_errors: u64 = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = clock.now();
        let mut received = 0;
        while received < RX_BATCH {
            let Some(rx) = link.recv(&mut buf)? else {
                break;
            };
            received += 1;
            let tx = &mut |p: &TxPacket<'_>| transmit(link, p, &mut send_errors);
            stack.handle_packet(now, &buf[..rx.len], rx.info, tx);
        }
        let exit = app.on_turn(stack.transport_mut(), now)? == Control::Exit;
        stack.poll(now, &mut |p| transmit(link, p, &mut send_errors));
        if exit {
            return Ok(());
        }
        // The app may have work again (data acked, space freed by the poll).
        if received == RX_BATCH {
            continue;
        }

        let now = clock.now();
        let deadline = [stack.poll_at(), app.poll_at()].into_iter().flatten().min();
        let wait = deadline.map(|t| t.saturating_duration_since(now));
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
        fds.clear();
        if let Some(fd) = link.poll_fd() {
            fds.push((fd, libc::POLLIN));
        }
        app.wait_fds(&mut fds);
        pfds.clear();
        pfds.extend(fds.iter().map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        }));
        if pfds.is_empty() {
            // In-memory links have nothing to wait on.
            std::thread::sleep(Duration::from_millis(timeout_ms.clamp(0, 1) as u64));
            continue;
        }
        // SAFETY: `pfds` is a valid, initialised array of `pfds.len()` pollfd
        // structs that stays alive and unaliased for the duration of the call.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(RuntimeError::Poll(err));
        }
        for p in &pfds {
            if p.revents != 0 && Some(p.fd) != link.poll_fd() {
                app.on_fd_ready(p.fd, p.revents);
            }
        }
    }
}

/// Sends one packet (a TSO super-frame when `packet.segment` is set); a
/// failure is counted and logged, never fatal (TCP retransmits).
fn transmit<L: Link>(link: &mut L, packet: &TxPacket<'_>, errors: &mut u64) {
    let sent = link.send(packet);
    if let Err(e) = sent {
        *errors += 1;
        // One line per power of two: loud enough to notice, never a flood.
        if errors.is_power_of_two() {
            warn!(%e, count = *errors, "link send failed");
        }
    }
}

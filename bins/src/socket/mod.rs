//! Sockets over a stack that runs on a thread of its own: [`NetStack`] (the
//! running stack, `Send + Sync + Clone`); blocking [`TcpListener`] and
//! [`TcpStream`] shaped like `std::net` (`std::io::Read` and `Write`, also on
//! `&TcpStream`); with the `tokio` feature, async ones in `socket::tokio` (tokio's
//! `AsyncRead` and `AsyncWrite`).
//!
//! One driver thread owns the link and does the I/O; the stack itself sits
//! behind a mutex that the driver takes for each turn (packets in, timers,
//! packets out) and that socket calls take for the TCP call they make.
//! After a socket call that may have given TCP something to send, the
//! caller writes an eventfd the driver sleeps on (only when the driver is
//! asleep or about to be), so the driver never polls on a timer of its own;
//! after each turn the driver wakes the blocking calls waiting on a
//! condition variable, and the async tasks that TCP's
//! [`poll_ready`](ustack_tcp::Tcp::poll_ready) names (see `wakers`). An
//! idle stack sleeps in `poll(2)` and uses no CPU.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use tracing::warn;
use ustack_ipv4::{Ipv4Subnet, TxPacket, MAX_PACKET_LEN};
use ustack_link::Link;
use ustack_tcp::{TcpError, TcpLayerConfig};

use crate::{Clock, Stack};

/// Packets taken from the link per turn before the stack sends.
const RX_BATCH: usize = 64;
/// Accept queue of a [`TcpListener`].
const BACKLOG: usize = 128;

/// What the driver thread and the socket calls share.
struct Shared {
    stack: Mutex<Stack>,
    /// Signalled after every turn of the driver.
    turned: Condvar,
    /// Written to wake the driver: a socket call gave TCP work.
    wake: OwnedFd,
    /// Set by the driver, under the stack's lock, at the end of a turn after
    /// which it sleeps; cleared when it wakes. A socket call that finds it
    /// clear after its TCP call need not write `wake`: the driver has a
    /// turn to come that will see the call's work.
    parked: AtomicBool,
    /// When the parked driver wakes by itself for a timer (engine
    /// microseconds; `u64::MAX`: never). Written under the stack's lock.
    wake_at: AtomicU64,
    stop: AtomicBool,
    /// Async calls waiting for TCP; locked only with `stack` held.
    wakers: Mutex<Wakers>,
    /// The device; locked only with `stack` held (lock order: stack, then
    /// link), so it is never contended.
    link: Mutex<Box<dyn Link + Send>>,
    send_errors: AtomicU64,
    clock: Clock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stack> {
        // A panic in another socket call cannot leave TCP half-updated in a
        // way a later call could not handle: keep going with the data.
        self.stack.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry of async wakers. Only with the stack's guard held (the
    /// lock order is stack, then wakers).
    fn wakers<'a>(&'a self, _stack: &mut MutexGuard<'_, Stack>) -> MutexGuard<'a, Wakers> {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device. Only with the stack's guard held (lock order: stack,
    /// then link).
    fn link<'a>(
        &'a self,
        _stack: &mut MutexGuard<'_, Stack>,
    ) -> MutexGuard<'a, Box<dyn Link + Send>> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a socket call that may have given TCP output (data, a window
    /// update, a FIN), with the stack's guard still held: when the driver
    /// sleeps, sends that output from this thread at once, as Linux sends
    /// from the writer's context, rather than waking the driver to do it
    /// (a context switch per write). The driver is woken only when TCP now
    /// wants a timer earlier than the one it sleeps until. When the driver
    /// is awake, its next turn sends the output.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn transmit(&self, stack: &mut MutexGuard<'_, Stack>) {
        if !self.parked.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now();
        {
            let mut link = self.link(stack);
            stack.poll(now, &mut |p| send(&mut **link, p, &self.send_errors));
        }
        let next = stack.poll_at().map_or(u64::MAX, |t| t.total_micros());
        if next < self.wake_at.load(Ordering::Relaxed) {
            self.force_wake();
        }
    }

    /// Wakes the driver after a socket call gave TCP work, unless it is
    /// awake and has a turn to come anyway.
    fn wake_driver(&self) {
        if self.parked.load(Ordering::Relaxed) {
            self.force_wake();
        }
    }

    fn force_wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `wake` is an eventfd this struct owns; writing 8 bytes from
        // a valid buffer is its defined use. A full counter (EAGAIN) already
        // means the driver will wake.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Waits for the next driver turn, at most until `deadline`. Returns the
    /// guard again, or `TimedOut` when the deadline passed.
    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Stack>,
        deadline: Option<StdInstant>,
    ) -> io::Result<MutexGuard<'a, Stack>> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the stack has stopped",
            ));
        }
        match deadline {
            None => Ok(self.turned.wait(guard).unwrap_or_else(|p| p.into_inner())),
            Some(d) => {
                let left = d.saturating_duration_since(StdInstant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
                let (g, _) = self
                    .turned
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|p| p.into_inner());
                Ok(g)
            }
        }
    }
}

/// Stops the driver when the last [`NetStack`] handle (and so the last
/// socket) is gone.
struct Running {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.force_wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stack running on its own thread over a link. Cloning gives another
/// handle to the same stack; it stops when the last handle and the last
/// socket made from it are dropped, or on [`NetStack::stop`].
#[derive(Clone)]
pub struct NetStack {
    running: Arc<Running>,
}

impl NetStack {
    /// Starts a stack at `subnet` (its own address and prefix) over `link`,
    /// on a thread of its own.
    pub fn spawn<L: Link + Send + 'static>(
        link: L,
        subnet: Ipv4Subnet,
        tcp: TcpLayerConfig,
    ) -> io::Result<NetStack> {
        // SAFETY: eventfd(2) with valid flags returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let (name, link_fd) = (format!("ustack {}", link.name()), link.poll_fd());
        let shared = Arc::new(Shared {
            stack: Mutex::new(crate::new_stack(subnet, link.caps(), tcp)),
            turned: Condvar::new(),
            wake,
            parked: AtomicBool::new(false),
            wake_at: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            wakers: Mutex::new(Wakers::default()),
            link: Mutex::new(Box::new(link)),
            send_errors: AtomicU64::new(0),
            clock: Clock::new(),
        });
        let driver = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || drive(&driver, link_fd))?;
        Ok(NetStack {
            running: Arc::new(Running {
                shared,
                thread: Some(thread),
            }),
        })
    }

    /// Stops the driver now: every socket call after it fails with
    /// `NotConnected`. (Dropping every handle and socket does the same.)
    pub fn stop(&self) {
        self.shared().stop.store(true, Ordering::Relaxed);
        self.shared().force_wake();
        self.shared().turned.notify_all();
    }

    /// Resets every connection (a RST to each peer, RFC 9293 §3.10.5) and
    /// waits, at most `limit`, for the driver to send them; for a process
    /// about to exit. Returns how many were reset.
    pub fn abort_all(&self, limit: Duration) -> usize {
        let shared = self.shared();
        let mut stack = shared.lock();
        let n = stack.abort_all();
        shared.wake_driver();
        let deadline = StdInstant::now() + limit;
        // The turn under way when the RSTs were queued may not see them.
        for _ in 0..2 {
            match shared.wait(stack, Some(deadline)) {
                Ok(s) => stack = s,
                Err(_) => return n,
            }
        }
        n
    }

    /// The stack's own address.
    pub fn addr(&self) -> std::net::Ipv4Addr {
        self.shared().lock().addr()
    }

    fn shared(&self) -> &Shared {
        &self.running.shared
    }
}

/// The driver: the link's packets in, timers, packets out, then sleep in
/// `poll(2)` on the link (`link_fd`) and the wake-up eventfd until one of
/// them or the next timer is due.
fn drive(shared: &Shared, link_fd: Option<RawFd>) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    // Wakers taken under the locks, woken after: reused, so no allocation
    // per turn once it has grown to the number of waiting tasks.
    let mut due: Vec<Waker> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.clock.now();
        let received = receive(shared, now, &mut buf, &mut due);
        // Woken before this turn's output, so that a task refilling the send
        // buffer or draining the receive buffer can do so before the ACKs
        // and data leave.
        shared.turned.notify_all();
        due.drain(..).for_each(Waker::wake);
        let (deadline, link_at) = {
            let mut stack = shared.lock();
            let mut link = shared.link(&mut stack);
            stack.poll(now, &mut |p| send(&mut **link, p, &shared.send_errors));
            let link_at = link.poll_at();
            drop(link);
            shared.wakers(&mut stack).collect(&mut stack, &mut due);
            let deadline = stack.poll_at();
            if received < RX_BATCH {
                let at = deadline.map_or(u64::MAX, |t| t.total_micros());
                shared.wake_at.store(at, Ordering::Relaxed);
                shared.parked.store(true, Ordering::Relaxed);
            }
            (deadline, link_at)
        };
        due.drain(..).for_each(Waker::wake);
        if received == RX_BATCH {
            continue;
        }
        let wait = deadline.map(|t| t.saturating_duration_since(shared.clock.now()));
        let link_wait = link_at.map(|t| t.saturating_duration_since(StdInstant::now()));
        let timeout = [wait, link_wait].into_iter().flatten().min();
        sleep(link_fd, shared, timeout);
        shared.parked.store(false, Ordering::Relaxed);
    }
    // From now on every socket call fails: wake the ones waiting.
    shared.parked.store(true, Ordering::Relaxed);
    {
        let mut stack = shared.lock();
        shared.wakers(&mut stack).take_all(&mut due);
    }
    shared.turned.notify_all();
    due.drain(..).for_each(Waker::wake);
}

/// A turn's input: up to [`RX_BATCH`] packets from the link into the stack;
/// what TCP then reports ready goes to `due`. Returns the packet count.
fn receive(
    shared: &Shared,
    now: ustack_tcp::Instant,
    buf: &mut [u8],
    due: &mut Vec<Waker>,
) -> usize {
    let mut stack = shared.lock();
    let mut link = shared.link(&mut stack);
    let mut received = 0;
    while received < RX_BATCH {
        let got = link.recv_with(buf, &mut |pkt, info, link_tx| {
            let tx = &mut |p: &TxPacket<'_>| count_send_error(link_tx(p), &shared.send_errors);
            stack.handle_packet(now, pkt, info, tx);
        });
        match got {
            Ok(true) => received += 1,
            Ok(false) => break,
            Err(e) => {
                warn!(%e, "link receive failed; the stack stops");
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    drop(link);
    shared.wakers(&mut stack).collect(&mut stack, due);
    received
}

fn send(link: &mut (dyn Link + Send), p: &TxPacket<'_>, errors: &AtomicU64) {
    count_send_error(link.send(p), errors);
}

fn count_send_error(sent: Result<(), ustack_link::LinkError>, errors: &AtomicU64) {
    if let Err(e) = sent {
        let count = errors.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            warn!(%e, count, "link send failed");
        }
    }
}

/// Sleeps until the link or the eventfd is readable or `timeout` passes,
/// then empties the eventfd.
fn sleep(link_fd: Option<RawFd>, shared: &Shared, timeout: Option<Duration>) {
    let ms: i32 = timeout.map_or(-1, |d| d.as_micros().div_ceil(1000).min(60_000) as i32);
    let mut fds = [libc::pollfd {
        fd: shared.wake.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    let n = match link_fd {
        Some(fd) => {
            fds[1].fd = fd;
            2
        }
        // An in-memory link has nothing to wait on: look again soon.
        None => {
            std::thread::sleep(Duration::from_millis(1).min(timeout.unwrap_or(Duration::MAX)));
            1
        }
    };
    if n == 2 {
        // SAFETY: `fds` holds `n` initialised pollfd structs that outlive
        // the call.
        unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, ms) };
    }
    let mut count = [0u8; 8];
    // SAFETY: reading 8 bytes into a valid buffer from the eventfd we own;
    // EAGAIN (nothing written) is fine.
    unsafe {
        libc::read(
            shared.wake.as_raw_fd(),
            count.as_mut_ptr().cast(),
            count.len(),
        )
    };
}

/// What a std user expects for each TCP error.
fn io_error(e: TcpError) -> io::Error {
    use io::ErrorKind as K;
    let kind = match e {
        TcpError::WouldBlock => K::WouldBlock,
        TcpError::ConnectionReset => K::ConnectionReset,
        TcpError::ConnectionRefused(_) => K::ConnectionRefused,
        TcpError::TimedOut { .. } => K::TimedOut,
        TcpError::Unreachable { cause, .. } if !cause.is_hard() => K::HostUnreachable,
        TcpError::Unreachable { .. } => K::TimedOut,
        TcpError::SendAfterShutdown => K::BrokenPipe,
        TcpError::NotConnected | TcpError::InvalidHandle => K::NotConnected,
        TcpError::AddrInUse(_) => K::AddrInUse,
        TcpError::BuffersPosted | TcpError::NothingPosted => K::InvalidInput,
        TcpError::TooManyConnections(_) | TcpError::NoEphemeralPort(_) => K::AddrNotAvailable,
    };
    io::Error::new(kind, e)
}

mod blocking;
mod wakers;
pub use blocking::{CaptureListener, PendingConnection, TcpListener, TcpStream};
use wakers::Wakers;

#[cfg(feature = "tokio")]
pub mod tokio;

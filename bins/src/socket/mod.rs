//! Sockets over a stack that runs on a thread of its own: [`NetStack`] (the
//! running stack, `Send + Sync + Clone`); blocking [`TcpListener`] and
//! [`TcpStream`] shaped like `std::net` (`std::io::Read` and `Write`, also on
//! `&TcpStream`); with the `tokio` feature, async ones in [`tokio`] (tokio's
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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
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
    stop: AtomicBool,
    /// Async calls waiting for TCP; locked only with `stack` held.
    wakers: Mutex<Wakers>,
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
        let shared = Arc::new(Shared {
            stack: Mutex::new(crate::new_stack(subnet, link.caps(), tcp)),
            turned: Condvar::new(),
            wake,
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            wakers: Mutex::new(Wakers::default()),
            clock: Clock::new(),
        });
        let driver = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("ustack {}", link.name()))
            .spawn(move || drive(link, &driver))?;
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

    /// The stack's own address.
    pub fn addr(&self) -> std::net::Ipv4Addr {
        self.shared().lock().addr()
    }

    fn shared(&self) -> &Shared {
        &self.running.shared
    }
}

/// The driver: the link's packets in, timers, packets out, then sleep in
/// `poll(2)` on the link and the wake-up eventfd until one of them or the
/// next timer is due.
fn drive<L: Link>(mut link: L, shared: &Shared) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    let mut errors = 0u64;
    // Wakers taken under the locks, woken after: reused, so no allocation
    // per turn once it has grown to the number of waiting tasks.
    let mut due: Vec<Waker> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.clock.now();
        let received = {
            let mut stack = shared.lock();
            let mut received = 0;
            while received < RX_BATCH {
                match link.recv(&mut buf) {
                    Ok(Some(rx)) => {
                        received += 1;
                        let tx = &mut |p: &TxPacket<'_>| send(&mut link, p, &mut errors);
                        stack.handle_packet(now, &buf[..rx.len], rx.info, tx);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(%e, "link receive failed; the stack stops");
                        shared.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            shared.wakers(&mut stack).collect(&mut stack, &mut due);
            received
        };
        // Woken before this turn's output, so that a task refilling the send
        // buffer or draining the receive buffer can do so before the ACKs
        // and data leave.
        shared.turned.notify_all();
        due.drain(..).for_each(Waker::wake);
        let deadline = {
            let mut stack = shared.lock();
            stack.poll(now, &mut |p| send(&mut link, p, &mut errors));
            shared.wakers(&mut stack).collect(&mut stack, &mut due);
            if received < RX_BATCH {
                shared.parked.store(true, Ordering::Relaxed);
            }
            stack.poll_at()
        };
        due.drain(..).for_each(Waker::wake);
        if received == RX_BATCH {
            continue;
        }
        let wait = deadline.map(|t| t.saturating_duration_since(shared.clock.now()));
        let link_wait = link
            .poll_at()
            .map(|t| t.saturating_duration_since(StdInstant::now()));
        let timeout = [wait, link_wait].into_iter().flatten().min();
        sleep(&link, shared, timeout);
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

fn send<L: Link>(link: &mut L, p: &TxPacket<'_>, errors: &mut u64) {
    if let Err(e) = link.send(p) {
        *errors += 1;
        if errors.is_power_of_two() {
            warn!(%e, count = *errors, "link send failed");
        }
    }
}

/// Sleeps until the link or the eventfd is readable or `timeout` passes,
/// then empties the eventfd.
fn sleep<L: Link>(link: &L, shared: &Shared, timeout: Option<Duration>) {
    let ms: i32 = timeout.map_or(-1, |d| d.as_micros().div_ceil(1000).min(60_000) as i32);
    let mut fds = [libc::pollfd {
        fd: shared.wake.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    let n = match link.poll_fd() {
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
        TcpError::TooManyConnections(_) | TcpError::NoEphemeralPort(_) => K::AddrNotAvailable,
    };
    io::Error::new(kind, e)
}

mod blocking;
mod wakers;
pub use blocking::{TcpListener, TcpStream};
use wakers::Wakers;

#[cfg(feature = "tokio")]
pub mod tokio;

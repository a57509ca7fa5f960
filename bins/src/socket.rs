//! Blocking sockets over a stack that runs on a thread of its own, shaped
//! like `std::net`: [`NetStack`] (the running stack, `Send + Sync + Clone`),
//! [`TcpListener`] and [`TcpStream`] (`std::io::Read` and `Write`, also on
//! `&TcpStream`).
//!
//! One driver thread owns the link and does the I/O; the stack itself sits
//! behind a mutex that the driver takes for each turn (packets in, timers,
//! packets out) and that socket calls take for the TCP call they make.
//! After a socket call that may have given TCP something to send, the
//! caller writes an eventfd the driver sleeps on, so the driver never polls
//! on a timer of its own; after each turn the driver wakes the socket calls
//! waiting on a condition variable. An idle stack sleeps in `poll(2)` and
//! uses no CPU.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use tracing::warn;
use ustack_ipv4::{Ipv4Subnet, TxPacket, MAX_PACKET_LEN};
use ustack_link::Link;
use ustack_tcp::{ConnId, ListenerId, State, TcpError, TcpLayerConfig};

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
    stop: AtomicBool,
    clock: Clock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stack> {
        // A panic in another socket call cannot leave TCP half-updated in a
        // way a later call could not handle: keep going with the data.
        self.stack.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_driver(&self) {
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
        self.shared.wake_driver();
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
            stop: AtomicBool::new(false),
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
        self.shared().wake_driver();
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
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.clock.now();
        let (received, deadline) = {
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
            stack.poll(now, &mut |p| send(&mut link, p, &mut errors));
            while stack.poll_ready().is_some() {}
            (received, stack.poll_at())
        };
        shared.turned.notify_all();
        if received == RX_BATCH {
            continue;
        }
        let wait = deadline.map(|t| t.saturating_duration_since(shared.clock.now()));
        let link_wait = link
            .poll_at()
            .map(|t| t.saturating_duration_since(StdInstant::now()));
        let timeout = [wait, link_wait].into_iter().flatten().min();
        sleep(&link, shared, timeout);
    }
    shared.turned.notify_all();
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

/// A listening port on a [`NetStack`].
pub struct TcpListener {
    net: NetStack,
    id: ListenerId,
}

impl TcpListener {
    /// Listens on `port` of the stack's address.
    pub fn bind(net: &NetStack, port: u16) -> io::Result<TcpListener> {
        let id = net
            .shared()
            .lock()
            .listen(port, BACKLOG)
            .map_err(io_error)?;
        Ok(TcpListener {
            net: net.clone(),
            id,
        })
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        loop {
            if let Some(id) = stack.accept(self.id) {
                let peer = stack.peer_addr(id).map_err(io_error)?;
                drop(stack);
                return Ok((TcpStream::new(&self.net, id), SocketAddr::V4(peer)));
            }
            stack = shared.wait(stack, None)?;
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(SocketAddrV4::new(
            self.net.addr(),
            self.id.port(),
        )))
    }
}

/// A TCP connection on a [`NetStack`]. Dropping it closes the connection
/// (FIN, or RST when received data was left unread, as Linux does).
pub struct TcpStream {
    net: NetStack,
    id: ConnId,
    read_shut: AtomicBool,
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
}

impl TcpStream {
    fn new(net: &NetStack, id: ConnId) -> TcpStream {
        TcpStream {
            net: net.clone(),
            id,
            read_shut: AtomicBool::new(false),
            read_timeout: Mutex::new(None),
            write_timeout: Mutex::new(None),
        }
    }

    /// Connects to `addr` (IPv4 only) from an ephemeral port, waiting for
    /// the handshake; `ConnectionRefused` on a RST or ICMP port
    /// unreachable, `TimedOut` when TCP gives up.
    pub fn connect(net: &NetStack, addr: SocketAddr) -> io::Result<TcpStream> {
        Self::connect_inner(net, addr, None)
    }

    /// [`TcpStream::connect`] that gives up after `timeout`.
    pub fn connect_timeout(
        net: &NetStack,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        Self::connect_inner(net, addr, Some(StdInstant::now() + timeout))
    }

    fn connect_inner(
        net: &NetStack,
        addr: SocketAddr,
        deadline: Option<StdInstant>,
    ) -> io::Result<TcpStream> {
        let SocketAddr::V4(remote) = addr else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "ustack speaks IPv4 only",
            ));
        };
        let shared = net.shared();
        let mut stack = shared.lock();
        let id = stack
            .connect(shared.clock.now(), remote, None)
            .map_err(io_error)?;
        shared.wake_driver();
        let outcome = loop {
            if let Ok(Some(e)) = stack.error(id) {
                break Err(io_error(e));
            }
            match stack.state(id) {
                Ok(State::SynSent) => {}
                Ok(_) => break Ok(()),
                Err(e) => break Err(io_error(e)),
            }
            stack = match shared.wait(stack, deadline) {
                Ok(s) => s,
                Err(e) => {
                    // The failed wait took the guard along: lock again to
                    // give the half-open connection up.
                    let _ = shared.lock().abort(id);
                    return Err(e);
                }
            };
        };
        if let Err(e) = outcome {
            let _ = stack.abort(id);
            return Err(e);
        }
        drop(stack);
        Ok(TcpStream::new(net, id))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let stack = self.net.shared().lock();
        stack
            .peer_addr(self.id)
            .map(SocketAddr::V4)
            .map_err(io_error)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let stack = self.net.shared().lock();
        stack
            .local_addr(self.id)
            .map(SocketAddr::V4)
            .map_err(io_error)
    }

    /// Shuts down reading, writing (a FIN after the queued data) or both.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut.store(true, Ordering::Relaxed);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let shared = self.net.shared();
            let now = shared.clock.now();
            shared.lock().shutdown(self.id, now).map_err(io_error)?;
            shared.wake_driver();
        }
        Ok(())
    }

    /// Sets how long a read waits (`None`: for ever); a read that times out
    /// fails with `WouldBlock`, as std's does on Unix. A zero duration is
    /// refused, as std refuses it.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.read_timeout, t)
    }

    /// Sets how long a write waits for send space (`None`: for ever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.write_timeout, t)
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let shared = self.net.shared();
        shared.lock().set_nodelay(self.id, on).map_err(io_error)?;
        shared.wake_driver();
        Ok(())
    }

    fn deadline(t: &Mutex<Option<Duration>>) -> Option<StdInstant> {
        let t = *t.lock().unwrap_or_else(|p| p.into_inner());
        t.map(|d| StdInstant::now() + d)
    }
}

fn set_timeout(slot: &Mutex<Option<Duration>>, t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a zero timeout",
        ));
    }
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = t;
    Ok(())
}

/// A timed-out wait reads as std's does on Unix: `WouldBlock`.
fn timeout_as_would_block(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        io::Error::new(io::ErrorKind::WouldBlock, "timed out")
    } else {
        e
    }
}

impl TcpStream {
    /// Runs `op` (a recv or a send) until it stops saying `WouldBlock`,
    /// waiting for the driver's turns in between, at most for `timeout`;
    /// then wakes the driver, which may owe a window update or new data.
    fn blocking(
        &self,
        timeout: &Mutex<Option<Duration>>,
        mut op: impl FnMut(&mut Stack) -> Result<usize, TcpError>,
    ) -> io::Result<usize> {
        let deadline = TcpStream::deadline(timeout);
        let shared = self.net.shared();
        let mut stack = shared.lock();
        loop {
            match op(&mut stack) {
                Ok(n) => {
                    drop(stack);
                    shared.wake_driver();
                    return Ok(n);
                }
                Err(TcpError::WouldBlock) => {
                    stack = shared
                        .wait(stack, deadline)
                        .map_err(timeout_as_would_block)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        }
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.read_shut.load(Ordering::Relaxed) {
            return Ok(0);
        }
        self.blocking(&self.read_timeout, |stack| stack.recv(self.id, buf))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.blocking(&self.write_timeout, |stack| stack.send(self.id, data))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        (&*self).write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let shared = self.net.shared();
        let now = shared.clock.now();
        let _ = shared.lock().close(self.id, now);
        shared.wake_driver();
    }
}

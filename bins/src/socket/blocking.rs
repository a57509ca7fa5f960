//! Blocking [`TcpListener`] and [`TcpStream`], shaped like `std::net`'s.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

use ustack_tcp::{
    CaptureFilter, CaptureRequest, ConnId, Filled, ListenerId, PostRefused, State, TcpError,
};

use super::{io_error, NetStack, BACKLOG};
use crate::Stack;

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

/// Any-address capture on a [`NetStack`]: connections to every destination
/// its filter takes (addresses that are not the stack's own, e.g. those
/// routed into its TUN device), answered one by one. The handshake waits
/// for the answer: [`PendingConnection::accept`] completes it from the
/// original destination, [`PendingConnection::refuse`] resets it, so a proxy
/// can first try the real destination. Dropping the listener turns capture
/// off and refuses what is still unanswered.
pub struct CaptureListener {
    net: NetStack,
}

impl CaptureListener {
    /// Turns capture on for the destinations `filter` takes, with room for
    /// 128 unanswered connections (the socket layer's `BACKLOG`). One
    /// capture per stack: a second replaces the first's filter.
    pub fn bind(net: &NetStack, filter: CaptureFilter) -> io::Result<CaptureListener> {
        net.shared().lock().capture(filter, BACKLOG);
        Ok(CaptureListener { net: net.clone() })
    }

    /// Waits for the next captured connection attempt.
    pub fn next(&self) -> io::Result<PendingConnection> {
        self.next_inner(None)
    }

    /// [`CaptureListener::next`] that gives up after `timeout` with `TimedOut`.
    pub fn next_timeout(&self, timeout: Duration) -> io::Result<PendingConnection> {
        self.next_inner(Some(StdInstant::now() + timeout))
    }

    fn next_inner(&self, deadline: Option<StdInstant>) -> io::Result<PendingConnection> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        loop {
            if let Some(req) = stack.capture_next() {
                return Ok(PendingConnection {
                    net: self.net.clone(),
                    req,
                    answered: false,
                });
            }
            stack = shared.wait(stack, deadline)?;
        }
    }

    /// Accepts the next captured connection whatever its destination; the
    /// stream's `local_addr` is that destination.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let pending = self.next()?;
        let peer = pending.peer_addr();
        Ok((pending.accept()?, peer))
    }
}

impl Drop for CaptureListener {
    fn drop(&mut self) {
        let shared = self.net.shared();
        shared.lock().stop_capture();
        shared.wake_driver();
    }
}

/// A captured connection attempt (a SYN) waiting for an answer. Dropping it
/// unanswered refuses it.
pub struct PendingConnection {
    net: NetStack,
    req: CaptureRequest,
    answered: bool,
}

impl PendingConnection {
    /// The original destination: the stream's `local_addr` once accepted.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.req.local)
    }

    /// The peer that is connecting.
    pub fn peer_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.req.remote)
    }

    /// Completes the handshake (SYN-ACK from the original destination) and
    /// waits for the peer's ACK; fails when the peer reset or vanished
    /// meanwhile (TCP's own SYN-ACK retransmissions bound the wait).
    pub fn accept(mut self) -> io::Result<TcpStream> {
        self.answered = true;
        let shared = self.net.shared();
        let mut stack = shared.lock();
        let id = stack
            .capture_accept(shared.clock.now(), self.req)
            .map_err(io_error)?;
        shared.wake_driver();
        loop {
            if let Ok(Some(e)) = stack.error(id) {
                let _ = stack.abort(id);
                return Err(io_error(e));
            }
            match stack.state(id) {
                Ok(State::SynReceived) => {}
                Ok(_) => break,
                Err(e) => return Err(io_error(e)),
            }
            stack = shared.wait(stack, None)?;
        }
        drop(stack);
        Ok(TcpStream::new(&self.net, id))
    }

    /// Refuses the connection: the peer gets a RST, as from a closed port
    /// ("connection refused").
    pub fn refuse(mut self) {
        self.refuse_inner();
    }

    fn refuse_inner(&mut self) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let shared = self.net.shared();
        shared.lock().capture_refuse(self.req);
        shared.wake_driver();
    }
}

impl Drop for PendingConnection {
    fn drop(&mut self) {
        self.refuse_inner();
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

    /// Resets the connection now (RST to the peer), dropping whatever is
    /// queued either way; later calls fail with `NotConnected`. What
    /// `SO_LINGER` 0 and a close do on a kernel socket.
    pub fn abort(&self) -> io::Result<()> {
        let shared = self.net.shared();
        shared.lock().abort(self.id).map_err(io_error)?;
        shared.wake_driver();
        Ok(())
    }

    /// Posts `buf` for the connection's next data: it is copied straight
    /// from the device's packet into it, skipping the stack's receive ring
    /// (one copy of each byte fewer than `read`); [`TcpStream::take_recv`]
    /// hands it back. At most [`ustack_tcp::MAX_POSTED`] at a time; while
    /// any is posted, `read` fails with `InvalidInput`. A refused buffer
    /// comes back in the error.
    pub fn post_recv(&self, buf: Box<[u8]>) -> Result<(), PostRefused> {
        let shared = self.net.shared();
        let r = shared.lock().post_recv(self.id, buf);
        // Bytes moved out of the ring may open the window.
        shared.wake_driver();
        r
    }

    /// Waits (at most the read timeout) for the oldest posted buffer to
    /// hold data and hands it back: `buf[..len]`, possibly short of full.
    /// `len == 0` is end of stream (each posted buffer comes back so, then
    /// an empty one).
    pub fn take_recv(&self) -> io::Result<Filled> {
        self.blocking(&self.read_timeout, |stack| stack.take_recv(self.id))
    }

    /// Takes back the oldest posted buffer with whatever it holds
    /// (`len` says how much), without waiting; `None` once none is posted,
    /// after which `read` works again.
    pub fn unpost_recv(&self) -> io::Result<Option<Filled>> {
        let shared = self.net.shared();
        let r = shared.lock().unpost_recv(self.id).map_err(io_error);
        r
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
    fn blocking<T>(
        &self,
        timeout: &Mutex<Option<Duration>>,
        mut op: impl FnMut(&mut Stack) -> Result<T, TcpError>,
    ) -> io::Result<T> {
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

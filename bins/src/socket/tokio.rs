//! Async [`TcpListener`] and [`TcpStream`] for tokio (cargo feature
//! `tokio`), shaped like `tokio::net`'s: `accept().await`,
//! `connect().await`, and streams that implement [`AsyncRead`] and
//! [`AsyncWrite`] (`Send + Unpin`), so `tokio::io::copy_bidirectional`,
//! `tokio::io::split` and hyper (through `hyper_util::rt::TokioIo`) take them.
//!
//! They need no runtime of their own and work on any tokio flavour: the
//! stack keeps running on the [`NetStack`]'s driver thread, and a task that
//! has to wait leaves its waker with the stack, which wakes it when TCP
//! reports data, send space or a state change for that connection (see
//! `wakers`): nothing polls on a timer.
//!
//! What a call gives TCP to send (data, a window update, a FIN) leaves at
//! once from the calling thread when the driver sleeps, and with the
//! driver's next turn when it is awake.
//!
//! Backpressure both ways: a write that finds no send space is `Pending`
//! until ACKs free some; reads copy straight out of TCP's receive buffer,
//! so what the application has not read yet closes the advertised window.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ustack_tcp::{ConnId, Filled, ListenerId, PostRefused, State, TcpError};

use super::wakers::Dir;
use super::{io_error, NetStack, BACKLOG};
use crate::Stack;

/// "The stack has stopped", for calls that would otherwise wait for ever.
fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stack has stopped")
}

/// A listening port on a [`NetStack`], accepting with `.await`. Dropping it
/// closes the port (new SYNs get a RST) and resets connections not yet
/// accepted, as Linux does.
pub struct TcpListener {
    net: NetStack,
    id: ListenerId,
}

impl TcpListener {
    /// Listens on `port` of the stack's address.
    pub fn bind(net: &NetStack, port: u16) -> io::Result<TcpListener> {
        let shared = net.shared();
        let mut stack = shared.lock();
        let id = stack.listen(port, BACKLOG).map_err(io_error)?;
        shared.wakers(&mut stack).add_listener(id);
        Ok(TcpListener {
            net: net.clone(),
            id,
        })
    }

    /// Waits for the next connection; gives it and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for the next connection; `Pending` registers `cx`'s waker.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        let mut wakers = shared.wakers(&mut stack);
        let id = match wakers.take_accepted(self.id) {
            Some(id) => Some(id),
            None => stack.accept(self.id),
        };
        let Some(id) = id else {
            if shared.stop.load(Ordering::Relaxed) {
                return Poll::Ready(Err(stopped()));
            }
            wakers.register_accept(self.id, cx.waker());
            return Poll::Pending;
        };
        drop(wakers);
        let peer = stack.peer_addr(id);
        drop(stack);
        // Made before the error check, so that its drop closes `id` then.
        let stream = TcpStream::new(&self.net, id);
        Poll::Ready(peer.map(|p| (stream, SocketAddr::V4(p))).map_err(io_error))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(SocketAddrV4::new(
            self.net.addr(),
            self.id.port(),
        )))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        let taken = shared.wakers(&mut stack).remove_listener(self.id);
        if let Some(id) = taken {
            let _ = stack.abort(id);
        }
        stack.unlisten(self.id);
        shared.transmit(&mut stack);
    }
}

/// A TCP connection on a [`NetStack`] for async code. Dropping it closes
/// the connection: a FIN after the queued data, or a RST when received data
/// was left unread (as Linux does).
pub struct TcpStream {
    net: NetStack,
    id: ConnId,
}

impl TcpStream {
    fn new(net: &NetStack, id: ConnId) -> TcpStream {
        TcpStream {
            net: net.clone(),
            id,
        }
    }

    /// Connects to `addr` (IPv4 only) from an ephemeral port and waits for
    /// the handshake: `ConnectionRefused` on a RST or ICMP port
    /// unreachable, `TimedOut` when TCP gives up (wrap it in
    /// `tokio::time::timeout` for a shorter limit; dropping the future
    /// abandons the attempt).
    pub async fn connect(net: &NetStack, addr: SocketAddr) -> io::Result<TcpStream> {
        let SocketAddr::V4(remote) = addr else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "ustack speaks IPv4 only",
            ));
        };
        let shared = net.shared();
        let id = {
            let mut stack = shared.lock();
            let id = stack
                .connect(shared.clock.now(), remote, None)
                .map_err(io_error)?;
            shared.transmit(&mut stack);
            id
        };
        // From here on, dropping `stream` (an error, or the future dropped
        // while waiting) gives the half-open connection up.
        let stream = TcpStream::new(net, id);
        poll_fn(|cx| stream.poll_established(cx)).await?;
        Ok(stream)
    }

    fn poll_established(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        let outcome = match (stack.error(self.id), stack.state(self.id)) {
            (Ok(Some(e)), _) | (_, Err(e)) => Err(io_error(e)),
            (_, Ok(State::SynSent)) => {
                return self.park(&mut stack, Dir::Write, cx);
            }
            (_, Ok(_)) => Ok(()),
        };
        if outcome.is_err() {
            // Not a close: a refused connection owes the peer nothing.
            let _ = stack.abort(self.id);
        }
        Poll::Ready(outcome)
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

    /// Posts `buf` for the connection's next data: it is copied straight
    /// from the device's packet into it, skipping the stack's receive ring
    /// (one copy of each byte fewer than `read`); [`TcpStream::take_recv`]
    /// hands it back. At most [`ustack_tcp::MAX_POSTED`] at a time; while
    /// any is posted, reads fail with `InvalidInput`. A refused buffer
    /// comes back in the error.
    pub fn post_recv(&self, buf: Box<[u8]>) -> Result<(), PostRefused> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        let r = stack.post_recv(self.id, buf);
        // Bytes moved out of the ring may open the window.
        shared.transmit(&mut stack);
        r
    }

    /// Waits for the oldest posted buffer to hold data and hands it back:
    /// `buf[..len]`, possibly short of full. `len == 0` is end of stream
    /// (each posted buffer comes back so, then an empty one).
    pub async fn take_recv(&self) -> io::Result<Filled> {
        poll_fn(|cx| self.poll_take_recv(cx)).await
    }

    /// [`TcpStream::take_recv`] as a poll function.
    pub fn poll_take_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<Filled>> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        match stack.take_recv(self.id) {
            Ok(f) => Poll::Ready(Ok(f)),
            Err(TcpError::WouldBlock) => self.park(&mut stack, Dir::Read, cx),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }

    /// Takes back the oldest posted buffer with whatever it holds (`len`
    /// says how much), without waiting; `None` once none is posted, after
    /// which reads work again.
    pub fn unpost_recv(&self) -> io::Result<Option<Filled>> {
        let stack = &mut self.net.shared().lock();
        stack.unpost_recv(self.id).map_err(io_error)
    }

    /// Waits for the stack's next event in `dir` on this connection, or
    /// fails at once when the stack has stopped.
    fn park<T>(
        &self,
        stack: &mut MutexGuard<'_, Stack>,
        dir: Dir,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        let shared = self.net.shared();
        if shared.stop.load(Ordering::Relaxed) {
            return Poll::Ready(Err(stopped()));
        }
        shared.wakers(stack).register(self.id, dir, cx.waker());
        Poll::Pending
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let shared = self.net.shared();
        let mut stack = shared.lock();
        stack.set_nodelay(self.id, on).map_err(io_error)?;
        shared.transmit(&mut stack);
        Ok(())
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let shared = self.net.shared();
        let mut stack = shared.lock();
        // The received bytes may wrap around TCP's ring: take both runs,
        // copied straight into the caller's (possibly uninitialised) buffer.
        let mut total = 0;
        let mut outcome = Ok(());
        for _ in 0..2 {
            let r = stack.recv_with(self.id, |data| {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                n
            });
            match r {
                Ok(n) if n > 0 && buf.remaining() > 0 => total += n,
                Ok(n) => {
                    total += n;
                    break;
                }
                Err(TcpError::WouldBlock) if total > 0 => break,
                Err(TcpError::WouldBlock) => {
                    return self.park(&mut stack, Dir::Read, cx);
                }
                // The error shows on the next read.
                Err(_) if total > 0 => break,
                Err(e) => {
                    outcome = Err(io_error(e));
                    break;
                }
            }
        }
        if total > 0 {
            // The window may have opened enough for an update.
            shared.transmit(&mut stack);
        }
        Poll::Ready(outcome)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = self.net.shared();
        let mut stack = shared.lock();
        match stack.send(self.id, data) {
            Ok(n) => {
                shared.transmit(&mut stack);
                Poll::Ready(Ok(n))
            }
            Err(TcpError::WouldBlock) => self.park(&mut stack, Dir::Write, cx),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Everything written is already TCP's to send.
        Poll::Ready(Ok(()))
    }

    /// Half-close: a FIN follows the queued data; reading goes on.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = self.net.shared();
        let now = shared.clock.now();
        let mut stack = shared.lock();
        stack.shutdown(self.id, now).map_err(io_error)?;
        shared.transmit(&mut stack);
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let shared = self.net.shared();
        let now = shared.clock.now();
        let mut stack = shared.lock();
        shared.wakers(&mut stack).remove(self.id);
        let _ = stack.close(self.id, now);
        shared.transmit(&mut stack);
    }
}

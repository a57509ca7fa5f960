//! One relayed flow: the kernel connection to the original destination
//! (direct, or through SOCKS5), made before the captured client is answered,
//! then the bytes both ways on two threads, half-close passed through.
//!
//! Order (RFC 9293 terms): the client's SYN waits in the capture while the
//! proxy connects out; the client gets its SYN-ACK only once the far side
//! accepted, and a RST (connection refused) when the far side refused, was
//! unreachable or did not answer within the connect timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream as KernelStream};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tracing::debug;

use super::socks5::{self, Socks5Config, Socks5Error};
use crate::socket::{PendingConnection, TcpStream};

/// How the proxy reaches destinations.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Firewall mark of every outgoing socket: its packets bypass the
    /// routing that leads into the TUN device.
    pub mark: u32,
    /// How long a connect to the destination (or to the SOCKS5 server, and
    /// its handshake) may take before the client is refused.
    pub connect_timeout: Duration,
    /// `Some`: every connection goes through this SOCKS5 server.
    pub socks5: Option<Socks5Config>,
}

/// Why a flow could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The kernel connect (or a socket option on it) failed or timed out.
    #[error("connect to {addr}: {err}")]
    Connect {
        /// Where we connected: the destination, or the SOCKS5 server.
        addr: SocketAddr,
        /// What the kernel said.
        err: io::Error,
    },
    /// The SOCKS5 server failed the handshake or the CONNECT.
    #[error(transparent)]
    Socks5(#[from] Socks5Error),
}

/// Bytes read per system call.
const CHUNK: usize = 256 * 1024;
/// Stack of each relay thread (its buffer is on the heap).
pub const THREAD_STACK: usize = 256 * 1024;

impl Dialer {
    /// A marked kernel connection to `dst`, through SOCKS5 when configured.
    pub fn dial(&self, dst: SocketAddrV4) -> Result<KernelStream, DialError> {
        let first = match &self.socks5 {
            Some(s) => s.server,
            None => SocketAddr::V4(dst),
        };
        let mut stream = self.connect_marked(first)?;
        if let Some(s) = &self.socks5 {
            stream
                .set_read_timeout(Some(self.connect_timeout))
                .and_then(|()| stream.set_write_timeout(Some(self.connect_timeout)))
                .map_err(|err| DialError::Connect { addr: first, err })?;
            socks5::connect(&mut stream, s, dst)?;
            stream
                .set_read_timeout(None)
                .and_then(|()| stream.set_write_timeout(None))
                .map_err(|err| DialError::Connect { addr: first, err })?;
        }
        Ok(stream)
    }

    fn connect_marked(&self, addr: SocketAddr) -> Result<KernelStream, DialError> {
        let fail = |err| DialError::Connect { addr, err };
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(fail)?;
        s.set_mark(self.mark).map_err(fail)?;
        s.connect_timeout(&addr.into(), self.connect_timeout)
            .map_err(fail)?;
        s.set_tcp_nodelay(true).map_err(fail)?;
        Ok(s.into())
    }
}

/// Serves one captured connection: dials its original destination, answers
/// the client (accept on success, RST on failure), relays until both
/// directions are closed. Returns the bytes relayed (to the destination,
/// to the client).
pub fn serve(pending: PendingConnection, dialer: &Dialer) -> io::Result<(u64, u64)> {
    let SocketAddr::V4(dst) = pending.local_addr() else {
        pending.refuse();
        return Ok((0, 0));
    };
    let peer = pending.peer_addr();
    let out = match dialer.dial(dst) {
        Ok(s) => s,
        Err(e) => {
            debug!(%peer, %dst, %e, "refusing the client");
            pending.refuse();
            return Ok((0, 0));
        }
    };
    let client = pending.accept()?;
    // Each side's own stack already applied Nagle to what it sent: the
    // relay passes on what it reads at once, as it does towards the
    // destination. With Nagle here, a reply's second small piece waited
    // for the client's ACK of the first, which Linux delays up to 40 ms.
    client.set_nodelay(true)?;
    relay(Arc::new(client), out)
}

/// Copies both ways until each direction has seen its EOF (passed on as a
/// shutdown of writing on the other side) or an error (passed on as a
/// reset).
pub fn relay(client: Arc<TcpStream>, out: KernelStream) -> io::Result<(u64, u64)> {
    let out_r = out.try_clone()?;
    let up = {
        let client = Arc::clone(&client);
        std::thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || upstream(&client, out))?
    };
    let down = downstream(&out_r, &client);
    let up = up.join().unwrap_or(0);
    Ok((up, down))
}

/// Client to destination.
fn upstream(client: &TcpStream, out: KernelStream) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match (&*client).read(&mut buf) {
            Ok(0) => {
                let _ = out.shutdown(Shutdown::Write);
                return total;
            }
            Ok(n) => {
                if (&out).write_all(&buf[..n]).is_err() {
                    // The destination is gone: so is the client's flow.
                    let _ = client.abort();
                    return total;
                }
                total += n as u64;
            }
            Err(_) => {
                reset_kernel(&out);
                return total;
            }
        }
    }
}

/// Destination to client.
fn downstream(out: &KernelStream, client: &TcpStream) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match (&*out).read(&mut buf) {
            Ok(0) => {
                let _ = client.shutdown(Shutdown::Write);
                return total;
            }
            Ok(n) => {
                if (&*client).write_all(&buf[..n]).is_err() {
                    reset_kernel(out);
                    return total;
                }
                total += n as u64;
            }
            Err(_) => {
                let _ = client.abort();
                return total;
            }
        }
    }
}

/// Resets the kernel connection (a RST once the last handle closes) and
/// wakes the other direction's thread.
fn reset_kernel(out: &KernelStream) {
    let _ = SockRef::from(out).set_linger(Some(Duration::ZERO));
    let _ = out.shutdown(Shutdown::Both);
}

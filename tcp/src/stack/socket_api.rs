//! The socket API of [`Tcp`]: listeners, connections, reads and writes,
//! closing, and what an application may ask of a connection.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use ustack_ipv4::icmp::IcmpError;

use super::{conn_span, ConnId, ListenOptions, Listener, ListenerId, Owner, Tcp, MAX_PENDING_RST};
use crate::conn::{Filled, PostRefused, Refusal, State, Tcb};
use crate::error::TcpError;
use crate::time::Instant;

impl Tcp {
    /// Opens a listening port with an accept queue of `backlog` connections
    /// (counting those still in the handshake).
    /// SYN cookies are used when the backlog or the table is full
    /// ([`SynCookies::Auto`](super::SynCookies::Auto)); see [`listen_with`](Self::listen_with).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, TcpError> {
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        self.listen_with(port, opts)
    }

    /// Opens a listening port with the given backlog and SYN cookie policy
    /// (RFC 4987 §3.6; the `cookies` module of the stack says when cookies
    /// are sent and checked, and what happens when the table is full).
    pub fn listen_with(&mut self, port: u16, opts: ListenOptions) -> Result<ListenerId, TcpError> {
        if self.listeners.contains_key(&port) {
            return Err(TcpError::AddrInUse(SocketAddrV4::new(self.addr, port)));
        }
        self.listeners.insert(
            port,
            Listener {
                backlog: opts.backlog.max(1),
                pending: 0,
                queue: VecDeque::new(),
                syn_cookies: opts.syn_cookies,
                cookie_sent_at: None,
            },
        );
        Ok(ListenerId(port))
    }

    /// Closes a listener: its port answers new SYNs with a RST from now on.
    /// Connections it had not handed out yet (in the handshake or waiting in
    /// the accept queue) are reset, as Linux does when a listening socket
    /// closes; those already accepted are not affected. Returns how many
    /// were reset; an unknown (already closed) listener is a no-op giving 0.
    pub fn unlisten(&mut self, l: ListenerId) -> usize {
        if self.listeners.remove(&l.0).is_none() {
            return 0;
        }
        let owned: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.entry
                    .as_ref()
                    .is_some_and(|e| matches!(e.owner, Owner::Listener { port, .. } if port == l.0))
            })
            .map(|(i, _)| i as u32)
            .collect();
        for &idx in &owned {
            self.abort_idx_unbounded(idx);
        }
        owned.len()
    }

    /// Resets every connection in the table at once, whoever holds it
    /// (application handles, accept queues, orphans left by
    /// [`close`](Self::close)): each synchronized one sends the peer a RST on
    /// the next poll (RFC 9293 §3.10.5 ABORT; none for TIME-WAIT, CLOSING or
    /// LAST-ACK), and all are freed, so every [`ConnId`] becomes invalid.
    /// Listeners stay open. Returns how many connections were reset (a RST
    /// queued for the peer); those that owed nothing, such as TIME-WAIT, are
    /// dropped silently and not counted.
    /// For a process that is about to exit: poll once more afterwards so
    /// the RSTs actually leave.
    pub fn abort_all(&mut self) -> usize {
        let all: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(i, _)| i as u32)
            .collect();
        let queued = self.rst_queue.len();
        for &idx in &all {
            self.abort_idx_unbounded(idx);
        }
        let reset = self.rst_queue.len() - queued;
        for l in self.listeners.values_mut() {
            // Everything queued there was just reset.
            l.queue.clear();
            l.pending = 0;
        }
        reset
    }

    /// Takes the next established connection from a listener's queue.
    pub fn accept(&mut self, l: ListenerId) -> Option<ConnId> {
        loop {
            let listener = self.listeners.get_mut(&l.0)?;
            let id = listener.queue.pop_front()?;
            listener.pending = listener.pending.saturating_sub(1);
            if let Some(e) = self.entry_by_id_mut(id) {
                e.owner = Owner::User;
                return Some(id);
            }
        }
    }

    /// Active open towards `remote`. The SYN goes out on the next `poll`.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: Option<u16>,
    ) -> Result<ConnId, TcpError> {
        if self.live >= self.cfg.max_connections {
            return Err(TcpError::TooManyConnections(self.cfg.max_connections));
        }
        let port = match local_port {
            Some(p) => p,
            None => self.pick_ephemeral(remote)?,
        };
        let local = SocketAddrV4::new(self.addr, port);
        if self.table.contains_key(&(local, remote)) || self.time_wait.contains(&(local, remote)) {
            return Err(TcpError::AddrInUse(local));
        }
        let iss = self.isn.isn(local, remote, now);
        let span = conn_span(local, remote);
        let ts_offset = self.isn.ts_offset(local, remote);
        let tcb = span.in_scope(|| Tcb::connect(&self.cfg.tcp, local, remote, iss, ts_offset));
        let idx = self.insert(tcb, Owner::User, span);
        self.after_event(idx, now, true);
        Ok(self.id_of(idx))
    }

    fn pick_ephemeral(&mut self, remote: SocketAddrV4) -> Result<u16, TcpError> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let start = (self.rng.next_u64() % u64::from(span)) as u32;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let local = SocketAddrV4::new(self.addr, port);
            // RFC 6056 §2.2: never a port whose 4-tuple is still in use,
            // TIME-WAIT included.
            if !self.table.contains_key(&(local, remote))
                && !self.time_wait.contains(&(local, remote))
                && !self.listeners.contains_key(&port)
            {
                return Ok(port);
            }
        }
        Err(TcpError::NoEphemeralPort(remote))
    }

    /// Reads received data. `Ok(0)` is end of stream (the peer sent FIN).
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let r = self
            .entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .recv(buf);
        self.enqueue_tx(idx);
        r
    }

    /// Posts a buffer to receive into: the connection's next in-order data
    /// is copied straight from the device's packet into it, skipping the
    /// receive ring (one copy of each byte instead of two, where `recv`
    /// copies out of the ring again). Buffers fill in the order posted, at
    /// most [`MAX_POSTED`](crate::MAX_POSTED) at a time; while any is
    /// posted, `recv` and `recv_with` return [`TcpError::BuffersPosted`].
    pub fn post_recv(&mut self, id: ConnId, buf: Box<[u8]>) -> Result<(), PostRefused> {
        let idx = match self.user_idx(id) {
            Ok(i) => i,
            Err(e) => {
                return Err(PostRefused {
                    buf,
                    reason: Refusal::Error(e),
                })
            }
        };
        let Some(e) = self.entry_mut(idx) else {
            return Err(PostRefused {
                buf,
                reason: Refusal::Error(TcpError::InvalidHandle),
            });
        };
        let r = e.tcb.post_recv(buf);
        // Bytes moved out of the ring may open the window.
        self.enqueue_tx(idx);
        r
    }

    /// Takes back the oldest posted buffer once it holds data, possibly
    /// less than it could (a short read). `len == 0` is end of stream;
    /// [`TcpError::WouldBlock`] means the buffers are still waiting.
    pub fn take_recv(&mut self, id: ConnId) -> Result<Filled, TcpError> {
        let idx = self.user_idx(id)?;
        self.entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .take_recv()
    }

    /// Takes back the oldest posted buffer whether it holds data or not
    /// (`Filled::len` says how much; none is lost), until none is left:
    /// after that, `recv` works again. `Ok(None)` when none is posted.
    pub fn unpost_recv(&mut self, id: ConnId) -> Result<Option<Filled>, TcpError> {
        let idx = self.user_idx(id)?;
        let e = self.entry_mut(idx).ok_or(TcpError::InvalidHandle)?;
        Ok(e.tcb.unpost_recv())
    }

    /// Zero-copy read: `f` sees the next contiguous received bytes in place and
    /// returns how many it consumed. `Ok(0)` with [`Tcp::at_eof`] is end of stream.
    pub fn recv_with(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let r = self
            .entry_mut(idx)
            .ok_or(TcpError::InvalidHandle)?
            .tcb
            .recv_with(f);
        self.enqueue_tx(idx);
        r
    }

    /// Queues data for sending; returns how much was taken.
    ///
    /// Takes `min(data.len(), send_space())` bytes: the send ring's free
    /// space may wrap around its end, so the copy goes in up to two pieces.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        let first = self.send_with(id, |space| copy_into(space, data))?;
        match data.get(first..).filter(|rest| !rest.is_empty()) {
            Some(rest) => match self.send_with(id, |space| copy_into(space, rest)) {
                Ok(more) => Ok(first + more),
                Err(TcpError::WouldBlock) => Ok(first),
                Err(e) => Err(e),
            },
            None => Ok(first),
        }
    }

    /// Zero-copy send: `f` writes into the send queue's next contiguous free
    /// region and returns how many bytes it wrote. That region ends at the
    /// ring's wrap point, so it may be shorter than [`Tcp::send_space`];
    /// call again for the rest.
    pub fn send_with(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let idx = self.user_idx(id)?;
        let tcb = &mut self
            .slots
            .get_mut(idx as usize)
            .and_then(|s| s.entry.as_mut())
            .ok_or(TcpError::InvalidHandle)?
            .tcb;
        tcb.prepare_send(&self.cfg.tcp, &mut self.pool);
        let r = tcb.send_with(f);
        if r.is_err() {
            // Storage taken for nothing goes straight back.
            tcb.release_idle(&self.cfg.tcp, &mut self.pool);
            let refused = r == Err(TcpError::WouldBlock) && tcb.send_queue_len() == 0;
            if refused
                && self.pool.under_pressure()
                && self.mem_waiters.len() < self.cfg.max_connections
            {
                self.mem_waiters.push(id);
            }
        }
        if r.is_ok() {
            self.enqueue_tx(idx);
        }
        r
    }

    /// The connection's current (send, receive) buffer sizes: what the
    /// send queue may hold and the most receive window it may offer, as
    /// grown by auto-tuning. Storage is held only while data is queued.
    pub fn buffer_sizes(&self, id: ConnId) -> Result<(usize, usize), TcpError> {
        let tcb = &self.user_entry(id)?.tcb;
        Ok((tcb.send_buffer_size(), tcb.recv_buffer_size()))
    }

    /// Bytes of buffer storage the connection holds now (0 when idle).
    pub fn connection_buffer_memory(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.buffer_bytes())
    }

    /// Free space in the send queue.
    pub fn send_space(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.send_space())
    }

    /// Turns Nagle's algorithm off (`true`: small writes leave at once) or
    /// back on for one connection.
    pub fn set_nodelay(&mut self, id: ConnId, on: bool) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        if let Some(e) = self.entry_mut(idx) {
            e.tcb.set_nodelay(on);
        }
        self.enqueue_tx(idx);
        Ok(())
    }

    /// Half-close: a FIN follows the queued data; receiving goes on.
    pub fn shutdown(&mut self, id: ConnId, now: Instant) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        if let Some(e) = self.entry_mut(idx) {
            let _span = e.span.clone().entered();
            e.tcb.shutdown();
        }
        self.after_event(idx, now, true);
        Ok(())
    }

    /// Releases the handle. Queued data is still delivered and the connection
    /// closes gracefully in the background — unless received data was left
    /// unread, in which case the peer gets a RST (RFC 9293 §3.10.4, as Linux does),
    /// so it learns that the data was lost.
    pub fn close(&mut self, id: ConnId, now: Instant) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        let Some(e) = self.entry_mut(idx) else {
            return Err(TcpError::InvalidHandle);
        };
        e.owner = Owner::Orphan;
        let _span = e.span.clone().entered();
        let unread = e.tcb.recv_queue_len() > 0;
        e.tcb.drop_posted();
        if unread {
            self.abort_idx(idx);
        } else {
            e.tcb.shutdown();
            self.after_event(idx, now, true);
        }
        Ok(())
    }

    /// Resets the connection (RST to the peer) and releases the handle.
    pub fn abort(&mut self, id: ConnId) -> Result<(), TcpError> {
        let idx = self.user_idx(id)?;
        self.abort_idx(idx);
        Ok(())
    }

    pub(super) fn abort_idx(&mut self, idx: u32) {
        self.abort_with_limit(idx, MAX_PENDING_RST);
    }

    /// [`abort_idx`](Self::abort_idx) for a deliberate mass reset: the RST
    /// queue may grow past [`MAX_PENDING_RST`] (at most one RST per
    /// connection, so by the connection table's size), so no peer is missed.
    fn abort_idx_unbounded(&mut self, idx: u32) {
        self.abort_with_limit(idx, usize::MAX);
    }

    fn abort_with_limit(&mut self, idx: u32, limit: usize) {
        let Some(e) = self.entry_mut(idx) else { return };
        let (local, remote) = (e.tcb.local(), e.tcb.remote());
        let _span = e.span.clone().entered();
        if let Some(rst) = e.tcb.abort() {
            if self.rst_queue.len() < limit {
                self.rst_queue.push_back((local, remote, rst));
            }
        }
        self.free_slot(idx);
    }

    /// The connection's RFC 9293 state.
    pub fn state(&self, id: ConnId) -> Result<State, TcpError> {
        Ok(self.user_entry(id)?.tcb.state())
    }

    /// The connection's sticky error, if it was reset or timed out.
    pub fn error(&self, id: ConnId) -> Result<Option<TcpError>, TcpError> {
        Ok(self.user_entry(id)?.tcb.error())
    }

    /// This end's address and port.
    pub fn local_addr(&self, id: ConnId) -> Result<SocketAddrV4, TcpError> {
        Ok(self.user_entry(id)?.tcb.local())
    }

    /// The peer's address and port.
    pub fn peer_addr(&self, id: ConnId) -> Result<SocketAddrV4, TcpError> {
        Ok(self.user_entry(id)?.tcb.remote())
    }

    /// Bytes sent but not yet acknowledged plus bytes not yet sent.
    pub fn send_queue_len(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.send_queue_len())
    }

    /// Bytes received in order and not yet read.
    pub fn recv_queue_len(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.recv_queue_len())
    }

    /// The last soft ICMP error (host or network unreachable, TTL exceeded,
    /// ...) since the connection last made progress: what to tell a user
    /// whose connect is about to be given up (RFC 1122 §4.2.3.9). Such
    /// errors never end a connection; if TCP itself gives up, the error is
    /// [`TcpError::Unreachable`] with the same cause.
    pub fn soft_error(&self, id: ConnId) -> Result<Option<IcmpError>, TcpError> {
        Ok(self.user_entry(id)?.tcb.soft_error())
    }

    /// The connection's path MTU: the interface MTU until an ICMP
    /// Fragmentation Needed lowered it (RFC 1191; never below
    /// [`MIN_PATH_MTU`](crate::MIN_PATH_MTU)).
    pub fn path_mtu(&self, id: ConnId) -> Result<usize, TcpError> {
        Ok(self.user_entry(id)?.tcb.path_mtu())
    }

    /// True when the peer's FIN arrived and every byte before it was read.
    pub fn at_eof(&self, id: ConnId) -> Result<bool, TcpError> {
        Ok(self.user_entry(id)?.tcb.at_eof())
    }
}

/// Copies as much of `from` as fits into `space`; returns how much.
fn copy_into(space: &mut [u8], from: &[u8]) -> usize {
    let n = space.len().min(from.len());
    space[..n].copy_from_slice(&from[..n]);
    n
}

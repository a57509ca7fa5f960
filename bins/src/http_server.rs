//! Glue between the TCP socket API and the sans-I/O HTTP responder: one
//! `HttpConn` per accepted connection, fed and drained zero-copy from the
//! connection's buffers.

use std::collections::HashMap;
use std::time::Duration;

use tracing::debug;
use ustack_http::{HttpConfig, HttpConn, Stats};
use ustack_tcp::{ConnId, Instant, ListenerId, State, Tcp, TcpError};

use crate::event_loop::{App, Control, RuntimeError};

/// The grace period of a shutdown unless [`HttpServer::set_grace`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The HTTP server app: accepts on one port and answers each connection
/// with an [`HttpConn`].
pub struct HttpServer {
    /// None once [`App::on_stop`] closed it.
    listener: Option<ListenerId>,
    /// How long a stop request lets responses in flight finish.
    grace: Duration,
    config: HttpConfig,
    conns: HashMap<ConnId, Conn>,
    stats: Stats,
}

struct Conn {
    http: HttpConn,
    eof_seen: bool,
}

impl HttpServer {
    /// Listens on `port` with an accept queue of `backlog` connections.
    pub fn new(stack: &mut Tcp, port: u16, backlog: usize) -> Result<HttpServer, TcpError> {
        Ok(HttpServer {
            listener: Some(stack.listen(port, backlog)?),
            grace: DEFAULT_GRACE,
            config: HttpConfig::default(),
            conns: HashMap::new(),
            stats: Stats::default(),
        })
    }

    /// Sets how long, after a stop request, responses in flight may take to
    /// finish before their connections are reset (default [`DEFAULT_GRACE`];
    /// zero resets at once).
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Connections being served (accepted and not yet closed).
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// What the connections closed so far have answered.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn drive(&mut self, stack: &mut Tcp, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Bounded: each round either moves bytes or leaves the loop.
        for _ in 0..64 {
            let mut progress = false;
            if conn.http.wants_recv() {
                match stack.recv_with(id, |data| conn.http.on_recv(data)) {
                    Ok(n) => progress |= n > 0,
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => {
                        debug!(?id, %e, "http connection ended");
                        return self.finish(stack, id, now);
                    }
                }
            }
            if !conn.eof_seen && stack.at_eof(id).unwrap_or(true) {
                conn.eof_seen = true;
                conn.http.on_eof();
                progress = true;
            }
            match stack.send_with(id, |space| conn.http.poll_send(space)) {
                Ok(n) => progress |= n > 0,
                Err(TcpError::WouldBlock) => {}
                Err(e) => {
                    debug!(?id, %e, "http connection ended");
                    return self.finish(stack, id, now);
                }
            }
            if conn.http.wants_close() {
                return self.finish(stack, id, now);
            }
            if !progress {
                break;
            }
        }
        if matches!(stack.state(id), Ok(State::Closed) | Err(_)) {
            self.finish(stack, id, now);
        }
    }

    fn finish(&mut self, stack: &mut Tcp, id: ConnId, now: Instant) {
        if let Some(c) = self.conns.remove(&id) {
            self.stats.merge(c.http.stats());
        }
        let _ = stack.close(id, now);
    }
}

impl App for HttpServer {
    fn on_turn(&mut self, stack: &mut Tcp, now: Instant) -> Result<Control, RuntimeError> {
        while let Some(id) = self.listener.and_then(|l| stack.accept(l)) {
            self.conns.insert(
                id,
                Conn {
                    http: HttpConn::new(&self.config),
                    eof_seen: false,
                },
            );
            self.drive(stack, id, now);
        }
        while let Some(id) = stack.poll_ready() {
            self.drive(stack, id, now);
        }
        Ok(Control::Continue)
    }

    /// Closes the listener (new SYNs get a RST, unaccepted connections are
    /// reset), lets each connection finish the request under way and closes
    /// idle keep-alive ones now; returns the grace period.
    fn on_stop(&mut self, stack: &mut Tcp, now: Instant) -> Duration {
        if let Some(l) = self.listener.take() {
            let reset = stack.unlisten(l);
            debug!(reset, "listener closed");
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.http.close_after_current();
            }
            self.drive(stack, id, now);
        }
        self.grace
    }
}

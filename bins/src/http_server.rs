//! Glue between the TCP socket API and the sans-I/O HTTP responder: one
//! `HttpConn` per accepted connection, fed and drained zero-copy from the
//! connection's buffers.
//!
//! Each connection's header and idle timeouts ([`HttpConfig`]) run on a
//! heap of deadlines that [`App::poll_at`] reports to the event loop; a
//! connection that times out is reset, not closed gracefully: its peer is
//! not talking to us, and a FIN would leave the connection waiting on it.
//!
//! A connection's deadline moves later with every request it sends, so the
//! heap is filed lazily: a connection keeps the one entry it filed until that
//! entry comes up, unless its deadline moves earlier. When the entry comes up
//! the deadline is asked for again and filed anew. A keep-alive request thus
//! costs no heap operation, and the heap holds about one entry per
//! connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tracing::debug;
use ustack_http::{HttpConfig, HttpConn, Stats};
use ustack_tcp::{ConnId, Instant, ListenOptions, ListenerId, State, Tcp, TcpError};

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
    conns: ConnMap,
    /// Connections' filed deadlines, earliest first; an entry that is no
    /// longer its connection's [`Conn::filed`] is skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(Duration, ConnId)>>,
    /// Connections reset by a header or idle timeout.
    timeouts: u64,
    stats: Stats,
}

struct Conn {
    http: HttpConn,
    eof_seen: bool,
    /// The entry this connection has in the heap: no later than its
    /// deadline, which it may precede (the entry then only wakes it to ask).
    filed: Option<Duration>,
}

/// The served connections by [`ConnId::slot`]: two lookups per request
/// without hashing. As long as the highest slot in use (the table's
/// `max_connections` bounds it); see [`ConnMap::remove`] for shrinking.
#[derive(Default)]
struct ConnMap {
    slots: Vec<Option<(ConnId, Conn)>>,
    len: usize,
}

impl ConnMap {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, id: &ConnId) -> Option<&Conn> {
        match self.slots.get(id.slot()) {
            Some(Some((i, c))) if i == id => Some(c),
            _ => None,
        }
    }

    fn get_mut(&mut self, id: &ConnId) -> Option<&mut Conn> {
        match self.slots.get_mut(id.slot()) {
            Some(Some((i, c))) if i == id => Some(c),
            _ => None,
        }
    }

    /// Files `conn` under `id`, replacing whatever held the slot before.
    fn insert(&mut self, id: ConnId, conn: Conn) {
        let slot = id.slot();
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        if self.slots[slot].replace((id, conn)).is_none() {
            self.len += 1;
        }
    }

    /// Takes `id`'s state out. Free slots at the end are dropped, and the
    /// storage is given back once it is four times what is in use.
    fn remove(&mut self, id: &ConnId) -> Option<Conn> {
        let entry = self.slots.get_mut(id.slot())?;
        if entry.as_ref().is_none_or(|(i, _)| i != id) {
            return None;
        }
        let conn = entry.take().map(|(_, c)| c);
        self.len -= 1;
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        if self.slots.capacity() > 4 * self.slots.len() + 64 {
            self.slots.shrink_to(2 * self.slots.len());
        }
        conn
    }

    fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots.iter().flatten().map(|(id, _)| *id)
    }
}

/// Whether a connection whose entry in the heap is `filed` must file a new
/// one for `deadline` at time `now`. Not while its entry is still ahead and
/// no later than the deadline: that entry comes up first and the connection
/// asks again then. An entry that comes up early, or when no deadline is
/// left, costs one needless wake-up.
fn needs_entry(filed: Option<Duration>, deadline: Duration, now: Duration) -> bool {
    filed.is_none_or(|f| f <= now || f > deadline)
}

/// Time on the HTTP connections' clock.
fn http_time(now: Instant) -> Duration {
    Duration::from_micros(now.total_micros())
}

impl HttpServer {
    /// Listens on `port` with an accept queue of `backlog` connections.
    pub fn new(stack: &mut Tcp, port: u16, backlog: usize) -> Result<HttpServer, TcpError> {
        let listen = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        HttpServer::with_options(stack, port, listen, HttpConfig::default())
    }

    /// Listens on `port` as `listen` says (backlog, SYN cookies) and serves
    /// each connection with `config` (limits, timeouts).
    pub fn with_options(
        stack: &mut Tcp,
        port: u16,
        listen: ListenOptions,
        config: HttpConfig,
    ) -> Result<HttpServer, TcpError> {
        Ok(HttpServer {
            listener: Some(stack.listen_with(port, listen)?),
            grace: DEFAULT_GRACE,
            config,
            conns: ConnMap::default(),
            deadlines: BinaryHeap::new(),
            timeouts: 0,
            stats: Stats::default(),
        })
    }

    /// Connections reset so far because a header or idle timeout ran out.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
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
            // Nothing to send costs no trip into the send ring; an error the
            // trip would have seen shows in the state check below.
            if conn.http.wants_send() {
                match stack.send_with(id, |space| conn.http.poll_send(space)) {
                    Ok(n) => progress |= n > 0,
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => {
                        debug!(?id, %e, "http connection ended");
                        return self.finish(stack, id, now);
                    }
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
            return self.finish(stack, id, now);
        }
        self.update_timer(stack, id, now);
    }

    /// Tells the connection the time; resets it if a timeout ran out,
    /// otherwise files its next deadline.
    fn update_timer(&mut self, stack: &mut Tcp, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let deadline = conn.http.poll_timeout(http_time(now));
        if conn.http.wants_close() {
            return self.finish(stack, id, now);
        }
        if let Some(at) = deadline.filter(|&at| needs_entry(conn.filed, at, http_time(now))) {
            conn.filed = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
        if self.deadlines.len() > 2 * self.conns.len() + 1024 {
            // Bounded: stale entries go once they outnumber the live ones.
            let conns = &self.conns;
            self.deadlines
                .retain(|Reverse((at, id))| conns.get(id).is_some_and(|c| c.filed == Some(*at)));
        }
    }

    /// Runs the timers that are due.
    fn fire_timers(&mut self, stack: &mut Tcp, now: Instant) {
        let t = http_time(now);
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > t {
                break;
            }
            self.deadlines.pop();
            if let Some(c) = self.conns.get_mut(&id).filter(|c| c.filed == Some(at)) {
                c.filed = None;
                self.update_timer(stack, id, now);
            }
        }
    }

    fn finish(&mut self, stack: &mut Tcp, id: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&id) else {
            let _ = stack.close(id, now);
            return;
        };
        self.stats.merge(c.http.stats());
        if c.http.timed_out() {
            debug!(?id, "http timeout: connection reset");
            self.timeouts += 1;
            let _ = stack.abort(id);
        } else {
            let _ = stack.close(id, now);
        }
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
                    filed: None,
                },
            );
            self.drive(stack, id, now);
        }
        while let Some(id) = stack.poll_ready() {
            self.drive(stack, id, now);
        }
        self.fire_timers(stack, now);
        Ok(Control::Continue)
    }

    fn poll_at(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((at, _))| Instant::from_micros(at.as_micros() as u64))
    }

    /// Closes the listener (new SYNs get a RST, unaccepted connections are
    /// reset), lets each connection finish the request under way and closes
    /// idle keep-alive ones now; returns the grace period.
    fn on_stop(&mut self, stack: &mut Tcp, now: Instant) -> Duration {
        if let Some(l) = self.listener.take() {
            let reset = stack.unlisten(l);
            debug!(reset, "listener closed");
        }
        let ids: Vec<ConnId> = self.conns.ids().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.http.close_after_current();
            }
            self.drive(stack, id, now);
        }
        self.grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A keep-alive client sending a request every millisecond, each moving
    /// the 100 ms buffer-release deadline on: the heap gets one entry per
    /// 100 ms, not one per request, and each entry comes up no later than
    /// the deadline it stands for.
    #[test]
    fn a_deadline_that_moves_later_is_filed_once_per_period() {
        let mut filed: Option<Duration> = None;
        let mut heap: BinaryHeap<Reverse<Duration>> = BinaryHeap::new();
        let mut entries = 0;
        for ms in 0..1000u64 {
            let now = MS * ms as u32;
            // The entries due now come up first, as in `fire_timers`.
            while heap.peek().is_some_and(|Reverse(at)| *at <= now) {
                let Some(Reverse(at)) = heap.pop() else { break };
                if filed == Some(at) {
                    filed = None;
                }
            }
            let deadline = now + 100 * MS;
            if needs_entry(filed, deadline, now) {
                filed = Some(deadline);
                heap.push(Reverse(deadline));
                entries += 1;
            }
            let next = heap.peek().map(|Reverse(at)| *at);
            assert!(
                next.is_some_and(|at| at <= deadline),
                "at {ms} ms: {next:?}"
            );
        }
        assert!(entries <= 11, "{entries} entries for 1000 requests");
        assert!(heap.len() <= 1, "{} entries left", heap.len());
    }

    #[test]
    fn a_deadline_that_moves_earlier_or_comes_due_is_filed_again() {
        let now = 10 * MS;
        assert!(needs_entry(None, 50 * MS, now));
        assert!(!needs_entry(Some(40 * MS), 50 * MS, now), "covered");
        assert!(needs_entry(Some(60 * MS), 50 * MS, now), "earlier");
        assert!(needs_entry(Some(10 * MS), 50 * MS, now), "due now");
    }
}

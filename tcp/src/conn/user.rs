//! The user calls of RFC 9293 §3.10: SEND, RECEIVE, CLOSE, ABORT.

use super::posted::{Filled, PostRefused, Refusal};
use super::{State, Tcb};
use crate::error::TcpError;
use crate::wire::{Flags, TcpRepr};

impl Tcb {
    /// RECEIVE (RFC 9293 §3.10.3). Ok(0) means end of stream.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, TcpError> {
        let mut total = 0;
        // The queued bytes may wrap around the ring: take both runs.
        for _ in 0..2 {
            match self.recv_with(|d| {
                let n = d.len().min(out.len() - total);
                out[total..total + n].copy_from_slice(&d[..n]);
                n
            }) {
                Ok(n) if n > 0 => total += n,
                r if total == 0 => return r,
                _ => break,
            }
        }
        Ok(total)
    }

    /// Zero-copy RECEIVE: `f` sees the next contiguous received bytes and
    /// returns how many it consumed. Ok(0) with [`Tcb::at_eof`] is end of stream.
    pub fn recv_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> Result<usize, TcpError> {
        if !self.posted.is_empty() {
            return Err(TcpError::BuffersPosted);
        }
        if !self.recv_buf.is_empty() {
            let n = self.recv_buf.read_with(f);
            self.on_app_read(n);
            self.maybe_window_update();
            return Ok(n);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(TcpError::NotConnected),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Posts `buf` to receive into: in-order data goes straight into it
    /// (after any already queued in the receive ring, moved in now), and
    /// [`Tcb::take_recv`] hands it back. Refused, with the buffer, when
    /// [`super::MAX_POSTED`] are held, the buffer is empty, or nothing more
    /// can arrive.
    pub fn post_recv(&mut self, buf: Box<[u8]>) -> Result<(), PostRefused> {
        let refuse = |buf, reason| Err(PostRefused { buf, reason });
        if let Some(e) = self.error {
            return refuse(buf, Refusal::Error(e));
        }
        let ended = self.fin_received || matches!(self.state, State::Closed | State::Listen);
        if ended && self.recv_buf.is_empty() {
            return refuse(buf, Refusal::Ended);
        }
        if buf.is_empty() {
            return refuse(buf, Refusal::Empty);
        }
        if let Err(buf) = self.posted.push(buf) {
            return refuse(buf, Refusal::Full);
        }
        self.drain_ring_to_posted();
        Ok(())
    }

    /// The oldest posted buffer once it holds data (a short fill, like a
    /// short read). At the end of the stream the rest come back with
    /// `len == 0`, then an empty one: `len == 0` is end of stream, as
    /// `recv` returning 0 is. `WouldBlock` while posted buffers wait for
    /// data; `NothingPosted` when none are posted.
    pub fn take_recv(&mut self) -> Result<Filled, TcpError> {
        if let Some(f) = self.posted.take_filled() {
            return Ok(f);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_received && self.recv_buf.is_empty() {
            let empty = Filled {
                buf: Box::default(),
                len: 0,
            };
            return Ok(self.posted.take_any().unwrap_or(empty));
        }
        if self.posted.is_empty() {
            return Err(TcpError::NothingPosted);
        }
        match self.state {
            State::Closed => Err(TcpError::NotConnected),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Takes back the oldest posted buffer whether it holds data or not
    /// (`len` says how much), so the application can stop posting and go
    /// back to `recv`. None when no buffer is posted.
    pub fn unpost_recv(&mut self) -> Option<Filled> {
        self.posted.take_any()
    }

    /// Whether in-order data of `len` bytes may go straight into posted
    /// buffers: they have the room, and no bytes wait ahead of it in the
    /// ring or out of order.
    #[inline]
    pub(super) fn posted_takes(&self, len: usize) -> bool {
        self.posted.room() >= len && self.recv_buf.is_empty() && self.assembler.is_empty()
    }

    /// Moves what the receive ring holds into posted room, so posted
    /// buffers always get bytes in stream order.
    pub(super) fn drain_ring_to_posted(&mut self) {
        for _ in 0..2 {
            let posted = &mut self.posted;
            let n = self.recv_buf.read_with(|d| posted.write(d));
            if n == 0 {
                break;
            }
            self.on_app_read(n);
            self.maybe_window_update();
        }
    }

    /// The application lets go of its posted buffers (closing): they are
    /// dropped, with any data in them.
    pub fn drop_posted(&mut self) {
        self.posted = Default::default();
    }

    /// Receiver side of SWS avoidance (RFC 9293 §3.8.6.2.2): announce a larger
    /// window only once it has grown by min(buffer / 2, MSS).
    pub(super) fn maybe_window_update(&mut self) {
        let right = self.rcv_nxt + self.rcv_wnd();
        let growth = right.distance(self.rcv_adv).max(0) as usize;
        if growth >= self.sws_threshold() {
            self.ack_pending = true;
        }
    }

    /// SEND (RFC 9293 §3.10.2): queue as much of `data` as fits (the tests'
    /// shorthand; the stack goes through [`Tcb::send_with`]).
    #[cfg(test)]
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        let unbounded = &mut crate::buffer::BufferPool::new(usize::MAX);
        self.prepare_send(&super::TcpConfig::default(), unbounded);
        self.send_with(|space| {
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    /// Turns Nagle's algorithm (RFC 9293 §3.7.4) off (`true`) or on.
    pub fn set_nodelay(&mut self, on: bool) {
        self.nodelay = on;
    }

    /// Zero-copy SEND: `f` writes straight into the send queue's free space and
    /// returns how much it wrote. May be called repeatedly (the space may wrap).
    pub fn send_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued {
            return Err(TcpError::SendAfterShutdown);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            _ => return Err(TcpError::NotConnected),
        }
        let n = self.send_buf.write_with(f);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.update_keepalive();
        Ok(n)
    }

    /// CLOSE of the sending direction (RFC 9293 §3.10.4): a FIN follows the
    /// queued data; receiving continues (half-close).
    pub fn shutdown(&mut self) {
        match self.state {
            State::SynSent => {
                self.set_state(State::Closed);
                self.clear_timers();
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            _ => {}
        }
        self.update_keepalive();
    }

    /// ABORT (RFC 9293 §3.10.5): returns the RST to send, if the peer should hear of it.
    pub fn abort(&mut self) -> Option<TcpRepr> {
        let rst = match self.state {
            State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait => Some(TcpRepr {
                flags: Flags::RST | Flags::ACK,
                ack: self.rcv_nxt,
                // SND.MAX, not SND.NXT: after a retransmission timeout
                // SND.NXT is rewound below what the peer may have received,
                // and a RST below its RCV.NXT is dropped as old (Linux
                // tcp_sequence), leaving the peer hanging. SND.MAX never
                // passes the peer's window edge, so it is either exact or in
                // the window (drawing a challenge ACK, RFC 5961 §3.2).
                ..self.rst_with_seq(self.snd_max)
            }),
            _ => None,
        };
        self.set_state(State::Closed);
        self.clear_timers();
        rst
    }
}

//! The wakers of async socket calls waiting on the stack, and how the
//! driver hands them what TCP reports.
//!
//! A socket call that cannot go on (no data, no send space, no connection
//! to accept) stores its task's [`Waker`] here *while it still holds the
//! stack's lock*, right after the TCP call that said "would block". The
//! driver takes this registry's lock only while it holds the stack's lock
//! too (lock order: stack, then wakers), drains [`Tcp::poll_ready`] into it
//! and wakes what it names. So between a call's check and its registration
//! the driver cannot run: no wake-up is lost, and no timer is needed.
//!
//! [`Tcp::poll_ready`]: ustack_tcp::Tcp::poll_ready

// Without the `tokio` feature nothing registers; the driver's half stays.
#![cfg_attr(not(feature = "tokio"), allow(dead_code))]

use std::collections::HashMap;
use std::task::Waker;

use ustack_tcp::{ConnId, ListenerId};

use crate::Stack;

/// Which way a stream waits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dir {
    /// For data (or end of stream, or an error) to read.
    Read,
    /// For send space, or for the handshake to finish.
    Write,
}

#[derive(Default)]
struct ConnWakers {
    read: Option<Waker>,
    write: Option<Waker>,
}

/// An async listener: the task waiting in `accept`, and a connection the
/// driver took from TCP's accept queue for it.
#[derive(Default)]
struct ListenerWait {
    waker: Option<Waker>,
    taken: Option<ConnId>,
}

/// Every waiting async socket call. One entry per async stream and per
/// async listener, removed when it is dropped, so it is bounded by the
/// connection table and the listening ports.
#[derive(Default)]
pub(super) struct Wakers {
    conns: HashMap<ConnId, ConnWakers>,
    listeners: HashMap<ListenerId, ListenerWait>,
}

impl Wakers {
    /// Stores `waker` for stream `id`'s next event in `dir`.
    pub(super) fn register(&mut self, id: ConnId, dir: Dir, waker: &Waker) {
        let slots = self.conns.entry(id).or_default();
        let slot = match dir {
            Dir::Read => &mut slots.read,
            Dir::Write => &mut slots.write,
        };
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Forgets a stream that is gone.
    pub(super) fn remove(&mut self, id: ConnId) {
        self.conns.remove(&id);
    }

    /// Starts tracking an async listener.
    pub(super) fn add_listener(&mut self, id: ListenerId) {
        self.listeners.entry(id).or_default();
    }

    /// Stops tracking a listener; returns the connection the driver had
    /// taken for it and nobody accepted, for the caller to close.
    pub(super) fn remove_listener(&mut self, id: ListenerId) -> Option<ConnId> {
        self.listeners.remove(&id).and_then(|l| l.taken)
    }

    /// The connection the driver took for listener `id`, if any.
    pub(super) fn take_accepted(&mut self, id: ListenerId) -> Option<ConnId> {
        self.listeners.get_mut(&id).and_then(|l| l.taken.take())
    }

    /// Stores the task waiting in listener `id`'s accept.
    pub(super) fn register_accept(&mut self, id: ListenerId, waker: &Waker) {
        let l = self.listeners.entry(id).or_default();
        match &l.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => l.waker = Some(waker.clone()),
        }
    }

    /// The driver's part after each turn: every connection TCP reports
    /// ready gives its wakers to `due`; every listener with a task waiting
    /// gets the next established connection from TCP's accept queue (TCP
    /// reports none through `poll_ready` before it is accepted) and gives
    /// its waker to `due`. The caller wakes `due` once both locks are
    /// released.
    pub(super) fn collect(&mut self, stack: &mut Stack, due: &mut Vec<Waker>) {
        while let Some(id) = stack.poll_ready() {
            if let Some(w) = self.conns.get_mut(&id) {
                due.extend(w.read.take());
                if w.write.is_some() && writable(stack, id) {
                    due.extend(w.write.take());
                }
            }
        }
        for (&id, l) in &mut self.listeners {
            if l.waker.is_some() && l.taken.is_none() {
                l.taken = stack.accept(id);
                if l.taken.is_some() {
                    due.extend(l.waker.take());
                }
            }
        }
    }

    /// Every stored waker, for when the stack stops: the calls then fail.
    pub(super) fn take_all(&mut self, due: &mut Vec<Waker>) {
        for w in self.conns.values_mut() {
            due.extend(w.read.take());
            due.extend(w.write.take());
        }
        for l in self.listeners.values_mut() {
            due.extend(l.waker.take());
        }
    }
}

/// Whether a task waiting to write to `id` should be woken: the handshake
/// is over or failed, the connection can no longer send, or the send
/// buffer has room for at least half of what is still queued — Linux's
/// rule for waking writers (`sk_stream_write_space`, `sk_stream_min_wspace`),
/// which spares a wake-up, and a small write, per ACK. Every later ACK
/// that frees space reports the connection again, and the last one leaves
/// the buffer empty, so a writer held back here is woken in the end.
fn writable(stack: &Stack, id: ConnId) -> bool {
    let sending = matches!(
        stack.state(id),
        Ok(ustack_tcp::State::Established | ustack_tcp::State::CloseWait)
    );
    if !sending || !matches!(stack.error(id), Ok(None)) {
        return true;
    }
    let (Ok(space), Ok(queued)) = (stack.send_space(id), stack.send_queue_len(id)) else {
        return true;
    };
    space > 0 && space >= queued / 2
}

//! Receiving into buffers the application posts (`Tcp::post_recv`,
//! `Tcp::take_recv`): the bytes arrive in order and exact, with no receive
//! ring storage while the buffers keep up, through loss, and up to the end
//! of the stream. (Random loss, reordering and corruption with posted
//! buffers: the simulation, `sim.rs`.)

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use common::{Dir, Net};
use ustack_tcp::{Refusal, TcpError, MAX_POSTED};

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ 0x5a)
        .collect()
}

/// A sends `data` and closes; B keeps `count` buffers of `size` posted and
/// collects what comes back until end of stream. Returns what B got and
/// the most receive-ring storage B's connection held at any step.
fn transfer(net: &mut Net, data: &[u8], size: usize, count: usize) -> (Vec<u8>, usize) {
    let (c, s) = common::connected(net);
    let (mut sent, mut shut, mut eof) = (0, false, false);
    let mut got = Vec::new();
    let mut posted = 0;
    let mut peak_ring = 0;
    net.run_until(200_000, |n| {
        sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        if sent == data.len() && !shut {
            n.a.close(c, n.now).expect("close");
            shut = true;
        }
        while !eof {
            while posted < count {
                match n.b.post_recv(s, vec![0; size].into_boxed_slice()) {
                    Ok(()) => posted += 1,
                    Err(r) if r.reason == Refusal::Ended => break,
                    Err(r) => panic!("post refused: {}", r.reason),
                }
            }
            match n.b.take_recv(s) {
                Ok(f) if f.len > 0 => {
                    got.extend_from_slice(f.data());
                    posted -= 1;
                }
                Ok(f) if !f.buf.is_empty() => posted -= 1,
                Ok(_) => eof = true,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("take_recv: {e}"),
            }
        }
        peak_ring = peak_ring.max(n.b.connection_buffer_memory(s).unwrap_or(0));
        n.b.check_invariants().expect("receiver invariants");
        eof
    });
    (got, peak_ring)
}

#[test]
fn posted_buffers_get_every_byte_and_the_ring_stays_unallocated() {
    let mut net = Net::new();
    let data = pattern(2_000_000);
    // Eight buffers of 64 KiB hold more than the receive window.
    let (got, peak_ring) = transfer(&mut net, &data, 64 << 10, MAX_POSTED);
    assert!(
        got == data,
        "{} of {} bytes, or corrupted",
        got.len(),
        data.len()
    );
    assert_eq!(
        peak_ring, 0,
        "no receive-ring storage while buffers keep up"
    );
}

#[test]
fn segments_span_small_buffers_and_overflow_into_the_ring_in_order() {
    let mut net = Net::new();
    let data = pattern(300_000);
    // Two 1000-byte buffers take a fraction of each flight: segments span
    // them and the rest waits in the ring, moved out on each new post.
    let (got, peak_ring) = transfer(&mut net, &data, 1000, 2);
    assert!(
        got == data,
        "{} of {} bytes, or out of order",
        got.len(),
        data.len()
    );
    assert!(peak_ring > 0, "the ring took what the buffers could not");
}

#[test]
fn posted_buffers_survive_loss_and_reassembly() {
    let mut net = Net::new();
    // Every 7th data segment from A is lost once: SACK recovery fills the
    // holes, and data held out of order in the ring joins the buffers.
    let lost = Rc::new(RefCell::new(HashSet::new()));
    let hook = lost.clone();
    net.drop = Box::new(move |seen, _| match &seen.tcp {
        Some(t) if matches!(seen.dir, Dir::AtoB) && seen.payload_len > 0 => {
            t.seq.0 % 7 == 0 && hook.borrow_mut().insert(t.seq.0)
        }
        _ => false,
    });
    let data = pattern(500_000);
    let (got, _) = transfer(&mut net, &data, 16 << 10, 4);
    assert!(lost.borrow().len() > 20, "segments were lost");
    assert!(
        got == data,
        "{} of {} bytes, or corrupted",
        got.len(),
        data.len()
    );
}

#[test]
fn recv_is_refused_while_buffers_are_posted_and_posting_ends_with_the_stream() {
    let mut net = Net::new();
    let (c, s) = common::connected(&mut net);
    let mut buf = [0u8; 16];
    assert_eq!(net.b.take_recv(s).err(), Some(TcpError::NothingPosted));
    net.b
        .post_recv(s, vec![0; 100].into_boxed_slice())
        .expect("post");
    assert_eq!(net.b.recv(s, &mut buf), Err(TcpError::BuffersPosted));
    assert_eq!(net.b.take_recv(s).err(), Some(TcpError::WouldBlock));
    net.a.send(c, b"hello").expect("send");
    net.a.close(c, net.now).expect("close");
    net.run_until(1_000, |n| {
        n.b.at_eof(s) == Ok(false) && n.b.recv_queue_len(s) == Ok(5)
    });
    net.run_for(std::time::Duration::from_millis(50));
    let f = net.b.take_recv(s).expect("data");
    assert_eq!(f.data(), b"hello");
    assert_eq!(net.b.at_eof(s), Ok(true));
    let refused = net.b.post_recv(s, f.buf).expect_err("the stream has ended");
    assert_eq!(refused.reason, Refusal::Ended);
    assert_eq!(refused.buf.len(), 100, "the buffer comes back");
    let end = net.b.take_recv(s).expect("end of stream");
    assert_eq!(end.len, 0);
    // With nothing posted, reading the ring works again.
    assert_eq!(net.b.recv(s, &mut buf), Ok(0));
}

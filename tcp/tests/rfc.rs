//! RFC conformance of the engine, checked on the wire: every test drives two
//! stacks over a simulated link and asserts on the segments they exchanged
//! (and on connection states), each against the RFC rule it names.
//!
//! The link here delivers one packet at a time with a 100 µs one-way delay
//! and 1 Gbit/s serialisation, polling the receiver after every packet, so a
//! receiver's per-segment behaviour (duplicate ACKs, immediate ACKs) is
//! visible, and every packet is logged with the time it was sent.

mod common;
#[path = "rfc/harness.rs"]
mod harness;
#[path = "rfc/recovery.rs"]
mod recovery;
#[path = "rfc/timers.rs"]
mod timers;
#[path = "rfc/windows.rs"]
mod windows;

//! # ustack-tcp
//!
//! The TCP layer of ustack: RFC 9293 connection state machine, sequence-number
//! arithmetic, the TCP wire format, and a socket-style API (listen/accept/connect/
//! read/write/shutdown/close) over a connection table.
//!
//! **Sans-I/O.** This crate never makes a syscall, never reads a clock and never
//! sleeps. Packets come in as byte slices (`Stack::handle_packet`), time comes in as
//! an [`Instant`] argument, randomness from an injected [`Rng`]. Outgoing packets are
//! handed to a caller-supplied sink; the caller asks [`Stack::poll_at`] when it must
//! next call in.
//!
//! Below: `ustack-ipv4` (IPv4 header parse/emit, checksums, ICMP echo). Above: an
//! application such as `ustack-http`, and the runtime in the `ustack` crate that
//! moves packets between a `ustack-link` device and this crate.

pub mod seq;
pub mod time;
pub mod wire;

pub use seq::SeqNumber;
pub use time::Instant;
pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod conn;
pub mod error;
pub mod rack;
pub mod rng;
pub mod rtt;

pub use conn::{State, TcpConfig};
pub use error::TcpError;
pub use rng::{Rng, XorShiftRng};
pub mod stack;

pub use stack::{ConnId, ListenerId, Stack, StackConfig, StackStats};

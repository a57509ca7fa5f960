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
//! ## What the engine implements
//! RFC 9293 (all states, acceptability, RST and SYN rules with RFC 5961
//! challenge ACKs, rate-limited), RFC 6298 RTO with Karn, RFC 7323 window
//! scaling, timestamps, RTTM and PAWS, RFC 2018/2883 SACK and D-SACK,
//! out-of-order reassembly, RFC 8985 RACK-TLP with RFC 6937 PRR for SACK
//! peers and RFC 5681/6582 NewReno otherwise, RFC 3042 limited transmit,
//! congestion control behind a trait (RFC 9438 CUBIC by default, NewReno),
//! RFC 6928 initial window, delayed ACK, Nagle and SWS avoidance on both
//! sides, persist probes, optional keep-alive and user timeout, RFC 6528 ISNs.
//! ICMP errors about sent segments follow RFC 1122 §4.2.3.9 and RFC 5927
//! (hard errors fail a connect, soft ones name the cause of a later
//! timeout), and Fragmentation Needed lowers the path MTU (RFC 1191, floor
//! [`MIN_PATH_MTU`]).
//!
//! For a link with TCP segmentation offload, [`Stack::poll_segmented`] emits
//! new data as super-frames of up to 64 KB (`StackConfig::tso_max`) for the
//! device to cut into segments; each segment keeps its own RACK record, so
//! loss recovery works per segment as without offload. Received GRO
//! super-frames are ordinary segments to the engine
//! ([`Stack::handle_packet_trusted`] skips checksums the link vouches for).
//!
//! ## Memory per connection
//! About 1.4 KiB of TCB (`size_of::<Tcb>()`, checked by a test), the send
//! and receive rings (`TcpConfig::send_buffer`/`recv_buffer`, 256 KiB each
//! by default, allocated when the connection is created), and 24 bytes of
//! RACK record per segment in flight (at most 4096). The connection table
//! is bounded by `StackConfig::max_connections`.
//!
//! ## Public surface
//! What an application or link backend needs: [`Stack`] and its handles,
//! configuration, errors, [`SeqNumber`], [`Instant`], the RNG and the
//! [`wire`] format. The engine itself (TCB, RACK, RTT, reassembly, buffers,
//! congestion controllers) is private.
//!
//! Below: `ustack-ipv4` (IPv4 header parse/emit, checksums, ICMP echo). Above: an
//! application such as `ustack-http`, and the runtime in the `ustack` crate that
//! moves packets between a `ustack-link` device and this crate.

#![forbid(unsafe_code)]

mod assembler;
mod buffer;
mod cc;
mod conn;
mod error;
mod rack;
mod rng;
mod rtt;
mod seq;
mod stack;
use ustack_ipv4::time;
pub mod wire;

pub use cc::Algorithm as CongestionAlgorithm;
pub use conn::{State, TcpConfig, MIN_PATH_MTU};
pub use error::TcpError;
pub use rng::{Rng, XorShiftRng};
pub use seq::SeqNumber;
pub use stack::{ConnId, ListenerId, Stack, StackConfig, StackStats};
pub use time::Instant;

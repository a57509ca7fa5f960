//! # ustack-tcp
//!
//! The TCP layer of ustack: the RFC 9293 connection state machine, sequence
//! arithmetic, the TCP wire format, a connection table with listeners and
//! accept queues, and a socket-style API (listen/accept/connect/read/write/
//! shutdown/close) on [`Tcp`].
//!
//! **Where it sits.** [`Tcp`] is a transport of the IP layer: it implements
//! [`ustack_ipv4::Transport`] and is carried by [`ustack_ipv4::IpStack`],
//! which validates and reassembles IPv4 packets, hands TCP its segments
//! with what the device vouched for (checksum verified or partial, GRO
//! segment size), routes ICMP errors to it, and puts the IP header (and
//! IP ID) on what it sends. This crate knows nothing of IPv4 beyond the
//! pseudo-header and the addresses of its connections. Above it: an
//! application such as `ustack-http`, and the runtime in the `ustack`
//! crate, which moves packets between a `ustack-link` device and the
//! `IpStack`. `IpStack<Tcp>` dereferences to `Tcp`, so the socket API is
//! called on the stack itself.
//!
//! **Reading.** `recv` copies out of the connection's receive ring,
//! `recv_with` lends the ring's bytes in place, and `post_recv`/`take_recv`
//! let the application post up to [`MAX_POSTED`] buffers of its own that
//! in-order data is copied into straight from the device's packet (the
//! checksum summed in the same pass), skipping the ring.
//!
//! **Sans-I/O.** This crate never makes a syscall, never reads a clock and
//! never sleeps. Time comes in as an [`Instant`] argument, randomness from
//! an injected [`Rng`].
//!
//! ## What the engine implements
//! RFC 9293 (all states, acceptability, RST and SYN rules with RFC 5961
//! challenge ACKs, rate-limited), RFC 6298 RTO with Karn, RFC 7323 window
//! scaling, timestamps, RTTM and PAWS, RFC 2018/2883 SACK and D-SACK,
//! out-of-order reassembly, RFC 8985 RACK-TLP with RFC 6937 PRR for SACK
//! peers and RFC 5681/6582 NewReno otherwise, RFC 3042 limited transmit,
//! congestion control behind a trait (RFC 9438 CUBIC by default, NewReno),
//! RFC 6928 initial window, delayed ACK (with Linux's quick-ACK and
//! ping-pong modes), Nagle (Minshall's form, as Linux) and SWS avoidance on
//! both sides, persist probes, optional keep-alive and user timeout, RFC
//! 6528 ISNs, RFC 4987 §3.6 SYN cookies when a listener's backlog or the
//! table is full (or always, [`ListenOptions`]), and a deliberate policy
//! when the table is full (the connection idle longest makes room for a new
//! one).
//! ICMP errors about sent segments follow RFC 1122 §4.2.3.9 and RFC 5927
//! (hard errors fail a connect, soft ones name the cause of a later
//! timeout), and Fragmentation Needed lowers the path MTU (RFC 1191, floor
//! [`MIN_PATH_MTU`]).
//!
//! For a device with TCP segmentation offload (the interface's
//! `DeviceCaps::tso_max`), new data leaves as super-frames of up to 64 KB
//! for the device to cut into segments; each segment keeps its own RACK
//! record, so loss recovery works per segment as without offload. Received
//! GRO super-frames are ordinary segments to the engine.
//!
//! ## Memory per connection
//! About 1.5 KiB of state (`size_of::<Tcb>()` and the table's slot, lookup
//! and timer entries, checked by tests), 24 bytes of RACK record per segment
//! in flight (at most 4096), and buffer storage only while data is queued:
//! rings come from a pool when data arrives or the application writes, and go
//! back when their queue empties, so idle and half-open connections hold
//! none. Buffers start at `TcpConfig::send_buffer`/`recv_buffer` (64 KiB)
//! and grow toward the path's needs (receive auto-tuning, a send buffer of
//! twice cwnd) up to `send_buffer_max`/`recv_buffer_max` (16 MiB), within
//! the stack-wide [`TcpLayerConfig::buffer_budget`]: past three quarters of
//! it buffers stop growing (memory pressure, counted in [`TcpStats`]), and
//! it is never exceeded. The connection table is bounded by
//! [`TcpLayerConfig::max_connections`].
//!
//! ## Public surface
//! What an application needs: [`Tcp`] and its handles,
//! configuration, errors, [`SeqNumber`], [`Instant`], the RNG and the
//! [`wire`] format. The engine itself (TCB, RACK, RTT, reassembly, buffers,
//! congestion controllers) is private.
//!

#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
mod syncookie;
use ustack_ipv4::time;
pub mod wire;

pub use cc::Algorithm as CongestionAlgorithm;
pub use conn::{Filled, PostRefused, Refusal, State, TcpConfig, MAX_POSTED, MIN_PATH_MTU};
pub use error::TcpError;
pub use rng::{Rng, XorShiftRng};
pub use seq::SeqNumber;
pub use stack::{
    CaptureFilter, CaptureRequest, ConnId, ListenOptions, ListenerId, SynCookies, Tcp,
    TcpLayerConfig, TcpStats, TimeWaitStats,
};
pub use time::Instant;

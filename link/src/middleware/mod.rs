//! Middleware links: each wraps any [`Link`](crate::Link) and is itself a
//! `Link`, so they stack (`Tracer<FaultInjector<PcapWriter<AnyLink>>>`) and
//! compose at build time with no dispatch cost.
//!
//! - [`PcapWriter`]: records every packet to a pcap file (LINKTYPE_RAW).
//!   The AF_PACKET backend records Ethernet frames itself, through the same
//!   [`PcapSink`], because only it sees the frames (ARP included); see
//!   `AfPacketLink::set_capture`.
//! - [`FaultInjector`]: seeded drop, duplicate, reorder, delay, corrupt and
//!   rate limit, per direction.
//! - [`Tracer`]: one `tracing` line per packet at trace level.

pub mod faults;
pub mod pcap;
pub mod tracer;

pub use faults::{Directions, FaultConfig, FaultInjector, FaultStats};
pub use pcap::{PcapLinkType, PcapSink, PcapWriter};
pub use tracer::{PacketSummary, Tracer, TxSummary};

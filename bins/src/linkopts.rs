//! The link options both binaries share: which backend (`--link`), on which
//! interface (`--iface`), capture (`--pcap`) and fault injection. One
//! `#[derive(Args)]` struct, flattened into each binary's parser.
//!
//! The link a binary runs is [`CliLink`]: the chosen backend as an
//! [`AnyLink`], under a pcap writer, a fault injector and a tracer. Order,
//! from the device up: the capture sees what crossed the device (as a
//! `tcpdump` would), faults act between the device and the stack, and the
//! tracer shows what the stack got and sent.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, ValueEnum};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::middleware::{
    Directions, FaultConfig, FaultInjector, PcapLinkType, PcapSink, PcapWriter, Tracer,
};
use ustack_link::{AnyLink, LinkError};

/// The link type the binaries run.
pub type CliLink = Tracer<FaultInjector<PcapWriter<AnyLink>>>;

/// A link backend, named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkKind {
    /// A TUN device the program creates.
    Tun,
    /// A raw IPv4 socket carrying one TCP flow.
    Raw,
    /// An AF_PACKET socket on an existing Ethernet interface (--iface); the
    /// stack owns an address the kernel does not have there.
    Afpacket,
}

impl LinkKind {
    /// The cargo feature (and `--link` value) of this backend.
    pub fn feature(self) -> &'static str {
        match self {
            LinkKind::Tun => "tun",
            LinkKind::Raw => "raw",
            LinkKind::Afpacket => "afpacket",
        }
    }

    /// Whether this build has the backend.
    pub fn compiled_in(self) -> bool {
        match self {
            LinkKind::Tun => cfg!(feature = "tun"),
            LinkKind::Raw => cfg!(feature = "raw"),
            LinkKind::Afpacket => cfg!(feature = "afpacket"),
        }
    }

    /// Fails with a message saying how to get the backend when this build
    /// left it out.
    pub fn require(self) -> Result<(), String> {
        if self.compiled_in() {
            Ok(())
        } else {
            Err(format!(
                "this build has no {0} backend: rebuild with --features {0}",
                self.feature()
            ))
        }
    }
}

/// Which way the `--drop`, `--dup`, … faults act (`--fault-dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FaultDirection {
    /// Packets the stack receives and packets it sends.
    #[default]
    Both,
    /// Only packets the stack receives from the device.
    Rx,
    /// Only packets the stack sends to the device.
    Tx,
}

/// Options shared by tun-server, raw-client and tun-proxy.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Link")]
pub struct LinkOpts {
    /// Link backend [default: tun for tun-server and tun-proxy, raw for
    /// raw-client]; each binary lists only the ones it can run over.
    #[arg(long, value_enum)]
    pub link: Option<LinkKind>,
    /// Ethernet interface for --link afpacket (e.g. eth0, or one end of a veth pair).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Router for destinations outside the subnet (--link afpacket).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// One recvmsg/sendmsg per frame instead of the memory-mapped rings
    /// (--link afpacket; what a kernel without rings gets).
    #[arg(long)]
    pub no_rings: bool,
    /// Size of the AF_PACKET receive ring in KiB (blocks of 128 KiB); 0:
    /// one recvmsg per frame (no wait for a block to fill).
    #[arg(long, value_name = "KIB", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=262144))]
    pub rx_ring_kib: u32,
    /// Size of the AF_PACKET transmit ring in KiB; 0 (the default): one
    /// sendmsg per frame or super-frame, which the kernel segments (GSO;
    /// the ring's slots hold one frame, so with a ring there is no GSO).
    #[arg(long, value_name = "KIB", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=262144))]
    pub tx_ring_kib: u32,
    /// Write every packet to this pcap file (raw IP for tun/raw, Ethernet
    /// frames with ARP for afpacket); `tshark -r FILE` reads it.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Fault injection wrapped around the link (all off by default).
    #[command(flatten)]
    pub faults: FaultOpts,
}

/// Fault injection, for tests and experiments (all off by default).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Faults")]
pub struct FaultOpts {
    /// Drop each packet with probability P (0 to 1).
    #[arg(long = "drop", value_name = "P", default_value_t = 0.0,
          allow_negative_numbers = true, value_parser = parse_probability)]
    pub drop: f64,
    /// Duplicate each packet with probability P (0 to 1).
    #[arg(long = "dup", value_name = "P", default_value_t = 0.0,
          allow_negative_numbers = true, value_parser = parse_probability)]
    pub duplicate: f64,
    /// Hold a packet back past the next one with probability P (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0,
          allow_negative_numbers = true, value_parser = parse_probability)]
    pub reorder: f64,
    /// Delay every packet by MS milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay: u64,
    /// Flip one random bit of a packet with probability P (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0,
          allow_negative_numbers = true, value_parser = parse_probability)]
    pub corrupt: f64,
    /// Police traffic to BYTES_PER_S (token bucket; excess is dropped).
    #[arg(long, value_name = "BYTES_PER_S")]
    pub rate: Option<u64>,
    /// Seed of the fault generator: the same seed gives the same faults.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub fault_seed: u64,
    /// Which direction the faults apply to.
    #[arg(long, value_enum, default_value_t = FaultDirection::Both)]
    pub fault_dir: FaultDirection,
}

/// A probability: a number from 0 to 1. Negative numbers reach here as
/// numbers (`allow_negative_numbers`), so `--drop -0.1` says "out of range".
fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; give a probability from 0 to 1"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!(
            "{v} is out of range: give a probability from 0 to 1"
        ));
    }
    Ok(v)
}

impl FaultOpts {
    /// The options as the fault injector's configuration (`--delay` in ms
    /// becomes a `Duration`); the probabilities were checked when parsed.
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            drop: self.drop,
            duplicate: self.duplicate,
            reorder: self.reorder,
            corrupt: self.corrupt,
            delay: Duration::from_millis(self.delay),
            rate: self.rate,
            seed: self.fault_seed,
            directions: match self.fault_dir {
                FaultDirection::Both => Directions::Both,
                FaultDirection::Rx => Directions::Rx,
                FaultDirection::Tx => Directions::Tx,
            },
        }
    }
}

/// Where the stack lives on an AF_PACKET link.
#[derive(Debug, Clone, Copy)]
pub struct StackAddr {
    /// The stack's own IPv4 address, one the kernel does not hold there.
    pub addr: Ipv4Addr,
    /// Prefix length of the on-link subnet (e.g. 24); other destinations go
    /// through the gateway.
    pub prefix_len: u8,
}

impl LinkOpts {
    /// The backend asked for, or `default`; errors if compiled out.
    pub fn kind(&self, default: LinkKind) -> Result<LinkKind, String> {
        let kind = self.link.unwrap_or(default);
        kind.require()?;
        self.check(kind)?;
        Ok(kind)
    }

    /// Opens the AF_PACKET backend on `--iface` for `at`.
    #[cfg_attr(not(feature = "afpacket"), allow(unused_variables))]
    pub fn open_afpacket(&self, at: StackAddr, mtu: Option<u16>) -> Result<AnyLink, String> {
        LinkKind::Afpacket.require()?;
        let Some(iface) = self.iface.clone() else {
            return Err(
                "--link afpacket needs --iface IFACE (an existing Ethernet interface)".into(),
            );
        };
        #[cfg(feature = "afpacket")]
        {
            let mut link = ustack_link::AfPacketLink::open(&ustack_link::AfPacketConfig {
                iface,
                addr: at.addr,
                prefix_len: at.prefix_len,
                gateway: self.gateway,
                mtu,
                rings: (!self.no_rings).then(|| ustack_link::RingConfig {
                    rx_bytes: self.rx_ring_kib as usize * 1024,
                    tx_bytes: self.tx_ring_kib as usize * 1024,
                    ..ustack_link::RingConfig::default()
                }),
            })
            .map_err(|e| e.to_string())?;
            if let Some(path) = &self.pcap {
                link.set_capture(
                    PcapSink::create(path, PcapLinkType::Ethernet).map_err(|e| e.to_string())?,
                );
            }
            Ok(AnyLink::from(link))
        }
        #[cfg(not(feature = "afpacket"))]
        unreachable!("require() refused a compiled-out backend")
    }

    /// Checks what can be checked before anything is created: `--iface`
    /// only with afpacket, and that `--pcap` can be written (by creating
    /// the file, which the capture truncates when it starts).
    pub fn check(&self, kind: LinkKind) -> Result<(), String> {
        if kind != LinkKind::Afpacket {
            if let Some(iface) = &self.iface {
                return Err(format!(
                    "--iface {iface} is for --link afpacket (this run uses --link {})",
                    kind.feature()
                ));
            }
            if self.no_rings {
                return Err(format!(
                    "--no-rings is for --link afpacket (this run uses --link {})",
                    kind.feature()
                ));
            }
        }
        if let Some(path) = &self.pcap {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(|e| {
                    format!(
                        "--pcap {}: cannot write the capture there ({e}); give a path in a writable directory",
                        path.display()
                    )
                })?;
        }
        Ok(())
    }

    /// Wraps an opened backend in the middleware the options ask for. An
    /// AF_PACKET link already records its own Ethernet capture.
    pub fn wrap(&self, kind: LinkKind, link: AnyLink) -> Result<CliLink, LinkError> {
        let ethernet = kind == LinkKind::Afpacket;
        let sink = match &self.pcap {
            Some(path) if !ethernet => Some(PcapSink::create(path, PcapLinkType::Raw)?),
            _ => None,
        };
        let faults = FaultInjector::new(PcapWriter::new(link, sink), self.faults.config())?;
        Ok(Tracer::new(faults))
    }
}

/// Parses the command line of a binary whose `--link` accepts only
/// `allowed` (the backends it can run over): `--help` lists only those and
/// clap refuses the others before the program starts.
pub fn parse_with_links<A: Parser>(allowed: &[LinkKind]) -> A {
    let values: Vec<_> = allowed
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .collect();
    let parser = PossibleValuesParser::new(values)
        .try_map(|s| LinkKind::from_str(&s, false).map_err(|e| format!("--link {s}: {e}")));
    let mut cmd = A::command().mut_arg("link", |a| a.value_parser(parser));
    if !allowed.contains(&LinkKind::Afpacket) {
        // Without afpacket they would be accepted and mean nothing.
        for arg in ["iface", "gateway", "no_rings", "rx_ring_kib", "tx_ring_kib"] {
            cmd = cmd.mut_arg(arg, |a| a.hide(true));
        }
    }
    let matches = cmd.get_matches();
    A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A route in the host's main routing table, as `/proc/net/route` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// The destination network.
    pub net: Ipv4Subnet,
    /// The interface it goes out of.
    pub dev: String,
}

/// The first route of the host's main table (default route excepted) that
/// overlaps `subnet`: a device on `subnet` would take traffic from it, or
/// lose traffic to it. Read from `/proc/net/route` (this namespace's).
pub fn overlapping_route(subnet: Ipv4Subnet) -> Result<Option<HostRoute>, String> {
    let table = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| format!("cannot read the routing table (/proc/net/route): {e}"))?;
    let found = parse_routes(&table).find(|r| r.net.prefix_len() > 0 && r.net.overlaps(&subnet));
    Ok(found)
}

/// Rules out a subnet that overlaps a route already present on the host,
/// unless `allow` (the binary's `--allow-route-overlap`).
pub fn check_route_overlap(subnet: Ipv4Subnet, allow: bool) -> Result<(), String> {
    if allow {
        return Ok(());
    }
    match overlapping_route(subnet)? {
        None => Ok(()),
        Some(r) => Err(format!(
            "{}/{} overlaps the route {} dev {} already on this host; pick another subnet \
             (--host-addr/--addr/--prefix) or pass --allow-route-overlap",
            subnet.network(),
            subnet.prefix_len(),
            r.net,
            r.dev
        )),
    }
}

/// The routes of a `/proc/net/route` text: addresses are hex in the
/// kernel's (host) byte order.
fn parse_routes(table: &str) -> impl Iterator<Item = HostRoute> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
        let (dev, dst, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
        let prefix = u32::from_be_bytes(mask).leading_ones() as u8;
        Some(HostRoute {
            net: Ipv4Subnet::new(Ipv4Addr::from(dst), prefix)?,
            dev: dev.to_string(),
        })
    })
}

/// A random ephemeral port (RFC 6335 dynamic range) from a seed.
pub fn ephemeral_port(seed: u64) -> u16 {
    49152 + (seed % (65536 - 49152)) as u16
}

/// Parses `A.B.C.D/N`.
pub fn parse_cidr(s: &str) -> Result<StackAddr, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX, e.g. 10.1.0.3/24"))?;
    let addr: Ipv4Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let prefix_len: u8 = p
        .parse()
        .ok()
        .filter(|n| (1..=30).contains(n))
        .ok_or_else(|| format!("{p:?}: prefix length must be 1..=30"))?;
    Ok(StackAddr { addr, prefix_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_rejects() {
        let a = parse_cidr("10.1.0.3/24").unwrap();
        assert_eq!((a.addr, a.prefix_len), (Ipv4Addr::new(10, 1, 0, 3), 24));
        assert!(parse_cidr("10.1.0.3").is_err());
        assert!(parse_cidr("10.1.0.3/33").is_err());
        assert!(parse_cidr("10.1.0/24").is_err());
    }

    #[test]
    fn proc_net_route_parses() {
        let table =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes: Vec<_> = parse_routes(table).collect();
        assert_eq!(routes.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(routes[1].net.to_string(), "192.168.1.0/24");
            assert_eq!(routes[1].dev, "eth0");
        }
        assert_eq!(routes[0].net.prefix_len(), 0);
    }

    #[test]
    fn probabilities_outside_0_1_are_refused() {
        assert_eq!(parse_probability("0.25"), Ok(0.25));
        assert!(parse_probability("-0.1")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_probability("1.5")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_probability("NaN").is_err());
        assert!(parse_probability("x").is_err());
    }

    #[test]
    fn ephemeral_ports_stay_in_range() {
        for s in [0, 1, u64::MAX, 16383, 16384] {
            assert!(ephemeral_port(s) >= 49152);
        }
    }
}

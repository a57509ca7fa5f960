//! tun-proxy: a transparent TCP proxy. It routes the networks given with
//! `--route` into a TUN device it creates, terminates every TCP connection
//! to them in ustack (any-address capture), and relays each one through a
//! kernel socket to its original destination, directly or through a SOCKS5
//! server. The proxy's own sockets carry a firewall mark that a routing
//! rule lets bypass the device, so they cannot loop. UDP is not relayed.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing::{debug, info, warn};
use ustack::linkopts::{check_route_overlap, parse_with_links, LinkKind, LinkOpts};
use ustack::proxy::relay::{self, Dialer, THREAD_STACK};
use ustack::proxy::routing::{PolicyRouting, RoutingPlan};
use ustack::proxy::socks5::{check_credential, Socks5Config};
use ustack::socket::{CaptureListener, NetStack};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::middleware::{FaultInjector, PcapLinkType, PcapSink, PcapWriter, Tracer};
use ustack_link::Link;
use ustack_tcp::{CaptureFilter, TcpLayerConfig};

const ABOUT: &str = "Transparent TCP proxy over the ustack user-space TCP/IP stack: \
    traffic to the --route networks goes into a TUN device, each TCP connection is \
    terminated by ustack and relayed through a kernel socket to its destination \
    (or through a SOCKS5 server). UDP is not relayed: datagrams to the routed \
    networks are dropped.";

#[derive(Parser, Debug)]
#[command(name = "tun-proxy", version, about = ABOUT, next_help_heading = "Proxy")]
struct Args {
    /// A network to relay (CIDR, e.g. 10.77.0.0/24 or 192.0.2.7/32); repeat
    /// for more. Its TCP connections are relayed, its UDP dropped.
    #[arg(long = "route", value_name = "CIDR", required = true, value_parser = parse_route)]
    routes: Vec<Ipv4Subnet>,
    /// Relay through this SOCKS5 server (RFC 1928 CONNECT) instead of
    /// connecting directly.
    #[arg(long, value_name = "HOST:PORT")]
    socks5: Option<String>,
    /// SOCKS5 username (RFC 1929); needs --socks5-pass.
    #[arg(long, value_name = "U", requires = "socks5")]
    socks5_user: Option<String>,
    /// SOCKS5 password (RFC 1929); needs --socks5-user.
    #[arg(long, value_name = "P", requires = "socks5_user")]
    socks5_pass: Option<String>,
    /// Name of the TUN device to create.
    #[arg(long, default_value = "tunproxy0")]
    tun: String,
    /// The stack's own address on the device.
    #[arg(long, default_value = "198.18.0.2")]
    addr: Ipv4Addr,
    /// Address of the host side of the device: the source of relayed
    /// connections as the clients see it.
    #[arg(long, default_value = "198.18.0.1")]
    host_addr: Ipv4Addr,
    /// Prefix length of the device's subnet.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..=30))]
    prefix: u8,
    /// Firewall mark (SO_MARK) of the proxy's outgoing sockets.
    #[arg(long, default_value = "0x7573", value_parser = parse_mark)]
    mark: u32,
    /// Routing table for the routes into the device.
    #[arg(long, default_value_t = 7573, value_parser = clap::value_parser!(u32).range(1..=0xffff_fffe))]
    table: u32,
    /// Priority of the routing rule (before the main table's 32766).
    #[arg(long, default_value_t = 7573, value_parser = clap::value_parser!(u32).range(1..=32765))]
    rule_priority: u32,
    /// Seconds to wait for a destination to accept before the client gets
    /// a RST.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    connect_timeout: u64,
    /// MTU of the TUN device.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..=65535))]
    mtu: u16,
    /// Turn off the TUN device's offloads.
    #[arg(long)]
    no_offload: bool,
    /// Most connections in any state (TIME-WAIT included).
    #[arg(long, default_value_t = 4096, value_parser = parse_connections)]
    max_connections: usize,
    /// Start even when the device's subnet overlaps a route the host
    /// already has.
    #[arg(long)]
    allow_route_overlap: bool,
    #[command(flatten)]
    link: LinkOpts,
}

/// A connection limit: 1 to 16M (connection ids are 32-bit slot indices).
fn parse_connections(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1 << 24).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a connection count from 1 to 16777216"
        )),
    }
}

fn parse_route(s: &str) -> Result<Ipv4Subnet, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected NETWORK/PREFIX, e.g. 10.77.0.0/24"))?;
    let addr: Ipv4Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|n| (1..=32).contains(n))
        .ok_or_else(|| format!("{p:?}: prefix length must be 1..=32"))?;
    let net = Ipv4Subnet::new(addr, prefix).ok_or("prefix length at most 32")?;
    // Routes name networks: clear the host bits.
    Ipv4Subnet::new(net.network(), prefix).ok_or_else(|| "unreachable".to_string())
}

fn parse_mark(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))?;
    if v == 0 {
        return Err(
            "the mark must not be 0 (unmarked packets are the ones routed into the device)".into(),
        );
    }
    Ok(v)
}

/// Everything the arguments say, checked before anything is created.
struct Plan {
    routing: RoutingPlan,
    subnet: Ipv4Subnet,
    dialer: Dialer,
}

fn check(args: &Args) -> Result<Plan, String> {
    if args.link.kind(LinkKind::Tun)? != LinkKind::Tun {
        return Err("tun-proxy runs over its own TUN device only (--link tun)".into());
    }
    if args.tun.is_empty() || args.tun.len() > 15 {
        return Err(format!(
            "--tun {:?}: a device name is 1 to 15 bytes",
            args.tun
        ));
    }
    if args.addr == args.host_addr {
        return Err(format!(
            "--addr and --host-addr are both {}: the stack needs an address of its own",
            args.addr
        ));
    }
    let subnet = Ipv4Subnet::new(args.addr, args.prefix).ok_or("bad --prefix")?;
    let net = format!("{}/{}", subnet.network(), args.prefix);
    if !subnet.contains(args.host_addr) {
        return Err(format!(
            "--host-addr {} is outside --addr {subnet}; put both in one subnet",
            args.host_addr
        ));
    }
    for (flag, a) in [("--addr", args.addr), ("--host-addr", args.host_addr)] {
        if a == subnet.network() || a == subnet.broadcast() {
            return Err(format!(
                "{flag} {a} is the network or broadcast address of {net}; pick a host address inside it"
            ));
        }
    }
    check_route_overlap(subnet, args.allow_route_overlap)?;
    for (i, r) in args.routes.iter().enumerate() {
        if args.routes[..i].contains(r) {
            return Err(format!("--route {r} is given twice"));
        }
        if r.overlaps(&subnet) {
            return Err(format!(
                "--route {r} overlaps the device's own subnet {subnet}"
            ));
        }
    }
    let socks5 = match &args.socks5 {
        None => None,
        Some(s) => {
            let server = s
                .to_socket_addrs()
                .map_err(|e| format!("--socks5 {s}: {e}"))?
                .find(SocketAddr::is_ipv4)
                .ok_or_else(|| format!("--socks5 {s}: no IPv4 address"))?;
            let auth = match (&args.socks5_user, &args.socks5_pass) {
                (Some(u), Some(p)) => {
                    check_credential("--socks5-user", u)?;
                    check_credential("--socks5-pass", p)?;
                    Some((u.clone(), p.clone()))
                }
                (None, None) => None,
                _ => return Err("--socks5-user and --socks5-pass go together".into()),
            };
            Some(Socks5Config { server, auth })
        }
    };
    Ok(Plan {
        routing: RoutingPlan {
            device: args.tun.clone(),
            src: args.host_addr,
            routes: args.routes.clone(),
            mark: args.mark,
            table: args.table,
            priority: args.rule_priority,
        },
        subnet,
        dialer: Dialer {
            mark: args.mark,
            connect_timeout: Duration::from_secs(args.connect_timeout),
            socks5,
        },
    })
}

fn main() -> ExitCode {
    ustack::init_tracing("info");
    ustack::return_freed_buffers_to_os();
    let args: Args = parse_with_links(&[LinkKind::Tun]);
    let plan = match check(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tun-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The TUN device under the capture, fault and trace middleware the link
/// options ask for (the same order as [`LinkOpts::wrap`]).
type ProxyLink = Tracer<FaultInjector<PcapWriter<ustack_link::TunLink>>>;

fn open_link(args: &Args) -> Result<ProxyLink, Box<dyn std::error::Error>> {
    let link = ustack_link::TunLink::create(&ustack_link::TunConfig {
        name: args.tun.clone(),
        host_addr: args.host_addr,
        prefix_len: args.prefix,
        mtu: args.mtu,
        offload: !args.no_offload,
    })?;
    let sink = match &args.link.pcap {
        Some(path) => Some(PcapSink::create(path, PcapLinkType::Raw)?),
        None => None,
    };
    let faults = FaultInjector::new(PcapWriter::new(link, sink), args.link.faults.config())?;
    Ok(Tracer::new(faults))
}

fn run(args: &Args, plan: Plan) -> Result<(), Box<dyn std::error::Error>> {
    PolicyRouting::check(&plan.routing)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let link = open_link(args)?;
    let device = link.name().to_string();
    let tcp = TcpLayerConfig {
        max_connections: args.max_connections,
        ..TcpLayerConfig::default()
    };
    let net = NetStack::spawn(link, plan.subnet, tcp)?;
    // Dropped before `net` is stopped: the rule goes before the device.
    let routing = PolicyRouting::install(&plan.routing)?;
    let filter = plan
        .routing
        .routes
        .iter()
        .fold(CaptureFilter::any(), |f, r| f.subnet(*r));
    let capture = CaptureListener::bind(&net, filter)?;
    let via = match &plan.dialer.socks5 {
        Some(s) => format!("SOCKS5 server {}", s.server),
        None => "direct kernel connections".to_string(),
    };
    let routes: Vec<String> = plan.routing.routes.iter().map(|r| r.to_string()).collect();
    println!(
        "tun-proxy: relaying TCP to {} via {device} through {via}; UDP is not relayed",
        routes.join(", ")
    );
    info!(%device, mark = plan.routing.mark, table = plan.routing.table, "ready");
    let dialer = Arc::new(plan.dialer);
    while !stop.load(Ordering::Relaxed) {
        let pending = match capture.next_timeout(Duration::from_millis(200)) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => return Err(format!("the stack stopped: {e}").into()),
        };
        let dialer = Arc::clone(&dialer);
        let spawned = std::thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let (peer, dst) = (pending.peer_addr(), pending.local_addr());
                match relay::serve(pending, &dialer) {
                    Ok((up, down)) => debug!(%peer, %dst, up, down, "flow done"),
                    Err(e) => debug!(%peer, %dst, %e, "flow failed"),
                }
            });
        if let Err(e) = spawned {
            // The pending connection went down with the closure: refused.
            warn!(%e, "cannot start a relay thread");
        }
    }
    drop(capture);
    let reset = net.abort_all(Duration::from_secs(1));
    info!(
        reset,
        "shutting down: removing the routing rule, routes and {device}"
    );
    drop(routing);
    net.stop();
    Ok(())
}

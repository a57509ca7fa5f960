//! tun-server: serves HTTP from ustack over a TUN device it creates, or over
//! an existing Ethernet interface with `--link afpacket --iface IFACE`.
//!
//! On TUN, the host side of the device gets `--host-addr`; the stack answers
//! on `--addr`, so `curl http://10.0.0.2/` from the host says `Hello World!`.
//! On AF_PACKET, the stack answers ARP and IP for `--addr/--prefix` on the
//! interface itself (an address the kernel must not have there).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tracing::info;
use ustack::http_server::HttpServer;
use ustack::linkopts::{check_route_overlap, parse_with_links};
use ustack::linkopts::{LinkKind, LinkOpts, StackAddr};
use ustack::stats_file::StatsFile;
use ustack::{run, Clock};
use ustack_http::HttpConfig;
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{AnyLink, Link};
use ustack_tcp::{ListenOptions, SynCookies, TcpLayerConfig};

/// `--syn-cookies`: when the listener answers SYNs with SYN cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CookieMode {
    /// When the backlog or the connection table is full.
    Auto,
    /// For every SYN.
    Always,
    /// Never: a SYN that finds no room is dropped.
    Never,
}

#[derive(Parser, Debug)]
#[command(
    name = "tun-server",
    version,
    about = "Serve HTTP from the ustack user-space TCP/IP stack over a TUN device or an AF_PACKET socket",
    next_help_heading = "Server"
)]
struct Args {
    /// Name of the TUN device to create.
    #[arg(long, default_value = "tun0")]
    tun: String,
    /// The stack's own IPv4 address (what you curl); inside
    /// --host-addr/--prefix.
    #[arg(long, default_value = "10.0.0.2")]
    addr: Ipv4Addr,
    /// TCP port to serve HTTP on.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Address given to the host side of the TUN device.
    #[arg(long, default_value = "10.0.0.1")]
    host_addr: Ipv4Addr,
    /// Prefix length of the subnet (the TUN host side, or the stack's own on
    /// afpacket).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(1..=30))]
    prefix: u8,
    /// Start even when the subnet overlaps a route the host already has
    /// (traffic to the overlap may then go to the wrong place).
    #[arg(long)]
    allow_route_overlap: bool,
    /// MTU: of the TUN device [default: 1500]; for afpacket, at most the
    /// interface's [default: the interface's].
    #[arg(long, value_parser = clap::value_parser!(u16).range(576..=65535))]
    mtu: Option<u16>,
    /// Turn off the TUN device's offloads (virtio-net header with TCP
    /// segmentation and checksum offload): one packet per read and write.
    #[arg(long)]
    no_offload: bool,
    /// Most connections open or closing at once. An idle connection holds
    /// no buffers, only its state; connections the server closed first wait
    /// out TIME-WAIT as small records outside this limit.
    #[arg(long, default_value_t = TcpLayerConfig::default().max_connections,
          value_parser = parse_connections)]
    max_connections: usize,
    /// Most 4-tuples kept in TIME-WAIT (about 80 bytes each); at the limit
    /// the oldest record goes first.
    #[arg(long, default_value_t = TcpLayerConfig::default().max_time_wait)]
    max_time_wait: usize,
    /// Most bytes of TCP buffer storage, all connections together (suffix
    /// K, M or G). Past three quarters of it buffers stop growing; it is
    /// never exceeded.
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    buffer_budget: usize,
    /// Largest receive buffer one connection may auto-tune to (BYTES, suffix K/M/G).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    recv_buffer_max: usize,
    /// Largest send buffer one connection may grow to (BYTES, suffix K/M/G).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    send_buffer_max: usize,
    /// Rewrite FILE every second with the server's counters (one CSV line
    /// under a header: connections, buffer bytes, connections opened and
    /// closed, TIME-WAIT records), for monitors and soak tests.
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// On SIGINT/SIGTERM, seconds that responses in flight get to finish
    /// before their connections are reset (0: reset at once; a second
    /// signal also resets at once).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    grace: u64,
    /// Accept queue of the HTTP listener: connections in the handshake plus
    /// those not yet accepted.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    backlog: u64,
    /// When to answer SYNs statelessly with SYN cookies (RFC 4987).
    #[arg(long, value_enum, default_value_t = CookieMode::Auto)]
    syn_cookies: CookieMode,
    /// Seconds a connection may take to send a complete request head
    /// (0: no limit); then it is reset.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, allow_negative_numbers = true, value_parser = parse_secs)]
    header_timeout: f64,
    /// Seconds a keep-alive connection may sit idle between requests
    /// (0: no limit); then it is reset.
    #[arg(long, value_name = "SECS", default_value_t = 75.0, allow_negative_numbers = true, value_parser = parse_secs)]
    idle_timeout: f64,
    #[command(flatten)]
    link: LinkOpts,
}

/// A timeout in seconds: finite, 0 to a day.
fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{v} s is out of range (0 to 86400)"));
    }
    Ok(v)
}

/// `SECS` as an optional timeout: 0 is none.
fn timeout(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
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

/// A byte count with an optional K, M or G suffix (powers of 1024), at
/// least 64 KiB.
fn parse_size(s: &str) -> Result<usize, String> {
    let (num, shift) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 30),
        t => (t, 0),
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 512K, 16M, 1G)"))?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 64 * 1024 {
        return Err(format!("{s:?} is below the 64 KiB minimum"));
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    ustack::init_tracing("info");
    ustack::return_freed_buffers_to_os();
    let args: Args = parse_with_links(&[LinkKind::Tun, LinkKind::Afpacket]);
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_link(args: &Args, kind: LinkKind) -> Result<AnyLink, Box<dyn std::error::Error>> {
    match kind {
        LinkKind::Afpacket => Ok(args.link.open_afpacket(
            StackAddr {
                addr: args.addr,
                prefix_len: args.prefix,
            },
            args.mtu,
        )?),
        // `parse_with_links` refused it: a raw link carries one client flow.
        LinkKind::Raw => Err("--link raw cannot serve; use --link tun or --link afpacket".into()),
        LinkKind::Tun => open_tun(args),
    }
}

#[cfg(feature = "tun")]
fn open_tun(args: &Args) -> Result<AnyLink, Box<dyn std::error::Error>> {
    let link = ustack_link::TunLink::create(&ustack_link::TunConfig {
        name: args.tun.clone(),
        host_addr: args.host_addr,
        prefix_len: args.prefix,
        mtu: args.mtu.unwrap_or(1500),
        offload: !args.no_offload,
    })?;
    Ok(link.into())
}

#[cfg(not(feature = "tun"))]
fn open_tun(_: &Args) -> Result<AnyLink, Box<dyn std::error::Error>> {
    Err(LinkKind::Tun.require().unwrap_err().into())
}

/// Everything the addresses say, checked before anything is created.
fn check(args: &Args, kind: LinkKind) -> Result<Ipv4Subnet, String> {
    let subnet = Ipv4Subnet::new(args.addr, args.prefix).ok_or("--prefix is at most 30")?;
    let net = format!("{}/{}", subnet.network(), args.prefix);
    let special = |a: Ipv4Addr| a == subnet.network() || a == subnet.broadcast();
    if special(args.addr) {
        return Err(format!(
            "--addr {} is the network or broadcast address of {net}; pick a host address inside it",
            args.addr
        ));
    }
    if kind == LinkKind::Tun {
        if args.addr == args.host_addr {
            return Err(format!(
                "--addr and --host-addr are both {}: the stack needs an address of its own",
                args.addr
            ));
        }
        if !subnet.contains(args.host_addr) {
            return Err(format!(
                "--addr {} is outside --host-addr {}/{}: the host could not reach it; \
                 pick an --addr in that subnet (or change --host-addr/--prefix)",
                args.addr, args.host_addr, args.prefix
            ));
        }
        if special(args.host_addr) {
            return Err(format!(
                "--host-addr {} is the network or broadcast address of {net}; pick a host address inside it",
                args.host_addr
            ));
        }
        check_route_overlap(subnet, args.allow_route_overlap)?;
    }
    Ok(subnet)
}

fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let kind = args.link.kind(LinkKind::Tun)?;
    let subnet = check(args, kind)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut link = args.link.wrap(kind, open_link(args, kind)?)?;
    let defaults = TcpLayerConfig::default();
    let tcp = TcpLayerConfig {
        max_connections: args.max_connections,
        max_time_wait: args.max_time_wait,
        buffer_budget: args.buffer_budget,
        tcp: ustack_tcp::TcpConfig {
            recv_buffer_max: args.recv_buffer_max,
            send_buffer_max: args.send_buffer_max,
            ..defaults.tcp
        },
        ..defaults
    };
    // The link (all its middleware included) says what it offloads.
    let mut stack = ustack::new_stack(subnet, link.caps(), tcp);
    let listen = ListenOptions {
        backlog: args.backlog as usize,
        syn_cookies: match args.syn_cookies {
            CookieMode::Auto => SynCookies::Auto,
            CookieMode::Always => SynCookies::Always,
            CookieMode::Never => SynCookies::Never,
        },
    };
    let http = HttpConfig {
        header_timeout: timeout(args.header_timeout),
        idle_timeout: timeout(args.idle_timeout),
        ..HttpConfig::default()
    };
    let mut server = HttpServer::with_options(&mut stack, args.port, listen, http)?;
    server.set_grace(Duration::from_secs(args.grace));
    let mut server = StatsFile::new(server, args.stats.clone(), Duration::from_secs(1));
    let url = if args.port == 80 {
        format!("http://{}/", args.addr)
    } else {
        format!("http://{}:{}/", args.addr, args.port)
    };
    if kind == LinkKind::Afpacket {
        println!(
            "ustack serving HTTP on {} (AF_PACKET, stack at {}/{}): curl {url}",
            link.name(),
            args.addr,
            args.prefix
        );
    } else {
        println!(
            "ustack serving HTTP on {} (host side {}/{}): curl {url}",
            link.name(),
            args.host_addr,
            args.prefix
        );
    }
    info!(device = link.name(), addr = %args.addr, port = args.port, "serving");

    // Returns on a signal only once the shutdown is done: the listener
    // closed, the grace period over, what remained reset and the RSTs sent.
    let result = run(&mut link, &mut stack, &mut server, &Clock::new(), &stop);
    let (s, ip, l) = (stack.stats(), stack.ip_stats(), link.stats());
    info!(
        responses = server.inner().stats().responses,
        rx_segments = s.tcp_rx_segments,
        tx_segments = s.tcp_tx_segments,
        rst_sent = s.tcp_rst_sent,
        syncookies_sent = s.tcp_syncookies_sent,
        syncookies_ok = s.tcp_syncookies_ok,
        http_timeouts = server.inner().timeouts(),
        bad_checksum = s.tcp_bad_checksum + ip.rx_bad_checksum,
        fragments_reassembled = ip.rx_reassembled,
        link_rx_packets = l.rx_packets,
        link_tx_packets = l.tx_packets,
        link_tx_dropped = l.tx_dropped,
        link_rx_dropped = l.rx_dropped,
        "stopped; removing {}",
        link.name()
    );
    drop(link); // removes a TUN device, flushes a capture
    result?;
    Ok(())
}

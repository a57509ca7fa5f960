//! tun-server: serves HTTP from ustack over a TUN device it creates.
//!
//! The host side of the device gets `--host-addr`; the stack answers on
//! `--addr`, so `curl http://10.0.0.2/` from the host says `Hello World!`.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use tracing::info;
use ustack::http_server::HttpServer;
use ustack::{run, Clock};
use ustack_link::{Link, TunConfig, TunLink};
use ustack_tcp::{Stack, StackConfig, XorShiftRng};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Serve HTTP from the ustack user-space TCP/IP stack over a TUN device"
)]
struct Args {
    /// Name of the TUN device to create.
    #[arg(long, default_value = "tun0")]
    tun: String,
    /// The stack's own IPv4 address (what you curl).
    #[arg(long, default_value = "10.0.0.2")]
    addr: Ipv4Addr,
    /// Address given to the host side of the TUN device.
    #[arg(long, default_value = "10.0.0.1")]
    host_addr: Ipv4Addr,
    /// Prefix length of the TUN subnet.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(1..=30))]
    prefix: u8,
    /// TCP port to serve HTTP on.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// MTU of the TUN device.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..=65535))]
    mtu: u16,
    /// Most connections in any state (TIME-WAIT included).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
}

fn main() -> ExitCode {
    ustack::init_tracing("info");
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.addr == args.host_addr {
        return Err(format!(
            "--addr and --host-addr are both {}: the stack needs an address of its own",
            args.addr
        )
        .into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut link = TunLink::create(&TunConfig {
        name: args.tun.clone(),
        host_addr: args.host_addr,
        prefix_len: args.prefix,
        mtu: args.mtu,
    })?;
    let mut cfg = StackConfig::new(args.addr, link.mtu());
    cfg.max_connections = args.max_connections;
    let mut stack = Stack::new(cfg, Box::new(XorShiftRng::new(ustack::os_seed())));
    let mut server = HttpServer::new(&mut stack, args.port, 1024)?;
    let url = if args.port == 80 {
        format!("http://{}/", args.addr)
    } else {
        format!("http://{}:{}/", args.addr, args.port)
    };
    println!(
        "ustack serving HTTP on {} (host side {}/{}): curl {url}",
        link.name(),
        args.host_addr,
        args.prefix
    );
    info!(device = link.name(), addr = %args.addr, port = args.port, "serving");

    let result = run(&mut link, &mut stack, &mut server, &Clock::new(), &stop);
    let s = stack.stats();
    info!(
        responses = server.stats().responses,
        rx_segments = s.tcp_rx_segments,
        tx_segments = s.tcp_tx_segments,
        rst_sent = s.tcp_rst_sent,
        bad_checksum = s.tcp_bad_checksum + s.ip.rx_bad_checksum,
        "shutting down; removing {}",
        link.name()
    );
    result?;
    Ok(())
}

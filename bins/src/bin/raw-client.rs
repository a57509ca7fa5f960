//! raw-client: an nc-like TCP client whose TCP runs in user space (ustack)
//! over a raw IPv4 socket, talking to ordinary kernel servers; or, with
//! `--link afpacket --iface IFACE --src ADDR/PREFIX`, over an Ethernet
//! interface with an address of its own (no RST guard needed: the kernel
//! does not own that address, so it never resets the flow).
//!
//! stdin goes to the connection, what arrives goes to stdout; stdin EOF sends
//! a FIN (half-close). Exits 0 once the peer has closed and all our data is
//! acknowledged; non-zero with a message on RST, timeout or unreachable host.

use std::io::Write;
#[cfg(feature = "raw")]
use std::net::UdpSocket;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
#[cfg(feature = "raw")]
use socket2::{Domain, Protocol, Socket, Type};
use tracing::debug;
use ustack::linkopts::{
    ephemeral_port, parse_cidr, parse_with_links, LinkKind, LinkOpts, StackAddr,
};
use ustack::{run, App, Clock, Control, Outcome, RuntimeError};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{AnyLink, Link};
use ustack_tcp::{ConnId, Instant, State, Tcp, TcpError, TcpLayerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "raw-client",
    version,
    about = "nc-like TCP client running the ustack user-space TCP over a raw IPv4 socket or AF_PACKET",
    next_help_heading = "Client"
)]
struct Args {
    /// Server host (IPv4 address or name).
    host: String,
    /// Server port.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The stack's own address and prefix for --link afpacket, e.g.
    /// 10.1.0.3/24: one the kernel does not have on --iface.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    src: Option<StackAddr>,
    /// Local TCP port (default: a free port reserved from the kernel).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    src_port: Option<u16>,
    /// Do not install the nftables rule that drops the kernel's RSTs for this
    /// connection (you must then drop them yourself, or the kernel resets us).
    /// Only --link raw needs the rule; afpacket never installs it.
    #[arg(long)]
    no_rst_guard: bool,
    /// Give up connecting after this many seconds (more than 0, at most a day).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, allow_negative_numbers = true,
          value_parser = parse_timeout)]
    connect_timeout: f64,
    /// Largest IPv4 packet to send [default: 1500 for raw, the interface's
    /// MTU for afpacket].
    #[arg(long, value_parser = clap::value_parser!(u16).range(576..=65535))]
    mtu: Option<u16>,
    #[command(flatten)]
    link: LinkOpts,
}

/// A connect timeout in seconds: above 0, at most a day.
fn parse_timeout(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{v} s is out of range (above 0, at most 86400)"));
    }
    Ok(v)
}

/// What can be refused before any socket, reservation or firewall rule.
fn check(args: &Args, kind: LinkKind) -> Result<(), String> {
    match (kind, args.src) {
        (LinkKind::Afpacket, None) => Err(
            "--link afpacket needs --src ADDR/PREFIX: an address of the stack's own on --iface"
                .into(),
        ),
        (LinkKind::Afpacket, Some(src)) => {
            let net = Ipv4Subnet::new(src.addr, src.prefix_len).ok_or("--src: bad prefix")?;
            if src.addr == net.network() || src.addr == net.broadcast() {
                return Err(format!(
                    "--src {}/{} is the network or broadcast address; pick a host address",
                    src.addr, src.prefix_len
                ));
            }
            Ok(())
        }
        (_, Some(_)) => Err(
            "--src is for --link afpacket; over a raw socket the kernel's address is used".into(),
        ),
        (_, None) => Ok(()),
    }
}

fn main() -> ExitCode {
    ustack::init_tracing("warn");
    let args: Args = parse_with_links(&[LinkKind::Raw, LinkKind::Afpacket]);
    match client(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raw-client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddrV4, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(v4),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{host} has no IPv4 address"))
}

/// The source address the kernel's routing would use towards `remote`
/// (a connected UDP socket sends nothing).
#[cfg(feature = "raw")]
fn source_ip_for(remote: SocketAddrV4) -> Result<Ipv4Addr, String> {
    let s =
        UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("cannot pick a source address: {e}"))?;
    s.connect(remote)
        .map_err(|e| format!("{remote} is unreachable: {e}"))?;
    match s.local_addr() {
        Ok(SocketAddr::V4(a)) => Ok(*a.ip()),
        _ => Err(format!("no IPv4 source address towards {remote}")),
    }
}

/// Binds (without listening) a kernel TCP socket to the port, so the kernel
/// hands that port to no one else while we use it.
#[cfg(feature = "raw")]
fn reserve_port(ip: Ipv4Addr, port: u16) -> Result<(Socket, u16), String> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("cannot reserve a local port: {e}"))?;
    s.bind(&SocketAddrV4::new(ip, port).into())
        .map_err(|e| format!("local port {ip}:{port} is not free: {e}"))?;
    let got = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket_ipv4())
        .map(|a| a.port())
        .ok_or("cannot read the reserved port")?;
    Ok((s, got))
}

/// Keeps alive for the connection's lifetime whatever the link needed: the
/// kernel socket reserving the port, the nftables RST guard.
type Holds = Vec<Box<dyn std::any::Any>>;

#[cfg(feature = "raw")]
fn open_raw(
    args: &Args,
    remote: SocketAddrV4,
    holds: &mut Holds,
) -> Result<(AnyLink, SocketAddrV4, u8), Box<dyn std::error::Error>> {
    let local_ip = source_ip_for(remote)?;
    let (reservation, port) = reserve_port(local_ip, args.src_port.unwrap_or(0))?;
    holds.push(Box::new(reservation));
    let local = SocketAddrV4::new(local_ip, port);
    // Installed before the SYN, removed when `holds` drops — whatever the path.
    if !args.no_rst_guard {
        holds.push(Box::new(ustack::rst_guard::RstGuard::install(
            local,
            remote,
            ustack_link::PACKET_MARK,
        )?));
    }
    let link = ustack_link::RawLink::open(&ustack_link::RawConfig {
        local,
        remote,
        mtu: args.mtu.unwrap_or(1500),
    })?;
    Ok((link.into(), local, 32))
}

#[cfg(not(feature = "raw"))]
fn open_raw(
    _: &Args,
    _: SocketAddrV4,
    _: &mut Holds,
) -> Result<(AnyLink, SocketAddrV4, u8), Box<dyn std::error::Error>> {
    Err(LinkKind::Raw.require().unwrap_err().into())
}

fn open_link(
    args: &Args,
    kind: LinkKind,
    remote: SocketAddrV4,
    holds: &mut Holds,
) -> Result<(AnyLink, SocketAddrV4, u8), Box<dyn std::error::Error>> {
    match kind {
        LinkKind::Raw => open_raw(args, remote, holds),
        LinkKind::Afpacket => {
            let src = args.src.ok_or(
                "--link afpacket needs --src ADDR/PREFIX: an address of the stack's own on --iface",
            )?;
            // The kernel does not own `src`, so no kernel socket can take the
            // port and none will answer our peer with a RST: nothing to reserve
            // or guard.
            let port = args
                .src_port
                .unwrap_or_else(|| ephemeral_port(ustack::os_seed()));
            let link = args.link.open_afpacket(src, args.mtu)?;
            Ok((link, SocketAddrV4::new(src.addr, port), src.prefix_len))
        }
        // `parse_with_links` refused it.
        LinkKind::Tun => Err("--link tun: use --link raw or --link afpacket".into()),
    }
}

fn client(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let kind = args.link.kind(LinkKind::Raw)?;
    check(args, kind)?;
    let remote = resolve(&args.host, args.port)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut holds: Holds = Vec::new();
    let (link, local, prefix_len) = open_link(args, kind, remote, &mut holds)?;
    let (local_ip, port) = (*local.ip(), local.port());
    debug!(%local, %remote, "connecting");
    let mut link = args.link.wrap(kind, link)?;
    let clock = Clock::new();
    // Checksums left partial on loopback come up RxChecksum::Partial per
    // packet; the run loop skips verifying exactly those.
    let subnet = Ipv4Subnet::new(local_ip, prefix_len).ok_or("prefix longer than 32 bits")?;
    let mut stack = ustack::new_stack(subnet, link.caps(), TcpLayerConfig::default());
    let conn = stack.connect(clock.now(), remote, Some(port))?;
    let mut app = Nc {
        conn,
        remote,
        connect_deadline: clock.now() + Duration::from_secs_f64(args.connect_timeout.max(0.0)),
        connected: false,
        stdin_ready: false,
        stdin_eof: false,
        out: std::io::stdout(),
    };
    // On Ctrl-C, `Nc` keeps the default `App::on_stop` (no grace period):
    // `run` resets the connection and returns once the RST has left, so the
    // RST guard below is removed only after it (the guard lets our own RSTs
    // through, but the kernel's must not follow once it is gone).
    let result = run(&mut link, &mut stack, &mut app, &clock, &stop);
    drop(link); // flushes a capture before the guard goes
    drop(holds);
    match result? {
        Outcome::Exited => Ok(()),
        Outcome::Stopped(_) => Err("interrupted: connection reset".into()),
    }
}

struct Nc {
    conn: ConnId,
    remote: SocketAddrV4,
    connect_deadline: Instant,
    connected: bool,
    stdin_ready: bool,
    stdin_eof: bool,
    out: std::io::Stdout,
}

const STDIN: RawFd = 0;

impl Nc {
    fn fail(&self, e: TcpError) -> RuntimeError {
        RuntimeError::App(match e {
            TcpError::ConnectionRefused(a) => format!("connection to {a} refused"),
            TcpError::ConnectionReset => format!("connection reset by {}", self.remote),
            TcpError::TimedOut { .. } | TcpError::Unreachable { .. } => {
                format!("connection to {} timed out ({e})", self.remote)
            }
            other => format!("{}: {other}", self.remote),
        })
    }

    fn pump_stdin(&mut self, stack: &mut Tcp, now: Instant) -> Result<(), RuntimeError> {
        if !self.stdin_ready || self.stdin_eof || stack.send_space(self.conn).unwrap_or(0) == 0 {
            return Ok(());
        }
        self.stdin_ready = false;
        let mut read_err = None;
        let mut at_eof = false;
        let r = stack.send_with(self.conn, |space| {
            // SAFETY: `space` is a valid writable buffer of `space.len()` bytes;
            // fd 0 is only read here, and poll reported it readable.
            let n = unsafe { libc::read(STDIN, space.as_mut_ptr().cast(), space.len()) };
            if n < 0 {
                read_err = Some(std::io::Error::last_os_error());
                0
            } else {
                at_eof = n == 0;
                n as usize
            }
        });
        if let Some(e) = read_err {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(RuntimeError::App(format!("reading stdin: {e}")));
            }
            return Ok(());
        }
        match r {
            Ok(_) | Err(TcpError::WouldBlock) => {}
            Err(e) => return Err(self.fail(e)),
        }
        if at_eof {
            // End of input: half-close (RFC 9293 §3.10.4); replies still arrive.
            self.stdin_eof = true;
            stack.shutdown(self.conn, now).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

impl App for Nc {
    fn on_turn(&mut self, stack: &mut Tcp, now: Instant) -> Result<Control, RuntimeError> {
        let state = stack.state(self.conn).map_err(|e| self.fail(e))?;
        if let Ok(Some(e)) = stack.error(self.conn) {
            return Err(self.fail(e));
        }
        if state == State::SynSent && now >= self.connect_deadline {
            // An ICMP error on the way says why (RFC 1122 §4.2.3.9).
            let why = match stack.soft_error(self.conn) {
                Ok(Some(cause)) => format!(": {cause} (ICMP)"),
                _ => String::new(),
            };
            return Err(RuntimeError::App(format!(
                "timed out connecting to {}{why}",
                self.remote
            )));
        }
        if state != State::SynSent {
            self.connected = true;
            self.pump_stdin(stack, now)?;
        }
        let mut write_err = None;
        loop {
            let out = &mut self.out;
            match stack.recv_with(self.conn, |d| match out.write_all(d) {
                Ok(()) => d.len(),
                Err(e) => {
                    write_err = Some(e);
                    0
                }
            }) {
                Ok(0) => break,
                Ok(_) => {}
                Err(TcpError::WouldBlock) => break,
                Err(e) => return Err(self.fail(e)),
            }
        }
        if let Some(e) = write_err {
            return Err(RuntimeError::App(format!("writing stdout: {e}")));
        }
        let _ = self.out.flush();
        if stack.at_eof(self.conn).unwrap_or(false) {
            // The peer closed. Finish our side (nc exits when the remote closes),
            // and leave once everything we sent, FIN included, is acknowledged.
            if !self.stdin_eof {
                self.stdin_eof = true;
                stack.shutdown(self.conn, now).map_err(|e| self.fail(e))?;
            }
            if matches!(stack.state(self.conn), Ok(State::TimeWait | State::Closed)) {
                return Ok(Control::Exit);
            }
        }
        Ok(Control::Continue)
    }

    fn wait_fds(&self, out: &mut Vec<(RawFd, i16)>) {
        if !self.stdin_eof && !self.stdin_ready {
            out.push((STDIN, libc::POLLIN));
        }
    }

    fn on_fd_ready(&mut self, fd: RawFd, _revents: i16) {
        if fd == STDIN {
            self.stdin_ready = true;
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        (!self.connected).then_some(self.connect_deadline)
    }
}

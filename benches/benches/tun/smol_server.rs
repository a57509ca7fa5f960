//! The smoltcp baseline: an HTTP server on smoltcp 0.14 over a TUN device
//! ([`serve_tun`]) or an `AF_PACKET` socket on an Ethernet interface
//! ([`serve_afpacket`]), one server loop for both, answering exactly like
//! tun-server because every connection is driven by
//! the same [`HttpConn`] (so HTTP parsing and response generation cost the
//! same on both stacks; only the TCP/IP stack and the device I/O differ).
//!
//! smoltcp has no accept queue: a listening socket *becomes* the connection.
//! [`LISTENERS`] sockets listen on port 80, and each listens again once its
//! connection is closed, so up to that many connections are served at once.
//! Buffers are 256 KiB each way, ustack's default. Run as a child process of
//! the bench (re-executed with [`super::ROLE_ENV`]), inside the namespace.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{wait, Device, Medium, RawSocket, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use ustack_http::{HttpConfig, HttpConn};

/// Concurrent connections the server can hold (the clients open 32).
const LISTENERS: usize = 64;
/// Send and receive buffer of every socket, ustack's default.
const SOCKET_BUFFER: usize = 256 * 1024;
const PORT: u16 = 80;
/// Rounds of recv/send per socket per poll, as in ustack's HTTP glue.
const DRIVE_ROUNDS: usize = 64;

struct Slot {
    handle: SocketHandle,
    http: Option<HttpConn>,
    eof_seen: bool,
    closing: bool,
}

/// RFC 7323 timestamps, as ustack and the kernel send them: without them the
/// kernel client cannot reuse TIME-WAIT ports (`tcp_tw_reuse`) in the
/// new-connections test and would run out of ports.
fn tsval() -> u32 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u32
}

/// Stops on SIGTERM or SIGINT.
fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    Ok(stop)
}

/// Creates `tun` (host side `host/prefix`, smoltcp at `addr`) and serves
/// until SIGTERM or SIGINT.
pub fn serve_tun(tun: &str, host: Ipv4Addr, addr: Ipv4Addr, prefix: u8) -> Result<(), String> {
    let stop = stop_flag()?;
    let mut dev =
        TunTapInterface::new(tun, Medium::Ip).map_err(|e| format!("open TUN {tun}: {e}"))?;
    let host_cidr = format!("{host}/{prefix}");
    for args in [
        vec!["addr", "add", host_cidr.as_str(), "dev", tun],
        vec!["link", "set", tun, "mtu", "1500", "up"],
    ] {
        let out = Command::new("ip")
            .args(&args)
            .output()
            .map_err(|e| format!("ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, Instant::now());
    serve(iface, dev, addr, prefix, &stop)
}

/// Serves on an `AF_PACKET` socket bound to the existing Ethernet interface
/// `ifname` (smoltcp's `RawSocket`), with the interface's MAC and the
/// address `addr/prefix`, which the kernel there must not hold; smoltcp
/// answers ARP for it. Until SIGTERM or SIGINT.
pub fn serve_afpacket(ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), String> {
    let stop = stop_flag()?;
    let mut dev = RawSocket::new(ifname, Medium::Ethernet)
        .map_err(|e| format!("AF_PACKET socket on {ifname}: {e}"))?;
    let path = format!("/sys/class/net/{ifname}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mac: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    let mac: [u8; 6] = mac
        .try_into()
        .map_err(|_| format!("{path}: {:?} is not a MAC address", text.trim()))?;
    let hw = HardwareAddress::Ethernet(EthernetAddress(mac));
    let iface = Interface::new(Config::new(hw), &mut dev, Instant::now());
    serve(iface, dev, addr, prefix, &stop)
}

/// The server loop, on any device whose readiness a file descriptor shows.
fn serve<D: Device + AsRawFd>(
    mut iface: Interface,
    mut dev: D,
    addr: Ipv4Addr,
    prefix: u8,
    stop: &AtomicBool,
) -> Result<(), String> {
    let fd = dev.as_raw_fd();
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(addr), prefix))
            .expect("one address fits")
    });

    let mut sockets = SocketSet::new(Vec::with_capacity(LISTENERS));
    let mut slots: Vec<Slot> = (0..LISTENERS)
        .map(|_| {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            );
            s.set_tsval_generator(Some(tsval));
            s.listen(PORT).expect("listen");
            Slot {
                handle: sockets.add(s),
                http: None,
                eof_seen: false,
                closing: false,
            }
        })
        .collect();
    let config = HttpConfig::default();

    while !stop.load(Ordering::Relaxed) {
        iface.poll(Instant::now(), &mut dev, &mut sockets);
        let mut app_progress = false;
        for slot in &mut slots {
            app_progress |= drive(sockets.get_mut::<tcp::Socket>(slot.handle), slot, &config);
        }
        if app_progress {
            // Send what the application queued before sleeping.
            continue;
        }
        let delay = iface
            .poll_delay(Instant::now(), &sockets)
            // Wake now and then to notice a stop request.
            .map_or(Duration::from_millis(200), |d| {
                d.min(Duration::from_millis(200))
            });
        match wait(fd, Some(delay)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
    Ok(())
}

/// Moves bytes between one socket and its HTTP connection; true if any moved
/// or the connection changed state.
fn drive(sock: &mut tcp::Socket, slot: &mut Slot, config: &HttpConfig) -> bool {
    use tcp::State::*;
    match sock.state() {
        Closed => {
            // Connection over (closed, reset or timed out): listen again.
            slot.http = None;
            slot.eof_seen = false;
            slot.closing = false;
            sock.listen(PORT).expect("listen");
            return false;
        }
        Listen | SynSent | SynReceived => return false,
        _ => {}
    }
    if slot.closing {
        return false;
    }
    let http = slot.http.get_or_insert_with(|| HttpConn::new(config));
    let mut any = false;
    for _ in 0..DRIVE_ROUNDS {
        let mut progress = false;
        if http.wants_recv() && sock.can_recv() {
            if let Ok(n) = sock.recv(|buf| {
                let n = http.on_recv(buf);
                (n, n)
            }) {
                progress |= n > 0;
            }
        }
        if !slot.eof_seen && !sock.may_recv() {
            slot.eof_seen = true;
            http.on_eof();
            progress = true;
        }
        if sock.may_send() {
            if let Ok(n) = sock.send(|buf| {
                let n = http.poll_send(buf);
                (n, n)
            }) {
                progress |= n > 0;
            }
        }
        if http.wants_close() {
            sock.close();
            slot.closing = true;
            return true;
        }
        if !progress {
            break;
        }
        any = true;
    }
    any
}
